"""The migration of a version 1 store to version 2, and the prefix table it fills.

Version 2 stores each distinct few-shot prefix once (``prompt_prefixes``) and each sample's prompt tail; the
writer splits every batch's prompts (:class:`PrefixTable`), and :func:`migrate_v1` rewrites a version 1 store
(``star run --resume`` of an old run does this; readers read version 1 as it is).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable

from ..errors import StoreError
from .aggregates import rebuild_aggregates
from .schema import SAMPLES_V2, SCHEMA_VERSION, statements

#: A shared prefix shorter than this is left in the rows.
MIN_PREFIX_CHARS = 64


def split_prompt(prompt: str, known: Iterable[str] = ()) -> str:
    """The few-shot prefix of ``prompt``: the longest of ``known`` it starts with, else the text up to its
    last blank line (the few-shot block ends with one; the question block after it has none)."""
    best = ""
    for k in known:
        if len(k) > len(best) and prompt.startswith(k):
            best = k
    if best:
        return best
    cut = prompt.rfind("\n\n")
    return prompt[: cut + 2] if cut >= 0 else ""


class PrefixTable:
    """The ``prompt_prefixes`` of one store, in memory: each distinct prefix once, keyed by its SHA-256."""

    def __init__(self, con: sqlite3.Connection):
        self.ids: dict[str, int] = {r[1]: r[0] for r in con.execute("SELECT id, text FROM prompt_prefixes")}
        self.order = sorted(self.ids, key=len, reverse=True)

    def _id(self, con: sqlite3.Connection, text: str) -> int:
        if text not in self.ids:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            con.execute("INSERT OR IGNORE INTO prompt_prefixes(sha256, text) VALUES (?, ?)", (digest, text))
            self.ids[text] = con.execute("SELECT id FROM prompt_prefixes WHERE sha256=?", (digest,)).fetchone()[0]
            self.order = sorted(self.ids, key=len, reverse=True)
        return self.ids[text]

    def split_batch(self, con: sqlite3.Connection, prompts: list[str]) -> list[tuple[int | None, str]]:
        """(prefix id or None, tail) for each prompt; prefix text + tail == prompt. A batch shares its
        prefix: the common start of its prompts up to the last blank line in it is tried first."""
        known = list(self.order)
        if len(prompts) > 1:
            common = os.path.commonprefix(prompts)
            cut = common.rfind("\n\n")
            if cut + 2 >= MIN_PREFIX_CHARS:
                known.insert(0, common[: cut + 2])
        out: list[tuple[int | None, str]] = []
        last = ""
        for p in prompts:
            pre = last if last and p.startswith(last) else split_prompt(p, known)
            if len(pre) < MIN_PREFIX_CHARS:
                out.append((None, p))
                continue
            last = pre
            out.append((self._id(con, pre), p[len(pre) :]))
        return out


_SAMPLE_COLS = (
    "id, run_id, iteration, task, split, phase, question_id, k, grp, question, hint, raw_output, "
    "rationale, answer, gold, correct, decision, kept, reason, audit_faithful, audit_json, prompt_tokens, "
    "output_tokens, seconds, created_at"
)


def migrate_v1(con: sqlite3.Connection, chunk: int = 5000) -> int:
    """Rewrite a version 1 store as version 2 in one transaction (``star run --resume`` of an old run does
    this; readers read version 1 as it is): each prompt's few-shot prefix goes to ``prompt_prefixes`` once,
    and the counts and the text index are built. Rows keep their ids, so training examples still point at
    their samples. A failure leaves the store as it was. Returns the number of samples moved."""
    stmts = statements(SAMPLES_V2)
    table = next(x for x in stmts if x.startswith("CREATE TABLE IF NOT EXISTS samples ("))
    con.execute("PRAGMA foreign_keys=OFF")  # the samples table is replaced under train_examples' references
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(next(x for x in stmts if "prompt_prefixes (" in x))
            con.execute(table.replace("CREATE TABLE IF NOT EXISTS samples (", "CREATE TABLE samples_new (", 1))
            prefixes, moved = PrefixTable(con), 0
            cols = [c.strip() for c in _SAMPLE_COLS.split(",")]
            read = con.execute(f"SELECT {_SAMPLE_COLS}, prompt FROM samples ORDER BY id")
            while rows := read.fetchmany(chunk):
                split = prefixes.split_batch(con, [r[-1] for r in rows])
                con.executemany(
                    f"INSERT INTO samples_new({_SAMPLE_COLS}, prefix_id, prompt_tail)"
                    f" VALUES ({','.join('?' * (len(cols) + 2))})",
                    [(*r[:-1], pid, tail) for r, (pid, tail) in zip(rows, split)],
                )
                moved += len(rows)
            con.execute("DROP TABLE samples")
            con.execute("ALTER TABLE samples_new RENAME TO samples")
            for x in stmts:
                con.execute(x)
            rebuild_aggregates(con)
            con.execute("INSERT INTO samples_fts(samples_fts) VALUES ('rebuild')")
            con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            bad = con.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise StoreError(f"migration to schema version {SCHEMA_VERSION} would break {len(bad)} references")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.execute("PRAGMA foreign_keys=ON")
    return moved
