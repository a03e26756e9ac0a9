"""The ``imagenet-think`` console script: one subcommand per module, one convention for all.

Each subcommand's wiring is a module of this package (``cli.export``, ``cli.export_sft``,
``cli.export_rl``, ``cli.stats``, ``cli.show``) or a package's ``__main__`` (``regenerate``,
``evaluate``, ``view``): it exposes ``add_arguments(parser)`` and ``run(args) -> int`` and calls
the library module that does the work, so library code never imports this layer.  Modules are
imported only for the subcommand being run, so ``imagenet-think --help`` stays fast.

The conventions live here, once: the corpus is the first positional argument ``SOURCE``
(:func:`add_source_argument`, ``sample`` by default for commands that only read it), help
texts show each default once (:class:`HelpFormatter`), and an error is one line
``imagenet-think CMD: error: ...`` with exit status 2 (:func:`run_command`); ``--log-level
DEBUG`` shows the traceback instead.  An exception that carries an ``exit_status`` (a run
that stopped early: 1, interrupted: 130) is an expected outcome: its message, that status.

Errors of the library speak of keyword arguments, in backquotes (``pass `overwrite=True```);
under the command line each one is spelt as the option that sets it (``pass --overwrite``,
:func:`cli_wording`): the option of the same name, or what the command's module lists in its
``OPTION_PHRASES`` for the arguments it sets another way (``--strict`` sets ``on_unusable``).

>>> sorted(COMMANDS)[:4]
['evaluate', 'export', 'export-rl', 'export-sft']
"""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Callable, Optional, Sequence

DESCRIPTION = (
    "Work with ImageNet-Think: ImageNet-21k images, each with two (thinking, answer) pairs from "
    "GLM-4.1V-9B-Thinking (pair 1) and Kimi-VL-A3B-Thinking-2506 (pair 2). Print records, export them "
    "in Hub layout, as SFT data for TRL, LLaMA-Factory and LLaVA or as RL prompts for TRL, EasyR1 and verl, "
    "measure them, regenerate them with a vision-language model, and score a model against them."
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
    "export-rl": ("imagenet_think.cli.export_rl", "write RL prompts (image + WordNet class) for TRL GRPO, EasyR1 or verl"),
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
    its default, nor for a default of ``None``, ``False`` or ``[]`` (nothing to say); a default
    of 0 is shown.

    >>> parser = argparse.ArgumentParser(prog="p", formatter_class=HelpFormatter)
    >>> _ = parser.add_argument("--n", type=int, default=3, help="rows")
    >>> _ = parser.add_argument("--seed", type=int, default=0, help="seed")
    >>> _ = parser.add_argument("--teachers", help="names (default: glm,kimi)")
    >>> help_text = parser.format_help()
    >>> "rows (default: 3)" in help_text, "seed (default: 0)" in help_text, help_text.count("default")
    (True, True, 3)
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is argparse.SUPPRESS or _says_nothing(default):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {str(default).replace('%', '%%')})"


def _says_nothing(default: Any) -> bool:
    """``None``, ``False`` or an empty list: a default not worth printing (``0 == False`` is, so
    the test is by identity).

    >>> [_says_nothing(value) for value in (None, False, [], 0, 0.0, "")]
    [True, True, True, False, False, False]
    """
    return default is None or default is False or (isinstance(default, (list, tuple)) and not default)


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


WHERE_HELP = (
    "keep only the records `imagenet-think view` lists for this query string (its URL after the ?), "
    "e.g. 'status=ok&teacher=kimi&q=dog'; keys: status, teacher, wnid, q, split, check, finish, agree_min, "
    "agree_max, tokens_min, tokens_max (the viewer shows the command for its current view)"
)


def add_where_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--where QUERY``, the viewer's query string (check it with :func:`check_where`)."""
    parser.add_argument("--where", metavar="QUERY", help=WHERE_HELP)


def check_where(where: Optional[str]) -> None:
    """Raise a ``ValueError`` naming ``--where`` when it is not a query the viewer takes.

    >>> check_where("status=ok&q=dog")
    >>> check_where("status=done")
    Traceback (most recent call last):
    ...
    imagenet_think.view.query.QueryError: --where 'status=done': status='done': not a status; use one of ok, ...
    """
    if where is None:
        return
    from imagenet_think.view.query import QueryError, parse_where

    try:
        parse_where(where)
    except QueryError as err:
        raise QueryError(f"--where {where!r}: {err}") from None


def add_log_level_argument(parser: argparse.ArgumentParser, default: str = argparse.SUPPRESS) -> None:
    """Add ``--log-level`` (``DEBUG`` also turns a one-line error into its traceback)."""
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=default,
        help="logging level; DEBUG also prints the full traceback of an error (default: WARNING)",
    )


def add_shard_size_argument(parser: argparse.ArgumentParser, help: str, default_bytes: int) -> None:
    """Add ``--max-shard-mib`` (binary megabytes, fractions allowed), parsed into bytes as
    ``max_shard_bytes``, the library's argument; ``--max-shard-mb``, its old spelling, stays
    accepted, hidden.

    >>> parser = argparse.ArgumentParser()
    >>> add_shard_size_argument(parser, "shard size", 500 * 2**20)
    >>> [parser.parse_args(a).max_shard_bytes for a in ([], ["--max-shard-mib", "0.5"], ["--max-shard-mb", "2"])]
    [524288000, 524288, 2097152]
    """
    parser.add_argument("--max-shard-mib", dest="max_shard_bytes", type=_mib, default=default_bytes, metavar="MIB",
                        help=f"{help} (default: {default_bytes / 2**20:g})")
    parser.add_argument("--max-shard-mb", dest="max_shard_bytes", type=_mib, help=argparse.SUPPRESS)


def _mib(text: str) -> int:
    """A positive number of MiB (2**20 bytes), in bytes."""
    try:
        mib = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not mib > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 MiB, got {text}")
    return max(1, int(mib * 2**20))


_KEYWORD = re.compile(r"`([A-Za-z_]\w*)(?:=([^`]*))?`")


def cli_wording(message: str, parser: argparse.ArgumentParser, phrases: Optional[Mapping[str, str]] = None) -> str:
    """``message`` with each keyword argument it names in backquotes (``name`` or
    ``name=value``) spelt as the option of ``parser`` that sets it: ``phrases[text]`` when the
    command lists the backquoted text there, else the visible option whose destination is
    ``name``, followed by the value (nothing for ``True``, list items space-separated).  Other
    backquoted text is left as it is.

    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--overwrite", action="store_true")
    >>> _ = parser.add_argument("--require-status", nargs="+")
    >>> cli_wording("out is not empty: pass `overwrite=True`", parser)
    'out is not empty: pass --overwrite'
    >>> cli_wording("not one of `require_status=('ok', 'no_think')`; widen `require_status`", parser)
    'not one of --require-status ok no_think; widen --require-status'
    >>> cli_wording("or skip them (`on_unusable='skip'`); see `imagenet-think show`", parser,
    ...             {"on_unusable='skip'": "without --strict"})
    'or skip them (without --strict); see `imagenet-think show`'
    """
    phrases = phrases or {}
    options = {
        action.dest: next(o for o in action.option_strings if o.startswith("--"))
        for action in parser._actions
        if action.help is not argparse.SUPPRESS and any(o.startswith("--") for o in action.option_strings)
    }

    def spell(match: re.Match) -> str:
        text, name, value = match.group(0)[1:-1], match.group(1), match.group(2)
        if text in phrases:
            return phrases[text]
        if name not in options:
            return match.group(0)
        if value is None:
            return options[name]
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        if value is True:
            return options[name]
        if isinstance(value, (list, tuple)):
            value = " ".join(map(str, value))
        return f"{options[name]} {value}"

    return _KEYWORD.sub(spell, message)


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


def run_command(
    prog: str,
    run: Callable[[argparse.Namespace], Optional[int]],
    args: argparse.Namespace,
    parser: Optional[argparse.ArgumentParser] = None,
    phrases: Optional[Mapping[str, str]] = None,
) -> int:
    """Call ``run(args)`` and return its exit status; an exception becomes the one line
    ``PROG: error: ...`` on stderr and :func:`exit_status`, unless ``args.log_level`` is
    ``DEBUG``: then it propagates, traceback and all.  With the command's ``parser``, the
    keyword arguments the message names are spelt as its options (:func:`cli_wording`)."""
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
        line = error_line(error)
        if parser is not None:
            line = cli_wording(line, parser, phrases)
        print(f"{prog}: error: {line}", file=sys.stderr)
        return exit_status(error)


def _build_parser(command: Optional[str]) -> tuple[argparse.ArgumentParser, Optional[argparse.ArgumentParser]]:
    """The top-level parser, and the parser of ``command`` (``None`` for an unknown one)."""
    from imagenet_think import __version__

    parser = argparse.ArgumentParser(
        prog="imagenet-think", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"imagenet-think {__version__}")
    add_log_level_argument(parser, default="WARNING")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.formatter_class = HelpFormatter  # over any module's own: one way to show defaults
            if "--log-level" not in p._option_string_actions:
                add_log_level_argument(p)
            p.set_defaults(_run=module.run, _phrases=getattr(module, "OPTION_PHRASES", {}))
            chosen = p
    return parser, chosen


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
    parser, command_parser = _build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    return run_command(f"{parser.prog} {args.command}", args._run, args, command_parser, args._phrases)
