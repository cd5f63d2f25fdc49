"""Each participant's trials (`eval.study.design.plan`): every pair once, sides counterbalanced
across participant pairs and balanced within one, attention checks placed, the same plan again."""

from __future__ import annotations

import pytest

from ikmo.eval.study.definition import Study
from ikmo.eval.study.design import IDENTICAL_TRIAL, MISFIT, MISFIT_TRIAL, attention_passed, plan

pytestmark = pytest.mark.unit


def study(n_items: int = 7, conditions: tuple[str, ...] = ("no_agents", "agents")) -> Study:
    return Study.model_validate({
        "name": "t", "seed": 5, "conditions": [{"name": c} for c in conditions],
        "attention": {"identical": "i0", "misfit": {"item": "i1", "text": "sit down"}},
        "items": [{"id": f"i{k}", "text": f"request {k}"} for k in range(n_items)]})


def test_plans_counterbalance_sides_and_place_the_attention_checks():
    s = study()
    p0, p1 = plan(s, 0), plan(s, 1)
    assert plan(s, 0) == p0  # a pure function: a restarted server recomputes it
    pairs0 = [t for t in p0 if t.kind == "pair"]
    assert sorted(t.item for t in pairs0) == [f"i{k}" for k in range(7)] and len(p0) == 9
    # participant 1 sees every trial of participant 0 with the sides swapped
    side0 = {t.id: t.left_condition for t in pairs0}
    side1 = {t.id: t.left_condition for t in p1 if t.kind == "pair"}
    assert all(side0[i] != side1[i] for i in side0)
    # within a participant the first condition is on the left in half the trials (±1)
    assert abs(sum(v == "no_agents" for v in side0.values()) - 3.5) <= 0.5
    assert [t.id for t in p0].index(IDENTICAL_TRIAL) == 3 and [t.id for t in p0].index(MISFIT_TRIAL) == 6
    m0 = next(t for t in p0 if t.kind == "misfit")
    m1 = next(t for t in p1 if t.kind == "misfit")
    assert (m0.fit_side, m0.right) == ("left", MISFIT) and (m1.fit_side, m1.left) == ("right", MISFIT)
    assert [t.id for t in plan(s, 2)] != [t.id for t in p0]  # orders differ between participants
    assert len({t.id for t in plan(study(3, ("no_agents", "agents", "other")), 0)}) == 3 * 3 + 2


def test_attention_rules():
    s = study()
    ident = next(t for t in plan(s, 0) if t.kind == "identical")
    mis = next(t for t in plan(s, 0) if t.kind == "misfit")  # the fitting motion on the left
    assert attention_passed(ident, 4, 5, "left") and not attention_passed(ident, 2, 6, "right")
    assert attention_passed(mis, 6, 2, "left")
    assert not attention_passed(mis, 6, 2, "right") and not attention_passed(mis, 3, 3, "left")


def test_a_provider_condition_never_falls_back_silently():
    from ikmo.eval.agents.runner import parse_provider_arg
    from ikmo.eval.study.build import condition_settings
    from ikmo.eval.study.definition import Condition

    cond = Condition(name="small", provider="smollm2@http://127.0.0.1:9/v1")
    st = condition_settings(cond, 7, parse_provider_arg(cond.provider))
    assert (st.provider, st.base_url, st.fallback_offline, st.seed, st.preview) == \
        ("openai-compatible", "http://127.0.0.1:9/v1", False, 7, False)
    allow = Condition(name="small", provider="smollm2@http://127.0.0.1:9/v1", settings={"fallback_offline": True})
    assert condition_settings(allow, 7, parse_provider_arg(allow.provider)).fallback_offline is True
    assert condition_settings(Condition(name="agents"), 0, None).fallback_offline is True  # offline: no fallback
