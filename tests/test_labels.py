"""imagenet_think.labels: vendored WordNet table, lemmas and hypernym chains."""

import gzip
from importlib import resources

import pytest

from imagenet_think import labels


def test_every_synset_has_a_label_and_reaches_entity():
    table = labels._synsets()
    assert len(table) == 23548  # 21,844 ImageNet-21k classes + 1,704 ancestors
    for wnid in table:
        assert labels.label_for(wnid)
        assert wnid == "n00001740" or "n00001740" in labels.hypernyms(wnid), wnid
    assert labels.label_for("n01440764") == "tench, Tinca tinca"  # ImageNet-1k class 0


def test_every_parent_in_the_table_is_itself_in_the_table():
    table = labels._synsets()
    dangling = {p for parents, _ in table.values() for p in parents if p not in table}
    assert dangling == set()


def test_hypernyms_follow_every_parent_of_a_synset_with_two():
    # dog has two direct hypernyms: canine and domestic animal
    direct = labels.hypernyms("n02084071", max_depth=1)
    assert [labels.lemmas(w)[0] for w in direct] == ["canine", "domestic animal"]
    chain = labels.hypernyms("n02084071")
    assert len(chain) == len(set(chain))
    assert {"n02083346", "n01317541", "n00015388"} <= set(chain)  # canine, domestic animal, animal
    assert labels.hypernyms("n02084071", max_depth=2)[:2] == direct


def test_instance_hypernyms_are_followed():
    # "sun, Sun" is an instance (@i pointer) of "star"
    assert labels.label_for("n09450163") == "sun, Sun"
    assert [labels.label_for(w) for w in labels.hypernyms("n09450163", max_depth=1)] == ["star"]


def test_unknown_and_malformed_ids_give_empty_results():
    assert labels.label_for("") == ""
    assert labels.lemmas("n00000000") == []
    assert labels.hypernyms("dog") == []


def test_table_is_small_and_sorted():
    raw = resources.files("imagenet_think").joinpath("data", "wordnet_nouns.tsv.gz").read_bytes()
    assert len(raw) < 1_000_000
    wnids = [line.split("\t", 1)[0] for line in gzip.decompress(raw).decode().splitlines()[1:]]
    assert wnids == sorted(wnids)


@pytest.mark.parametrize("line", ["n1\tdog", "n1\t\t", "\tn2\tdog", "n1\tn2\tdog\textra"])
def test_malformed_table_line_is_named_in_the_error(line):
    with pytest.raises(ValueError, match=r"table.tsv:2: expected"):
        labels.parse_table("# header\n" + line + "\n", source="table.tsv")
