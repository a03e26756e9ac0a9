"""The ``imagenet-think`` console script: one subcommand per module.

Each subcommand lives in the module that does the work; the module exposes
``add_arguments(parser)`` and ``run(args) -> int``.  Modules are imported only for the
subcommand being run, so ``imagenet-think --help`` stays fast.

>>> sorted(COMMANDS)[:3]
['evaluate', 'export', 'export-sft']
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

COMMANDS = {
    "show": ("imagenet_think.show", "print records of a source (sample, a directory, the Hub copy)"),
    "export": ("imagenet_think.writer", "write a source in Hub layout (sharded Parquet + dataset card)"),
    "export-sft": ("imagenet_think.sft_export", "write SFT-ready data for TRL, LLaMA-Factory or LLaVA"),
    "stats": ("imagenet_think.stats", "print corpus statistics and write histograms"),
    "regenerate": ("imagenet_think.regenerate.__main__", "rebuild or extend the corpus with a VLM"),
    "evaluate": ("imagenet_think.evaluate.__main__", "score model predictions against the corpus"),
    "view": ("imagenet_think.view.__main__", "browse a corpus in a web browser (images, both teachers' reasoning)"),
}


def _build_parser(command: Optional[str]) -> argparse.ArgumentParser:
    from imagenet_think import __version__

    parser = argparse.ArgumentParser(prog="imagenet-think", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"imagenet-think {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = _build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
