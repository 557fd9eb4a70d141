"""The task registry: a task is a plug-in.

``TASKS`` maps each task's name to its class, written ``"module:Class"`` and imported on first use. Adding a
task is one module (a ``Task`` subclass: its data, prompts, parsing, audit, and the task-specific answers the
rest of the engine asks of it, see ``Task``) and one line in ``TASKS`` (or ``register(cls)`` from elsewhere).
The config's validation, the CLI's help, the warm start and the fixture builders read the registry; none of
them names a task. ``get_task(name, **options)`` returns a Task instance.
"""

from __future__ import annotations

from importlib import import_module

from .base import Audit, DataError, Exemplar, Parsed, Problem, SyntheticQuestion, Task, WarmStartError

#: name -> the task's class ("module:Class", imported on first use, or the class itself). One line per task.
TASKS: dict[str, str | type[Task]] = {
    "arithmetic": "star_core.tasks.arithmetic:ArithmeticTask",
    "commonsenseqa": "star_core.tasks.commonsenseqa:CommonsenseQATask",
    "gsm8k": "star_core.tasks.gsm8k:GSM8KTask",
}


def register(cls: type[Task]) -> type[Task]:
    """Add a task class defined elsewhere (a plug-in, a test) under its ``name``; usable as a decorator."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    TASKS[cls.name] = cls
    return cls


def task_class(name: str) -> type[Task]:
    """The class registered as ``name``; unknown names raise ValueError listing the choices."""
    entry = TASKS.get(name)
    if entry is None:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(import_module(module), attr)
    return entry


def get_task(name: str, **options) -> Task:
    """Build a task by name; unknown names raise ValueError listing the choices."""
    return task_class(name)(**options)


def task_names(where: str | None = None) -> list[str]:
    """The registered tasks' names, in registry order; with ``where``, those whose class attribute ``where`` is
    true (``"warm_start_references"``, ``"digit_groups"``)."""
    return [n for n in TASKS if where is None or getattr(task_class(n), where)]


__all__ = [
    "Audit",
    "DataError",
    "Exemplar",
    "Parsed",
    "Problem",
    "SyntheticQuestion",
    "Task",
    "TASKS",
    "WarmStartError",
    "get_task",
    "register",
    "task_class",
    "task_names",
]
