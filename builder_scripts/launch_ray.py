"""The former Ray entry point, kept as a thin wrapper: ``regenerate --ray`` is the Ray path now.

    python builder_scripts/launch_ray.py SOURCE OUT_DIR [regenerate options] [--ray-address ADDRESS]

runs exactly

    python -m imagenet_think.regenerate SOURCE OUT_DIR [regenerate options] --ray [ADDRESS] --ray-data --engine vllm

(Ray Data LLM's vLLM processor, as this script always ran; give ``--engine`` to choose another
engine).  See the README's "Regenerate on a Ray cluster" for the replicas-in-actors path and
the multi-node recipe.

>>> regenerate_argv(["imgs", "out", "--replicas", "4", "--ray-address", "auto"])
['imgs', 'out', '--replicas', '4', '--ray', 'auto', '--ray-data', '--engine', 'vllm']
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence


def regenerate_argv(argv: Sequence[str]) -> list[str]:
    """This script's command line as ``python -m imagenet_think.regenerate``'s."""
    argv, address = list(argv), ""
    if "--ray-address" in argv:
        at = argv.index("--ray-address")
        address = argv[at + 1] if at + 1 < len(argv) else ""
        del argv[at : at + 2]
    engine = [] if "--engine" in argv else ["--engine", "vllm"]
    return [*argv, "--ray", *([address] if address else []), "--ray-data", *engine]


def main(argv: Optional[Sequence[str]] = None) -> int:
    from imagenet_think.regenerate.__main__ import main as regenerate

    return regenerate(regenerate_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
