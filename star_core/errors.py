"""The engine's errors that several layers share, at the bottom of the import graph: this module imports
nothing of star's.

:class:`StoreError` is the base of every error about a run folder's files
(:class:`star_core.runfolder.RunFolderError`, :class:`star_core.annotations.AnnotationError`,
:class:`star_core.queries.RunUnavailable`); both the run folder's checks and the store raise it, so it lives
below them (``star_core.store`` re-exports it). :class:`RunError` and :class:`Stopped` are the run's own.
Errors of one layer stay with it (``ConfigError`` with the config file, ``DataError`` with the tasks,
``RunLocked`` with the lock); the ``star`` command maps all of them to one line each
(:mod:`star_core.cli_errors`).
"""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store is missing, unreadable or from an unknown schema."""


class RunError(RuntimeError):
    """A run cannot start or resume (the message says why and what to do)."""


class Stopped(Exception):
    """Raised from the SIGTERM handler: the run stops cleanly and stays resumable."""
