"""Links that say what happened (Rationales): a link to a sample the run does not hold says so and offers the
nearest one; a link to an iteration it does not have says so; filters offer only values that occur; an empty
result offers a reset."""

from __future__ import annotations

from helpers import apptest as A
from helpers import dash_fixtures as F
from helpers.apptest import APP, AppTest, open_page, texts
from star_core import queries as Q

root, env, loopback = A.root, A.env, A.loopback  # pytest fixtures (loopback: autouse), used here by name
sql = F.sql


def test_a_link_to_a_missing_sample_says_so_and_offers_the_nearest(env):
    run = env / "alpha"
    last = sql(run, "SELECT max(id) FROM samples")[0][0]
    at = open_page("rationales", run="alpha", sid=last + 1000)
    assert any(f"sample \\#{last + 1000}, which this run does not hold" in w for w in texts(at, "warning"))
    assert "**Sample 1 of" in " ".join(texts(at, "markdown"))
    at.button(key="rat_nearest").click().run()
    assert not at.exception and at.query_params["sid"] == str(last)
    assert (
        Q.nearest_sample(run, last + 1000) == last
        and Q.nearest_sample(run, 0) == sql(run, "SELECT min(id) FROM samples")[0][0]
    )


def test_a_link_to_a_missing_iteration_says_so(env):
    at = open_page("rationales", run="alpha", it="7")
    assert any("iteration 7, which this run does not have" in w for w in texts(at, "warning"))
    assert at.selectbox(key="rat_it").value == "(all)"
    at = open_page("rationales", run="alpha", it="2")  # a valid one: no warning
    assert not any("does not have" in w for w in texts(at, "warning"))


def test_filters_offer_only_values_that_occur(env):
    run = env / "alpha"
    at = open_page("rationales", run="alpha", phase="eval")
    want = [d for (d,) in sql(run, "SELECT DISTINCT decision FROM samples WHERE phase='eval' ORDER BY decision")]
    assert at.selectbox(key="rat_decision").options == ["(all)", *want]
    assert "rationalized" not in want  # an evaluation is never rationalized: not offered


def test_an_empty_result_offers_a_reset(env):
    at = open_page("rationales", run="alpha", q="no-such-text-anywhere-xyz")
    assert any("No sample matches" in i for i in texts(at, "info"))
    at.button(key="rat_reset").click().run()
    assert not at.exception and "**Sample 1 of" in " ".join(texts(at, "markdown"))
    assert "q" not in at.query_params


def test_a_tour_link_to_a_missing_iteration_says_so(env):
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update({"run": "alpha", "it": "9"})
    at.switch_page("app_pages/tour.py")
    at.run()
    assert not at.exception
    assert any("iteration 9, which this run does not have" in w for w in texts(at, "warning"))
    assert at.selectbox(key="tour_it").value != "9"


def test_compare_link_to_a_missing_iteration_and_its_paired_test(env):
    from star_core import stats
    from star_core.queries.comparison import compare

    at = open_page("compare", run="alpha", ra="alpha", ia=9, rb="alpha", ib=2, task="arithmetic", phase="eval")
    assert any("iteration of A 9, which this run does not have" in w for w in texts(at, "warning"))
    assert at.selectbox(key="cmp_ia").value == "0"
    res = compare(env / "alpha", 0, env / "alpha", 2, "arithmetic", "eval")
    lost, gained = res["counts"]["a_right_b_wrong"], res["counts"]["a_wrong_b_right"]
    assert any(f"p = {stats.mcnemar(lost, gained):.2g}" in c for c in texts(at, "caption"))


def test_accuracy_overlays_are_in_the_url(env):
    at = open_page("accuracy", run="alpha", ov="beta")
    assert at.multiselect(key="acc_runs").value == ["alpha", "beta"] and at.query_params["ov"] == "beta"
    at.multiselect(key="acc_runs").unselect("beta").run()
    assert not at.exception and "ov" not in at.query_params
    at.multiselect(key="acc_runs").select("beta").run()
    assert at.query_params["ov"] == "beta"


def test_rationalizations_link_to_a_missing_retry_and_reset(env):
    run = env / "alpha"
    last = sql(run, "SELECT max(id) FROM samples")[0][0]
    at = open_page("rationalizations", run="alpha", sid=last + 77)
    assert any(f"sample \\#{last + 77}, which this run does not hold" in w for w in texts(at, "warning"))
    at = open_page("rationalizations", run="alpha", it="1", decision="no_such_decision")
    opts = at.selectbox(key="rz_decision").options
    want = [d for (d,) in sql(run, "SELECT DISTINCT decision FROM samples WHERE phase='rationalize' AND iteration=1")]
    assert sorted(opts[1:]) == sorted(want)


def test_compare_empty_filter_offers_every_question(env):
    from star_core.queries.comparison import compare

    res = compare(env / "alpha", 2, env / "alpha", 2, "arithmetic", "eval")  # a side against itself: nothing changed
    assert res["counts"]["answer_changed"] == 0
    at = open_page(
        "compare", run="alpha", ra="alpha", ia=2, rb="alpha", ib=2, task="arithmetic", phase="eval", f="answer_changed"
    )
    assert any("No question matches" in i for i in texts(at, "info"))
    at.button(key="cmp_reset").click().run()
    assert not at.exception and at.selectbox(key="cmp_f").value == "all"
    assert any(f"Question 1 of {len(res['rows'])}" in m for m in texts(at, "markdown"))
