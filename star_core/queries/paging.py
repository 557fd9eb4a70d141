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

import bisect
import sqlite3
import threading
from array import array
from typing import Any

from ..store import has_aggregates, schema_version

#: Searches whose matching ids are kept, per process (keyed by store state, filter and needle).
MATCH_CACHE = 8
_MATCHES: dict[Any, array] = {}
_MATCHES_LOCK = threading.Lock()
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
    if has_aggregates(con):
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
    return (
        "(question LIKE ? ESCAPE '\\' OR rationale LIKE ? ESCAPE '\\'"
        " OR raw_output LIKE ? ESCAPE '\\' OR question_id LIKE ? ESCAPE '\\')",
        [pat] * 4,
    )


def fts_query(needle: str) -> str | None:
    """An FTS5 query for the rows holding every trigram of ``needle`` (None below ``MIN_TRIGRAM``
    characters). The rows it finds include every row that holds the needle."""
    grams = list(dict.fromkeys(needle[i : i + 3] for i in range(len(needle) - 2)))
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

    def __init__(
        self,
        con: sqlite3.Connection,
        f: Any,
        rid: int,
        where: tuple[str, list[Any]] | None = None,
        cache_key: Any = None,
    ):
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
        self.keyed = has_aggregates(con) and plain and f.question_id is None and not f.search
        self._key_cache: list[tuple[tuple, int, int, int]] | None = None
        #: a text search reads its matching ids once (``matches``)
        self.listed = bool(f.search)
        self._ids: array | None = None
        self.cache_key = cache_key

    def matches(self) -> array:
        """Every matching id, in order (a search: the trigram candidates checked with LIKE, read once; the ids
        are kept, 8 bytes each, for the same store state and filter, so Prev, Next and the pages do not search
        again)."""
        if self._ids is None:
            key = None if self.cache_key is None else (self.cache_key, self.where, tuple(self.params))
            with _MATCHES_LOCK:  # the dashboard's sessions run in threads
                hit = _MATCHES.get(key) if key is not None else None
            if hit is None:
                hit = array(
                    "q",
                    (
                        r[0]
                        for r in self.con.execute(f"SELECT id FROM samples WHERE {self.where} ORDER BY id", self.params)
                    ),
                )
                if key is not None:
                    with _MATCHES_LOCK:
                        _MATCHES[key] = hit
                        while len(_MATCHES) > MATCH_CACHE:
                            _MATCHES.pop(next(iter(_MATCHES)))
            self._ids = hit
        return self._ids

    def _keys(self) -> list[tuple[tuple, int, int, int]]:
        """The filter's combinations of ``KEY_COLS``: (key, n, first id, last id), by first id."""
        if self._key_cache is None:
            rows = self.con.execute(
                f"SELECT {', '.join('c.' + k for k in KEY_COLS)}, c.n,"
                f" (SELECT min(s.id) FROM samples s WHERE {_KEY_EQ}), (SELECT max(s.id) FROM samples s WHERE {_KEY_EQ})"
                f" FROM sample_counts c WHERE c.n > 0 AND {self.key_where}",
                self.key_params,
            ).fetchall()
            nk = len(KEY_COLS)
            self._key_cache = sorted(
                ((tuple(r[:nk]), int(r[nk]), int(r[nk + 1]), int(r[nk + 2])) for r in rows if r[nk + 1] is not None),
                key=lambda k: k[2],
            )
        return self._key_cache

    def _count_upto(self, sid: int) -> int:
        """Matching ids <= ``sid``: whole combinations from the counts, an index count only for the few whose
        ids straddle ``sid`` (a combination's samples are written together, batch after batch)."""
        total = 0
        eq = " AND ".join(f"{c} = ?" for c in KEY_COLS)
        for key, n, lo, hi in self._keys():
            if hi <= sid:
                total += n
            elif lo <= sid:
                total += self.con.execute(
                    f"SELECT count(*) FROM samples WHERE {eq} AND id <= ?", list(key) + [int(sid)]
                ).fetchone()[0]
        return total

    # ---- counts ---------------------------------------------------------------
    def count(self) -> int:
        if self.listed:
            return len(self.matches())
        if self.keyed:
            return int(
                self.con.execute(
                    f"SELECT coalesce(sum(n), 0) FROM sample_counts c WHERE {self.key_where}", self.key_params
                ).fetchone()[0]
            )
        return int(self.con.execute(f"SELECT count(*) FROM samples WHERE {self.where}", self.params).fetchone()[0])

    def contains(self, sid: int) -> bool:
        if self.listed:
            ids = self.matches()
            i = bisect.bisect_left(ids, int(sid))
            return i < len(ids) and ids[i] == int(sid)
        return (
            self.con.execute(
                f"SELECT 1 FROM samples WHERE {self.where} AND id = ?", self.params + [int(sid)]
            ).fetchone()
            is not None
        )

    def position(self, sid: int) -> int:
        """1-based position of ``sid`` in the filtered id order (it must match the filter). Counts the ids up
        to it: the one read whose cost grows with the position (a link or a jump needs it; Prev and Next
        carry the position instead, see ``browse``)."""
        if self.listed:
            return bisect.bisect_right(self.matches(), int(sid))
        if self.keyed:
            return self._count_upto(int(sid))
        return int(
            self.con.execute(
                f"SELECT count(*) FROM samples WHERE {self.where} AND id <= ?", self.params + [int(sid)]
            ).fetchone()[0]
        )

    # ---- keyset seeks -----------------------------------------------------------
    def after(self, sid: int | None) -> int | None:
        """The first id after ``sid`` (None: the first id) that matches."""
        return self._seek("min", ">", sid)

    def before(self, sid: int | None) -> int | None:
        """The last id before ``sid`` (None: the last id) that matches."""
        return self._seek("max", "<", sid)

    def _seek(self, agg: str, op: str, sid: int | None) -> int | None:
        if self.listed:
            ids = self.matches()
            if sid is None:
                return (ids[0] if agg == "min" else ids[-1]) if ids else None
            i = bisect.bisect_right(ids, int(sid)) if op == ">" else bisect.bisect_left(ids, int(sid)) - 1
            return ids[i] if 0 <= i < len(ids) else None
        bound = [] if sid is None else [int(sid)]
        if self.keyed:
            cond = f" AND s.id {op} ?" if bound else ""
            row = self.con.execute(
                f"SELECT {agg}((SELECT {agg}(s.id) FROM samples s WHERE {_KEY_EQ}{cond}))"
                f" FROM sample_counts c WHERE c.n > 0 AND {self.key_where}",
                bound + self.key_params,
            ).fetchone()
        else:
            cond = f" AND id {op} ?" if bound else ""
            row = self.con.execute(
                f"SELECT {agg}(id) FROM samples WHERE {self.where}{cond}", self.params + bound
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def ids(
        self, after: int | None = None, before: int | None = None, limit: int = 50, descending: bool = False
    ) -> list[int]:
        """Up to ``limit`` matching ids after ``after`` and/or before ``before``, in id order (the last ones
        when ``descending``, still returned in ascending order)."""
        if self.listed:
            ids = self.matches()
            lo = 0 if after is None else bisect.bisect_right(ids, int(after))
            hi = len(ids) if before is None else bisect.bisect_left(ids, int(before))
            return list(ids[max(lo, hi - limit) : hi] if descending else ids[lo : min(hi, lo + limit)])
        order = "DESC" if descending else "ASC"
        cond, bound = "", []
        if after is not None:
            cond += " AND s.id > ?"
            bound.append(int(after))
        if before is not None:
            cond += " AND s.id < ?"
            bound.append(int(before))
        if self.keyed:  # per key, its next ``limit`` ids (one index range each), merged; the keys are taken
            # nearest first, and a key that lies wholly beyond the ``limit`` ids found so far is not read
            eq = " AND ".join(f"{c} = ?" for c in KEY_COLS)
            keys = [k for k in self._keys() if (after is None or k[3] > after) and (before is None or k[2] < before)]
            keys.sort(key=lambda k: -k[3] if descending else k[2])
            found: list[int] = []
            for key, _, lo, hi in keys:
                if len(found) >= limit:
                    edge = sorted(found, reverse=descending)[limit - 1]
                    if (hi < edge) if descending else (lo > edge):
                        break
                found += [
                    r[0]
                    for r in self.con.execute(
                        f"SELECT id FROM samples s WHERE {eq}{cond} ORDER BY id {order} LIMIT ?",
                        list(key) + bound + [int(limit)],
                    )
                ]
        else:
            found = [
                r[0]
                for r in self.con.execute(
                    f"SELECT id FROM samples s WHERE {self.where}{cond} ORDER BY id {order} LIMIT ?",
                    self.params + bound + [int(limit)],
                )
            ]
        found = sorted(found, reverse=descending)[:limit]
        return sorted(found)

    def at(self, position: int) -> int | None:
        """The id at 1-based ``position`` (a jump)."""
        if self.listed:
            ids = self.matches()
            return ids[position - 1] if 0 < position <= len(ids) else None
        if self.keyed:
            keys = self._keys()
            if len(keys) == 1:
                eq = " AND ".join(f"{c} = ?" for c in KEY_COLS)
                row = self.con.execute(
                    f"SELECT id FROM samples WHERE {eq} ORDER BY id LIMIT 1 OFFSET ?",
                    list(keys[0][0]) + [int(position) - 1],
                ).fetchone()
                return None if row is None else int(row[0])
            return self._at_by_bisection(position)
        row = self.con.execute(
            f"SELECT id FROM samples WHERE {self.where} ORDER BY id LIMIT 1 OFFSET ?", self.params + [int(position) - 1]
        ).fetchone()
        return None if row is None else int(row[0])

    def _at_by_bisection(self, position: int) -> int | None:
        """The smallest matching id with ``position`` matching ids up to it: bisection over ids, each step a
        count of the few combinations that straddle it (``_count_upto``)."""
        keys = self._keys()
        if not keys or position < 1 or position > sum(k[1] for k in keys):
            return None
        lo, hi = keys[0][2], max(k[3] for k in keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.position(mid) >= position:
                hi = mid
            else:
                lo = mid + 1
        return lo


def browse(
    con: sqlite3.Connection,
    f: Any,
    rid: int,
    sample_id: int | None = None,
    position: int | None = None,
    came_from: tuple[int, int] | None = None,
    where: tuple[str, list[Any]] | None = None,
    cache_key: Any = None,
) -> dict[str, Any]:
    """Locate one sample in the filtered, id-ordered list without loading the list (see
    ``queries.browse``). ``came_from=(id, position)``: the sample shown before, when ``sample_id`` is its
    Prev or Next neighbour in the same filter and store state; its position is then carried (one more
    or one less) instead of counted."""
    plan = Plan(con, f, rid, where, cache_key)
    total = plan.count()
    sid = None
    if sample_id is not None:
        ok = con.execute("SELECT 1 FROM samples WHERE id=?", (int(sample_id),)).fetchone()
        sid = int(sample_id) if ok else None
    pos = None
    if sid is None and total:
        pos = min(max(int(position or 1), 1), total)
        sid = plan.after(None) if pos == 1 else plan.before(None) if pos == total else plan.at(pos)
    out: dict[str, Any] = {
        "total": total,
        "sample_id": sid,
        "position": None,
        "prev_id": None,
        "next_id": None,
        "in_filter": False,
    }
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


def page(
    con: sqlite3.Connection,
    f: Any,
    rid: int,
    anchor: int | None = None,
    before: int = 0,
    limit: int = 50,
    where: tuple[str, list[Any]] | None = None,
    cache_key: Any = None,
) -> list[int]:
    """The ids of a table page: ``before`` matching ids before ``anchor`` (a sample id), then ``anchor`` and the
    ids after it, ``limit`` in all (keyset: no OFFSET). Without an anchor, the first ``limit``."""
    plan = Plan(con, f, rid, where, cache_key)
    if anchor is None:
        return plan.ids(limit=limit)
    head = plan.ids(before=anchor, limit=before, descending=True) if before > 0 else []
    tail = plan.ids(after=anchor - 1, limit=limit - len(head))
    return head + tail
