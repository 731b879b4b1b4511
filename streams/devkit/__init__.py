"""The development kit: what the tests, the benchmark and the soak share (the local Kafka broker and
cluster, worker processes, event builders, the fold step). The product never imports it.

Why here, inside the installed ``streams`` package, and not in ``tests/support``: the bench runs as
``.venv/bin/python ops/bench/run.py`` (``sys.path[0]`` is ``ops/bench``, not the checkout), so
``tests`` is not importable there without a ``sys.path`` insertion; ``streams`` is, through the
editable install, in the tests, in the bench, and in the bench's Quix peer (its own venv, the
checkout on ``PYTHONPATH``). A subpackage of ``streams`` needs no packaging change either.

Nothing in the product imports this package. Its modules import only the standard library and
the project (no pytest, no httpx): ``fold`` must load in the Quix venv, which has neither faust
nor the project's dev tools. The pytest-only parts (fixtures, ``shared_worker``) stay in
``tests/support``.
"""
