"""``imagenet-think view``: browse a local corpus in a web browser.

:mod:`~imagenet_think.view.corpus` indexes the files and reads single records,
:mod:`~imagenet_think.view.signals` computes the answer agreement and label checks (on first use),
:mod:`~imagenet_think.view.query` turns URL parameters (and ``export --where``) into filtered, sorted pages,
:mod:`~imagenet_think.view.classes` finds classes by name for the class box,
:mod:`~imagenet_think.view.pages` renders HTML (corpus texts through
:mod:`~imagenet_think.view.render`), :mod:`~imagenet_think.view.thumbnail` makes thumbnails within
a pixel limit, :mod:`~imagenet_think.view.server` answers HTTP requests (standard library only)
and ``python -m imagenet_think.view`` is the command.
"""
