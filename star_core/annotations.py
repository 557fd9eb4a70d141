"""Human annotations of samples: a second SQLite file beside the run store, never inside it.

``RUN_DIR/annotations.sqlite`` holds what people wrote while reading samples: one verdict of their
own (``LABELS``: faithful, unfaithful, no rationale), free tags (``interesting`` is offered, any
other word is allowed) and a note. The run store stays the engine's record: a run folder can be
shared without its annotations (leave the file out), and a run can be annotated while it runs.

Concurrency: every write is a short transaction on one sample and one field (the verdict, the note,
one tag added or removed), an upsert, never a read-modify-write of a whole record. Two browser tabs
annotating the same run (even the same sample) therefore never lose each other's writes: the only
overlap is two tabs setting the same field of the same sample, where the later one wins. WAL mode
lets the dashboard read while another tab writes.

A damaged or foreign file is an :class:`AnnotationError` naming it, and is never written to.
Nothing here imports streamlit or torch.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from .queries import SampleFilter
from .runfolder import RunFolderError, safe_path
from .store import DB_NAME, StoreError

ANNOTATIONS_NAME = "annotations.sqlite"
SCHEMA_VERSION = 1
#: A person's verdict on a rationale, the same words as the audit's verdicts (``tasks.base.VERDICTS``), so
#: the two can be compared.
LABELS = {
    "faithful": "faithful: every step holds and supports the answer",
    "unfaithful": "unfaithful: a step is wrong or does not support the answer",
    "no_rationale": "no rationale: a bare answer or the question restated",
}
#: Tags offered as buttons; any other tag (letters, digits, - and _, up to 40 characters) may be typed.
SUGGESTED_TAGS = ("interesting",)
TAG_RE = re.compile(r"^[\w-]{1,40}$", re.UNICODE)
NOTE_MAX = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
  sample_id INTEGER PRIMARY KEY,   -- samples.id in the run store beside this file
  question_id TEXT NOT NULL,       -- the sample's key, to check the match and for export
  task TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  phase TEXT NOT NULL,
  label TEXT,                      -- LABELS, or NULL
  note TEXT,
  updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
  sample_id INTEGER NOT NULL,
  tag TEXT NOT NULL,
  created_at REAL NOT NULL,
  PRIMARY KEY (sample_id, tag)
);
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags (tag);
"""
_TABLES = ("meta", "labels", "tags")


class AnnotationError(StoreError):
    """The annotations file cannot be used (damaged, foreign, not writable) or a value is refused."""


def annotations_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / ANNOTATIONS_NAME


def _check_file(p: Path) -> None:
    """Refuse a file that is not an annotations database, before anything writes to it."""
    if p.stat().st_size == 0:
        return  # an empty file is an empty database to SQLite: the schema is created in it
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as e:
        raise AnnotationError(f"{p}: the annotations file cannot be opened ({e})") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        row = con.execute("SELECT value FROM meta WHERE key='kind'").fetchone() if "meta" in tables else None
    except sqlite3.DatabaseError as e:
        raise AnnotationError(
            f"{p}: the annotations file is damaged or not SQLite ({e}); move it aside "
            f"(the run store is not affected) and annotate afresh, or restore a copy"
        ) from None
    finally:
        con.close()
    if tables and (row is None or row[0] != "star-annotations"):
        raise AnnotationError(
            f"{p}: an SQLite file that is not a star annotations file (its tables: "
            f"{', '.join(sorted(tables))}); star does not write to it"
        )


def _open(p: Path, write: bool) -> sqlite3.Connection:
    """A connection to the annotations file; for writing, in WAL mode with its tables. Two writers creating the
    file at the same moment can meet "database is locked" from the journal-mode switch, which SQLite does not
    wait on: that is retried for up to the busy timeout (10 s)."""
    deadline = time.monotonic() + 10
    while True:
        con = sqlite3.connect(p, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout=10000")
            if write:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                # one transaction: a second writer never sees the tables without the 'kind' row (which
                # _check_file would take for another program's file)
                con.executescript(
                    "BEGIN IMMEDIATE;\n"
                    + _SCHEMA
                    + "\nINSERT OR IGNORE INTO meta(key, value) VALUES ('kind', 'star-annotations');"
                    + f"\nINSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '{int(SCHEMA_VERSION)}');"
                    + "\nCOMMIT;"
                )
            return con
        except sqlite3.OperationalError as e:
            con.close()
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except BaseException:
            con.close()
            raise


class Annotations:
    """The annotations of one run folder. Opens (and creates) ``RUN_DIR/annotations.sqlite`` lazily."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = annotations_path(self.run_dir)

    # ---- plumbing -------------------------------------------------------------
    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection | None]:
        """A connection, or None when reading a file that does not exist yet (no annotations)."""
        p = self.path
        try:
            safe_path(self.run_dir, ANNOTATIONS_NAME)
        except RunFolderError as e:
            raise AnnotationError(str(e)) from None
        if p.exists():
            _check_file(p)
        elif not write:
            yield None
            return
        elif not (self.run_dir / DB_NAME).is_file():
            raise AnnotationError(f"{self.run_dir}: not a run folder (no {DB_NAME}); annotations live beside a run")
        try:
            con = _open(p, write)
        except sqlite3.OperationalError as e:
            raise AnnotationError(
                f"{p}: cannot {'write' if write else 'read'} annotations ({e}); is the run folder writable?"
            ) from None
        except sqlite3.DatabaseError as e:
            raise AnnotationError(
                f"{p}: the annotations file is damaged ({e}); move it aside and annotate afresh, or restore a copy"
            ) from None
        try:
            yield con
        except sqlite3.DatabaseError as e:
            raise AnnotationError(
                f"{p}: the annotations file cannot be {'written' if write else 'read'} ({e})"
            ) from None
        finally:
            con.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._connect(write=True) as con:
            assert con is not None
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _sample_key(self, sample_id: int) -> tuple[str, str, int, str]:
        """(question_id, task, iteration, phase) of a sample in the run store; an error when it is not there."""
        con = _store_ro(self.run_dir)
        try:
            r = con.execute(
                "SELECT question_id, task, iteration, phase FROM samples WHERE id=?", (int(sample_id),)
            ).fetchone()
        except sqlite3.DatabaseError as e:
            raise AnnotationError(f"{self.run_dir / DB_NAME}: cannot read the sample to annotate ({e})") from None
        finally:
            con.close()
        if r is None:
            raise AnnotationError(f"sample #{sample_id} is not in {self.run_dir / DB_NAME}")
        return r[0], r[1], int(r[2]), r[3]

    def _ensure_row(self, c: sqlite3.Connection, sample_id: int) -> None:
        if c.execute("SELECT 1 FROM labels WHERE sample_id=?", (sample_id,)).fetchone() is None:
            qid, task, it, phase = self._sample_key(sample_id)
            c.execute(
                "INSERT OR IGNORE INTO labels(sample_id, question_id, task, iteration, phase, label, note,"
                " updated_at) VALUES (?,?,?,?,?,NULL,NULL,?)",
                (sample_id, qid, task, it, phase, time.time()),
            )

    # ---- writes: one field of one sample per transaction ------------------------
    def set_label(self, sample_id: int, label: str | None) -> None:
        """The person's verdict on one sample (``LABELS``), or None to clear it."""
        if label is not None and label not in LABELS:
            raise AnnotationError(f"label {label!r}: not one of {', '.join(LABELS)}")
        sid = int(sample_id)
        with self._tx() as c:
            self._ensure_row(c, sid)
            c.execute("UPDATE labels SET label=?, updated_at=? WHERE sample_id=?", (label, time.time(), sid))

    def set_note(self, sample_id: int, note: str | None) -> None:
        note = (note or "").strip() or None
        if note is not None and len(note) > NOTE_MAX:
            raise AnnotationError(f"note: {len(note)} characters, at most {NOTE_MAX}")
        sid = int(sample_id)
        with self._tx() as c:
            self._ensure_row(c, sid)
            c.execute("UPDATE labels SET note=?, updated_at=? WHERE sample_id=?", (note, time.time(), sid))

    def add_tag(self, sample_id: int, tag: str) -> str:
        tag = normalize_tag(tag)
        sid = int(sample_id)
        with self._tx() as c:
            self._ensure_row(c, sid)
            c.execute("INSERT OR IGNORE INTO tags(sample_id, tag, created_at) VALUES (?,?,?)", (sid, tag, time.time()))
            c.execute("UPDATE labels SET updated_at=? WHERE sample_id=?", (time.time(), sid))
        return tag

    def remove_tag(self, sample_id: int, tag: str) -> None:
        sid = int(sample_id)
        with self._tx() as c:
            c.execute("DELETE FROM tags WHERE sample_id=? AND tag=?", (sid, str(tag)))
            c.execute("UPDATE labels SET updated_at=? WHERE sample_id=?", (time.time(), sid))

    # ---- reads ----------------------------------------------------------------------
    def get(self, sample_id: int) -> dict[str, Any]:
        """{label, note, tags} of one sample (empty when it has none)."""
        out: dict[str, Any] = {"label": None, "note": None, "tags": []}
        with self._connect(write=False) as con:
            if con is None:
                return out
            try:
                r = con.execute("SELECT label, note FROM labels WHERE sample_id=?", (int(sample_id),)).fetchone()
                tags = [
                    t[0] for t in con.execute("SELECT tag FROM tags WHERE sample_id=? ORDER BY tag", (int(sample_id),))
                ]
            except sqlite3.OperationalError:  # created by a writer that has not made its tables yet
                return out
        if r is not None:
            out.update(label=r["label"], note=r["note"])
        out["tags"] = tags
        return out

    def frame(self) -> pd.DataFrame:
        """Every annotated sample: sample_id, question_id, task, iteration, phase, label, note, tags (a list),
        updated_at. Samples whose label, note and tags are all cleared are left out."""
        cols = ["sample_id", "question_id", "task", "iteration", "phase", "label", "note", "tags", "updated_at"]
        with self._connect(write=False) as con:
            if con is None:
                return pd.DataFrame(columns=cols)
            try:
                df = pd.read_sql_query(
                    "SELECT sample_id, question_id, task, iteration, phase, label, note,"
                    " updated_at FROM labels ORDER BY sample_id",
                    con,
                )
                tg = pd.read_sql_query("SELECT sample_id, tag FROM tags ORDER BY sample_id, tag", con)
            except (sqlite3.OperationalError, pd.errors.DatabaseError):
                return pd.DataFrame(columns=cols)
        tags = tg.groupby("sample_id")["tag"].agg(list).to_dict()
        df["tags"] = [tags.get(s, []) for s in df["sample_id"]]
        df = df[df["label"].notna() | df["note"].notna() | df["tags"].map(bool)]
        return df[cols].reset_index(drop=True)

    def all_tags(self) -> list[str]:
        with self._connect(write=False) as con:
            if con is None:
                return []
            try:
                return [r[0] for r in con.execute("SELECT DISTINCT tag FROM tags ORDER BY tag")]
            except sqlite3.OperationalError:
                return []

    def sample_ids(self, label: str | None = None, tag: str | None = None, any_annotation: bool = False) -> list[int]:
        """Ids of the samples with ``label`` (``"none"``: annotated without one), with ``tag``, or (with
        ``any_annotation``) with anything at all."""
        df = self.frame()
        if df.empty:
            return []
        m = pd.Series(True, index=df.index)
        if label == "none":
            m &= df["label"].isna()
        elif label:
            m &= df["label"] == label
        if tag:
            m &= df["tags"].map(lambda ts: tag in ts)
        return [int(s) for s in df.loc[m, "sample_id"]]

    def export_jsonl(self, out: Path) -> int:
        """Write every annotation as JSON lines (with the sample's key and the audit's verdict); returns how many."""
        df = self.frame()
        audit = _audit_verdicts(self.run_dir, [int(s) for s in df["sample_id"]])
        n = 0
        with Path(out).open("w", encoding="utf-8") as f:
            for r in df.itertuples(index=False):
                f.write(
                    json.dumps(
                        {
                            "sample_id": int(r.sample_id),
                            "task": r.task,
                            "iteration": int(r.iteration),
                            "phase": r.phase,
                            "question_id": r.question_id,
                            "label": r.label if isinstance(r.label, str) else None,
                            "tags": list(r.tags),
                            "note": r.note if isinstance(r.note, str) else None,
                            "audit_verdict": audit.get(int(r.sample_id)),
                            "updated_at": float(r.updated_at),
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
                n += 1
        return n


@dataclass(frozen=True)
class AnnotatedFilter(SampleFilter):
    """A ``queries.SampleFilter`` narrowed to some samples (``ids``): the Rationales page's annotation filter."""

    ids: tuple[int, ...] = ()

    def where(self, rid: int) -> tuple[str, list[Any]]:
        w, p = super().where(rid)
        return w + f" AND id IN ({','.join(str(int(i)) for i in self.ids)})", p  # integers only


def annotated_filter(base: SampleFilter, ids: Iterable[int]) -> AnnotatedFilter:
    """``base`` narrowed to the samples ``ids`` (from ``Annotations.sample_ids``)."""
    return AnnotatedFilter(
        **{f.name: getattr(base, f.name) for f in fields(base)}, ids=tuple(sorted({int(i) for i in ids}))
    )


def normalize_tag(tag: str) -> str:
    t = str(tag).strip().lower().replace(" ", "-")
    if not TAG_RE.match(t):
        raise AnnotationError(f"tag {str(tag)[:60]!r}: use letters, digits, - and _ (1 to 40 characters)")
    return t


def _store_ro(run_dir: Path) -> sqlite3.Connection:
    """The run's store, read-only; refused (:class:`AnnotationError`) when it links out of the run folder."""
    try:
        p = safe_path(run_dir, DB_NAME)
    except RunFolderError as e:
        raise AnnotationError(str(e)) from None
    return sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10)


def _audit_verdicts(run_dir: Path, ids: list[int]) -> dict[int, str | None]:
    """The stored audit verdict of each sample (``queries.parse_audit``), None when nothing was checkable."""
    from .queries import parse_audit

    if not ids:
        return {}
    con = _store_ro(Path(run_dir))
    try:
        out: dict[int, str | None] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for r in con.execute(
                f"SELECT id, audit_json FROM samples WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                a = parse_audit(r[1])
                out[int(r[0])] = a["verdict"] if a else None
        return out
    finally:
        con.close()


def cohen_kappa(a: list[Any], b: list[Any]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items: (p_o - p_e) / (1 - p_e), where p_o is the
    share of items they agree on and p_e the agreement expected by chance from each rater's own label
    shares. None with no items; 1.0 when both gave one and the same label to everything (p_e = 1)."""
    if len(a) != len(b):
        raise ValueError("cohen_kappa: two label lists of the same length")
    n = len(a)
    if n == 0:
        return None
    cats = set(a) | set(b)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    p_e = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    if p_e >= 1.0:
        return 1.0
    return (p_o - p_e) / (1 - p_e)


def agreement(run_dir: str | os.PathLike) -> dict[str, Any]:
    """How the people's labels agree with the rationale audit, on the samples that have both.

    Returns {"n": items with a human label and an audit verdict, "labelled": samples with a human label,
    "no_audit": labelled samples the audit gave no verdict (nothing checkable, or not audited),
    "confusion": DataFrame (rows: the human label, columns: the audit's verdict, over ``LABELS``),
    "agree": items on the diagonal, "kappa": Cohen's kappa (None with no items)}."""
    df = Annotations(run_dir).frame()
    df = df[df["label"].notna()]
    audit = _audit_verdicts(Path(run_dir), [int(s) for s in df["sample_id"]])
    pairs = [(lab, audit.get(int(s))) for s, lab in zip(df["sample_id"], df["label"])]
    both = [(h, a) for h, a in pairs if a in LABELS]
    conf = pd.DataFrame(0, index=pd.Index(list(LABELS), name="human"), columns=pd.Index(list(LABELS), name="audit"))
    for h, a in both:
        conf.loc[h, a] += 1
    return {
        "n": len(both),
        "labelled": len(pairs),
        "no_audit": len(pairs) - len(both),
        "confusion": conf,
        "agree": sum(h == a for h, a in both),
        "kappa": cohen_kappa([h for h, _ in both], [a for _, a in both]),
    }


__all__ = [
    "ANNOTATIONS_NAME",
    "LABELS",
    "SUGGESTED_TAGS",
    "AnnotationError",
    "Annotations",
    "agreement",
    "AnnotatedFilter",
    "annotated_filter",
    "annotations_path",
    "cohen_kappa",
    "normalize_tag",
]
