"""The README's offline examples run as written: its Python snippets on the sample and its
``imagenet-think`` commands whose SOURCE is the sample."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import datasets
import pytest

from imagenet_think.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


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
    for line in re.findall(r"(?:^|`|&& )(?:\S*/)?imagenet-think (?:show|stats|export-sft|export-rl|export) sample[^`\n]*", README, re.M)
    if "|" not in line and "--push-to-hub" not in line
]


def test_the_readme_has_the_commands_this_test_runs():
    assert {command.split()[0] for command in SAMPLE_COMMANDS} == {"show", "stats", "export", "export-sft", "export-rl"}


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


def test_the_rl_section_shows_the_default_prompt_and_the_trl_cards_training_example():
    from imagenet_think.card import rl_training
    from imagenet_think.rl_export import DEFAULT_PROMPT

    section = README[README.index("## RL with verifiable rewards"):]
    section = section[:section.index("\n## ", 1)]
    assert f"\n> {DEFAULT_PROMPT}\n" in section
    assert rl_training("trl", {"train": []}, "out/rl-trl") in section
    easyr1 = rl_training("easyr1", {"train": [], "validation": []}, "/abs/out/rl-easyr1")
    verl = rl_training("verl", {"train": [], "validation": []}, "/abs/out/rl-verl")
    settings = [*re.findall(r"(?:data|worker\.reward)\.[\w.]+=\S+", easyr1),  # not the model
                *re.findall(r"(?:custom_reward_function|data)\.\w+=[^\s\"]+", verl)]
    assert len(settings) > 10
    for setting in settings:
        assert setting in " ".join(section.split()), setting


def set_up_block() -> str:
    return re.search(r"## Set-up.*?```bash\n(.*?)```", README, re.S).group(1)


def test_ci_runs_the_two_set_up_commands_as_written():
    block = set_up_block().splitlines()
    numbered = [block[i + 1] for i, line in enumerate(block) if re.match(r"# [12]\. ", line)]
    assert len(numbered) == 2
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert all(command in ci for command in numbered)


def test_the_optional_cpu_torch_line_matches_the_pin_and_keeps_pypi():
    [line] = [line for line in set_up_block().splitlines() if "download.pytorch.org" in line]
    [pin] = [r for r in (ROOT / "requirements-dev.txt").read_text().splitlines() if r.startswith("torch==")]
    assert f" {pin} " in line and "--extra-index-url https://download.pytorch.org/whl/cpu" in line
    assert "--index-url" not in line.replace("--extra-index-url", "")  # PyPI stays the index of torch's dependencies


def test_the_layout_names_every_module_and_package():
    [layout] = re.findall(r"## Layout\n\n(.*?)\n## ", README, re.S)
    package = ROOT / "imagenet_think"
    names = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    names |= {f"{p.name}/" for p in package.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert {name for name in names if f"`{name}`" not in layout} == set()


def test_the_prediction_column_aliases_are_documented():
    from imagenet_think.evaluate.predictions import PREDICTION_COLUMNS

    [evaluate] = re.findall(r"## Evaluate\n(.*?)\n## ", README, re.S)
    assert all(f"`{name}`" in evaluate for name in PREDICTION_COLUMNS)


def test_the_registry_example_loads(tmp_path):
    from imagenet_think.regenerate.models import get_model, load_registry

    [example] = re.findall(r"```yaml\n(.*?)```", README, re.S)
    path = tmp_path / "models.yaml"
    path.write_text("\n".join(line[2:] for line in example.splitlines()))  # the block is indented in a list item
    registry = load_registry(path)
    assert registry["my-vlm"].sampling["max_tokens"] == 4096
    assert registry["glm-long"].sampling == {**get_model("glm").sampling, "max_tokens": 16384}


def test_git_ignores_what_the_readme_commands_leave():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    left = ["out/sft-trl/README.md", "plots/answer_chars.png", "preds.jsonl", "eval-runs/preds/results.md", ".venv/bin/python"]
    ignored = subprocess.run(["git", "check-ignore", *left], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert ignored == left
