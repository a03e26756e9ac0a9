"""imagenet_think.evaluate.chunks: chunks are reused by fingerprint and written atomically."""

from __future__ import annotations

import pyarrow as pa
import pytest

from imagenet_think.evaluate.chunks import chunk_path, read_chunk, write_chunk


def test_a_chunk_is_read_back_only_with_its_fingerprint(tmp_path):
    path = chunk_path(tmp_path, 0)
    write_chunk(pa.table({"x": [1, 2]}), path, "v1")
    assert read_chunk(path, "v1")["x"].to_pylist() == [1, 2]
    assert read_chunk(path, "v2") is None


def test_a_chunk_write_that_fails_leaves_no_temporary_file(tmp_path):
    path = chunk_path(tmp_path, 0)
    path.mkdir()  # the rename onto it fails
    with pytest.raises(OSError):
        write_chunk(pa.table({"x": [1]}), path, "v1")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_scored_chunks_are_redone_when_the_tokenizer_changes(tmp_path, monkeypatch):
    from imagenet_think.evaluate import scoring

    rows = pa.table({"id": ["a"], "prediction": ["<think>x</think>A cat."], "finish_reason": [None],
                     "think_1": ["x"], "answer_1": ["A cat."], "think_2": ["y"], "answer_2": ["A dog."]})
    scoring.score_in_chunks(rows, tmp_path, ["jaccard"], progress=False)
    stored = chunk_path(tmp_path / "scores", 0)
    before = stored.stat().st_mtime_ns
    scoring.score_in_chunks(rows, tmp_path, ["jaccard"], progress=False)
    assert stored.stat().st_mtime_ns == before
    monkeypatch.setattr(scoring, "TOKENIZER", "another rule")
    scoring.score_in_chunks(rows, tmp_path, ["jaccard"], progress=False)
    assert stored.stat().st_mtime_ns != before
