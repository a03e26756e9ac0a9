"""``python -m imagenet_think.cli``: the ``imagenet-think`` console script."""

import sys

from imagenet_think.cli import main

sys.exit(main())
