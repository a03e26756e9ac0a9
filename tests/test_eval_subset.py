"""The evaluation subset: disjoint from training, deterministic, ordered by a second hash."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_think.evaluate.subset import eval_indices, eval_order_key, load_eval_rows, select_eval_ids, split_mask
from imagenet_think.split import is_validation

IDS = [f"n{1440764 + i % 37:08d}_n{1440764 + i % 37:08d}_{i}" for i in range(20000)]


def test_validation_subset_never_touches_training_ids():
    subset = select_eval_ids(IDS, size=None, split="validation", validation_fraction=0.01)
    assert subset, "20000 ids must give some validation ids at 1 %"
    assert all(is_validation(row_id, 0.01) for row_id in subset)
    assert set(subset) == {row_id for row_id in IDS if is_validation(row_id, 0.01)}
    assert not set(subset) & set(select_eval_ids(IDS, size=None, split="train", validation_fraction=0.01))


def test_order_is_the_documented_blake2b_key():
    subset = select_eval_ids(IDS, size=50)
    keys = [int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8, person=b"imnt-eval").digest(), "big") for i in subset]
    assert keys == sorted(keys)
    assert keys[0] == eval_order_key(subset[0])


def test_subset_does_not_depend_on_row_order_and_grows_by_appending():
    shuffled = IDS[:]
    random.Random(3).shuffle(shuffled)
    assert select_eval_ids(shuffled, size=40) == select_eval_ids(IDS, size=40)
    assert select_eval_ids(IDS, size=80)[:40] == select_eval_ids(IDS, size=40)


def test_smaller_fraction_keeps_a_subsequence():
    small = select_eval_ids(IDS, size=None, validation_fraction=0.005)
    large = select_eval_ids(IDS, size=None, validation_fraction=0.01)
    assert [i for i in large if i in set(small)] == small


def test_all_split_covers_every_id_and_indices_point_at_them():
    picked = eval_indices(IDS, size=None, split="all")
    assert sorted(picked) == list(range(len(IDS)))
    assert [IDS[i] for i in picked[:5]] == select_eval_ids(IDS, size=5, split="all")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "test"}, "unknown split 'test'"),
        ({"size": 0}, "size must be positive"),
        ({"validation_fraction": 1.0}, "`validation_fraction` must be in"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_eval_ids(IDS[:10], **kwargs)


def test_duplicate_ids_are_named():
    with pytest.raises(ValueError, match="'b' more than once"):
        eval_indices(["a", "b", "c", "b"], split="all")


def test_a_null_id_is_named_by_its_position():
    with pytest.raises(ValueError, match="row at position 2 has a null id"):
        eval_indices(["a", "b", None], split="validation")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=300), st.floats(0.0, 0.99))
def test_split_mask_partitions_ids(ids, fraction):
    validation = split_mask(ids, "validation", fraction).to_pylist()
    train = split_mask(ids, "train", fraction).to_pylist()
    assert all(v != t for v, t in zip(validation, train))
    assert validation == [is_validation(i, fraction) for i in ids]


def test_sample_rows_follow_the_subset():
    ids, rows = load_eval_rows("sample", size=None, split="validation", columns=["id", "answer_1"])
    assert rows["id"].to_pylist() == select_eval_ids(ids, size=None)
    assert all(is_validation(i, 0.01) for i in rows["id"].to_pylist())
    _, every = load_eval_rows("sample", size=5, split="all", columns=["id"])
    assert every["id"].to_pylist() == select_eval_ids(ids, size=5, split="all")
