"""Test support shipped with dshell: a fake backend, a backend contract suite, fixtures.

- :mod:`dshell.testing.fake` — ``FakeBackend``, a deterministic cluster in a JSON file.
- :mod:`dshell.testing.contract` — ``BackendContract``: subclass it in a backend's tests and
  provide a ``backend`` fixture; every backend passes the same suite.
- :mod:`dshell.testing.fixtures` — pytest fixtures (isolated dirs, an in-process CLI runner);
  load them with ``pytest_plugins = ["dshell.testing.fixtures"]``.
"""
