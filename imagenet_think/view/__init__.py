"""``imagenet-think view``: browse a local corpus in a web browser.

:mod:`~imagenet_think.view.corpus` indexes the files and reads single records,
:mod:`~imagenet_think.view.query` turns URL parameters into filtered, sorted pages,
:mod:`~imagenet_think.view.pages` renders HTML, :mod:`~imagenet_think.view.server` answers HTTP
requests (standard library only) and ``python -m imagenet_think.view`` is the command.
"""
