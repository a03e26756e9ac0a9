"""imagenet_think.stats: measuring text columns, the summary, histograms and the CLI."""

import json
from collections import Counter

import datasets
import pytest
from PIL import Image

import imagenet_think
from imagenet_think import cli, stats

TEXTS = {
    "status_1": ["ok", "ok", "ok", "unclosed_think"],
    "think_1": ["a" * 10, "a" * 20, "a" * 30, "é" * 40],
    "answer_1": ["a red fox", "a dog", "", None],
    "status_2": ["ok", "missing", "malformed", "ok"],
    "think_2": ["b" * 5, None, "b" * 15, "b" * 25],
    "answer_2": ["a grey fox", None, "", "a cat"],
}


@pytest.fixture(scope="module")
def sample():
    return imagenet_think.load_dataset("sample", split="train", decode_images=False)


def test_measure_counts_characters_not_bytes_and_scores_agreement():
    table = stats.measure(datasets.Dataset.from_dict(TEXTS), batch_size=3)
    assert table["think_chars_1"].to_pylist() == [10, 20, 30, 40]
    assert table["answer_chars_1"].to_pylist() == [9, 5, 0, None]
    assert table["agreement"].to_pylist() == [0.5, 0.0, 1.0, 0.0]


def test_summary_skips_missing_pairs_and_bins_agreement():
    summary = stats.summarize(stats.measure(datasets.Dataset.from_dict(TEXTS)))
    assert summary["rows"] == 4
    pair_2 = summary["teachers"]["2"]
    assert pair_2["model"] == "moonshotai/Kimi-VL-A3B-Thinking-2506"
    assert list(pair_2["status"].items()) == [("ok", 2), ("malformed", 1), ("missing", 1)]
    assert pair_2["think_chars"]["count"] == 3 and pair_2["think_chars"]["p50"] == 15
    assert summary["teachers"]["1"]["answer_chars"]["count"] == 3  # the null answer is not a length
    assert summary["agreement"]["histogram"]["counts"] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    json.dumps(summary)


def test_single_pair_tables_have_no_agreement():
    single = {k[:-2]: v for k, v in TEXTS.items() if k.endswith("_1")}
    summary = stats.summarize(stats.measure(datasets.Dataset.from_dict(single), suffixes=("",)))
    assert list(summary["teachers"]) == [""] and "agreement" not in summary
    assert "think   " in stats.format_summary(summary)


def test_measure_of_an_empty_dataset_says_so():
    with pytest.raises(ValueError, match="no rows"):
        stats.measure(datasets.Dataset.from_dict({k: [] for k in TEXTS}))


def test_sample_statistics_match_the_sample(sample):
    summary = stats.summarize(stats.measure(sample))
    assert summary["rows"] == len(sample)
    for n in (1, 2):
        assert summary["teachers"][str(n)]["status"] == dict(Counter(sample[f"status_{n}"]))
        longest_think = max(len(t) for t in sample[f"think_{n}"] if t is not None)
        assert summary["teachers"][str(n)]["think_chars"]["max"] == longest_think


def test_streaming_and_map_style_give_the_same_table(sample):
    stream = imagenet_think.load_dataset("sample", split="train", streaming=True, decode_images=False)
    assert stats.measure(stream, batch_size=5).equals(stats.measure(sample))


def test_cli_prints_tables_and_writes_histograms(tmp_path, capsys, sample):
    assert cli.main(["stats", "--source", "sample", "--out", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"sample (train): {len(sample)} rows")
    assert "answer agreement (Jaccard of word sets)" in out
    for name in ("think_chars.png", "answer_chars.png", "agreement.png"):
        assert f"wrote {tmp_path / 'plots' / name}" in out
        with Image.open(tmp_path / "plots" / name) as png:
            assert png.format == "PNG" and png.size == (700, 400)


def test_cli_json(capsys, sample):
    assert cli.main(["stats", "--source", "sample", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source"] == "sample" and summary["rows"] == len(sample)
    assert sum(summary["agreement"]["histogram"]["counts"]) == len(sample)
    assert "histograms" not in summary


def test_cli_unknown_or_empty_split_fails_clearly(tmp_path, sample, capsys):
    assert cli.main(["stats", "sample", "--split", "test"]) == 2
    assert 'imagenet-think stats: error: Unknown split "test". Should be one of [' in capsys.readouterr().err
    from imagenet_think.writer import write_split_shards

    write_split_shards(sample.data.table, tmp_path / "data")  # the sample's train rows: no validation file
    assert cli.main(["stats", str(tmp_path), "--split", "validation"]) == 2
    assert "imagenet-think stats: error: the dataset has no rows to measure" in capsys.readouterr().err



def test_label_hits_per_teacher():
    """n02084071 is dog: a beagle is a dog, a canine its parent; a cat is neither (no hedging in
    stats); n0 is no wnid of the table; a missing pair is not an answer."""
    dog = "n02084071"
    texts = {
        "wnid": [dog, dog, dog, "n0"],
        "status_1": ["ok", "ok", "ok", "ok"], "think_1": [""] * 4, "answer_1": ["A beagle.", "A canine.", "A cat.", "A dog."],
        "status_2": ["ok", "missing", "empty_answer", "ok"], "think_2": [""] * 4, "answer_2": ["Two dogs.", None, "", "A dog."],
    }  # fmt: skip
    summary = stats.summarize(stats.measure(datasets.Dataset.from_dict(texts)))
    assert summary["teachers"]["1"]["label"] == {"named": 1, "ancestor": 1, "missed": 1, "unknown": 1}
    assert summary["teachers"]["2"]["label"] == {"named": 1, "ancestor": 0, "missed": 1, "unknown": 1}
    text = stats.format_summary(summary)
    assert "pair 1                     0.333     0.333     0.333         3" in text
    assert "pair 2                     0.500     0.000     0.500         2" in text


def test_cli_prints_the_teachers_label_hit_rates(capsys):
    """Of the sample's 23 train rows, teacher 1 names the class in 20 answers (rows 1002 and 1011
    have none, 1016 describes a red car), teacher 2 in 22 (row 1005 has none)."""
    assert cli.main(["stats", "sample"]) == 0
    out = capsys.readouterr().out
    assert f"pair 1                     {20 / 23:.3f}     0.000     {3 / 23:.3f}        23" in out
    assert f"pair 2                     {22 / 23:.3f}     0.000     {1 / 23:.3f}        23" in out
