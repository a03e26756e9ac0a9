"""Shared fixtures: the bundled sample's rows, corpus directories in both on-disk layouts made
from it, and a Hub endpoint on 127.0.0.1 that knows nothing."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
def unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


class _EmptyHubHandler(BaseHTTPRequestHandler):
    """The Hub's own error answers: 401 for whoami, 404 ``RepoNotFound`` for anything else."""

    def _answer(self) -> None:
        self.server.paths.append(self.path)
        if self.path.startswith("/api/whoami"):
            status, headers, body = 401, {}, {"error": "Invalid credentials in Authorization header"}
        else:
            status, headers, body = 404, {"X-Error-Code": "RepoNotFound"}, {"error": "Repository not found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def empty_hub():
    """A Hub endpoint on 127.0.0.1 that knows no repository and no token; ``.url`` goes in
    ``HF_ENDPOINT`` of a subprocess (``huggingface_hub`` reads it at import), ``.paths`` lists
    the requests it got."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyHubHandler)
    server.paths = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
