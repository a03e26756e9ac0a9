"""Rebuild or extend the corpus: image sources, teacher engines, and the resumable runner.

``python -m imagenet_think.regenerate --help`` (or ``imagenet-think regenerate``) lists every
option.  Modules: ``sources`` (which images), ``models`` and ``engines`` (which teacher, how it
runs), ``scheduler`` (streaming requests, retries, the failure policy), ``runner`` (plan,
resume, shards, the writer).

>>> import imagenet_think.regenerate
"""
