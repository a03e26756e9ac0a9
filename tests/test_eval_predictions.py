"""Reading predictions files: accepted shapes, and errors that name file, line or row, and id."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagenet_think.evaluate.predictions import PredictionError, check_ids, read_predictions, split_predictions


def write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize("column", ["prediction", "output", "text", "raw"])
def test_every_alias_is_read(tmp_path, column):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", column: "A cat."}])
    assert read_predictions(path).table["prediction"].to_pylist() == ["A cat."]


def test_prediction_wins_over_other_aliases_and_blank_lines_are_skipped(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "text": "no", "prediction": "yes"}, "", {"id": "b", "raw": "r"}])
    found = read_predictions(path)
    assert found.table["prediction"].to_pylist() == ["yes", "r"]
    assert found.table["position"].to_pylist() == [1, 3]
    assert found.where(1) == f"{path} line 3"


def test_parquet_with_alias_and_finish_reason(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "output": ["x", "y"], "finish_reason": ["stop", "length"]}), path)
    found = read_predictions(path)
    assert found.table["finish_reason"].to_pylist() == ["stop", "length"]
    assert found.where(1) == f"{path} row 1"


@pytest.mark.parametrize(
    "records, message",
    [
        (["{not json"], "line 1: not valid JSON"),
        ([{"id": "a", "prediction": "x"}, ["a list"]], "line 2: expected a JSON object"),
        ([{"id": "a", "answer": "x"}], "line 1: no prediction column; expected one of prediction, output, text, raw"),
        ([{"prediction": "x"}], "line 1: missing id"),
        ([{"id": "a", "prediction": None}], "line 1: id 'a' has no prediction"),
        ([{"id": "a", "prediction": "x"}, {"id": "b", "prediction": "y"}, {"id": "a", "text": "z"}], "line 3: id 'a' already predicted at line 1"),
        ([{"id": "a", "prediction": "x"}, {"id": 7, "prediction": "y"}], "line 2: id, prediction and finish_reason must be strings"),
        ([], "no predictions in the file"),
    ],
)
def test_bad_jsonl_is_named(tmp_path, records, message):
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(PredictionError, match=f"bad.jsonl.*{message}" if "line" in message else message):
        read_predictions(path)


def test_bad_parquet_and_paths_are_named(tmp_path):
    no_id = tmp_path / "no_id.parquet"
    pq.write_table(pa.table({"key": ["a"], "text": ["x"]}), no_id)
    with pytest.raises(PredictionError, match="no_id.parquet: no 'id' column"):
        read_predictions(no_id)
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", None]}), nulls)
    with pytest.raises(PredictionError, match="nulls.parquet row 1: id 'b' has no prediction"):
        read_predictions(nulls)
    with pytest.raises(PredictionError, match="unknown predictions format '.csv'"):
        read_predictions(write_jsonl(tmp_path / "p.csv", []))
    with pytest.raises(PredictionError, match="no such predictions file"):
        read_predictions(tmp_path / "absent.jsonl")


def test_ids_missing_from_the_corpus_name_file_line_and_id(tmp_path):
    records = [{"id": f"id{i}", "prediction": "x"} for i in range(9)]
    found = read_predictions(write_jsonl(tmp_path / "p.jsonl", records))
    check_ids(found, {f"id{i}" for i in range(9)}, "sample")
    with pytest.raises(PredictionError) as caught:
        check_ids(found, {"id0", "id1"}, "sample")
    message = str(caught.value)
    assert message.startswith("7 prediction id(s) are not in the corpus 'sample'")
    assert f"{tmp_path / 'p.jsonl'} line 3: id 'id2'" in message
    assert "(and 2 more)" in message


def test_split_uses_finish_reason():
    table = pa.table({"prediction": ["<think>hm</think><answer>A cat"] * 2, "finish_reason": ["stop", "length"]})
    split = split_predictions(table, "glm")
    assert split["answer"].to_pylist() == ["A cat", "A cat"]
    assert split["status"].to_pylist() == ["ok", "malformed"]


def test_a_jsonl_write_that_fails_keeps_the_old_file_and_no_temporary_file(tmp_path):
    from imagenet_think.evaluate.predictions import _write_jsonl

    path = tmp_path / "predictions.jsonl"
    _write_jsonl(pa.table({"id": ["a"]}), path)
    with pytest.raises(TypeError, match="bytes"):  # bytes are not JSON
        _write_jsonl(pa.table({"id": ["b"], "image": [b"\x89PNG"]}), path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert path.read_text() == '{"id": "a"}\n'
