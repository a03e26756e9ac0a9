"""The console script: --help on every subcommand, and the light subcommands end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imagenet_think import __version__
from imagenet_think.cli import COMMANDS, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imagenet_think.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: imagenet-think " + command)
    assert "--" in result.stdout  # documents options, not only the positional usage


def test_top_level_help_lists_commands_and_version_matches_setup_cfg():
    result = run_cli("--help")
    assert all(name in result.stdout for name in COMMANDS)
    from configparser import ConfigParser
    from pathlib import Path

    cfg = ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    assert cfg["metadata"]["version"] == __version__


def test_show_prints_json_records(capsys):
    assert main(["show", "sample", "--config", "pairs", "-n", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["teacher"] for r in rows] == [1, 2] and rows[0]["id"] == rows[1]["id"]


def test_export_subcommand_writes_hub_layout(tmp_path, capsys):
    assert main(["export", "sample", str(tmp_path / "out"), "--limit", "4"]) == 0
    assert "train: 4 rows" in capsys.readouterr().out
    assert (tmp_path / "out" / "README.md").read_text().startswith("---")


def test_import_is_light():
    code = "import sys, imagenet_think; print(sorted(m for m in ('datasets','torch','transformers','vllm','pyarrow') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_imports_no_heavy_library(command):
    code = (
        "import sys\nfrom imagenet_think.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('datasets', 'pandas', 'torch', 'transformers', 'vllm', 'matplotlib') if m in sys.modules))"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.startswith(f"usage: imagenet-think {command}") and printed.splitlines()[-1] == "[]", printed
