"""imagenet_think.fileio.atomic_write: whole file or nothing, no temp files left behind."""

from __future__ import annotations

import pytest

from imagenet_think.fileio import atomic_write


@pytest.mark.parametrize("durable", [True, False])
def test_error_keeps_the_old_file_and_leaves_no_temp(tmp_path, durable):
    target = tmp_path / "sub" / "data.bin"
    with atomic_write(target, "wb", durable=durable) as f:
        f.write(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb", durable=durable) as f:
            f.write(b"new, half written")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["data.bin"]


def test_text_mode_and_bad_mode(tmp_path):
    with atomic_write(tmp_path / "a.txt") as f:
        f.write("é")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "é"
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_write(tmp_path / "b.txt", "a"):
            pass
