"""The pure authority rule (bot/access/authority.py): facts in, verdict out; properties checked with hypothesis."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from bot.access.authority import ORG_ADMIN, AuthorityFacts, barred_reason, decide_authority
from bot.slack import SlackIdentity

PEOPLE = ["U1", "U2", "U3", "U4"]


def identities(uid: str):
    return st.builds(
        SlackIdentity,
        id=st.just(uid),
        email=st.sampled_from([None, f"{uid.lower()}@example.com"]),
        is_bot=st.booleans(),
        deleted=st.booleans(),
        is_guest=st.booleans(),
        exists=st.booleans(),
    )


@st.composite
def facts(draw) -> AuthorityFacts:
    """Every fact given (none left to read)."""
    actor, requester = draw(st.sampled_from(PEOPLE)), draw(st.sampled_from(PEOPLE))
    target = draw(st.sampled_from([None, *PEOPLE]))
    return AuthorityFacts(
        actor_id=actor,
        requester_id=requester,
        target_slack_id=target,
        approving=draw(st.booleans()),
        group_name=draw(st.sampled_from([None, "Viewer", ORG_ADMIN, ORG_ADMIN.lower()])),
        approver_ids=frozenset(draw(st.sets(st.sampled_from(PEOPLE)))),
        actor=draw(identities(actor)),
        requester=draw(identities(requester)),
        target=draw(identities(target)) if target else None,
        privileged=draw(st.booleans()),
        actor_org_admin=draw(st.booleans()),
    )


@given(facts())
def test_with_every_fact_given_a_verdict_never_needs_one(f):
    assert decide_authority(f).needs is None


@given(facts())
def test_the_requester_never_has_authority(f):
    assert not decide_authority(replace(f, actor_id=f.requester_id)).allowed


@given(facts())
def test_the_person_it_is_for_never_has_authority(f):
    if f.target_slack_id:
        assert not decide_authority(replace(f, actor_id=f.target_slack_id)).allowed


@given(facts())
def test_nobody_outside_the_approvers_has_authority(f):
    assert not decide_authority(replace(f, approver_ids=f.approver_ids - {f.actor_id})).allowed


@given(facts())
def test_a_barred_actor_never_has_authority(f):
    assert not decide_authority(replace(f, actor=replace(f.actor, is_guest=True))).allowed
    assert not decide_authority(replace(f, actor=replace(f.actor, deleted=True))).allowed


@given(facts())
def test_a_privileged_group_never_passes_with_a_non_org_admin(f):
    assert not decide_authority(replace(f, privileged=True, actor_org_admin=False)).allowed
    assert not decide_authority(replace(f, group_name=ORG_ADMIN, actor_org_admin=False)).allowed


@given(facts())
def test_an_approval_needs_an_active_requester_and_person_it_is_for(f):
    if f.approving:
        assert not decide_authority(replace(f, requester=replace(f.requester, is_bot=True))).allowed
        if f.target_slack_id and f.target_slack_id != f.requester_id:
            assert not decide_authority(replace(f, target=replace(f.target, deleted=True))).allowed


@given(facts())
def test_denying_never_looks_at_the_requester_or_the_person_it_is_for(f):
    f = replace(f, approving=False)
    assert decide_authority(replace(f, requester=None, target=None)) == decide_authority(f)


@given(facts())
def test_allowed_exactly_when_every_rule_holds(f):
    privileged = f.privileged or (f.group_name or "").lower() == ORG_ADMIN.lower()
    other_ok = not (f.approving and f.target_slack_id and f.target_slack_id != f.requester_id and f.target.barred)
    expected = (
        f.actor_id not in (f.requester_id, f.target_slack_id)
        and f.actor_id in f.approver_ids
        and not f.actor.barred
        and (not f.approving or not f.requester.barred)
        and other_ok
        and (not privileged or (bool(f.actor.email) and f.actor_org_admin))
    )
    assert decide_authority(f).allowed == expected


def test_facts_are_asked_for_in_order_cheapest_first_and_only_when_needed():
    f = AuthorityFacts(actor_id="U1", requester_id="U2", target_slack_id="U3", approving=True)
    assert decide_authority(f).needs == "approver_ids"
    f = replace(f, approver_ids=frozenset({"U1"}))
    assert decide_authority(f).needs == "actor"
    f = replace(f, actor=SlackIdentity("U1", "u1@example.com"))
    assert decide_authority(f).needs == "requester"
    f = replace(f, requester=SlackIdentity("U2", "u2@example.com"))
    assert decide_authority(f).needs == "target"
    f = replace(f, target=SlackIdentity("U3", None))
    assert decide_authority(f).needs == "privileged"
    assert decide_authority(replace(f, privileged=False)).allowed
    f = replace(f, privileged=True)
    assert decide_authority(f).needs == "actor_org_admin"
    assert decide_authority(replace(f, actor_org_admin=True)).allowed
    # refused early: nothing more is read
    assert (
        decide_authority(replace(f, approver_ids=None, actor_id="U2")).refusal == "You cannot decide your own request."
    )


def test_barred_reason_names_the_flag():
    assert (
        barred_reason(SlackIdentity("U1", None, deleted=True), "The requester's")
        == "The requester's Slack account is deactivated."
    )
    assert barred_reason(SlackIdentity("U1", None), "x") is None


@given(facts())
def test_a_removal_is_never_refused_for_a_deactivated_requester_or_person(f):
    """Issue 10: approving a removal or offboarding does not ask that the person it is for (or the requester)
    is an active Slack member: taking access from a deactivated person is the point. Everything else holds."""
    removal = replace(f, removal=True)
    verdict = decide_authority(removal)
    assert verdict.needs not in ("requester", "target")
    if verdict.refusal:
        assert "now deactivated" not in verdict.refusal and "can only be denied" not in verdict.refusal
    same_for_a_grant = decide_authority(replace(f, approving=False))
    if not f.approving:
        assert verdict == same_for_a_grant  # denying was never checked on the parties: unchanged


def test_a_removal_still_refuses_the_requester_and_the_person_it_is_for():
    base = AuthorityFacts(actor_id="U1", requester_id="U1", target_slack_id="U2", approving=True, removal=True)
    assert decide_authority(base).refusal == "You cannot decide your own request."
    assert decide_authority(replace(base, actor_id="U2", requester_id="U3")).refusal == (
        "You cannot decide a request that is for you."
    )
