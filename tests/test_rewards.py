"""Tests of imagenet_think.rewards on cases read off the vendored WordNet table.

The synsets used, with their rows in ``imagenet_think/data/wordnet_nouns.tsv.gz``
(``wnid<TAB>parents<TAB>lemmas``):

    n02084071  n02083346 n01317541  dog, domestic dog, Canis familiaris
    n02083346  n02075296            canine, canid                       (dog's parent: d = 1)
    n01317541  n00015388            domestic animal, domesticated animal (dog's other parent: d = 1)
    n02075296  n01886756            carnivore                           (d = 2)
    n00015388  n00004475            animal, animate being, beast, ...   (d = 2, via domestic animal)
    n01886756  n01861778            placental, placental mammal, ...    (d = 3)
    n01861778  n01471682            mammal, mammalian                   (d = 4)
    n02088364  n02087551            beagle        (n02087551 hound -> n02087122 hunting dog -> dog)
    n01322604  n01322343 n02084071  puppy         (a hyponym of dog)
    n02121620  n02120997            cat, true cat (n02120997 feline -> carnivore: a competitor of dog)
    n02374451  n02374149            horse, Equus caballus (equine -> ... -> placental -> ... -> animal)
    n07697537  n07695965            hotdog, hot dog, red hot
    n03768132  n03305522            mine
    n00007846  n00004475 n00007347  person, individual, someone, somebody, mortal, soul
    n03850245  n03541091            operating room, OR, operating theater, ...
    n15093298  n15089645 n14724645  vitamin C, C, ascorbic acid
    n02012849 / n03126707           crane (the bird) / crane (the machine)
    n02330245 / n03793489           mouse / mouse, computer mouse
    n03792782                       mountain bike, all-terrain bike, off-roader
    n01732789  n01732244            black rat snake, blacksnake, ...    (rat snake -> colubrid -> snake)
    n02333909  n02331046            black rat, roof rat, Rattus rattus  (a rodent)
"""

from __future__ import annotations

import gzip
import importlib.util
import subprocess
import sys
import warnings
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_think import labels, rewards
from imagenet_think.text import re_word_tokens, word_tokens
from imagenet_think.rewards import (
    LabelHit,
    compute_score,
    easyr1_score,
    format_reward,
    label_hit,
    label_reward,
    named_synsets,
)

DOG, CANINE, DOMESTIC_ANIMAL, CARNIVORE, ANIMAL, PLACENTAL, MAMMAL = (
    "n02084071", "n02083346", "n01317541", "n02075296", "n00015388", "n01886756", "n01861778",
)  # fmt: skip
BEAGLE, PUPPY, CAT, HORSE, HOTDOG = "n02088364", "n01322604", "n02121620", "n02374451", "n07697537"
BLACK_RAT_SNAKE, BLACK_RAT = "n01732789", "n02333909"
MINE, PERSON, OPERATING_ROOM, VITAMIN_C = "n03768132", "n00007846", "n03850245", "n15093298"
CRANE_BIRD, CRANE_MACHINE, MOUSE, COMPUTER_MOUSE, MOUNTAIN_BIKE = (
    "n02012849", "n03126707", "n02330245", "n03793489", "n03792782",
)  # fmt: skip


def _table_rows() -> dict[str, tuple[list[str], list[str]]]:
    """The raw table, read here without imagenet_think.labels: wnid -> (parents, lemmas)."""
    raw = resources.files("imagenet_think").joinpath("data", "wordnet_nouns.tsv.gz").read_bytes()
    rows = {}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if not line.startswith("#"):
            wnid, parents, lemmas = line.split("\t")
            rows[wnid] = (parents.split(), lemmas.split(", "))
    return rows


TABLE = _table_rows()


def glm(answer: str, think: str = "Fur and four legs.") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def test_the_rows_used_here_are_as_the_docstring_says():
    """The distances the tests below rely on, walked on the raw parent column."""
    assert TABLE[DOG][0] == [CANINE, DOMESTIC_ANIMAL]
    assert TABLE[CANINE][0] == [CARNIVORE] and TABLE[DOMESTIC_ANIMAL][0] == [ANIMAL]
    assert TABLE[CARNIVORE][0] == [PLACENTAL] and TABLE[PLACENTAL][0] == [MAMMAL]
    assert TABLE[TABLE[TABLE[BEAGLE][0][0]][0][0]][0] == [DOG]  # beagle -> hound -> hunting dog -> dog
    assert DOG in TABLE[PUPPY][0]
    assert TABLE[TABLE[CAT][0][0]][0] == [CARNIVORE]  # cat -> feline -> carnivore
    assert TABLE[HOTDOG][1] == ["hotdog", "hot dog", "red hot"] and "dog" in TABLE[DOG][1]


# --- what a text names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, wnid",
    [
        ("Two dogs.", DOG),  # -s
        ("three foxes", "n02118333"),  # -es
        ("ponies", "n02382437"),  # -y -> -ies
        ("a pack of wolves", "n02114100"),  # -f -> -ves
        ("two mice", MOUSE),  # irregular ("field mice" are n02332755 "field mouse")
        ("geese", "n01855672"),
        ("cacti", "n11842204"),  # -us -> -i
        ("larvae", "n02311060"),  # -a -> -ae
        ("women", "n10787470"),  # -man -> -men
    ],
)
def test_plurals_name_the_synset(text, wnid):
    assert wnid in named_synsets(text)


@pytest.mark.parametrize("text", ["An off-roader.", "an off roader", "AN OFF-ROADER", "Mountain-bike"])
def test_hyphens_and_spaces_are_the_same_and_case_is_ignored(text):
    assert MOUNTAIN_BIKE in named_synsets(text)
    assert label_reward([text], MOUNTAIN_BIKE) == [1.0]


def test_hyphenated_answer_names_a_spaced_lemma():
    assert named_synsets("a golden-retriever puppy") >= {"n02099601", PUPPY}


def test_longest_match_first():
    # "hot dog" is the food; its "dog" is not read again
    assert named_synsets("A hot dog on a plate.") & {HOTDOG, DOG} == {HOTDOG}
    assert label_hit("A hot dog.", DOG) == LabelHit("missed", None)
    assert label_reward(["A hot-dog."], HOTDOG) == [1.0]


def test_the_longest_of_several_phrases_starting_at_one_word():
    # "black rat snake" starts with "black rat", a rodent: read shortest first, the answer would
    # name a rat and then "snake", an ancestor three links up
    assert "black rat snake" in TABLE[BLACK_RAT_SNAKE][1] and "black rat" in TABLE[BLACK_RAT][1]
    snake = TABLE[TABLE[TABLE[BLACK_RAT_SNAKE][0][0]][0][0]][0][0]
    assert "snake" in TABLE[snake][1]
    assert named_synsets("A black rat snake on a branch.") & {BLACK_RAT_SNAKE, BLACK_RAT, snake} == {BLACK_RAT_SNAKE}
    assert label_hit("A black rat snake on a branch.", BLACK_RAT_SNAKE) == LabelHit("named", 0)
    assert label_hit("A black rat and a snake.", BLACK_RAT_SNAKE) == LabelHit("ancestor", 3)


def test_whole_words_only():
    assert named_synsets("dogma") == set()
    assert label_reward([glm("Pure dogma.")], DOG) == [0.0]


def test_function_words_single_characters_and_numbers_name_nothing():
    assert named_synsets("this or that, someone, mine") == set()
    assert label_hit("A mine.", MINE).kind == "missed"  # "mine" is a pronoun here
    assert label_hit("A person.", PERSON).kind == "named"
    assert label_hit("Someone.", PERSON).kind == "missed"
    assert OPERATING_ROOM not in named_synsets("a kitchen or a hall")
    assert VITAMIN_C in named_synsets("rich in vitamin C") and VITAMIN_C not in named_synsets("grade C")
    assert named_synsets("78") == set()  # a lemma of "seventy-eight, 78"


def test_a_lemma_led_by_a_function_word_yields_to_the_lemma_after_it():
    # n02753044 "atom bomb, ..., A-bomb", n02866578 "bomb"; n02709908 "AND circuit, AND gate", n03427296 "gate"
    bombs = named_synsets("a bomb")  # n02866578 "bomb" and n02867592 "bomb calorimeter, bomb"
    assert bombs == {"n02866578", "n02867592"} and named_synsets("an A-bomb") == bombs
    assert "n02709908" not in named_synsets("fences and gates") and "n03427296" in named_synsets("fences and gates")
    assert named_synsets("birds of prey") == named_synsets("a bird of prey") == {"n01604330"}  # "bird of prey, raptor, ..."


def test_ambiguous_lemma_names_all_its_synsets_and_is_read_as_the_label():
    assert named_synsets("a crane") == {CRANE_BIRD, CRANE_MACHINE}
    assert named_synsets("two mice") == {MOUSE, COMPUTER_MOUSE}
    # the other reading of the word is not a hedge
    assert label_reward(["A crane."], CRANE_BIRD) == label_reward(["A crane."], CRANE_MACHINE) == [1.0]


# --- reward levels --------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["A dog.", "A domestic dog.", "Canis familiaris", "A beagle.", "Beagles!", "A puppy."])
def test_label_and_hyponyms_score_one(answer):
    assert label_hit(answer, DOG) == LabelHit("named", 0)
    assert label_reward([glm(answer)], DOG) == [1.0]


@pytest.mark.parametrize(
    "answer, distance",
    [("A canine.", 1), ("A domestic animal.", 1), ("A carnivore.", 2), ("An animal.", 2), ("A placental mammal.", 3)],
)
def test_each_ancestor_distance(answer, distance):
    assert label_hit(answer, DOG) == LabelHit("ancestor", distance)
    assert label_reward([glm(answer)], DOG) == [0.5**distance]
    assert label_reward([glm(answer)], DOG, decay=0.8) == [pytest.approx(0.8**distance)]


def test_ancestor_beyond_max_depth_scores_zero():
    assert label_reward([glm("A mammal.")], DOG) == [0.0]  # mammal is 4 links up
    assert label_reward([glm("A mammal.")], DOG, max_depth=4) == [0.5**4]
    assert label_reward([glm("A placental.")], DOG, max_depth=2) == [0.0]


def test_nearest_named_ancestor_counts():
    assert label_hit("A carnivore, a canine, an animal.", DOG) == LabelHit("ancestor", 1)


def test_hedging_across_classes_scores_zero_unless_not_exclusive():
    assert label_hit("a cat or a dog", DOG) == LabelHit("hedged", None)
    assert label_reward([glm("A cat or a dog.")], DOG) == [0.0]
    assert label_reward([glm("A cat or a dog.")], DOG, exclusive=False) == [1.0]
    assert label_reward([glm("A cat or a canine.")], DOG, exclusive=False) == [0.5]
    assert label_hit("A cat.", DOG, exclusive=False) == LabelHit("missed", None)


def test_competitors_share_an_ancestor_within_max_depth_of_both():
    # cat and dog are both 2 links below carnivore (cat -> feline -> carnivore, dog -> canine -> carnivore)
    assert label_hit("A dog or a cat.", DOG, max_depth=1) == LabelHit("named", 0)
    assert label_hit("A dog or a cat.", DOG, max_depth=2) == LabelHit("hedged", None)
    # horse and dog meet at placental: 3 links above dog but 4 above horse
    # (horse -> equine -> odd-toed ungulate -> ungulate -> placental)
    assert label_hit("A dog or a horse.", DOG, max_depth=3) == LabelHit("named", 0)
    assert label_hit("A dog or a horse.", DOG, max_depth=4) == LabelHit("hedged", None)


def test_a_general_ancestor_alone_makes_no_competitor():
    # "Black" is also n09636339 Black person (-> person -> organism: 2 links); organism is 3 links
    # above dog (dog -> domestic animal -> animal -> organism): within max_depth of both, a hedge
    assert label_hit("A dog, black.", DOG) == LabelHit("hedged", None)
    # grass descends from organism too, but many links below it
    assert label_hit("A dog on the grass.", DOG) == LabelHit("named", 0)


def test_a_word_before_another_named_one_modifies_it_and_competes_with_nothing():
    assert label_hit("A black dog.", DOG) == LabelHit("named", 0)
    assert label_hit("A brown and white dog.", DOG) == LabelHit("named", 0)  # coordinated modifiers
    assert label_hit("A black and white dog.", DOG) == LabelHit("named", 0)  # "black and white" is one lemma
    assert label_hit("A dog and a black cat.", DOG) == LabelHit("hedged", None)  # cat itself is no modifier
    assert label_hit("A black cat and a dog.", DOG) == LabelHit("hedged", None)
    assert label_hit("A cat or dog.", DOG) == LabelHit("hedged", None)  # "or" joins heads, not modifiers


def test_unrelated_things_are_no_hedge():
    assert label_hit("A dog on a kitchen table.", DOG) == LabelHit("named", 0)


# --- answer part only -----------------------------------------------------------------------


def test_only_the_answer_counts():
    assert label_reward([glm("A cat-like thing.", think="Surely a dog.")], DOG) == [0.0]
    assert label_reward([glm("A dog.", think="Not a cat.")], DOG) == [1.0]  # the think part hedges nothing


def test_reasoning_formats():
    completions = [
        "◁think▷Four legs.◁/think▷A dog.",  # Kimi
        "<think>Four legs.</think><answer>A <|begin_of_box|>dog<|end_of_box|></answer>",  # GLM
        "Four legs.</think>A dog.",  # opening tag in the prompt
        "<think>It is a dog, surely",  # unclosed: no answer
        "◁think▷A dog, surely",  # unclosed, Kimi
        "A dog.",  # no reasoning: all answer
    ]
    assert label_reward(completions, DOG) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert format_reward(completions) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_conversational_completions():
    completions = [
        [{"role": "assistant", "content": "<think>Fur.</think>A beagle."}],
        [{"role": "assistant", "content": [{"type": "text", "text": "<think>Fur.</think>"}, {"type": "text", "text": "A canine."}]}],
        [{"role": "assistant", "content": "A dog.", "reasoning_content": "Fur."}],  # a chat template's parser split it
        [{"role": "assistant", "content": "A dog.", "thinking": "Fur."}],
        [{"content": "◁think▷Fur.◁/think▷A carnivore."}],  # think_format_reward's shape: no role
        [{"role": "assistant", "content": None}],
    ]
    assert label_reward(completions, [DOG] * 6, max_depth=2) == [1.0, 0.5, 1.0, 1.0, 0.25, 0.0]
    assert format_reward(completions) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_trl_keyword_arguments_are_accepted():
    rewards_ = label_reward(
        prompts=[[{"role": "user", "content": "What is it?"}]], completions=["A dog."], wnid=[DOG], label=["dog"],
        completion_ids=[[1, 2]], trainer_state=None, log_extra=print, log_metric=print,
    )  # fmt: skip
    assert rewards_ == [1.0] and format_reward(completions=["x"], wnid=[DOG], trainer_state=None) == [0.0]


def test_one_wnid_for_all_and_length_mismatch():
    assert label_reward(["A dog.", "A cat."], DOG, exclusive=False) == [1.0, 0.0]
    with pytest.raises(ValueError, match="2 completions but 1 wnids"):
        label_reward(["A dog.", "A cat."], [DOG])
    with pytest.raises(ValueError, match="decay"):
        label_reward(["A dog."], DOG, decay=1.5)


def _fresh_rewards_module(name: str = "fresh_rewards"):
    """A new copy of the module, loaded from its file as EasyR1 and verl load reward files."""
    spec = importlib.util.spec_from_file_location(name, rewards.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unknown_wnid_scores_zero_with_a_single_warning():
    module = _fresh_rewards_module()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert module.label_reward(["A dog.", "A dog."], ["n99999999", "dog"]) == [0.0, 0.0]
        assert module.label_reward(["A dog."], ["n00000000"]) == [0.0]
    assert [w.category for w in caught] == [RuntimeWarning]
    assert "'n99999999' is not in the vendored WordNet table" in str(caught[0].message)
    assert module.label_hit("A dog.", "n99999999") == module.LabelHit("unknown", None)


def test_the_table_is_not_read_at_import():
    code = (
        "import imagenet_think, imagenet_think.rewards as r, imagenet_think.labels as l; "
        "assert r._index.cache_info().currsize == 0 and l._synsets.cache_info().currsize == 0; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr


# --- framework adapters ---------------------------------------------------------------------


def test_easyr1_batch_score_function():
    """As EasyR1's AutoRewardManager: load the file under "custom_reward_fn", read REWARD_TYPE,
    partial() the reward_function_kwargs, call with one list of dicts, read "overall"."""
    module = _fresh_rewards_module("custom_reward_fn")
    assert module.REWARD_TYPE == "batch" and isinstance(module.REWARD_NAME, str)
    inputs = [
        {"response": "<think>Fur.</think><answer>A dog.</answer>", "response_length": 12, "ground_truth": DOG},
        {"response": "<think>Fur.</think>A canine.", "response_length": 8, "ground_truth": DOG},
        {"response": "A dog.", "response_length": 3, "ground_truth": DOG},
        {"response": "<think>It is a dog", "response_length": 6, "ground_truth": DOG},
    ]
    scores = module.easyr1_score(inputs, format_weight=0.5)
    assert [set(s) for s in scores] == [{"overall", "format", "accuracy"}] * 4
    assert [(s["accuracy"], s["format"]) for s in scores] == [(1.0, 1.0), (0.5, 1.0), (1.0, 0.0), (0.0, 0.0)]
    assert [s["overall"] for s in scores] == [1.0, 0.75, 0.5, 0.0]
    assert easyr1_score(inputs[:1]) == [{"overall": 1.0, "format": 1.0, "accuracy": 1.0}]


def test_verl_compute_score():
    """As verl's NaiveRewardManager: keyword call, dict result whose "score" is the reward."""
    module = _fresh_rewards_module()
    extra = {"index": 3, "num_turns": None, "rollout_reward_scores": {}}
    result = module.compute_score(
        data_source="imagenet_think", solution_str="<think>Fur.</think>A beagle.", ground_truth=DOG, extra_info=extra
    )
    assert result == {"score": 1.0, "format": 1.0, "accuracy": 1.0}
    hedged = compute_score("imagenet_think", "<think>Fur.</think>A cat or a dog.", DOG, None, format_weight=0.2)
    assert hedged == {"score": 0.2, "format": 1.0, "accuracy": 0.0}
    assert compute_score("imagenet_think", "A dog.", DOG, exclusive=False, some_future_kwarg=1)["score"] == 0.9


# --- properties -----------------------------------------------------------------------------

WNIDS = sorted(TABLE)


def _usable_lemmas(wnid: str) -> list[str]:
    """The lemmas that name ``wnid`` wherever they stand: not made only of function words,
    single characters and numbers, and not led by a function word (``AND gate``)."""
    words = {lemma: tuple(re_word_tokens(lemma)) for lemma in TABLE[wnid][1]}
    return [
        lemma for lemma, found in words.items()
        if found and not rewards._names_nothing(found) and found[0] not in rewards.FUNCTION_WORDS
    ]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_hyponyms_lemma_always_scores_one(data):
    hyponym = data.draw(st.sampled_from(WNIDS))
    lemmas = _usable_lemmas(hyponym)
    if not lemmas:
        return
    label = data.draw(st.sampled_from([hyponym, *labels.hypernyms(hyponym)]))
    lemma = data.draw(st.sampled_from(lemmas))
    for exclusive in (True, False):
        assert label_reward([glm(f"It is a {lemma}.")], label, exclusive=exclusive) == [1.0]


@settings(max_examples=300, deadline=None)
@given(st.data(), st.floats(0.05, 0.95))
def test_rewards_are_monotone_non_increasing_in_distance(data, decay):
    label = data.draw(st.sampled_from(WNIDS))
    depths = labels.hypernym_depths(label)
    unambiguous = [(d, lemma) for a, d in depths.items() for lemma in _usable_lemmas(a) if named_synsets(lemma) == {a}]
    if len(unambiguous) < 2:
        return
    (d1, lemma1), (d2, lemma2) = sorted(data.draw(st.lists(st.sampled_from(unambiguous), min_size=2, max_size=2)))
    r1, r2 = label_reward([lemma1, lemma2], label, decay=decay, max_depth=3, exclusive=False)
    assert r1 >= r2
    for distance, reward in ((d1, r1), (d2, r2)):
        assert reward == (decay**distance if distance <= 3 else 0.0)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.one_of(st.sampled_from(WNIDS), st.text(max_size=12)), st.booleans(), st.integers(0, 5))
def test_never_raises_and_stays_in_unit_interval(text, wnid, exclusive, max_depth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for completion in (text, [{"role": "assistant", "content": text}]):
            (reward,) = label_reward([completion], wnid, exclusive=exclusive, max_depth=max_depth)
            assert 0.0 <= reward <= 1.0
            assert format_reward([completion])[0] in (0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["dog", "Hot", "cat", "canine", "a", "or", "the", "beagle", "-", " ", "dogs", "'s", "_", "é", "\u0301", "猫"])))
def test_words_are_the_lexical_metrics_words(pieces):
    """The matcher cuts words as imagenet_think.text does (its ASCII fast path included)."""
    text = "".join(pieces)
    assert re_word_tokens(text) == word_tokens(text)


def test_cjk_ideographs_are_words_of_their_own():
    assert label_reward(["这张图片展示了一个orange，放在果盘里。"], "n07747607") == [1.0]  # orange (the fruit)
