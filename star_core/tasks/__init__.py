"""Task registry. ``get_task(name, **options)`` returns a Task instance."""

from __future__ import annotations

from .base import Audit, DataError, Exemplar, Parsed, Problem, Task

TASKS = ("arithmetic", "commonsenseqa", "gsm8k")


def get_task(name: str, **options) -> Task:
    """Build a task by name; unknown names raise ValueError listing the choices."""
    if name == "arithmetic":
        from .arithmetic import ArithmeticTask

        return ArithmeticTask(**options)
    if name == "commonsenseqa":
        from .commonsenseqa import CommonsenseQATask

        return CommonsenseQATask(**options)
    if name == "gsm8k":
        from .gsm8k import GSM8KTask

        return GSM8KTask(**options)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")


__all__ = ["Audit", "DataError", "Exemplar", "Parsed", "Problem", "Task", "TASKS", "get_task"]
