"""Shared fixtures: corpus directories in both on-disk layouts, made from the bundled sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imagenet_think import schema
from imagenet_think.loading import sample_dir


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled sample (Hub layout), safe to modify."""
    out = tmp_path / "imagenet-think"
    shutil.copytree(sample_dir(), out)
    return out


@pytest.fixture
def published_dir(tmp_path: Path) -> Path:
    """The sample rewritten in the published six-column layout (raw teacher text in the columns
    of rows whose raw output did not split cleanly, as a careless exporter would leave it)."""
    table = pq.read_table(next(sample_dir().glob("data/*.parquet")))
    raw = {(g["pair"]): g["raw"] for g in table["generation"][0].as_py()}
    assert raw  # the sample keeps raw outputs
    out = tmp_path / "published" / "data"
    out.mkdir(parents=True)
    six = table.select(list(schema.PUBLISHED_COLUMNS)).replace_schema_metadata(None)
    pq.write_table(six, out / "train-00000-of-00001.parquet", row_group_size=10)
    return out.parent
