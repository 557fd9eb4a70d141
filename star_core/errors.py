"""The engine's run errors, in a module of their own that imports nothing of star's.

Errors of a layer below stay with it (``ConfigError`` with the config file, ``DataError`` with the tasks,
``StoreError`` with the store, ``RunLocked`` with the lock); the ``star`` command maps all of them to one
line each (:mod:`star_core.cli_errors`).
"""

from __future__ import annotations


class RunError(RuntimeError):
    """A run cannot start or resume (the message says why and what to do)."""


class Stopped(Exception):
    """Raised from the SIGTERM handler: the run stops cleanly and stays resumable."""
