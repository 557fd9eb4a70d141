"""The run store's error, at the bottom of the import graph: it imports nothing of star.

:class:`StoreError` is the base of every error about a run folder's files (:class:`star_core.runfolder.RunFolderError`,
:class:`star_core.annotations.AnnotationError`, :class:`star_core.queries.RunUnavailable`); both the run folder's
checks and the store raise it, so it lives below them. ``star_core.store`` re-exports it.
"""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store is missing, unreadable or from an unknown schema."""
