"""The README's offline examples run as written: its Python snippets on the sample and its
``imagenet-think`` commands whose SOURCE is the sample."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import datasets
import pytest

from imagenet_think.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_python_examples_on_the_sample_run_as_written():
    loading = next(block for block in python_blocks() if 'load_dataset("sample")' in block)
    offline = [line for line in loading.splitlines() if '"sample"' in line or line.startswith("import")]
    reasoning = next(block for block in python_blocks() if "split_reasoning(" in block)
    [filtering] = re.findall(r"`(clean = quality\.apply_filters\(.*?\))`", README)
    namespace: dict = {}
    exec("\n".join([*offline, reasoning, "from imagenet_think import quality", filtering]), namespace)
    assert isinstance(namespace["ds"], datasets.DatasetDict)
    assert namespace["texts"].column_names == ["id", "answer_1"]
    assert [example["teacher"] for example in namespace["examples"]] == [1, 2]
    clean = namespace["clean"]
    assert isinstance(clean, datasets.Dataset) and set(clean["status_1"]) == {"ok"} == set(clean["status_2"])


SAMPLE_COMMANDS = [
    line.split("imagenet-think ", 1)[1].split("#")[0].strip()
    for line in re.findall(r"(?:^|`|&& )(?:\S*/)?imagenet-think (?:show|stats|export-sft|export) sample[^`\n]*", README, re.M)
    if "|" not in line and "--push-to-hub" not in line
]


def test_the_readme_has_the_commands_this_test_runs():
    assert {command.split()[0] for command in SAMPLE_COMMANDS} == {"show", "stats", "export", "export-sft"}


@pytest.mark.parametrize("command", SAMPLE_COMMANDS)
def test_sample_commands_run_as_written(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(command)) == 0, capsys.readouterr().err
    assert capsys.readouterr().out


def test_reward_examples_give_the_values_in_their_comments():
    block = next(block for block in python_blocks() if "label_reward(" in block)
    namespace: dict = {}
    checked = 0
    for line in block.splitlines():
        if "  # " not in line:
            exec(line, namespace)
            continue
        code, comment = line.split("  # ", 1)
        expected = comment.split("] ", 1)[0] + "]" if "] " in comment else comment
        assert eval(code, namespace) == eval(expected, namespace), line
        checked += 1
    assert checked == 6
