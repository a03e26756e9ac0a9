"""Rebuild or extend the corpus: image sources, teacher engines, and the resumable runner.

``python -m imagenet_think.regenerate --help`` (or ``imagenet-think regenerate``) lists every
option.  Modules: ``sources`` (which images), ``models`` and ``engines`` (which teacher, how it
runs; ``engines.ray_engine`` and ``engines.ray_data_engine`` on a Ray cluster), ``scheduler``
(streaming requests, retries, the failure policy), ``runner`` (plan, resume, shards, the
writer), ``options`` (``KEY=VALUE`` and per-teacher option values), ``job`` (the whole run,
shared by the local and Ray paths).

>>> import imagenet_think.regenerate
"""
