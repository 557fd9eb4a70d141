"""Schema version 2: prefixes stored once, the trigram search, keyset paging and the maintained counts,
each checked against the plain way (full prompt, LIKE scan, OFFSET, count(*))."""

import itertools
import random
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import star_core.store as S
from helpers import dash_fixtures as F
from helpers.store_sql import opened
from star_core import queries
from star_core.queries import paging
from star_core.store import (
    PROMPT_SQL,
    SCHEMA_VERSION,
    RunStore,
    SampleRecord,
    check,
    connect,
    migrate_v1,
    schema_version,
)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "sample_data" / "runs"
#: The rows of an aggregate table that count something (a count can fall to 0 and stay).
LIVE = {"sample_counts": "n > 0", "train_counts": "n > 0", "mask_counts": "q > 0"}
FIELDS = ("task", "phase", "split", "iteration", "decision", "correct", "kept", "grp", "question_id", "search")


def flt(**kw):
    return SimpleNamespace(**{k: kw.get(k) for k in FIELDS})


@pytest.fixture(scope="module")
def bulk(tmp_path_factory):
    """About 3,000 samples over 3 tasks and 4 iterations, written batch by batch by RunStore."""
    return F.build_bulk(tmp_path_factory.mktemp("bulk") / "big", n_samples=3000, iterations=3, batch_size=40)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """Copies of the shipped demo stores (schema version 1), migrated by opening them for writing."""
    out = {}
    for name in V1_DEMOS:
        d = tmp_path_factory.mktemp("demo") / name
        d.mkdir()
        shutil.copy(DEMO / name / "store.sqlite", d / "store.sqlite")
        out[name] = d
    return out


#: The shipped demo stores recorded before schema version 2 (gsm8k-slice and arithmetic-samples-warm-start were
#: written at version 2).
V1_DEMOS = (
    "arithmetic-audit-filter",
    "arithmetic-columns-warm-start",
    "arithmetic-paper-rule",
    "arithmetic-warm-start",
    "commonsenseqa-slice",
)


def _stored_version(d) -> int:
    with opened(d, readonly=True) as con:
        return schema_version(con)


def rows(con, sql, *params):
    return [tuple(r) for r in con.execute(sql, params).fetchall()]


# ---- schema and migration ---------------------------------------------------------------
def test_a_new_store_is_version_2_and_the_demo_stores_stay_as_recorded(tmp_path):
    st = RunStore(tmp_path / "r")
    assert schema_version(st.con) == SCHEMA_VERSION == 2
    st.close()
    versions = {}
    for d in DEMO.iterdir():
        if (d / "store.sqlite").is_file():
            before = _stored_version(d)
            check(d / "store.sqlite")
            queries.summary(d)
            assert _stored_version(d) == before, d.name  # read as they are: nothing migrates on read
            versions[d.name] = before
    assert set(versions.values()) == {1, 2}, versions  # both layouts ship, so both are read in these tests
    assert sorted(n for n, v in versions.items() if v == 1) == sorted(V1_DEMOS)


def test_migration_keeps_every_sample_its_prompt_and_its_training_example(migrated):
    for name, d in migrated.items():
        src = sqlite3.connect(DEMO / name / "store.sqlite")
        cols = (
            "id, run_id, iteration, task, split, phase, question_id, k, grp, question, hint, raw_output, "
            "rationale, answer, gold, correct, decision, kept, reason, audit_faithful, audit_json"
        )
        before = rows(src, f"SELECT {cols}, prompt FROM samples ORDER BY id")
        te_before = rows(src, "SELECT * FROM train_examples ORDER BY id")
        src.close()
        st = RunStore(d)  # the writer migrates
        assert schema_version(st.con) == 2
        assert rows(st.con, f"SELECT {cols}, {PROMPT_SQL} FROM samples ORDER BY id") == before
        assert rows(st.con, "SELECT * FROM train_examples ORDER BY id") == te_before
        assert st.con.execute("PRAGMA foreign_key_check").fetchall() == []
        n_prefixes = st.con.execute("SELECT count(*) FROM prompt_prefixes").fetchone()[0]
        assert 1 <= n_prefixes <= 4, (name, n_prefixes)  # plain and hinted (and direct) prefixes, once each
        assert rows(st.con, "SELECT * FROM sample_counts WHERE n > 0 ORDER BY 1,2,3,4,5,6,7,8,9") == rows(
            st.con,
            "SELECT run_id, iteration, task, split, phase, decision, grp, correct, kept, count(*)"
            " FROM samples GROUP BY 1,2,3,4,5,6,7,8,9 ORDER BY 1,2,3,4,5,6,7,8,9",
        )
        st.close()
        check(d / "store.sqlite", deep=True)
        RunStore(d).close()  # opening again does nothing more


def test_a_failed_migration_leaves_version_1(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    shutil.copy(DEMO / "arithmetic-warm-start" / "store.sqlite", d / "store.sqlite")  # a version 1 store
    con = connect(d / "store.sqlite")
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    with pytest.raises(ZeroDivisionError):
        _failing_migration(con)
    assert schema_version(con) == 1 and con.execute("SELECT count(*) FROM samples").fetchone()[0] == n
    assert (
        con.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('samples_new', 'prompt_prefixes')").fetchone()[0]
        == 0
    )
    con.close()


def _failing_migration(con):
    """migrate_v1 with a prefix splitter that fails half-way."""
    import star_core.store as S

    real = S.PrefixTable.split_batch
    calls = []

    def boom(self, c, prompts):
        calls.append(1)
        if len(calls) > 1:
            raise ZeroDivisionError("disk gone")
        return real(self, c, prompts)

    S.PrefixTable.split_batch = boom
    try:
        migrate_v1(con, chunk=50)
    finally:
        S.PrefixTable.split_batch = real


def test_version_3_is_refused(tmp_path):
    st = RunStore(tmp_path / "r")
    st.con.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    st.close()
    with pytest.raises(Exception, match="schema version 3"):
        check(tmp_path / "r" / "store.sqlite")


# ---- prefixes -------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["arithmetic", "commonsenseqa", "gsm8k"])
def test_the_full_prompt_reads_back_as_written(tmp_path, task):
    recs = [r for _, _, b in F.synth_records((task,), 2, 30, 10, True, 0, payload=True, real_prefixes=True) for r in b]
    odd = [
        SampleRecord(
            iteration=9,
            task=task,
            split="train",
            phase="sample",
            question_id=f"odd{i}",
            question="q",
            prompt=p,
            raw_output="o",
            gold="1",
            decision="wrong",
            reason="r",
            correct=False,
        )
        for i, p in enumerate(
            [
                "",
                "no blank line",
                "\n\n",
                "x" * 70 + "\n\nQ: two\n\nblank lines\nA:",
                "é\u2028\x00 zero byte\n\n" * 8 + "Q:",
                recs[0].prompt[:-5],
            ]
        )
    ]
    st = RunStore(tmp_path / "r")
    st.create_run("r", task, "m", {}, 2, "cpu")
    for i in range(0, len(recs), 7):
        st.add_samples(recs[i : i + 7])
    st.add_samples(odd[:3])
    for r in odd[3:]:
        st.add_samples([r])  # batches of one
    written = {(r.iteration, r.phase, r.question_id, r.k): r.prompt for r in recs + odd}
    read = {
        (r[0], r[1], r[2], r[3]): r[4]
        for r in st.con.execute(f"SELECT iteration, phase, question_id, k, {PROMPT_SQL} FROM samples")
    }
    assert read == written
    assert [dict(r)["prompt"] for r in st.samples(1, task, "sample")] == [
        r.prompt for r in recs if r.iteration == 1 and r.phase == "sample"
    ]
    prefixes = [r[0] for r in st.con.execute("SELECT text FROM prompt_prefixes")]
    assert F.real_prefix(task, False) in prefixes and F.real_prefix(task, True) in prefixes
    tails = st.con.execute(
        "SELECT avg(length(prompt_tail)) FROM samples WHERE question_id NOT LIKE 'odd%' AND question_id != ?",
        (F.PAYLOAD_QID,),
    ).fetchone()[0]
    assert tails < 300  # the prefix (500-2,100 characters) is not in the rows
    st.close()


# ---- search ---------------------------------------------------------------------------------
NEEDLES = [
    "12",
    "7",
    "37",
    "answer",
    "ANSWER",
    "the answer is",
    " + ",
    "(c)",
    "cupboard",
    "%",
    "_",
    "a_b",
    "\\",
    '"',
    "'s",
    "(CORRECT)",
    "é",
    "É",
    "Scissors",
    "xyzzy-not-there",
    "#### 4",
    "= 1",
    "q-",
    "00",
]


def scan(con, f):
    w, p = paging.scan_where(f, 1)
    return [r[0] for r in con.execute(f"SELECT id FROM samples WHERE {w} ORDER BY id", p)]


def test_search_finds_exactly_what_a_scan_finds(migrated, bulk):
    stores = [RunStore(d) for d in migrated.values()]
    for st in stores:
        st.close()
    cons = [connect(d / "store.sqlite", readonly=True) for d in [*migrated.values(), bulk]]
    extra = []
    for con in cons:
        samples = con.execute("SELECT question, raw_output FROM samples ORDER BY random() LIMIT 20").fetchall()
        rnd = random.Random(1)
        for q, o in samples:  # substrings of stored text, of every length
            t = q + o
            i = rnd.randrange(max(len(t) - 1, 1))
            extra.append(t[i : i + rnd.randint(1, 12)])
    for con in cons:
        assert (
            con.execute("SELECT count(*) FROM samples_fts_docsize").fetchone()[0]
            == con.execute("SELECT count(*) FROM samples").fetchone()[0]
        )
        for needle in NEEDLES + extra:
            if not needle:
                continue
            f = flt(search=needle)
            plan = paging.Plan(con, f, 1)
            want = scan(con, f)
            assert plan.ids(limit=10**6) == want, needle
            assert plan.count() == len(want), needle
        con.close()


def test_short_needles_scan_and_long_ones_use_the_index(bulk):
    con = connect(bulk / "store.sqlite", readonly=True)
    assert paging.fts_query("ab") is None
    plan = paging.Plan(con, flt(search="cupboard"), 1)
    assert "samples_fts" in plan.where
    detail = " ".join(
        r[-1] for r in con.execute(f"EXPLAIN QUERY PLAN SELECT count(*) FROM samples WHERE {plan.where}", plan.params)
    )
    assert "VIRTUAL TABLE INDEX" in detail
    assert "samples_fts" not in paging.Plan(con, flt(search="ab"), 1).where
    con.close()


# ---- counts and keyset paging -----------------------------------------------------------------
def filters(con):
    vals = {
        c: [None] + [r[0] for r in con.execute(f"SELECT DISTINCT {c} FROM samples")]
        for c in ("task", "phase", "iteration", "decision")
    }
    out = [flt(**dict(zip(vals, combo))) for combo in itertools.product(*vals.values())]
    out += [
        flt(task="arithmetic", grp="2"),
        flt(correct=True, kept=False),
        flt(kept=True, phase="rationalize"),
        flt(split="eval", correct=False),
        flt(task="gsm8k", search="12"),
        flt(decision="wrong", search="the"),
        flt(question_id="cqa-train-00003"),
        flt(task="nothing"),
    ]
    return out


def offset_ids(con, f):
    plan = paging.Plan(con, f, 1)
    plan.keyed = False  # the plain way: count(*), OFFSET, min/max over the whole filter
    return plan, [r[0] for r in con.execute(f"SELECT id FROM samples WHERE {plan.where} ORDER BY id", plan.params)]


def test_counts_equal_a_full_count(bulk):
    con = connect(bulk / "store.sqlite", readonly=True)
    fs = filters(con)
    assert len(fs) > 200
    for f in fs:
        plain, ids = offset_ids(con, f)
        plan = paging.Plan(con, f, 1)
        assert plan.count() == plain.count() == len(ids), f
    con.close()


def test_keyset_paging_equals_offset_paging(bulk):
    con = connect(bulk / "store.sqlite", readonly=True)
    rnd = random.Random(0)
    fs = filters(con)
    keyed = [f for f in fs if paging.Plan(con, f, 1).keyed]
    assert any(
        len(
            con.execute(
                "SELECT 1 FROM sample_counts c WHERE c.n > 0 AND " + paging.Plan(con, f, 1).key_where,
                paging.Plan(con, f, 1).key_params,
            ).fetchall()
        )
        > 5
        for f in keyed
    )  # merged keys
    for f in rnd.sample(fs, 60) + fs[:3] + fs[-8:]:
        plan = paging.Plan(con, f, 1)
        _, ids = offset_ids(con, f)
        # forward with Next, and back with Prev, from each end
        walk, sid = [], plan.after(None)
        while sid is not None:
            walk.append(sid)
            sid = plan.after(sid)
        assert walk == ids, f
        walk, sid = [], plan.before(None)
        while sid is not None:
            walk.append(sid)
            sid = plan.before(sid)
        assert walk == ids[::-1], f
        # positions and jumps
        for i in rnd.sample(range(len(ids)), min(len(ids), 6)):
            assert plan.position(ids[i]) == i + 1
            assert plan.at(i + 1) == ids[i], (f, i)
        # table pages before / after an anchor, against OFFSET pages
        if ids:
            for i in rnd.sample(range(len(ids)), min(len(ids), 4)):
                start = i // 25 * 25
                assert paging.page(con, f, 1, anchor=ids[i], before=i - start, limit=25) == ids[start : start + 25]
            assert paging.page(con, f, 1, limit=25) == ids[:25]
    con.close()


def test_browse_carries_the_position_on_prev_and_next(bulk):
    con = connect(bulk / "store.sqlite", readonly=True)
    f = flt(task="commonsenseqa", phase="sample")
    _, ids = offset_ids(con, f)
    b = paging.browse(con, f, 1, position=10)
    assert (b["sample_id"], b["position"], b["total"]) == (ids[9], 10, len(ids))
    nxt = paging.browse(con, f, 1, sample_id=b["next_id"], came_from=(b["sample_id"], 10))
    assert (nxt["sample_id"], nxt["position"], nxt["prev_id"]) == (ids[10], 11, ids[9])
    prv = paging.browse(con, f, 1, sample_id=b["prev_id"], came_from=(b["sample_id"], 10))
    assert prv["position"] == 9
    # a stale hint (not a neighbour) is not trusted: the position is counted
    far = paging.browse(con, f, 1, sample_id=ids[100], came_from=(ids[3], 4))
    assert far["position"] == 101
    out = paging.browse(con, flt(task="gsm8k"), 1, sample_id=ids[0])
    assert out["in_filter"] is False and out["position"] is None
    con.close()


def test_counts_follow_every_write(bulk, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(bulk, d)
    st = RunStore(d)
    kept = st.con.execute("SELECT id FROM samples WHERE kept=1 AND phase='sample' LIMIT 5").fetchall()
    st.unkeep([(r[0], "over_limit", "too many") for r in kept])
    st.con.execute(
        "UPDATE samples SET decision='no_rationale', correct=0 WHERE id IN (SELECT id FROM samples"
        " WHERE decision='wrong' LIMIT 7)"
    )  # a direct write, as some tests do
    st.con.execute("DELETE FROM samples WHERE id = (SELECT max(id) FROM samples)")
    assert rows(st.con, "SELECT * FROM sample_counts WHERE n > 0 ORDER BY 1,2,3,4,5,6,7,8,9") == rows(
        st.con,
        "SELECT run_id, iteration, task, split, phase, decision, grp, correct, kept, count(*)"
        " FROM samples GROUP BY 1,2,3,4,5,6,7,8,9 ORDER BY 1,2,3,4,5,6,7,8,9",
    )
    st.con.execute(
        'UPDATE samples SET correct = 1 - correct, audit_json = \'{"verdict": "no_rationale"}\''
        " WHERE id IN (SELECT id FROM samples WHERE phase = 'eval' LIMIT 9)"
    )
    st.con.execute("DELETE FROM samples WHERE id IN (SELECT id FROM samples WHERE phase = 'eval' LIMIT 3 OFFSET 20)")
    for table, (_, select) in S.AGGREGATES.items():
        kept = sorted(rows(st.con, f"SELECT * FROM {table} WHERE {LIVE.get(table, '1')}"))
        assert kept == sorted(rows(st.con, select.format(cond=""))), table
    st.con.execute("INSERT INTO samples_fts(samples_fts) VALUES ('integrity-check')")
    st.close()


def test_the_dashboard_reads_the_same_from_version_1_and_its_migrated_copy(migrated):
    from star_core import queries as Q

    for name, d in migrated.items():
        RunStore(d).close()  # migrated (a no-op when it already is)
        old = DEMO / name
        assert Q.decision_counts(old).equals(Q.decision_counts(d))
        assert Q.facets(old) == Q.facets(d)
        its = sorted(Q.decision_counts(d)["iteration"].unique())
        for it in its:
            assert Q.funnel(old, int(it)) == Q.funnel(d, int(it))
        pd.testing.assert_frame_equal(Q.solve_transitions(old), Q.solve_transitions(d), check_dtype=False)
        for since in (None, 0):
            pd.testing.assert_frame_equal(
                Q.changes_frame(old, since).drop(columns=["run_dir"]),
                Q.changes_frame(d, since).drop(columns=["run_dir"]),
                check_dtype=False,
            )
        pd.testing.assert_frame_equal(
            Q.measures_frame(old).drop(columns=["run_dir"]),
            Q.measures_frame(d).drop(columns=["run_dir"]),
            check_dtype=False,
        )
        a, b = Q.summary(old), Q.summary(d)
        a.pop("run_dir"), b.pop("run_dir")
        assert a == b
        for f in (
            Q.SampleFilter(),
            Q.SampleFilter(phase="eval", correct=False),
            Q.SampleFilter(search="the"),
            Q.SampleFilter(search="4"),
            Q.SampleFilter(decision="wrong", search="answer is"),
        ):
            assert Q.count_samples(old, f) == Q.count_samples(d, f)
            assert Q.browse(old, f, position=3) == Q.browse(d, f, position=3)
            assert Q.samples_page(old, f, 25, 25).equals(Q.samples_page(d, f, 25, 25))
        ids = Q.samples_page(d, Q.SampleFilter(phase="rationalize"), 0, 5)["id"].tolist()
        for sid in ids:
            x, y = Q.get_sample(old, sid), Q.get_sample(d, sid)
            assert x["prompt"] == y["prompt"] and len(x["prompt"]) > 200
            assert Q.rationalization(old, sid)["retry"]["prompt"] == Q.rationalization(d, sid)["retry"]["prompt"]


def test_version_2_reads_equal_version_1_reads_of_the_same_rows(bulk, tmp_path):
    """The bulk store rewritten in the version 1 layout (bench/bench_store.py --v1-copy): every count, page,
    funnel and transition the dashboard reads is the same."""
    import sys

    from star_core import queries as Q

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_store import v1_copy

    old = tmp_path / "v1"
    old.mkdir()
    v1_copy(bulk, old)
    con = sqlite3.connect(old / "store.sqlite")
    assert schema_version(con) == 1
    con.close()
    pd.testing.assert_frame_equal(Q.solve_transitions(old), Q.solve_transitions(bulk), check_dtype=False)
    for since in (None, 0, 2):
        pd.testing.assert_frame_equal(
            Q.changes_frame(old, since).drop(columns=["run_dir"]),
            Q.changes_frame(bulk, since).drop(columns=["run_dir"]),
            check_dtype=False,
        )
    pd.testing.assert_frame_equal(
        Q.measures_frame(old).drop(columns=["run_dir"]),
        Q.measures_frame(bulk).drop(columns=["run_dir"]),
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(
        Q.solve_transitions(old, "gsm8k"), Q.solve_transitions(bulk, "gsm8k"), check_dtype=False
    )
    assert Q.decision_counts(old).equals(Q.decision_counts(bulk))
    assert Q.facets(old) == Q.facets(bulk)
    for it in (1, 2, 3):
        assert Q.funnel(old, it, "commonsenseqa") == Q.funnel(bulk, it, "commonsenseqa")
    pd.testing.assert_frame_equal(Q.train_counts(old), Q.train_counts(bulk))
    for f in (
        Q.SampleFilter(task="arithmetic", grp="3"),
        Q.SampleFilter(phase="rationalize", decision="wrong"),
        Q.SampleFilter(search="cupboard", iteration=2),
        Q.SampleFilter(kept=True),
    ):
        assert Q.count_samples(old, f) == Q.count_samples(bulk, f)
        for pos in (1, 7, 30):
            b1, b2 = Q.browse(old, f, position=pos), Q.browse(bulk, f, position=pos)
            assert b1 == b2
            if b2["sample_id"] is not None:
                off = (b2["position"] - 1) // 25 * 25
                assert Q.samples_page(old, f, off, 25).equals(
                    Q.samples_page(bulk, f, off, 25, anchor=b2["sample_id"], anchor_position=b2["position"])
                )


def test_aggregates_of_another_version_are_rebuilt_on_open(bulk, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(bulk, d)
    con = sqlite3.connect(d / "store.sqlite")
    with con:  # an earlier layout: no grp column, wrong contents, no version
        con.execute("DROP TABLE question_outcomes")
        con.execute("CREATE TABLE question_outcomes (run_id, task, phase, question_id, asked, solved)")
        con.execute("UPDATE sample_counts SET n = n + 5")
        con.execute("DELETE FROM meta WHERE key = 'aggregates_version'")
    con.close()
    st = RunStore(d)
    for table, (_, select) in S.AGGREGATES.items():
        got = sorted(rows(st.con, f"SELECT * FROM {table} WHERE {LIVE.get(table, '1')}"))
        assert got == sorted(rows(st.con, select.format(cond=""))), table
    st.add_samples(
        [
            SampleRecord(
                iteration=9,
                task="gsm8k",
                split="eval",
                phase="eval",
                question_id="new",
                question="q",
                prompt="p",
                raw_output="o",
                gold="1",
                decision="wrong",
                reason="r",
                correct=False,
            )
        ]
    )
    row = st.con.execute("SELECT n, asked FROM question_outcomes WHERE question_id='new'").fetchone()
    assert tuple(row) == (1, 1 << 9)
    st.close()


def test_readers_fall_back_to_the_samples_when_the_aggregates_are_not_this_version(bulk, tmp_path):
    from star_core import queries as Q

    d = tmp_path / "copy"
    shutil.copytree(bulk, d)
    want = (
        Q.decision_counts(d),
        Q.solve_transitions(d),
        Q.changes_frame(d).drop(columns=["run_dir"]),
        Q.train_counts(d),
        Q.browse(d, Q.SampleFilter(task="gsm8k"), position=40),
    )
    con = sqlite3.connect(d / "store.sqlite")
    with con:  # written by another build: its aggregate tables are not to be trusted (nor to exist)
        con.execute("UPDATE meta SET value = 'other' WHERE key = 'aggregates_version'")
        con.execute("DROP TABLE mask_counts")
    con.close()
    got = (
        Q.decision_counts(d),
        Q.solve_transitions(d),
        Q.changes_frame(d).drop(columns=["run_dir"]),
        Q.train_counts(d),
        Q.browse(d, Q.SampleFilter(task="gsm8k"), position=40),
    )
    assert got[0].equals(want[0]) and got[4] == want[4]
    for a, b in zip(got[1:4], want[1:4]):
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
