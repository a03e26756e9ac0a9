"""The console script: --help on every subcommand, and the light subcommands end to end."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys

import pytest

import imagenet_think
from imagenet_think import __version__, cli
from imagenet_think.cli import COMMANDS, main
from imagenet_think.show import LABEL_WIDTH


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imagenet_think.cli", *args], capture_output=True, text=True)


def subparser(command: str) -> argparse.ArgumentParser:
    parser, _ = cli._build_parser(command)
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_documents_every_option_once(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: imagenet-think " + command)
    text = " ".join(result.stdout.split())
    for action in subparser(command)._actions:
        if action.help == argparse.SUPPRESS:
            assert all(s not in text.split("usage:")[1] for s in action.option_strings if s != "--source")
            continue
        for option in action.option_strings:
            assert f" {option}" in text, option
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help, f"{command} {name} has no help"
    assert "(default: None)" not in text
    assert not re.search(r"\(default: [^)]*\) \(default:", text), "a default shown twice"


def test_a_default_of_zero_is_shown_in_help():
    # 0 == False: a test by equality would hide "(default: 0)" as if it were a flag's False
    shown = {}
    for command in sorted(COMMANDS):
        parser = subparser(command)
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.default == 0 and action.default is not False and action.help != argparse.SUPPRESS:
                shown[command, action.option_strings[-1]] = formatter._get_help_string(action)
    assert {key for key in shown} >= {("evaluate", "--seed"), ("regenerate", "--seed"), ("regenerate", "--shard-index")}
    assert all(text.endswith("(default: 0)") for text in shown.values()), shown


def test_the_shard_size_is_in_mib_and_the_old_spelling_still_works(tmp_path):
    for command in ("export", "export-sft", "export-rl"):
        parser = subparser(command)
        help_text = " ".join(parser.format_help().split())
        assert "--max-shard-mib MIB" in help_text and "in MiB of Arrow data (default: 500)" in help_text
        assert "--max-shard-mb" not in help_text  # hidden, still accepted
        required = ["--format", "trl", "--out", "o"] if command != "export" else ["sample", "o"]
        given = [parser.parse_args([*required, option, "1.5"]).max_shard_bytes for option in ("--max-shard-mib", "--max-shard-mb")]
        assert given == [int(1.5 * 2**20)] * 2
    assert main(["export", "sample", str(tmp_path / "out"), "--max-shard-mib", "0.01"]) == 0
    shards = sorted((tmp_path / "out" / "data").glob("train-*.parquet"))
    assert len(shards) > 1  # 10 KiB shards of images of more than that: one row group each


def _regenerate_scheduler(**options):
    from imagenet_think.regenerate.scheduler import Scheduler

    return Scheduler({}, None, **options)


def _metric_settings(**options):
    from imagenet_think.evaluate.metrics import MetricSettings

    return MetricSettings(**options)


def _chunks(chunk_size):
    from imagenet_think.evaluate.chunks import run_chunks

    return run_chunks(1, chunk_size, "unused", str, str, progress=False)


def _fraction(value):
    from imagenet_think.split import check_fraction

    return check_fraction(value)


@pytest.mark.parametrize("command, make_error, spelled", [
    ("regenerate", lambda: _regenerate_scheduler(max_attempts=0), "--max-attempts must be at least 1, got 0"),
    ("regenerate", lambda: _regenerate_scheduler(retry_delay=-1), "--retry-delay must be >= 0, got -1"),
    ("evaluate", lambda: _metric_settings(tfidf_fit="chunk"), "--tfidf-fit must be one of pair, corpus; got 'chunk'"),
    ("evaluate", lambda: _metric_settings(batch_size=0), "--batch-size must be at least 1, got 0"),
    ("evaluate", lambda: _chunks(0), "--chunk-size must be positive, got 0"),
    ("export", lambda: _fraction(1.5), "--validation-fraction must be in [0, 1), got 1.5"),
])
def test_library_errors_name_the_option_of_the_command_that_raised_them(command, make_error, spelled):
    with pytest.raises(ValueError) as raised:
        make_error()
    python_spelling = cli.error_line(raised.value)
    assert "`" in python_spelling  # the library names its keyword argument ...
    assert cli.cli_wording(python_spelling, subparser(command)) == spelled  # ... the command its option


def test_registry_help_gives_the_file_format():
    from dataclasses import fields

    from imagenet_think.regenerate.models import ModelSpec

    for command in ("regenerate", "evaluate"):
        [action] = [a for a in subparser(command)._actions if "--registry" in a.option_strings]
        assert "'extends: NAME'" in action.help and "max_tokens" in action.help
        assert all(f.name in action.help for f in fields(ModelSpec) if f.name != "name"), command


def test_top_level_help_describes_the_tool_and_sources():
    text = " ".join(run_cli("--help").stdout.split())
    assert cli.DESCRIPTION in text and "SOURCE" in text and "'sample'" in text
    assert "console script" not in text


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


def corrupt_copy(sample_copy):
    shard = next(sample_copy.glob("data/*.parquet"))
    shard.write_bytes(shard.read_bytes()[:5000])
    return str(sample_copy)


ERROR_CASES = {
    # command line (after the subcommand), with MISSING / CORRUPT / SAMPLE_COPY placeholders, and what the line says
    "show missing dir": ("show MISSING", "no such directory"),
    "show corrupt parquet": ("show CORRUPT", "not a readable Parquet file"),
    "stats missing dir": ("stats MISSING", "no such directory"),
    "stats corrupt parquet": ("stats CORRUPT", "not a readable Parquet file"),
    "stats unknown split": ("stats sample --split test", 'Unknown split "test"'),
    "export existing output": ("export sample SAMPLE_COPY", "/data is not empty: pass --overwrite to replace"),
    "export corrupt parquet": ("export CORRUPT OUT", "not a readable Parquet file"),
    "export bad fraction": ("export sample OUT --validation-fraction 1.5", "error: --validation-fraction must be in [0, 1), got 1.5"),
    "export-sft missing dir": ("export-sft MISSING --format trl --out OUT", "no such directory"),
    "export-rl missing dir": ("export-rl MISSING --format verl --out OUT", "no such directory"),
    "export-rl corrupt parquet": ("export-rl CORRUPT --format trl --out OUT", "not a readable Parquet file"),
    "evaluate missing dir": ("evaluate MISSING --predictions p.jsonl --out OUT", "no such directory"),
    "hub-like missing path": ("show data/corpus", "data/corpus: no such directory, and not reachable as a Hub id"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_one_line_with_status_2(case, sample_copy, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text('{"id": "n01_x", "prediction": "A cat."}\n')  # read before SOURCE
    line, expected = ERROR_CASES[case]
    before = sorted(p.name for p in (sample_copy / "data").iterdir())
    corrupt = tmp_path / "corrupt"
    shutil.copytree(sample_copy, corrupt)
    words = line.replace("MISSING", str(tmp_path / "missing")).replace("CORRUPT", corrupt_copy(corrupt))
    args = words.replace("SAMPLE_COPY", str(sample_copy)).replace("OUT", str(tmp_path / "out")).split()
    assert main(args) == 2
    stderr = capsys.readouterr().err
    [error] = [line for line in stderr.splitlines() if line.startswith("imagenet-think")]
    assert error.startswith(f"imagenet-think {args[0]}: error: ") and expected in error, error
    assert "Traceback" not in stderr
    assert sorted(p.name for p in (sample_copy / "data").iterdir()) == before  # nothing already written is lost


def test_log_level_debug_shows_the_traceback_instead(tmp_path):
    missing = str(tmp_path / "missing")
    for args in (["--log-level", "DEBUG", "show", missing], ["show", missing, "--log-level", "DEBUG"]):
        result = run_cli(*args)
        assert result.returncode == 1 and "Traceback (most recent call last)" in result.stderr
        assert result.stderr.splitlines()[-1].startswith("FileNotFoundError: ")
        assert not [line for line in result.stderr.splitlines() if line.startswith("imagenet-think")]


def test_a_bug_is_one_line_with_status_1(capsys, monkeypatch):
    import imagenet_think.cli.show

    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(imagenet_think.cli.show, "run", broken)
    assert main(["show"]) == 1
    assert capsys.readouterr().err == (
        "imagenet-think show: error: TypeError: unsupported operand (rerun with --log-level DEBUG for the traceback)\n"
    )
    with pytest.raises(TypeError):
        main(["show", "--log-level", "DEBUG"])


def test_source_is_positional_with_sample_as_default_and_source_a_hidden_alias(capsys):
    train_rows = len(imagenet_think.load_dataset("sample", split="train", columns=["id"]))
    outputs = []
    for args in (["stats"], ["stats", "sample"], ["stats", "--source", "sample"]):
        assert main(args) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0].startswith(f"sample (train): {train_rows} rows")
    for command in ("show", "stats", "export-sft", "export-rl", "evaluate"):
        assert subparser(command).format_usage().rstrip().endswith("[SOURCE]"), command
    assert "SOURCE OUT_DIR" in subparser("export").format_usage()


def test_show_prints_multi_line_texts_indented_under_their_label(capsys):
    record = imagenet_think.load_dataset("sample", split="train", decode_images=False)[0]
    multi_line = [key for key, value in record.items() if isinstance(value, str) and "\n" in value]
    assert multi_line, "the sample's first record has a multi-line text"
    assert main(["show", "-n", "1", "--width", "0"]) == 0
    printed = capsys.readouterr().out
    indent = " " * (LABEL_WIDTH + 2)
    for key in multi_line:
        first, *rest = record[key].split("\n")
        block = "\n".join([f"{key:>{LABEL_WIDTH}}: {first}", *(indent + line if line else "" for line in rest)])
        assert block in printed, key


def test_stats_prints_counts_as_integers_and_every_other_number_with_one_decimal(capsys):
    assert main(["stats", "sample"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("chars"))
    rows = [line.split() for line in lines[header + 1 : header + 5]]
    assert [row[0] for row in rows] == ["think_1", "answer_1", "think_2", "answer_2"]
    for row in rows:
        assert row[1].isdigit() and all(re.fullmatch(r"\d+\.\d", value) for value in row[2:]), row
