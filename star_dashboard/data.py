"""Every read of a run store the dashboard makes: one function per query, with the query's own name and arguments.

A page calls ``data.summary(run_dir)``; that calls :func:`star_core.queries.run_summary.summary` (go to its
definition for the SQL) through ``st.cache_data``, keyed on the store's file stats
(:func:`star_core.queries.fingerprint`), so a running run refreshes. A store that cannot be read
(:class:`star_core.queries.RunUnavailable`) becomes a message and stops the page (:func:`guard`), never a
traceback. Nothing is cached when a read fails.

The reads a page makes on every rerun (a run's row, status and brief, its latest events, a live run's
progress, a download) are plain pass-throughs below, not cached, as they always were; they are here so that
every read of a run store a page makes goes through this module.

Cache sizes: 512 entries a function for the reads of one run, 64 for the reads of several runs and for a run's
comparison choices, 128 for the tour, 32 for a comparison of two runs and for the runs list (an hour; the runs
list a minute, and every 3 s for liveness).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from star_core.annotations import agreement as _agreement
from star_core.queries import (
    changes,
    comparison,
    decisions,
    effect,
    exports,
    measures,
    progress,
    reads,
    run_summary,
    runs,
    tour,
    tour_objective,
)
from star_core.queries.connect import RunUnavailable, fingerprint
from star_core.queries.effect import GroupEffect
from star_core.queries.reads import SampleFilter

from .safe_text import md_escape

#: The cache of the reads of one run (the entries of each function), of several runs, of the tour.
ONE_RUN, RUN_SETS, TOUR = 512, 64, 128
#: How long a cached read is kept, in seconds (the fingerprint already refreshes a changed store).
TTL = 3600


def guard(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a query; an unreadable store becomes a message and stops the page (never a traceback)."""
    try:
        return fn(*args, **kwargs)
    except RunUnavailable as e:
        show_unavailable(e)
        st.stop()


def show_unavailable(e: RunUnavailable) -> None:
    if e.kind == "empty":
        st.info(f"This run has no data yet. {md_escape(e)}", icon=":material/hourglass_empty:")
    elif e.kind == "corrupt":
        st.error(
            f"This run folder cannot be read: {md_escape(e)} Check the folder, or delete it if it is a leftover.",
            icon=":material/error:",
        )
    else:
        st.error(md_escape(e), icon=":material/error:")


def _fps(run_dirs: Sequence[str | os.PathLike]) -> tuple[tuple[str, ...], tuple]:
    dirs = tuple(str(d) for d in run_dirs)
    return dirs, tuple(fingerprint(d) for d in dirs)


# --------------------------------------------------------------------------
# the runs list (the run picker)
# --------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32, ttl=60)
def _list_runs(root_strs: tuple[str, ...], bucket: int, fps: tuple) -> list[dict[str, Any]]:
    return runs.list_runs([Path(r) for r in root_strs])


def list_runs(roots: Sequence[Path]) -> list[dict[str, Any]]:
    """:func:`star_core.queries.runs.list_runs`: all runs under the roots; refreshed when a store changes, and
    every few seconds (liveness)."""
    fps = []
    for r in roots:
        try:
            kids = sorted(p for p in r.iterdir() if p.is_dir()) if r.is_dir() else []
        except OSError:
            kids = []
        fps.append((str(r), fingerprint(r), tuple((k.name, fingerprint(k)) for k in kids)))
    return _list_runs(tuple(str(r) for r in roots), int(time.time() // 3), tuple(fps))


# --------------------------------------------------------------------------
# samples (star_core.queries.reads)
# --------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _facets(run_dir: str, fp: tuple) -> dict[str, Any]:
    return reads.facets(Path(run_dir))


def facets(run_dir: str | os.PathLike) -> dict[str, Any]:
    """:func:`star_core.queries.reads.facets`: the values each filter of the sample browser can take."""
    return guard(_facets, str(run_dir), fingerprint(run_dir))


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _browse(
    run_dir: str,
    fp: tuple,
    f: SampleFilter,
    sample_id: int | None,
    position: int | None,
    came_from: tuple[int, int] | None,
) -> dict[str, Any]:
    return reads.browse(Path(run_dir), f, sample_id=sample_id, position=position, came_from=came_from)


def browse(
    run_dir: str | os.PathLike,
    f: SampleFilter,
    sample_id: int | None = None,
    position: int | None = None,
    came_from: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """:func:`star_core.queries.reads.browse`: one sample of a filter, its position, Prev and Next."""
    return guard(_browse, str(run_dir), fingerprint(run_dir), f, sample_id, position, came_from)


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _samples_page(
    run_dir: str,
    fp: tuple,
    f: SampleFilter,
    offset: int,
    limit: int,
    anchor: int | None,
    anchor_position: int | None,
) -> pd.DataFrame:
    return reads.samples_page(Path(run_dir), f, offset, limit, anchor=anchor, anchor_position=anchor_position)


def samples_page(
    run_dir: str | os.PathLike,
    f: SampleFilter,
    offset: int,
    limit: int,
    anchor: int | None = None,
    anchor_position: int | None = None,
) -> pd.DataFrame:
    """:func:`star_core.queries.reads.samples_page`: one page of the samples table of a filter."""
    return guard(_samples_page, str(run_dir), fingerprint(run_dir), f, offset, limit, anchor, anchor_position)


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _get_sample(run_dir: str, fp: tuple, sample_id: int) -> dict[str, Any] | None:
    return reads.get_sample(Path(run_dir), sample_id)


def get_sample(run_dir: str | os.PathLike, sample_id: int) -> dict[str, Any] | None:
    """:func:`star_core.queries.reads.get_sample`: one sample with its audit and training example."""
    return guard(_get_sample, str(run_dir), fingerprint(run_dir), sample_id)


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _question_history(run_dir: str, fp: tuple, task: str, question_id: str) -> pd.DataFrame:
    return reads.question_history(Path(run_dir), task, question_id)


def question_history(run_dir: str | os.PathLike, task: str, question_id: str) -> pd.DataFrame:
    """:func:`star_core.queries.reads.question_history`: every sample of one question, iteration by iteration."""
    return guard(_question_history, str(run_dir), fingerprint(run_dir), task, question_id)


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _rationalization(run_dir: str, fp: tuple, sample_id: int) -> dict[str, Any] | None:
    return reads.rationalization(Path(run_dir), sample_id)


def rationalization(run_dir: str | os.PathLike, sample_id: int) -> dict[str, Any] | None:
    """:func:`star_core.queries.reads.rationalization`: a hinted retry, the first attempt and its training row."""
    return guard(_rationalization, str(run_dir), fingerprint(run_dir), sample_id)


# --------------------------------------------------------------------------
# the summary and the filter's decisions (run_summary, decisions, changes)
# --------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _summary(run_dir: str, fp: tuple) -> dict[str, Any]:
    return run_summary.summary(Path(run_dir))


def summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """:func:`star_core.queries.run_summary.summary`: the digest ``star summary`` prints."""
    return guard(_summary, str(run_dir), fingerprint(run_dir))


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _decision_counts(run_dir: str, fp: tuple, task: str | None) -> pd.DataFrame:
    return decisions.decision_counts(Path(run_dir), task)


def decision_counts(run_dir: str | os.PathLike, task: str | None = None) -> pd.DataFrame:
    """:func:`star_core.queries.decisions.decision_counts`: samples per iteration, task, phase, decision."""
    return guard(_decision_counts, str(run_dir), fingerprint(run_dir), task)


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _funnel(run_dir: str, fp: tuple, iteration: int, task: str | None) -> dict[str, Any]:
    return decisions.funnel(Path(run_dir), iteration, task)


def funnel(run_dir: str | os.PathLike, iteration: int, task: str | None = None) -> dict[str, Any]:
    """:func:`star_core.queries.decisions.funnel`: the numbers of one iteration's filter."""
    return guard(_funnel, str(run_dir), fingerprint(run_dir), iteration, task)


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _top_reasons(run_dir: str, fp: tuple, iteration: int | None, task: str | None, limit: int) -> pd.DataFrame:
    return decisions.top_reasons(Path(run_dir), iteration, task, limit)


def top_reasons(
    run_dir: str | os.PathLike, iteration: int | None = None, task: str | None = None, limit: int = 20
) -> pd.DataFrame:
    """:func:`star_core.queries.decisions.top_reasons`: the most frequent rejection reasons."""
    return guard(_top_reasons, str(run_dir), fingerprint(run_dir), iteration, task, limit)


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _train_counts(run_dir: str, fp: tuple) -> pd.DataFrame:
    return decisions.train_counts(Path(run_dir))


def train_counts(run_dir: str | os.PathLike) -> pd.DataFrame:
    """:func:`star_core.queries.decisions.train_counts`: training examples per iteration and source."""
    return guard(_train_counts, str(run_dir), fingerprint(run_dir))


@st.cache_data(show_spinner=False, max_entries=ONE_RUN, ttl=TTL)
def _solve_transitions(run_dir: str, fp: tuple, task: str | None) -> pd.DataFrame:
    return changes.solve_transitions(Path(run_dir), task)


def solve_transitions(run_dir: str | os.PathLike, task: str | None = None) -> pd.DataFrame:
    """:func:`star_core.queries.changes.solve_transitions`: questions solved, newly solved and lost."""
    return guard(_solve_transitions, str(run_dir), fingerprint(run_dir), task)


# --------------------------------------------------------------------------
# curves of one or several runs (measures, changes)
# --------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=RUN_SETS, ttl=TTL)
def _measures_frame(run_dirs: tuple[str, ...], fps: tuple) -> pd.DataFrame:
    return measures.measures_frame([Path(d) for d in run_dirs])


def measures_frame(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """:func:`star_core.queries.measures.measures_frame`: the three measures of every evaluation of the runs."""
    return guard(_measures_frame, *_fps(run_dirs))


@st.cache_data(show_spinner=False, max_entries=RUN_SETS, ttl=TTL)
def _changes_frame(run_dirs: tuple[str, ...], fps: tuple) -> pd.DataFrame:
    return changes.changes_frame([Path(d) for d in run_dirs])


def changes_frame(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """:func:`star_core.queries.changes.changes_frame`: the paired changes of eval accuracy of the runs."""
    return guard(_changes_frame, *_fps(run_dirs))


@st.cache_data(show_spinner=False, max_entries=RUN_SETS, ttl=TTL)
def _losses_frame(run_dirs: tuple[str, ...], fps: tuple) -> pd.DataFrame:
    return measures.losses_frame([Path(d) for d in run_dirs])


def losses_frame(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """:func:`star_core.queries.measures.losses_frame`: the training losses of the runs."""
    return guard(_losses_frame, *_fps(run_dirs))


# --------------------------------------------------------------------------
# compare (both stores' file stats)
# --------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32, ttl=TTL)
def _compare(ra: str, ia: int, rb: str, ib: int, task: str, phase: str, fps: tuple) -> dict[str, Any]:
    return comparison.compare(Path(ra), ia, Path(rb), ib, task, phase)


def compare(ra: str | os.PathLike, ia: int, rb: str | os.PathLike, ib: int, task: str, phase: str) -> dict[str, Any]:
    """:func:`star_core.queries.comparison.compare`: one task and phase under two runs or iterations."""
    return guard(_compare, str(ra), int(ia), str(rb), int(ib), task, phase, (fingerprint(ra), fingerprint(rb)))


@st.cache_data(show_spinner=False, max_entries=RUN_SETS, ttl=TTL)
def _compare_choices(run_dir: str, fp: tuple) -> pd.DataFrame:
    return comparison.compare_choices(Path(run_dir))


def compare_choices(run_dir: str | os.PathLike) -> pd.DataFrame:
    """:func:`star_core.queries.comparison.compare_choices`: what a side of a comparison can be in this run."""
    return guard(_compare_choices, str(run_dir), fingerprint(run_dir))


# --------------------------------------------------------------------------
# the teaching tour (tour, tour_objective)
# --------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=TOUR, ttl=TTL)
def _tour_overview(run_dir: str, fp: tuple) -> dict[str, Any]:
    return tour.overview(Path(run_dir))


def tour_overview(run_dir: str | os.PathLike) -> dict[str, Any]:
    """:func:`star_core.queries.tour.overview`: what the tour needs to know about the run."""
    return guard(_tour_overview, str(run_dir), fingerprint(run_dir))


@st.cache_data(show_spinner=False, max_entries=TOUR, ttl=TTL)
def _tour_candidates(run_dir: str, fp: tuple) -> dict[str, Any]:
    return tour.candidates(Path(run_dir))


def tour_candidates(run_dir: str | os.PathLike) -> dict[str, Any]:
    """:func:`star_core.queries.tour.candidates`: the questions worth a story, best kind first."""
    return guard(_tour_candidates, str(run_dir), fingerprint(run_dir))


@st.cache_data(show_spinner=False, max_entries=TOUR, ttl=TTL)
def _tour_story(run_dir: str, fp: tuple, task: str, question_id: str) -> dict[str, Any] | None:
    return tour.story(Path(run_dir), task, question_id)


def tour_story(run_dir: str | os.PathLike, task: str, question_id: str) -> dict[str, Any] | None:
    """:func:`star_core.queries.tour.story`: everything the run did with one question."""
    return guard(_tour_story, str(run_dir), fingerprint(run_dir), task, question_id)


@st.cache_data(show_spinner=False, max_entries=TOUR, ttl=TTL)
def _objective_numbers(run_dir: str, fp: tuple, iteration: int, task: str | None) -> dict[str, Any]:
    return tour_objective.objective_numbers(Path(run_dir), iteration, task)


def objective_numbers(run_dir: str | os.PathLike, iteration: int, task: str | None = None) -> dict[str, Any]:
    """:func:`star_core.queries.tour_objective.objective_numbers`: the STaR objective on one iteration."""
    return guard(_objective_numbers, str(run_dir), fingerprint(run_dir), iteration, task)


@st.cache_data(show_spinner=False, max_entries=TOUR, ttl=TTL)
def _eval_change(run_dir: str, fp: tuple, iteration: int, task: str | None) -> dict[str, Any] | None:
    return tour_objective.eval_change(Path(run_dir), iteration, task)


def eval_change(run_dir: str | os.PathLike, iteration: int, task: str | None = None) -> dict[str, Any] | None:
    """:func:`star_core.queries.tour_objective.eval_change`: the paired change of one iteration's eval."""
    return guard(_eval_change, str(run_dir), fingerprint(run_dir), iteration, task)


# --------------------------------------------------------------------------
# not cached: read on every rerun, straight through to the query (runs, reads, effect, progress, exports, and
# the annotations' agreement with the stored audit)
# --------------------------------------------------------------------------
def resolve_run(name_or_path: str | os.PathLike, roots: Sequence[str | os.PathLike]) -> Path:
    """:func:`star_core.queries.runs.resolve_run`: the run folder a name or path names, only inside the roots."""
    return runs.resolve_run(name_or_path, roots)


def is_run_dir(p: Path) -> bool:
    """:func:`star_core.queries.runs.is_run_dir`: whether the folder holds a run store."""
    return runs.is_run_dir(p)


def run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """:func:`star_core.queries.runs.run_info`: the run row (config parsed), status, schema version, heartbeat."""
    return runs.run_info(run_dir)


def run_status(run_dir: str | os.PathLike) -> str:
    """:func:`star_core.queries.runs.run_status`: finished, running, crashed, stopped, empty or corrupt."""
    return runs.run_status(run_dir)


def run_brief(run_dir: str | os.PathLike) -> dict[str, Any]:
    """:func:`star_core.queries.runs.run_brief`: one line of the runs list (never raises for an unreadable store)."""
    return runs.run_brief(run_dir)


def missing_adapters(run_dir: str | os.PathLike) -> list[int]:
    """:func:`star_core.queries.runs.missing_adapters`: trained iterations whose adapter is not on disk."""
    return runs.missing_adapters(run_dir)


def curriculum_frontiers(run_dir: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """:func:`star_core.queries.runs.curriculum_frontiers`: the digit curriculum's frontier of each iteration."""
    return runs.curriculum_frontiers(run_dir)


def events_frame(run_dir: str | os.PathLike, limit: int = 50) -> pd.DataFrame:
    """:func:`star_core.queries.reads.events_frame`: the latest events, newest first."""
    return reads.events_frame(run_dir, limit)


def nearest_sample(run_dir: str | os.PathLike, sample_id: int) -> int | None:
    """:func:`star_core.queries.reads.nearest_sample`: the run's sample nearest to ``sample_id``."""
    return reads.nearest_sample(run_dir, sample_id)


def star_effect(run_dir: str | os.PathLike) -> list[GroupEffect]:
    """:func:`star_core.queries.effect.star_effect`: did STaR change each digit count (one paired test a group)."""
    return effect.star_effect(run_dir)


def stage_progress(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """:func:`star_core.queries.progress.stage_progress`: the stage in flight, how far it got, the time left."""
    return progress.stage_progress(run_dir)


def filtered_samples(
    run_dir: str | os.PathLike,
    f: SampleFilter,
    limit: int = exports.EXPORT_LIMIT,
    annotations: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, int]:
    """:func:`star_core.queries.exports.filtered_samples`: the samples of a filter for a download, and their count."""
    return exports.filtered_samples(run_dir, f, limit, annotations)


def agreement(run_dir: str | os.PathLike) -> dict[str, Any]:
    """:func:`star_core.annotations.agreement`: people's labels against the audit verdicts stored in the run."""
    return _agreement(run_dir)
