"""imagenet_think.regenerate.sources: layouts, safe tars, deterministic balanced selection."""

import concurrent.futures
import io
import logging
import os
import stat
import struct
import tarfile
import zlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from imagenet_think.regenerate import sources

WNIDS = ("n01440764", "n02084071", "n04004000")


def jpeg(size=(256, 240), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def synset_files(per_synset=4, wnids=WNIDS):
    """{wnid: {file name: bytes}} with distinct pixels per image."""
    return {
        w: {f"{w}_{k}.JPEG": jpeg(color=(i * 60, k * 40, 7)) for k in range(per_synset)} for i, w in enumerate(wnids)
    }


def write_folders(root: Path, files) -> Path:
    for wnid, images in files.items():
        (root / wnid).mkdir(parents=True)
        for name, data in images.items():
            (root / wnid / name).write_bytes(data)
    return root


def write_tars(root: Path, files) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for wnid, images in files.items():
        with tarfile.open(root / f"{wnid}.tar", "w") as tar:
            for name, data in images.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return root


def test_synset_folders_items_carry_wnid_label_and_lazy_bytes(tmp_path):
    files = synset_files(2)
    source = sources.open_source(write_folders(tmp_path, files))
    assert sources.detect_layout(tmp_path) == "synset-folders"
    assert sorted(source.groups()) == list(WNIDS)
    items = source.items("n01440764")
    assert [i.id for i in items] == ["n01440764_n01440764_0", "n01440764_n01440764_1"]
    assert items[0].label == "tench, Tinca tinca"
    assert items[0].file_name == "n01440764_n01440764_0.JPEG"
    assert items[1].read_bytes() == files["n01440764"]["n01440764_1.JPEG"]


def test_tars_give_the_same_items_and_bytes_as_folders(tmp_path):
    files = synset_files(3)
    folders = sources.open_source(write_folders(tmp_path / "folders", files))
    tars = sources.open_source(write_tars(tmp_path / "tars", files))
    assert sources.detect_layout(tmp_path / "tars") == "synset-tars"
    a = sources.select_items(folders, 7, seed=3).items
    b = sources.select_items(tars, 7, seed=3).items
    assert [i.id for i in a] == [i.id for i in b]
    assert [i.read_bytes() for i in a] == [i.read_bytes() for i in b]
    assert b[0].source.startswith(str(tmp_path / "tars")) and "::" in b[0].source


def test_unsafe_tar_members_are_skipped_with_a_warning_and_never_written(tmp_path, caplog):
    data = jpeg()
    tar_path = tmp_path / "src" / "n01440764.tar"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w") as tar:
        for name in ("n01440764_ok.JPEG", "../n01440764_up.JPEG", "/abs/n01440764_abs.JPEG", "a/../../n01440764_b.JPEG"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("n01440764_link.JPEG")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        hard = tarfile.TarInfo("n01440764_hard.JPEG")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "n01440764_ok.JPEG"
        tar.addfile(hard)
    before = sorted(p for p in tmp_path.rglob("*"))
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        items = sources.open_source(tar_path.parent).items("n01440764")
        chosen = sources.select_items(sources.open_source(tar_path.parent), None).items
    assert [i.id for i in items] == [i.id for i in chosen] == ["n01440764_n01440764_ok"]
    assert items[0].read_bytes() == data
    warned = caplog.text
    for name in ("../n01440764_up.JPEG", "/abs/n01440764_abs.JPEG", "a/../../n01440764_b.JPEG", "link.JPEG", "hard.JPEG"):
        assert name in warned
    assert str(tar_path) in warned
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not Path("/abs").exists()


def test_compressed_tar_is_a_clear_error(tmp_path):
    with tarfile.open(tmp_path / "n01440764.tar", "w:gz") as tar:
        info = tarfile.TarInfo("n01440764_1.JPEG")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ValueError, match=r"n01440764\.tar: not an uncompressed tar"):
        sources.SynsetTars(tmp_path).items("n01440764")


@pytest.mark.parametrize("inner", ["train", "imagenet21k_train"])
@pytest.mark.parametrize("as_tars", [False, True])
def test_winter21_layout_reads_the_train_folder(tmp_path, inner, as_tars):
    files = synset_files(2)
    (write_tars if as_tars else write_folders)(tmp_path / inner, files)
    write_folders(tmp_path / "val_unused", {"n09999999": {"n09999999_1.JPEG": jpeg()}})
    assert sources.detect_layout(tmp_path) == "winter21"
    source = sources.open_source(tmp_path)
    assert sorted(source.groups()) == list(WNIDS)
    assert len(sources.select_items(source, None).items) == 6


def test_winter21_without_synsets_is_a_clear_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no synset folders or tars under train or imagenet21k_train"):
        sources.open_source(tmp_path, layout="winter21")


def test_plain_folder_ids_come_from_relative_paths_and_wnid_names_are_kept(tmp_path):
    (tmp_path / "cats" / "small").mkdir(parents=True)
    (tmp_path / "cats" / "small" / "tom.png").write_bytes(jpeg())
    (tmp_path / "dog.jpg").write_bytes(jpeg())
    (tmp_path / "n02084071_77.JPEG").write_bytes(jpeg())
    (tmp_path / "notes.txt").write_text("not an image")
    assert sources.detect_layout(tmp_path) == "folder"
    chosen = sources.select_items(sources.open_source(tmp_path), None).items
    by_id = {i.id: i for i in chosen}
    assert set(by_id) == {"cats/small/tom", "dog", "n02084071_n02084071_77"}
    assert by_id["cats/small/tom"].wnid == "" and by_id["cats/small/tom"].label == ""
    assert by_id["cats/small/tom"].file_name == "cats_small_tom.png"
    assert by_id["n02084071_n02084071_77"].label.startswith("dog")


def test_two_files_with_one_id_is_an_error_naming_both(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg())
    (tmp_path / "a.png").write_bytes(jpeg())
    with pytest.raises(ValueError, match=r"same id 'a'.*a\.jpg and .*a\.png"):
        sources.open_source(tmp_path).groups()


def test_selection_is_deterministic_balanced_and_seeded(tmp_path):
    files = synset_files(5, wnids=tuple(f"n0000000{k}" for k in range(1, 5)))
    source = sources.open_source(write_folders(tmp_path, files))
    first = [i.id for i in sources.select_items(source, 10, seed=0).items]
    again = [i.id for i in sources.select_items(sources.open_source(tmp_path), 10, seed=0).items]
    other = [i.id for i in sources.select_items(source, 10, seed=1).items]
    assert first == again
    assert first != other
    assert len(set(first)) == 10
    counts = Counter(i.split("_", 1)[0] for i in first)
    assert sorted(counts.values()) == [2, 2, 3, 3]
    # every round gives each synset one image before any gets another
    assert len({i.split("_", 1)[0] for i in first[:4]}) == 4
    # a smaller request is a prefix of a larger one with the same seed
    assert [i.id for i in sources.select_items(source, 6, seed=0).items] == first[:6]


def test_selection_fills_up_from_larger_synsets(tmp_path):
    files = {"n00000001": {"n00000001_0.JPEG": jpeg()}, **synset_files(4, wnids=("n00000002",))}
    chosen = sources.select_items(sources.open_source(write_folders(tmp_path, files)), 5).items
    assert Counter(i.wnid for i in chosen) == {"n00000001": 1, "n00000002": 4}


def test_small_and_corrupt_images_are_skipped_and_corrupt_ones_logged(tmp_path, caplog):
    root = tmp_path / "n01440764"
    root.mkdir()
    (root / "n01440764_big.JPEG").write_bytes(jpeg((300, 224)))
    (root / "n01440764_narrow.JPEG").write_bytes(jpeg((223, 500)))
    (root / "n01440764_bad.JPEG").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        selection = sources.select_items(sources.open_source(tmp_path), 3)
    assert [i.id for i in selection.items] == ["n01440764_n01440764_big"]
    reasons = dict(selection.skipped)
    assert reasons[str(root / "n01440764_narrow.JPEG")].startswith("too small: 223x500")
    assert reasons[str(root / "n01440764_bad.JPEG")] == r"not an image Pillow can read (it starts with b'\xff\xd8 definitely no')"
    assert str(root / "n01440764_bad.JPEG") in caplog.text
    assert "only 1 usable images found, 3 requested" in caplog.text
    # min_size=0 and max_pixels=0 read nothing: everything is a candidate
    assert len(sources.select_items(sources.open_source(tmp_path), 3, min_size=0, max_pixels=0).items) == 3


def jpeg_with_long_header(size, metadata_bytes) -> bytes:
    """A JPEG whose size marker comes after ``metadata_bytes`` of APP15 segments."""
    data = jpeg(size)
    segments = b"".join(b"\xff\xef" + (60002).to_bytes(2, "big") + bytes(60000) for _ in range(metadata_bytes // 60000))
    return data[:2] + segments + data[2:]


def test_size_comes_from_the_first_bytes_or_from_all_when_the_header_is_longer(tmp_path):
    (tmp_path / "n01440764").mkdir()
    long_header = tmp_path / "n01440764" / "n01440764_long.JPEG"
    long_header.write_bytes(jpeg_with_long_header((300, 260), 2 * sources.HEADER_BYTES))
    [item] = sources.open_source(tmp_path).items("n01440764")
    with pytest.raises(sources.UnusableImage, match=r"^a JPEG whose header Pillow cannot read \(cut short or corrupt: 65,536 bytes in all\)$"):
        sources.image_size(item.read_bytes(sources.HEADER_BYTES))
    assert sources.header_size(item) == (300, 260)
    assert sources.rejection(item, 224) is None


def test_a_prefix_of_each_kind_of_item_is_its_first_bytes(tmp_path):
    files = synset_files(1, wnids=("n01440764",))
    data = files["n01440764"]["n01440764_0.JPEG"]
    [in_tar] = sources.open_source(write_tars(tmp_path / "tars", files)).items("n01440764")
    [in_file] = sources.open_source(write_folders(tmp_path / "folders", files)).items("n01440764")
    images = pa.chunked_array([[{"bytes": data, "path": None}]])
    in_corpus = sources.ImageItem("n01440764_0", "n01440764", "", "dataset", "corpus", "train/0", images=images)
    for item in (in_tar, in_file, in_corpus):
        assert item.read_bytes(100) == data[:100]
        assert item.read_bytes(len(data) + 100) == item.read_bytes() == data


def test_truncated_tar_member_is_reported_with_its_source(tmp_path):
    files = synset_files(1, wnids=("n01440764",))
    write_tars(tmp_path, files)
    item = sources.open_source(tmp_path).items("n01440764")[0]
    os.truncate(tmp_path / "n01440764.tar", item.offset + 10)
    with pytest.raises(OSError, match=r"n01440764\.tar::n01440764_0\.JPEG: tar member truncated"):
        item.read_bytes()


def test_unknown_layout_and_missing_path_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'zip'"):
        sources.open_source(tmp_path, layout="zip")
    with pytest.raises(ValueError, match="nowhere is neither a directory, 'sample', 'imagenet-think' nor a Hub id"):
        sources.open_source(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["sample", "imagenet-think", "imagenet_think", "owner/corpus"])
def test_every_corpus_name_the_loader_takes_is_a_dataset_source(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no directory of that name here
    assert sources.detect_layout(name) == "dataset"


def test_a_directory_with_parquet_below_data_is_a_dataset_source(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "part-0.parquet").write_bytes(b"")
    assert sources.detect_layout(tmp_path) == "dataset"


def test_a_corpus_directory_is_a_source_of_its_images(published_dir):
    import pyarrow.parquet as pq

    assert sources.detect_layout(published_dir) == "dataset"
    chosen = sources.select_items(sources.open_source(published_dir), None).items
    table = pq.read_table(next(published_dir.glob("data/*.parquet")), columns=["image"])
    images = {Path(row["image"]["path"]).stem: row["image"]["bytes"] for row in table.to_pylist()}
    assert len(chosen) == len(images)
    for item in chosen:
        assert item.kind == "dataset" and item.wnid and item.label
        assert item.id == Path(item.file_name).stem
        assert item.read_bytes() == images[item.id]
    assert Counter(i.wnid for i in chosen[: len(set(i.wnid for i in chosen))]).most_common(1)[0][1] == 1


def test_corpus_items_read_from_the_loaded_splits_without_loading_again(sample_copy):
    import shutil

    items = sources.select_items(sources.open_source(sample_copy), 2, min_size=0).items
    shutil.rmtree(sample_copy)  # loading the corpus again would now fail
    assert [min(sources.image_size(item.read_bytes())) > 0 for item in items] == [True, True]


def test_a_corpus_row_with_no_image_bytes_nor_path_is_a_value_error_naming_it():
    images = pa.chunked_array([[{"bytes": b"", "path": None}]])
    item = sources.ImageItem("n1_a", "n1", "", "dataset", "corpus", "train/0", images=images)
    with pytest.raises(ValueError, match="corpus::train/0: image has neither bytes nor path"):
        item.read_bytes()


# --- hostile sources: files made here, each rejected with what is wrong ---------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG of ``width`` x ``height`` pixels that ends after its header: a few dozen bytes
    claiming an image of any size (the pixels would never decode)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def tiff(size=(300, 260)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (9, 99, 199)).save(buffer, "TIFF")
    return buffer.getvalue()


def test_hostile_files_are_rejected_each_with_what_is_wrong(tmp_path, recwarn):
    root = tmp_path / "source"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.JPEG").write_bytes(jpeg())
    (root / "sub").mkdir(parents=True)
    whole = jpeg()
    files = {
        "good.JPEG": whole,
        "sub/good.tif": tiff(),
        "truncated.JPEG": whole[: len(whole) - 300],
        "cut.tif": tiff()[:20_000],
        "page.JPEG": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        "empty.png": b"",
        "huge.png": png_header(12_000, 12_000),  # 144 Mpx: more than --max-pixels, under Pillow's error
        "bomb.png": png_header(20_000, 20_000),  # 400 Mpx: more than Pillow opens at all
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "folder.JPEG").mkdir()  # a directory named like an image (its images are still found)
    (root / "folder.JPEG" / "inner.JPEG").write_bytes(whole)
    os.mkfifo(root / "pipe.JPEG")  # reading it would block the selection for ever
    os.symlink(elsewhere / "private.JPEG", root / "out.JPEG")  # a link out of SOURCE
    os.symlink(root / "good.JPEG", root / "sub" / "alias.JPEG")  # a link inside: followed
    os.symlink(root / "gone.JPEG", root / "broken.JPEG")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # were the FIFO opened, this would block
        selecting = pool.submit(sources.select_items, sources.open_source(root, "folder"), None, min_size=224)
        try:
            selection = selecting.result(timeout=120)
        except concurrent.futures.TimeoutError:
            os.close(os.open(root / "pipe.JPEG", os.O_WRONLY | os.O_NONBLOCK))  # a writer that closes: the read ends
            pytest.fail("the selection opened the FIFO")
    reasons = {Path(source).relative_to(root).as_posix(): reason for source, reason in selection.skipped}
    assert sorted(i.id for i in selection.items) == ["folder.JPEG/inner", "good", "sub/alias", "sub/good"]
    length = len(whole) - 300
    assert reasons.pop("truncated.JPEG").startswith(f"truncated JPEG: its data ends after {length:,} bytes (image file is truncated")
    assert reasons.pop("cut.tif").startswith("truncated TIFF: its data ends after 20,000 bytes (image file is truncated")
    assert reasons.pop("bomb.png").startswith("too large: Image size (400000000 pixels) exceeds limit of ")
    assert reasons == {
        "page.JPEG": "not an image Pillow can read (it starts with b'<!DOCTYPE html><')",
        "empty.png": "an empty file",
        "huge.png": "too large: 12000x12000 = 144,000,000 pixels > --max-pixels 64,000,000",
        "folder.JPEG": "not a regular file: a directory",
        "pipe.JPEG": "not a regular file: a FIFO (named pipe)",
        "out.JPEG": f"a symbolic link to {elsewhere / 'private.JPEG'}, outside SOURCE: not followed (--follow-symlinks reads it)",
        "broken.JPEG": f"a broken symbolic link (to {root / 'gone.JPEG'})",
    }
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]  # --max-pixels speaks instead
    followed = sources.select_items(sources.open_source(root, "folder", follow_symlinks=True), None, min_size=224)
    assert "out" in {i.id for i in followed.items}


def test_a_device_is_rejected_and_a_synset_folder_linked_out_of_source_too(tmp_path):
    root, elsewhere = tmp_path / "source", tmp_path / "elsewhere"
    (root / "n01440764").mkdir(parents=True)
    (elsewhere / "n02084071").mkdir(parents=True)
    (root / "n01440764" / "n01440764_1.JPEG").write_bytes(jpeg())
    (elsewhere / "n02084071" / "n02084071_1.JPEG").write_bytes(jpeg())
    os.symlink(elsewhere / "n02084071", root / "n02084071")
    os.symlink("/dev/null", root / "n01440764" / "n01440764_null.JPEG")  # a device, through a link
    try:
        os.mknod(root / "n01440764" / "n01440764_dev.JPEG", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        devices = {"n01440764_dev.JPEG": "not a regular file: a character device"}
    except PermissionError:  # no CAP_MKNOD here: the link to /dev/null stands for it
        devices = {}
    selection = sources.select_items(sources.open_source(root), None)
    assert [i.id for i in selection.items] == ["n01440764_n01440764_1"]
    assert {Path(s).name: r for s, r in selection.skipped} == {
        **devices,
        "n01440764_null.JPEG": "a symbolic link to /dev/null, outside SOURCE: not followed (--follow-symlinks reads it)",
        "n02084071_1.JPEG": f"in {root / 'n02084071'}, a symbolic link to {elsewhere / 'n02084071'}, outside SOURCE: not followed "
                            "(--follow-symlinks reads it)",
    }  # fmt: skip
    followed = sources.select_items(sources.open_source(root, follow_symlinks=True), None)
    assert sorted(i.id for i in followed.items) == ["n01440764_n01440764_1", "n02084071_n02084071_1"]
    assert dict((Path(s).name, r) for s, r in followed.skipped)["n01440764_null.JPEG"] == (
        "a symbolic link to a character device, not to a regular file"
    )


def test_images_already_written_are_not_read_again_and_the_choice_is_the_same(tmp_path):
    files = synset_files(5)
    source = sources.open_source(write_folders(tmp_path, files))
    chosen = sources.select_items(source, 10, seed=2).items
    (tmp_path / "n01440764" / "n01440764_0.JPEG").write_bytes(b"cut")  # were it read again, it would be rejected
    again = sources.select_items(sources.open_source(tmp_path), 10, seed=2, known_good={i.id for i in chosen}, threads=1)
    assert again.items == chosen and again.skipped == []


def test_a_pixel_limit_above_pillows_is_refused():
    assert sources.check_max_pixels(0) == 0 and sources.check_max_pixels(sources.DEFAULT_MAX_PIXELS) == sources.DEFAULT_MAX_PIXELS
    with pytest.raises(ValueError, match=r"--max-pixels 100,000,000 is above Pillow's limit PIL\.Image\.MAX_IMAGE_PIXELS \(89,478,485\)"):
        sources.check_max_pixels(100_000_000)


def test_checking_in_threads_chooses_and_rejects_as_one_at_a_time(tmp_path):
    files = synset_files(6, wnids=[f"n{k:08d}" for k in range(1, 13)])
    for k, (wnid, images) in enumerate(files.items()):  # a third of the images too small, spread over the synsets
        for name in list(images)[k % 3 :: 3]:
            images[name] = jpeg((100, 100))
    source = write_folders(tmp_path, files)
    alone = sources.select_items(sources.open_source(source), 40, seed=4, threads=1)
    pooled = sources.select_items(sources.open_source(source), 40, seed=4, threads=8)
    assert len(alone.items) == 40 and len(alone.skipped) > 10
    assert (pooled.items, pooled.skipped) == (alone.items, alone.skipped)
