"""Annotations: their own SQLite file beside the run, per-field upserts, clear errors, agreement with the audit."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from helpers import dash_fixtures as F
from star_core.annotations import ANNOTATIONS_NAME, AnnotationError, Annotations, agreement, cohen_kappa
from star_core.cli import main


@pytest.fixture
def run(tmp_path):
    return F.build_run(tmp_path / "r", tasks=("arithmetic",), iterations=1, n_train=8, n_eval=6)


def _ids(run, where="1=1"):
    return [r[0] for r in F.sql(run, f"SELECT id FROM samples WHERE {where} ORDER BY id")]


def test_annotations_live_in_their_own_file_never_in_the_run_store(run):
    before = F.sql(run, "SELECT name FROM sqlite_master ORDER BY name")
    a = Annotations(run)
    assert a.get(_ids(run)[0]) == {"label": None, "note": None, "tags": []}
    assert not (run / ANNOTATIONS_NAME).exists()  # reading creates nothing
    sid = _ids(run)[0]
    a.set_label(sid, "unfaithful")
    a.add_tag(sid, "Interesting")
    a.set_note(sid, "carry dropped in step 2")
    assert (run / ANNOTATIONS_NAME).is_file()
    assert F.sql(run, "SELECT name FROM sqlite_master ORDER BY name") == before
    assert a.get(sid) == {"label": "unfaithful", "note": "carry dropped in step 2", "tags": ["interesting"]}
    con = sqlite3.connect(run / ANNOTATIONS_NAME)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    a.remove_tag(sid, "interesting")
    a.set_label(sid, None)
    a.set_note(sid, "")
    assert a.frame().empty and a.get(sid)["tags"] == []


def test_bad_values_are_refused(run):
    a = Annotations(run)
    with pytest.raises(AnnotationError, match="not one of"):
        a.set_label(_ids(run)[0], "maybe")
    with pytest.raises(AnnotationError, match="tag"):
        a.add_tag(_ids(run)[0], "<script>")
    with pytest.raises(AnnotationError, match="is not in"):
        a.set_label(10**9, "faithful")


def test_two_writers_lose_no_write(run):
    """Two sessions (two connections, two threads) annotate the same run, and the same sample, at once."""
    ids = _ids(run)[:20]
    errors = []

    def writer(who: str):
        try:
            a = Annotations(run)  # each tab has its own object and connections
            for sid in ids:
                a.add_tag(sid, f"seen-by-{who}")
                if who == "a":
                    a.set_label(sid, "faithful")
                else:
                    a.set_note(sid, f"note {sid}")
        except Exception as e:
            errors.append(e)

    ts = [threading.Thread(target=writer, args=(w,)) for w in "ab"]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    df = Annotations(run).frame().set_index("sample_id")
    assert len(df) == len(ids)
    for sid in ids:
        assert df.loc[sid, "tags"] == ["seen-by-a", "seen-by-b"]
        assert df.loc[sid, "label"] == "faithful" and df.loc[sid, "note"] == f"note {sid}"


@pytest.mark.parametrize("content", [b"\x00garbage, not sqlite\xff" * 64, "sqlite-foreign"])
def test_damaged_or_foreign_file_is_a_clear_error_and_left_alone(run, content):
    p = run / ANNOTATIONS_NAME
    if content == "sqlite-foreign":
        con = sqlite3.connect(p)
        con.execute("CREATE TABLE notes (x)")
        con.commit()
        con.close()
    else:
        p.write_bytes(content)
    raw = p.read_bytes()
    a = Annotations(run)
    with pytest.raises(AnnotationError, match=str(p).replace("\\", "\\\\")) as e:
        a.set_label(_ids(run)[0], "faithful")
    assert "not a star annotations file" in str(e.value) or "damaged" in str(e.value)
    with pytest.raises(AnnotationError):
        a.frame()
    assert p.read_bytes() == raw


def test_cohen_kappa_against_a_hand_computed_value():
    # 10 items. Agreement on 7 (p_o = 0.7). Rater A: 5 x, 3 y, 2 z; rater B: 4 x, 4 y, 2 z.
    # p_e = .5*.4 + .3*.4 + .2*.2 = .20 + .12 + .04 = .36; kappa = (.7 - .36) / .64 = 0.53125
    a = list("xxxxxyyyzz")
    b = ["x", "x", "x", "y", "y", "y", "y", "x", "z", "z"]
    assert sum(x == y for x, y in zip(a, b)) == 7
    assert cohen_kappa(a, b) == pytest.approx(0.53125)
    assert cohen_kappa(list("xyxy"), list("xyxy")) == pytest.approx(1.0)
    assert cohen_kappa([], []) is None
    assert cohen_kappa(list("xy"), list("yx")) == pytest.approx(-1.0)


def test_agreement_with_the_audit(run):
    rows = F.sql(
        run,
        "SELECT id, json_extract(audit_json, '$.verdict') FROM samples "
        "WHERE json_extract(audit_json, '$.verdict') IN ('faithful', 'unfaithful', 'no_rationale')"
        " ORDER BY id",
    )
    assert len(rows) >= 6
    a = Annotations(run)
    flip = {"faithful": "unfaithful", "unfaithful": "faithful", "no_rationale": "faithful"}
    human = {}
    for i, (sid, v) in enumerate(rows[:6]):
        human[sid] = v if i < 4 else flip[v]
        a.set_label(sid, human[sid])
    nocheck = F.sql(run, "SELECT id FROM samples WHERE audit_json IS NULL LIMIT 1")
    if nocheck:
        a.set_label(nocheck[0][0], "faithful")
    g = agreement(run)
    assert g["n"] == 6 and g["agree"] == 4 and g["no_audit"] == (1 if nocheck else 0)
    conf = g["confusion"]
    assert int(conf.values.sum()) == 6 and int(conf.values.trace()) == 4
    audit = {sid: v for sid, v in rows[:6]}
    assert g["kappa"] == pytest.approx(cohen_kappa([human[s] for s in audit], list(audit.values())))


def test_star_export_annotations(run, tmp_path, capsys):
    ids = _ids(run)[:3]
    a = Annotations(run)
    a.set_label(ids[0], "no_rationale")
    a.add_tag(ids[1], "interesting")
    a.set_note(ids[2], 'a "quoted" <note>')
    out = tmp_path / "ann.jsonl"
    assert main(["export", str(run), "--annotations", "--out", str(out)]) == 0
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [r["sample_id"] for r in rows] == ids
    assert rows[0]["label"] == "no_rationale" and rows[1]["tags"] == ["interesting"]
    assert rows[2]["note"] == 'a "quoted" <note>'
    keys = F.sql(run, "SELECT question_id, task, iteration, phase FROM samples WHERE id=?", ids[0])[0]
    assert (rows[0]["question_id"], rows[0]["task"], rows[0]["iteration"], rows[0]["phase"]) == keys
    assert "3 annotations" in capsys.readouterr().out
    (run / ANNOTATIONS_NAME).write_bytes(b"junk" * 100)
    assert main(["export", str(run), "--annotations", "--out", str(out)]) == 2
    assert ANNOTATIONS_NAME in capsys.readouterr().err


def test_the_annotation_filter_narrows_a_sample_filter(run):
    from star_core import queries as Q
    from star_core.annotations import annotated_filter

    ids = _ids(run, "phase='eval'")
    a = Annotations(run)
    a.set_label(ids[1], "faithful")
    a.add_tag(ids[3], "interesting")
    a.add_tag(_ids(run, "phase='sample'")[0], "interesting")
    f = annotated_filter(Q.SampleFilter(phase="eval"), a.sample_ids(tag="interesting"))
    assert Q.count_samples(run, f) == 1 and Q.browse(run, f)["sample_id"] == ids[3]
    f = annotated_filter(Q.SampleFilter(phase="eval"), a.sample_ids(any_annotation=True))
    assert Q.samples_page(run, f)["id"].tolist() == [ids[1], ids[3]]
    assert a.sample_ids(label="faithful") == [ids[1]] and ids[3] in a.sample_ids(label="none")
    assert Q.count_samples(run, annotated_filter(Q.SampleFilter(), [])) == 0


def test_a_store_linked_out_of_the_run_folder_is_not_read(run, tmp_path):
    """The annotated sample and the audit's verdicts are read from the run's own store only: a store.sqlite that
    links out of the folder is refused, as everywhere else."""
    sid, other = _ids(run)[:2]
    Annotations(run).set_label(sid, "faithful")  # a label, so that the agreement has samples to read
    outside = tmp_path / "elsewhere.sqlite"
    (run / "store.sqlite").rename(outside)
    (run / "store.sqlite").symlink_to(outside)
    with pytest.raises(AnnotationError, match="links out of the run folder"):
        Annotations(run).set_label(other, "unfaithful")  # a new sample: its key is read from the store
    with pytest.raises(AnnotationError, match="links out of the run folder"):
        agreement(run)


def test_first_writes_from_three_sessions_at_once(run, tmp_path):
    """Three sessions creating the annotations file at the same moment: none gets "database is locked" (the
    journal-mode switch, which SQLite does not wait on, is retried). 40 fresh files; before the retry about one
    in ten failed."""
    import shutil

    sid = _ids(run)[0]
    for i in range(40):
        fresh = tmp_path / f"r{i}"
        fresh.mkdir()
        shutil.copy(run / "store.sqlite", fresh / "store.sqlite")
        start, errors = threading.Barrier(3), []

        def first_write(who: str, fresh=fresh, start=start, errors=errors):
            a = Annotations(fresh)
            start.wait()
            try:
                a.add_tag(sid, who)
            except AnnotationError as e:
                errors.append(e)

        ts = [threading.Thread(target=first_write, args=(w,)) for w in "abc"]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, (i, errors)
        assert Annotations(fresh).get(sid)["tags"] == ["a", "b", "c"]
