"""Read-only queries over a run store, for the CLI and the dashboard.

Every function opens the run's ``store.sqlite`` read-only (``store.connect(.., readonly=True)``), runs a few
SQL statements and returns plain dicts or pandas DataFrames. Nothing here imports streamlit or torch, and
nothing here writes. One module per job:

* :mod:`.connect`: read-only connections (``open_store``, ``fingerprint``) and :class:`RunUnavailable`;
* :mod:`.runs`: run discovery (roots, the path guard, the runs list) and one run's status and row;
* :mod:`.reads`: SQL reads of samples (the browser's filters and pages, one sample, one question, one
  rationalization), events and exemplars;
* :mod:`.measures`: the three measures of every evaluation, accuracies, losses;
* :mod:`.changes`: paired changes of eval accuracy, questions solved, newly solved and lost;
* :mod:`.decisions`: filter decisions, the funnel, rejection reasons, training examples per source;
* :mod:`.run_summary`: the summary ``star summary`` prints;
* :mod:`.text`: the audit record and what it meant for training, hint marks, hint leaks (strings only);
* :mod:`.paging`: the sample browser's counts, keyset Prev/Next and pages, the trigram search;
* :mod:`.comparison`: one task and phase under two runs or iterations, matched by question id; the word diff;
* :mod:`.exports`: the samples and compare rows on screen as CSV and JSONL;
* :mod:`.training_set`: the kept training examples as ``star export`` writes them (no pandas);
* :mod:`.tour`, :mod:`.tour_objective`: the teaching tour's reads (the run at a glance, the question picker, one
  question's story; the STaR objective of one iteration and its paired change).

Process liveness (``pid_alive``, ``effective_status``) lives in :mod:`star_core.liveness`, beside the
store that writes the status. Every name is re-exported here, so ``from star_core import queries as Q;
Q.summary(...)`` works for all of them. The modules that need pandas (``reads``, ``measures``, ...) and the
sample browser's ``paging`` are imported on first use of one of their names: ``star run --resume`` and
``star runs`` read a status without pandas.

Errors a reader can meet (no store, a half-written store without a run row, a file that is not SQLite) are
raised as :class:`RunUnavailable` with a sentence that can be shown as is.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..liveness import HEARTBEAT_STALE_S, RESUMABLE, effective_status, pid_alive
from ..store import DECISIONS, EVAL_PHASES, PHASE_SPLIT, PHASES, STAGES
from ..tasks.base import AUDIT_VERSION, VERDICTS
from .connect import RunUnavailable, db_path, fingerprint, open_store, run_config
from .effect import GroupEffect, star_effect, star_effect_dicts
from .progress import STAGE_WORDS, stage_progress
from .runs import (
    DEMO_RUNS_ENV,
    ORDER_FILE,
    RUNS_ROOT_ENV,
    audit_outdated,
    audit_version,
    curriculum_frontiers,
    default_run_key,
    is_run_dir,
    list_runs,
    missing_adapters,
    resolve_run,
    run_brief,
    run_info,
    run_status,
    runs_roots,
    showcase,
)
from .text import (
    HintMarks,
    audit_note,
    find_all,
    hint_leak,
    hint_marks,
    hint_spans,
    last_question_block,
    line_span,
    parse_audit,
)
from .training_set import TrainRecord, train_example_iterations, train_example_records

#: The modules imported on first use of one of their names (most import pandas), searched in this order: a name
#: two of them define (``browse``) is the first one's (``reads.browse``; ``paging.browse`` is its engine).
_LAZY = (
    "reads",
    "measures",
    "changes",
    "decisions",
    "run_summary",
    "comparison",
    "exports",
    "tour",
    "tour_objective",
    "paging",
)


def __getattr__(name: str) -> Any:
    if not name.startswith("__"):
        for mod in _LAZY:
            m = importlib.import_module(f".{mod}", __name__)
            if hasattr(m, name):
                value = getattr(m, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    # store vocabularies and the audit rules' version
    "AUDIT_VERSION",
    "DECISIONS",
    "EVAL_PHASES",
    "PHASES",
    "PHASE_SPLIT",
    "STAGES",
    "VERDICTS",
    # liveness
    "HEARTBEAT_STALE_S",
    "RESUMABLE",
    "effective_status",
    "pid_alive",
    # connect
    "RunUnavailable",
    "db_path",
    "fingerprint",
    "open_store",
    "run_config",
    # runs
    "DEMO_RUNS_ENV",
    "ORDER_FILE",
    "RUNS_ROOT_ENV",
    "audit_outdated",
    "audit_version",
    "is_run_dir",
    "list_runs",
    "missing_adapters",
    "resolve_run",
    "run_brief",
    "run_info",
    "run_status",
    "curriculum_frontiers",
    "runs_roots",
    "showcase",
    "default_run_key",
    # did STaR change each digit count (one paired test per group)
    "GroupEffect",
    "star_effect",
    "star_effect_dicts",
    # progress
    "STAGE_WORDS",
    "stage_progress",
    # text
    "HintMarks",
    "audit_note",
    "find_all",
    "hint_leak",
    "hint_marks",
    "hint_spans",
    "last_question_block",
    "parse_audit",
    "line_span",
    # training_set (what `star export` writes)
    "TrainRecord",
    "train_example_iterations",
    "train_example_records",
    # reads (lazy)
    "SampleFilter",
    "browse",
    "count_samples",
    "events_frame",
    "facets",
    "get_sample",
    "iterations_frame",
    "nearest_sample",
    "occurring",
    "question_history",
    "rationalization",
    "samples_page",
    # measures, changes, decisions, run_summary (lazy)
    "CHAINED_PHASES",
    "MEASURES",
    "PAPER_REFERENCE",
    "WARM_NOTE",
    "WARM_POINT",
    "changes_frame",
    "decision_counts",
    "eval_label",
    "eval_point",
    "funnel",
    "losses_frame",
    "measures_frame",
    "metrics_frame",
    "solve_transitions",
    "summary",
    "top_reasons",
    "train_counts",
    "train_sources",
    # comparison (lazy)
    "DIFF_MAX_TOKENS",
    "FILTERS",
    "compare",
    "compare_choices",
    "diff_fits",
    "diff_html",
    "diff_ops",
    "filter_mask",
    "side_label",
    # exports (lazy)
    "COMPARE_COLUMNS",
    "EXPORT_LIMIT",
    "SAMPLE_COLUMNS",
    "compare_frame",
    "filtered_samples",
    "to_csv",
    "to_jsonl",
    "with_audit_and_annotations",
    # tour and tour_objective (lazy)
    "KIND_ORDER",
    "KIND_TAG",
    "KIND_TEXT",
    "MAX_PER_KIND",
    "STORY_KINDS",
    "STORY_PHASES",
    "as_bool",
    "auto_pick",
    "candidates",
    "eval_change",
    "objective_numbers",
    "overview",
    "passes_audit",
    "question_key",
    "split_key",
    "story",
    "surprise",
    # paging (lazy; its browse is reads.browse's engine)
    "KEY_COLS",
    "MATCH_CACHE",
    "MAX_TRIGRAMS",
    "MIN_TRIGRAM",
    "Plan",
    "counts_from",
    "fts_query",
    "like_clause",
    "page",
    "scan_where",
]
