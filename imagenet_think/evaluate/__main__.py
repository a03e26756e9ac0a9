"""``python -m imagenet_think.evaluate`` (also ``imagenet-think evaluate``): score a model.

Three modes:

* ``--predictions FILE``: score a model's raw outputs read from JSONL or Parquet
  (:mod:`imagenet_think.evaluate.predictions`).
* ``--model NAME``: run the model on the evaluation images through the regenerate engine
  layer with the paper's prompt, keep its outputs in ``RUN_DIR/predictions.jsonl``, score them.
* ``--compare RUN_DIR...``: put the results of earlier runs side by side.

Rows scored: the evaluation subset (:mod:`imagenet_think.evaluate.subset`) of ``SOURCE``
(the bundled ``sample`` when left out; ``imagenet-think`` for the Hub copy),
``--size`` ids of ``--split`` (``validation`` by default, disjoint from training; ``train`` or
``all`` for corpora whose validation split is tiny, such as the bundled sample).  With
``--predictions``, the subset ids the file predicts are scored; every id in the file must exist
in the corpus.  Scores go to ``RUN_DIR/scores/`` chunk by chunk (a rerun skips chunks already
scored), then, with each answer's label reward (:mod:`imagenet_think.evaluate.label_accuracy`:
the model's and both teachers'), ``RUN_DIR/scores.parquet`` and ``results.{json,md,png}``
(:mod:`imagenet_think.evaluate.report`).  Option values are checked before anything is loaded,
and every setting that changes scores is recorded in ``results.json`` as used.

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["imagenet-think", "--predictions", "p.jsonl", "--split", "all"])
>>> args.source, args.split
('imagenet-think', 'all')
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

import pyarrow as pa

from imagenet_think.cli import HelpFormatter, add_log_level_argument, add_source_argument, run_command
from imagenet_think.evaluate.metrics import METRIC_NAMES, TFIDF_FITS, MetricModelError, MetricSettings, check_models
from imagenet_think.evaluate.predictions import PredictionError
from imagenet_think.evaluate.scoring import REFERENCE_COLUMNS
from imagenet_think.evaluate.subset import DEFAULT_EVAL_SIZE, EVAL_SPLITS
from imagenet_think.regenerate.engines import ENGINES
from imagenet_think.regenerate.models import REASONING_STYLES, ModelSpec, get_model, load_registry
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to ``parser``."""
    add_source_argument(parser)
    what = parser.add_argument_group("what to score (exactly one)")
    modes = what.add_mutually_exclusive_group(required=True)
    modes.add_argument("--predictions", metavar="FILE", help="JSONL/Parquet with id + raw output (prediction|output|text|raw)")
    modes.add_argument("--model", metavar="NAME", help="run this registered model (short name or Hub id) on the eval images")
    modes.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="put the results of earlier runs side by side")
    rows = parser.add_argument_group("rows")
    rows.add_argument("--split", choices=EVAL_SPLITS, default="validation", help="rows the subset is drawn from")
    rows.add_argument("--size", type=int, default=DEFAULT_EVAL_SIZE, help="subset size; 0 for every row of --split")
    rows.add_argument("--validation-fraction", type=float, default=DEFAULT_VALIDATION_FRACTION,
                      help="share of ids in the hash validation split, as the corpus was loaded with")
    engine = parser.add_argument_group("model run (with --model)")
    engine.add_argument("--registry", metavar="FILE", help="YAML/JSON file of extra models (see regenerate.models)")
    engine.add_argument("--model-path", help="local checkpoint directory (default: the model's Hub id)")
    engine.add_argument("--engine", choices=("auto", *ENGINES), default="auto", help="auto: vllm with a GPU, else transformers")
    engine.add_argument("--base-url", help="server URL for --engine openai")
    engine.add_argument("--trust-remote-code", action="store_true", help="allow models that run code from their repository")
    engine.add_argument("--max-new-tokens", type=int, help="generation cap (default: the model's registry entry)")
    engine.add_argument("--generation-batch-size", type=int, help="requests per engine batch (default: the engine's)")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--metrics", nargs="+", choices=METRIC_NAMES, default=list(METRIC_NAMES), metavar="METRIC",
                         help=f"some of: {', '.join(METRIC_NAMES)}")
    scoring.add_argument("--bertscore-model", help=f"default {MetricSettings.bertscore_model} (bert-score's English "
                         "default); when it cannot be loaded offline, the bundled all-MiniLM-L6-v2, with a warning")
    scoring.add_argument("--bertscore-layers", type=int, help="layer to use (default: bert-score's choice, else the last)")
    scoring.add_argument("--sbert-model", default=MetricSettings.sbert_model,
                         help="Sentence-BERT model of the sbert_cosine metric (a Hub id or a local directory)")
    scoring.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    scoring.add_argument("--batch-size", type=int, default=MetricSettings.batch_size, help="metric model batch size")
    scoring.add_argument("--reasoning-style", choices=REASONING_STYLES,
                         help="how predictions are split (default: the model's style with --model, else auto)")
    scoring.add_argument("--chunk-size", type=int, default=256, help="rows scored (and stored) together")
    scoring.add_argument("--rouge-stemmer", action="store_true",
                         help="Porter-stem words of more than 3 letters for ROUGE (rouge-score's use_stemmer=True)")
    scoring.add_argument("--tfidf-fit", choices=TFIDF_FITS, default=MetricSettings.tfidf_fit,
                         help="fit the TF-IDF weights on each (reference, prediction) pair, or once on the whole "
                         "evaluated set")
    report = parser.add_argument_group("report")
    report.add_argument("--out", metavar="RUN_DIR", help="run directory (default: eval-runs/<name>)")
    report.add_argument("--name", help="model name in the report (default: --model or the predictions file stem)")
    report.add_argument("--label-exclusive", action="store_true",
                        help="label accuracy: an answer that also names a competing class scores 0 (label_reward's "
                        "training default; off here, as descriptive answers name much besides the class)")
    report.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CI")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    report.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_name(args: argparse.Namespace) -> str:
    if args.name:
        return args.name
    if args.model:
        return args.model.rstrip("/").split("/")[-1]
    if args.predictions:
        return Path(args.predictions).stem
    return "comparison"


def _scored_rows(eval_rows: pa.Table, predictions: pa.Table) -> pa.Table:
    """Eval rows that have a prediction, in eval order, with the prediction columns joined in."""
    position = {row_id: i for i, row_id in enumerate(predictions["id"].to_pylist())}
    keep = [i for i, row_id in enumerate(eval_rows["id"].to_pylist()) if row_id in position]
    picked = eval_rows.take(pa.array(keep, pa.int64()))
    wanted = pa.array([position[row_id] for row_id in picked["id"].to_pylist()], pa.int64())
    joined = {"id": picked["id"], **{name: predictions[name].take(wanted) for name in ("prediction", "finish_reason")}}
    return pa.table({**joined, **{name: picked[name] for name in ("wnid", *REFERENCE_COLUMNS)}})


def _compare(args: argparse.Namespace, out: Path) -> int:
    from imagenet_think.evaluate.report import combine, describe_differences, load_summary

    summaries = [load_summary(run_dir) for run_dir in args.compare]
    combined = combine(summaries, [Path(run_dir).name for run_dir in args.compare])
    warning = describe_differences(combined)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return _publish(combined, out)


def _publish(summary: dict, out: Path) -> int:
    from imagenet_think.evaluate.report import render_markdown, write_report

    paths = write_report(summary, out)
    print(render_markdown(summary))
    print("wrote " + ", ".join(map(str, paths)), file=sys.stderr)
    return 0


def _model_spec(args: argparse.Namespace) -> ModelSpec:
    try:
        return get_model(args.model, load_registry(args.registry) if args.registry else None)
    except KeyError as err:
        raise ValueError(f"{err.args[0]} (add models with --registry FILE)") from err


def _predictions_table(
    args: argparse.Namespace, spec: Optional[ModelSpec], corpus_ids: Sequence[str], eval_rows: pa.Table, out: Path
) -> pa.Table:
    if args.predictions:
        from imagenet_think.evaluate.predictions import check_ids, read_predictions

        found = read_predictions(args.predictions)
        check_ids(found, set(corpus_ids), args.source)
        return found.table
    from imagenet_think.evaluate.predictions import generate_predictions

    given = {
        "model_path": args.model_path,
        "base_url": args.base_url,
        "batch_size": args.generation_batch_size,
        "trust_remote_code": args.trust_remote_code or None,
        "sampling": {"max_tokens": args.max_new_tokens} if args.max_new_tokens else None,
    }
    options = {key: value for key, value in given.items() if value is not None}
    return generate_predictions(eval_rows, out, spec, args.engine, options, args.chunk_size, not args.no_progress)


def _run_settings(args: argparse.Namespace, settings: MetricSettings, reasoning_style: str) -> dict:
    from imagenet_think.text import TOKENIZER

    options = ("source", "split", "size", "validation_fraction", "predictions", "model", "model_path")
    recorded = {name: getattr(args, name) for name in options}
    recorded.update(engine=args.engine if args.model else None, reasoning_style=reasoning_style, chunk_size=args.chunk_size)
    recorded.update(bootstrap=args.bootstrap, seed=args.seed, metrics=args.metrics, tokenizer=TOKENIZER, **asdict(settings))
    return recorded


POSITIVE_OPTIONS = ("bootstrap", "batch_size", "chunk_size", "bertscore_layers", "max_new_tokens", "generation_batch_size")
"""Numeric options that must be at least 1 when given."""


def check_options(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` naming the first option whose value cannot work, before any loading or scoring.

    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> check_options(parser.parse_args(["--predictions", "p.jsonl", "--bootstrap", "0"]))
    Traceback (most recent call last):
    ...
    ValueError: --bootstrap must be at least 1, got 0
    """
    for name in POSITIVE_OPTIONS:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.size < 0:
        raise ValueError(f"--size must be at least 0 (0 scores every row of --split), got {args.size}")
    if not 0.0 <= args.validation_fraction < 1.0:
        raise ValueError(f"--validation-fraction must be in [0, 1), got {args.validation_fraction}")


BERTSCORE_FALLBACK = "all-MiniLM-L6-v2"
"""BERTScore model used when bert-score's default cannot be loaded (bundled, works offline)."""


def _metric_settings(args: argparse.Namespace) -> MetricSettings:
    """The metric settings of ``args``, after checking each model ``--metrics`` needs once.

    Without ``--bertscore-model``: bert-score's default model when it loads (cached or online),
    else :data:`BERTSCORE_FALLBACK` with a warning.  The model used is recorded in the run's
    settings; scores from the two are not comparable.  So is the BERTScore layer, resolved
    (bert-score's recommended one for the model, else its last) and checked against the model.
    """
    settings = MetricSettings(
        args.bertscore_model or MetricSettings.bertscore_model,
        args.bertscore_layers,
        args.sbert_model,
        args.device,
        args.batch_size,
        rouge_stemmer=args.rouge_stemmer,
        tfidf_fit=args.tfidf_fit,
    )
    check_models([metric for metric in args.metrics if metric != "bertscore_f1"], settings)
    if "bertscore_f1" not in args.metrics:
        return settings
    try:
        check_models(["bertscore_f1"], settings)
    except MetricModelError as error:
        if args.bertscore_model:
            raise
        fallback = replace(settings, bertscore_model=BERTSCORE_FALLBACK)
        try:
            check_models(["bertscore_f1"], fallback)
        except MetricModelError:
            raise error  # the default model's problem is the one to report
        print(
            f"warning: BERTScore model {settings.bertscore_model!r} cannot be loaded (offline and not cached); using the "
            f"bundled {BERTSCORE_FALLBACK!r} instead. Its scores are not comparable with {settings.bertscore_model!r} "
            "runs; pass --bertscore-model to choose.",
            file=sys.stderr,
        )
        settings = fallback
    return replace(settings, bertscore_layers=_bertscore_layers(settings))


def _bertscore_layers(settings: MetricSettings) -> int:
    """The BERTScore layer the run uses (recorded, never ``None``), after checking the model has it."""
    from transformers import AutoConfig

    from imagenet_think.evaluate.metrics import bertscore_layer, resolve_model

    if settings.bertscore_layers is None:
        return bertscore_layer(settings.bertscore_model)
    available = AutoConfig.from_pretrained(resolve_model(settings.bertscore_model)).num_hidden_layers
    if settings.bertscore_layers > available:
        raise ValueError(
            f"--bertscore-layers {settings.bertscore_layers}: {settings.bertscore_model!r} has {available} layers"
        )
    return settings.bertscore_layers


def _evaluate(args: argparse.Namespace, out: Path) -> int:
    import pyarrow.parquet as pq

    from imagenet_think.evaluate.label_accuracy import LabelSettings, label_rewards
    from imagenet_think.evaluate.predictions import split_predictions
    from imagenet_think.evaluate.report import summarize
    from imagenet_think.evaluate.scoring import score_in_chunks
    from imagenet_think.evaluate.subset import load_eval_rows

    settings = _metric_settings(args)
    spec = _model_spec(args) if args.model else None
    style = args.reasoning_style or (spec.reasoning_style if spec else "auto")
    columns = ["id", "wnid", *REFERENCE_COLUMNS] + (["image"] if spec else [])
    corpus_ids, eval_rows = load_eval_rows(args.source, args.size or None, args.split, args.validation_fraction, columns)
    predictions = _predictions_table(args, spec, corpus_ids, eval_rows, out)
    rows = _scored_rows(eval_rows, predictions)
    if rows.num_rows == 0:
        raise PredictionError(
            f"none of the {predictions.num_rows} predictions is in the evaluation subset "
            f"({eval_rows.num_rows} ids: split {args.split!r} of {args.source!r}, --size {args.size}); "
            "use --split all (or train) to score rows outside the validation split, or a larger --size"
        )
    scored = set(rows["id"].to_pylist())
    coverage = {
        "subset_size": eval_rows.num_rows,
        "ids_without_prediction": [row_id for row_id in eval_rows["id"].to_pylist() if row_id not in scored],
        "predictions_outside_subset": predictions.num_rows - rows.num_rows,
    }
    print(
        f"scoring {rows.num_rows} rows ({len(coverage['ids_without_prediction'])} subset ids have no prediction, "
        f"{coverage['predictions_outside_subset']} predictions outside the subset are ignored)",
        file=sys.stderr,
    )
    scores = score_in_chunks(rows, out, args.metrics, settings, style, args.chunk_size, not args.no_progress)
    label_settings = LabelSettings(exclusive=args.label_exclusive)
    for name, values in label_rewards(rows, split_predictions(rows, style)["answer"].to_pylist(), label_settings).items():
        scores = scores.append_column(name, values)
    pq.write_table(scores, out / "scores.parquet")
    recorded = {**_run_settings(args, settings, style), "label_reward": asdict(label_settings)}
    return _publish(summarize(scores, _run_name(args), recorded, args.bootstrap, args.seed, coverage), out)


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate`` with parsed ``args`` (errors are reported by :func:`imagenet_think.cli.run_command`)."""
    out = Path(args.out or Path("eval-runs") / _run_name(args))
    check_options(args)
    return _compare(args, out) if args.compare else _evaluate(args, out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run; bad input is a one-line error, status 2."""
    parser = argparse.ArgumentParser(
        prog="python -m imagenet_think.evaluate", description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    add_arguments(parser)
    add_log_level_argument(parser, default="WARNING")
    return run_command(parser.prog, run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
