"""Rebuild or extend the corpus: image sources, teacher engines, and the resumable runner.

``python -m imagenet_think.regenerate --help`` (or ``imagenet-think regenerate``) lists every
option.  Modules: ``sources`` (which images), ``models`` and ``engines`` (which teacher, how it
runs), ``runner`` (plan, resume, retries, shards).

>>> import imagenet_think.regenerate
"""
