"""Shared fixtures: the bundled sample's rows, and corpus directories in both on-disk layouts
made from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagenet_think import schema
from imagenet_think.loading import sample_dir


def read_sample() -> pa.Table:
    """Every row of the bundled sample (its train file, then its validation file), no metadata."""
    files = sorted(sample_dir().glob("data/*.parquet"))
    return pa.concat_tables(pq.read_table(f).replace_schema_metadata(None) for f in files)


@pytest.fixture(scope="session")
def sample_table() -> pa.Table:
    """:func:`read_sample`, read once."""
    return read_sample()


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
    table = read_sample()
    raw = {(g["pair"]): g["raw"] for g in table["generation"][0].as_py()}
    assert raw  # the sample keeps raw outputs
    out = tmp_path / "published" / "data"
    out.mkdir(parents=True)
    six = table.select(list(schema.PUBLISHED_COLUMNS))
    pq.write_table(six, out / "train-00000-of-00001.parquet", row_group_size=10)
    return out.parent
