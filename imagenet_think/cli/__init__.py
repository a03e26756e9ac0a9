"""The ``imagenet-think`` console script: one subcommand per module, one convention for all.

Each subcommand's wiring is a module of this package (``cli.export``, ``cli.export_sft``,
``cli.stats``, ``cli.show``) or a package's ``__main__`` (``regenerate``, ``evaluate``, ``view``):
it exposes ``add_arguments(parser)`` and ``run(args) -> int`` and calls the library module
that does the work, so library code never imports this layer.  Modules are imported only for
the subcommand being run, so ``imagenet-think --help`` stays fast.

The conventions live here, once: the corpus is the first positional argument ``SOURCE``
(:func:`add_source_argument`, ``sample`` by default for commands that only read it), help
texts show each default once (:class:`HelpFormatter`), and an error is one line
``imagenet-think CMD: error: ...`` with exit status 2 (:func:`run_command`); ``--log-level
DEBUG`` shows the traceback instead.  An exception that carries an ``exit_status`` (a run
that stopped early: 1, interrupted: 130) is an expected outcome: its message, that status.

>>> sorted(COMMANDS)[:3]
['evaluate', 'export', 'export-sft']
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable, Optional, Sequence

DESCRIPTION = (
    "Work with ImageNet-Think: ImageNet-21k images, each with two (thinking, answer) pairs from "
    "GLM-4.1V-9B-Thinking (pair 1) and Kimi-VL-A3B-Thinking-2506 (pair 2). Print records, export them "
    "in Hub layout or as SFT data for TRL, LLaMA-Factory and LLaVA, measure them, regenerate them with a "
    "vision-language model, and score a model against them."
)

EPILOG = (
    "SOURCE, the corpus a command reads, is 'sample' (the bundled 24-record sample, works offline), "
    "'imagenet-think' (the Hub copy krishnateja95/ImageNet-Think), a corpus directory, or a Hub dataset id. "
    "Run 'imagenet-think COMMAND --help' for a command's options."
)

COMMANDS = {
    "show": ("imagenet_think.cli.show", "print records of a corpus, texts shortened, images summarised"),
    "export": ("imagenet_think.cli.export", "write a corpus in Hub layout (sharded Parquet + dataset card)"),
    "export-sft": ("imagenet_think.cli.export_sft", "write SFT-ready data for TRL, LLaMA-Factory or LLaVA"),
    "stats": ("imagenet_think.cli.stats", "print corpus statistics and write histograms"),
    "regenerate": ("imagenet_think.regenerate.__main__", "rebuild or extend the corpus with a VLM"),
    "evaluate": ("imagenet_think.evaluate.__main__", "score model predictions against the corpus"),
    "view": ("imagenet_think.view.__main__", "browse a corpus in a web browser (images, both teachers' reasoning)"),
}

DEFAULT_SOURCE = "sample"
"""The corpus of commands that only read one: works offline, unlike the Hub copy."""

SOURCE_HELP = (
    "corpus: 'sample' (bundled, offline), 'imagenet-think' (the Hub copy), a corpus directory, or a Hub dataset id"
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

USER_ERRORS = (OSError, ValueError, LookupError)
"""Errors that mean bad input or a missing resource (files, Hub, options): exit status 2.
Anything else is a bug or an unforeseen failure: still one line, exit status 1."""


class HelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to an option's help, once: not when the help already speaks of
    its default, nor for a default of ``None``, ``False`` or ``[]`` (nothing to say).

    >>> parser = argparse.ArgumentParser(prog="p", formatter_class=HelpFormatter)
    >>> _ = parser.add_argument("--n", type=int, default=3, help="rows")
    >>> _ = parser.add_argument("--teachers", help="names (default: glm,kimi)")
    >>> help_text = parser.format_help()
    >>> "rows (default: 3)" in help_text, help_text.count("default")
    (True, 2)
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is argparse.SUPPRESS or default in (None, False, [], ()):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {str(default).replace('%', '%%')})"


def add_source_argument(parser: argparse.ArgumentParser, default: Optional[str] = DEFAULT_SOURCE) -> None:
    """Add the corpus argument ``SOURCE``: positional, first, and ``default`` when left out
    (required when ``default`` is ``None``).  ``--source`` stays accepted, hidden, for the
    commands that used to take it.

    >>> parser = argparse.ArgumentParser()
    >>> add_source_argument(parser)
    >>> [parser.parse_args(a).source for a in ([], ["dir"], ["--source", "dir"])]
    ['sample', 'dir', 'dir']
    """
    if default is None:
        parser.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
        return
    # The default is the parser's, set first: an action's own default would overwrite --source
    # whenever the positional is left out (set_defaults after add_argument would set it there).
    parser.set_defaults(source=default)
    parser.add_argument(
        "source", metavar="SOURCE", nargs="?", default=argparse.SUPPRESS, help=f"{SOURCE_HELP} (default: {default})"
    )
    parser.add_argument("--source", dest="source", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_log_level_argument(parser: argparse.ArgumentParser, default: str = argparse.SUPPRESS) -> None:
    """Add ``--log-level`` (``DEBUG`` also turns a one-line error into its traceback)."""
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=default,
        help="logging level; DEBUG also prints the full traceback of an error (default: WARNING)",
    )


def error_line(error: BaseException) -> str:
    """``error`` as one line: its message with line breaks folded, the type name for anything
    that is not a :data:`USER_ERRORS` (a bug or an unforeseen failure).

    >>> error_line(FileNotFoundError("out/x: no such directory"))
    'out/x: no such directory'
    >>> error_line(KeyError("unknown model 'x'"))
    "unknown model 'x'"
    >>> error_line(TypeError("bad\\n  operand"))
    'TypeError: bad operand (rerun with --log-level DEBUG for the traceback)'
    """
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    message = " ".join(str(message).split()) or type(error).__name__
    if isinstance(error, USER_ERRORS) or hasattr(error, "exit_status"):
        return message
    return f"{type(error).__name__}: {message} (rerun with --log-level DEBUG for the traceback)"


def exit_status(error: BaseException) -> int:
    """The exit status for ``error``: its own ``exit_status`` when it carries one, else 2 for
    :data:`USER_ERRORS` and 1 for anything else.

    >>> class Stopped(RuntimeError):
    ...     exit_status = 130
    >>> exit_status(Stopped()), exit_status(ValueError()), exit_status(TypeError())
    (130, 2, 1)
    """
    status = getattr(error, "exit_status", None)
    if isinstance(status, int):
        return status
    return 2 if isinstance(error, USER_ERRORS) else 1


def run_command(prog: str, run: Callable[[argparse.Namespace], Optional[int]], args: argparse.Namespace) -> int:
    """Call ``run(args)`` and return its exit status; an exception becomes the one line
    ``PROG: error: ...`` on stderr and :func:`exit_status`, unless ``args.log_level`` is
    ``DEBUG``: then it propagates, traceback and all."""
    level = getattr(args, "log_level", "WARNING")
    logging.basicConfig(level=level, format=LOG_FORMAT)
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if level == "DEBUG":
            raise
        print(f"{prog}: error: {error_line(error)}", file=sys.stderr)
        return exit_status(error)


def _build_parser(command: Optional[str]) -> argparse.ArgumentParser:
    from imagenet_think import __version__

    parser = argparse.ArgumentParser(
        prog="imagenet-think", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"imagenet-think {__version__}")
    add_log_level_argument(parser, default="WARNING")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.formatter_class = HelpFormatter  # over any module's own: one way to show defaults
            if "--log-level" not in p._option_string_actions:
                add_log_level_argument(p)
            p.set_defaults(_run=module.run)
    return parser


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named in ``argv``: its first word that is neither an option nor the
    value of the top-level ``--log-level``.

    >>> _command_of(["--log-level", "DEBUG", "show", "sample"])
    'show'
    """
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = _build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    return run_command(f"{parser.prog} {args.command}", args._run, args)
