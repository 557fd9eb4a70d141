"""Counting, paging and searching a run's samples: the sample browser's reads, for both schema versions.

A schema version 2 store (``star_core.store``) keeps ``sample_counts``, the number of samples per
combination of the browser's filter columns (``KEY_COLS``), and the index ``samples_browse`` on the same
columns (then the id). A filter on those columns is a set of combinations ("keys"), read from the small
count table, so:

* the count of a filter ("17 of 342,118") is a sum over the count table, never a scan of samples;
* Prev, Next, first and last are keyset seeks: per key, one index seek to the nearest id before or after
  the current one, whatever the position;
* a page of the table is read after (or before) a known id, never with OFFSET.

The text search uses the trigram index ``samples_fts`` (digits and substrings match) to find the
candidates, then the same case-insensitive LIKE as a plain scan on them, so both find the same rows.
A needle shorter than 3 characters has no trigram: it is a plain scan. Version 1 stores (the shipped demo
runs) are small and are read with plain SQL.

Every function takes an open read connection, the run id and a filter with the fields of
``queries.SampleFilter`` (task, phase, split, iteration, decision, correct, kept, grp, question_id, search).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .store import schema_version

#: The columns of ``sample_counts`` and of the ``samples_browse`` index, in order.
KEY_COLS = ("run_id", "iteration", "task", "split", "phase", "decision", "grp", "correct", "kept")
#: The trigram index cannot find a needle shorter than this.
MIN_TRIGRAM = 3
#: At most this many of a needle's trigrams are asked of the index (the LIKE check does the rest).
MAX_TRIGRAMS = 12
_KEY_EQ = " AND ".join(f"s.{c} = c.{c}" for c in KEY_COLS)


def counts_from(con: sqlite3.Connection) -> str:
    """A FROM source with the columns ``KEY_COLS`` and ``n`` (samples per combination), for ``sum(n)`` counts:
    the maintained ``sample_counts`` on a version 2 store (no scan of samples), one row per sample on
    version 1."""
    if schema_version(con) >= 2:
        return "(SELECT * FROM sample_counts WHERE n > 0)"
    return f"(SELECT {', '.join(KEY_COLS)}, 1 AS n FROM samples)"


def _values(f: Any, rid: int) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("run_id", rid)]
    for col in ("iteration", "task", "split", "phase", "decision", "grp"):
        v = getattr(f, col)
        if v is not None:
            out.append((col, int(v) if col == "iteration" else str(v)))
    for col in ("correct", "kept"):
        v = getattr(f, col)
        if v is not None:
            out.append((col, int(bool(v))))
    return out


def like_clause(needle: str) -> tuple[str, list[str]]:
    """The plain scan: ``needle`` anywhere in the question, rationale, raw output or question id (LIKE: case
    folded for ASCII letters only)."""
    pat = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return ("(question LIKE ? ESCAPE '\\' OR rationale LIKE ? ESCAPE '\\'"
            " OR raw_output LIKE ? ESCAPE '\\' OR question_id LIKE ? ESCAPE '\\')", [pat] * 4)


def fts_query(needle: str) -> str | None:
    """An FTS5 query for the rows holding every trigram of ``needle`` (None below ``MIN_TRIGRAM``
    characters). The rows it finds include every row that holds the needle."""
    grams = list(dict.fromkeys(needle[i:i + 3] for i in range(len(needle) - 2)))
    if not grams:
        return None
    if len(grams) > MAX_TRIGRAMS:  # evenly spread, the first and the last included
        step = (len(grams) - 1) / (MAX_TRIGRAMS - 1)
        grams = [grams[round(i * step)] for i in range(MAX_TRIGRAMS)]
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


def scan_where(f: Any, rid: int) -> tuple[str, list[Any]]:
    """The filter as a WHERE clause over ``samples`` (the text search as a LIKE scan): what
    ``SampleFilter.where`` returns."""
    vals = _values(f, rid)
    sql, params = [f"{c} = ?" for c, _ in vals], [v for _, v in vals]
    if f.question_id is not None:
        sql.append("question_id = ?")
        params.append(str(f.question_id))
    if f.search:
        like, lp = like_clause(f.search)
        sql.append(like)
        params += lp
    return " AND ".join(sql), params


class Plan:
    """How to read one filter from one store. ``where``: the filter's WHERE clause when it is more than its
    fields (a narrower subclass of SampleFilter); then no keyset over the counts is used."""

    def __init__(self, con: sqlite3.Connection, f: Any, rid: int, where: tuple[str, list[Any]] | None = None):
        self.con = con
        self.version = schema_version(con)
        vals = _values(f, rid)
        self.key_where = " AND ".join(f"c.{c} = ?" for c, _ in vals)
        self.key_params = [v for _, v in vals]
        plain = where is None
        sql, params = scan_where(f, rid) if where is None else where
        q = fts_query(f.search) if f.search and self.version >= 2 else None
        if q is not None:  # the index narrows the rows, the LIKE of the scan decides
            sql = f"id IN (SELECT rowid FROM samples_fts WHERE samples_fts MATCH ?) AND {sql}"
            params = [q] + list(params)
        self.where, self.params = sql, list(params)
        #: keyset over sample_counts: every condition is on KEY_COLS
        self.keyed = self.version >= 2 and plain and f.question_id is None and not f.search

    # ---- counts ---------------------------------------------------------------
    def count(self) -> int:
        if self.keyed:
            return int(self.con.execute(f"SELECT coalesce(sum(n), 0) FROM sample_counts c WHERE {self.key_where}",
                                        self.key_params).fetchone()[0])
        return int(self.con.execute(f"SELECT count(*) FROM samples WHERE {self.where}", self.params).fetchone()[0])

    def contains(self, sid: int) -> bool:
        return self.con.execute(f"SELECT 1 FROM samples WHERE {self.where} AND id = ?",
                                self.params + [int(sid)]).fetchone() is not None

    def position(self, sid: int) -> int:
        """1-based position of ``sid`` in the filtered id order (it must match the filter). Counts the ids up
        to it: the one read whose cost grows with the position (a link or a jump needs it; Prev and Next
        carry the position instead, see ``browse``)."""
        if self.keyed:
            return int(self.con.execute(
                f"SELECT coalesce(sum((SELECT count(*) FROM samples s WHERE {_KEY_EQ} AND s.id <= ?)), 0)"
                f" FROM sample_counts c WHERE c.n > 0 AND {self.key_where}", [int(sid)] + self.key_params
            ).fetchone()[0])
        return int(self.con.execute(f"SELECT count(*) FROM samples WHERE {self.where} AND id <= ?",
                                    self.params + [int(sid)]).fetchone()[0])

    # ---- keyset seeks -----------------------------------------------------------
    def after(self, sid: int | None) -> int | None:
        """The first id after ``sid`` (None: the first id) that matches."""
        return self._seek("min", ">", sid)

    def before(self, sid: int | None) -> int | None:
        """The last id before ``sid`` (None: the last id) that matches."""
        return self._seek("max", "<", sid)

    def _seek(self, agg: str, op: str, sid: int | None) -> int | None:
        bound = [] if sid is None else [int(sid)]
        if self.keyed:
            cond = f" AND s.id {op} ?" if bound else ""
            row = self.con.execute(
                f"SELECT {agg}((SELECT {agg}(s.id) FROM samples s WHERE {_KEY_EQ}{cond}))"
                f" FROM sample_counts c WHERE c.n > 0 AND {self.key_where}", bound + self.key_params).fetchone()
        else:
            cond = f" AND id {op} ?" if bound else ""
            row = self.con.execute(f"SELECT {agg}(id) FROM samples WHERE {self.where}{cond}",
                                   self.params + bound).fetchone()
        return None if row[0] is None else int(row[0])

    def ids(self, after: int | None = None, before: int | None = None, limit: int = 50,
            descending: bool = False) -> list[int]:
        """Up to ``limit`` matching ids after ``after`` and/or before ``before``, in id order (the last ones
        when ``descending``, still returned in ascending order)."""
        order = "DESC" if descending else "ASC"
        cond, bound = "", []
        if after is not None:
            cond += " AND s.id > ?"
            bound.append(int(after))
        if before is not None:
            cond += " AND s.id < ?"
            bound.append(int(before))
        if self.keyed:  # per key, its next ``limit`` ids (one index range each), merged
            keys = self.con.execute(f"SELECT {', '.join(KEY_COLS)} FROM sample_counts c WHERE c.n > 0 AND "
                                    f"{self.key_where}", self.key_params).fetchall()
            eq = " AND ".join(f"{c} = ?" for c in KEY_COLS)
            found: list[int] = []
            for k in keys:
                found += [r[0] for r in self.con.execute(
                    f"SELECT id FROM samples s WHERE {eq}{cond} ORDER BY id {order} LIMIT ?",
                    list(k) + bound + [int(limit)])]
        else:
            found = [r[0] for r in self.con.execute(
                f"SELECT id FROM samples s WHERE {self.where}{cond} ORDER BY id {order} LIMIT ?",
                self.params + bound + [int(limit)])]
        found = sorted(found, reverse=descending)[:limit]
        return sorted(found)

    def at(self, position: int) -> int | None:
        """The id at 1-based ``position`` (a jump): its cost grows with the position."""
        if self.keyed:
            keys = self.con.execute(f"SELECT {', '.join(KEY_COLS)}, n FROM sample_counts c WHERE c.n > 0 AND "
                                    f"{self.key_where}", self.key_params).fetchall()
            if len(keys) == 1:
                eq = " AND ".join(f"{c} = ?" for c in KEY_COLS)
                row = self.con.execute(f"SELECT id FROM samples WHERE {eq} ORDER BY id LIMIT 1 OFFSET ?",
                                       list(keys[0][:-1]) + [int(position) - 1]).fetchone()
                return None if row is None else int(row[0])
            return self._at_by_bisection(position)
        row = self.con.execute(f"SELECT id FROM samples WHERE {self.where} ORDER BY id LIMIT 1 OFFSET ?",
                               self.params + [int(position) - 1]).fetchone()
        return None if row is None else int(row[0])

    def _at_by_bisection(self, position: int) -> int | None:
        """The smallest matching id with ``position`` matching ids up to it: bisection over ids, each step a
        count over the index (the ids of one key are written together, so few steps read many entries)."""
        lo, hi = self.after(None), self.before(None)
        if lo is None or hi is None:
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            if self.position(mid) >= position:
                hi = mid
            else:
                lo = mid + 1
        return lo


def browse(con: sqlite3.Connection, f: Any, rid: int, sample_id: int | None = None, position: int | None = None,
           came_from: tuple[int, int] | None = None, where: tuple[str, list[Any]] | None = None) -> dict[str, Any]:
    """Locate one sample in the filtered, id-ordered list without loading the list (see
    ``queries.browse``). ``came_from=(id, position)``: the sample shown before, when ``sample_id`` is its
    Prev or Next neighbour in the same filter and store state; its position is then carried (one more
    or one less) instead of counted."""
    plan = Plan(con, f, rid, where)
    total = plan.count()
    sid = None
    if sample_id is not None:
        ok = con.execute("SELECT 1 FROM samples WHERE id=?", (int(sample_id),)).fetchone()
        sid = int(sample_id) if ok else None
    pos = None
    if sid is None and total:
        pos = min(max(int(position or 1), 1), total)
        sid = plan.after(None) if pos == 1 else plan.before(None) if pos == total else plan.at(pos)
    out: dict[str, Any] = {"total": total, "sample_id": sid, "position": None, "prev_id": None, "next_id": None,
                           "in_filter": False}
    if sid is None:
        return out
    out["in_filter"] = plan.contains(sid)
    out["prev_id"] = plan.before(sid)
    out["next_id"] = plan.after(sid)
    if out["in_filter"]:
        if pos is None and came_from is not None:
            prev_sid, prev_pos = came_from
            if prev_sid == out["prev_id"]:
                pos = prev_pos + 1
            elif prev_sid == out["next_id"]:
                pos = prev_pos - 1
        out["position"] = pos if pos is not None else plan.position(sid)
    return out


def page(con: sqlite3.Connection, f: Any, rid: int, anchor: int | None = None, before: int = 0,
         limit: int = 50, where: tuple[str, list[Any]] | None = None) -> list[int]:
    """The ids of a table page: ``before`` matching ids before ``anchor`` (a sample id), then ``anchor`` and the
    ids after it, ``limit`` in all (keyset: no OFFSET). Without an anchor, the first ``limit``."""
    plan = Plan(con, f, rid, where)
    if anchor is None:
        return plan.ids(limit=limit)
    head = plan.ids(before=anchor, limit=before, descending=True) if before > 0 else []
    tail = plan.ids(after=anchor - 1, limit=limit - len(head))
    return head + tail
