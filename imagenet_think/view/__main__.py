"""``imagenet-think view [SOURCE] [--port N] [--host H]``: browse a corpus in a web browser.

Serves ``sample``, a Hub-layout or published-layout directory, or a ``regenerate`` output
still being written (reload the page to see new rows).  The first line printed is
``serving SOURCE on http://HOST:PORT/``; ``--port 0`` picks a free port.  Stop with Ctrl+C.

    imagenet-think view sample --port 0
    python -m imagenet_think.view runs/regen-glm --port 8080
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from imagenet_think.cli import HelpFormatter, add_log_level_argument, add_source_argument, run_command

DEFAULT_PORT = 8000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``imagenet-think view``."""
    add_source_argument(parser)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on; 0 picks a free one")
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only); 0.0.0.0 serves everyone who can reach it",
    )


def run(args: argparse.Namespace) -> int:
    """Index the source, then serve it until interrupted (bad input raises; the CLI prints it
    as one line, exit 2)."""
    from imagenet_think.view.corpus import Corpus
    from imagenet_think.view.server import Viewer, ViewServer, is_loopback

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: give a port from 0 to 65535")
    corpus = Corpus(args.source)
    snapshot = corpus.refresh(strict=True)
    loopback = is_loopback(args.host)
    try:
        server = ViewServer(Viewer(corpus, loopback_only=loopback, host_names=(args.host,)), args.host, args.port)
    except OSError as err:
        raise OSError(f"cannot listen on {args.host} port {args.port}: {err.strerror or err}; "
                      "pick another --port (0 picks a free one)") from err
    if not loopback:
        print(
            f"imagenet-think view: warning: --host {args.host} lets every machine that can reach this one read the "
            "corpus (no password, no encryption); prefer the default 127.0.0.1 with an SSH tunnel",
            file=sys.stderr,
        )
    print(f"serving {args.source} on {server.url}", flush=True)
    print(f"{snapshot.index.num_rows:,} records in {len(snapshot.files)} file(s); Ctrl+C stops", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run."""
    parser = argparse.ArgumentParser(
        prog="python -m imagenet_think.view", description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    add_arguments(parser)
    add_log_level_argument(parser, default="WARNING")
    return run_command("imagenet-think view", run, parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
