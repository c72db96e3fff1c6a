"""A hostile review of taking access away (leave, remove, offboard, cancel, the offboarding card after a Slack
deactivation): each test here failed on main when it was written, because of the finding its docstring names.
Against the Polaris sandbox (HTTP) and the Slack stand-in, on SQLite or PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import threading

from bot.models import APPLIED, APPROVED, CANCELLED, FAILED, OFFBOARD, PENDING, REMOVE
from standins.polaris_sandbox import Fault
from tests.bot.access.helpers import _Crash, _crash_after_put, _later, only_request
from tests.bot.access.test_removals import _group_names, _oscar, _requests, _two_admins
from tests.conftest import ADMIN, APPROVER, APPROVER2, GONE, OTHER, REQUESTER, make_settings


def _enabled_org_admins(sandbox) -> list[str]:
    org_admin = sandbox.group_by_name("Organization Admin")["id"]
    return sorted(
        u["email"]
        for u in (sandbox.find_user(e) for e in ("bob@example.com", "erin@example.com", "carol@example.com"))
        if u["enabled"] and org_admin in [g["id"] for g in u["groups"]]
    )


def _disable(sandbox, email):
    sandbox._users[sandbox.find_user(email)["id"]]["enabled"] = False


# ----------------------------------------------------------------------------------- 1. the last admin, at once
def test_two_last_org_admins_leaving_at_the_same_moment_leave_nobody(service, db, sandbox, slack, groups):
    """Finding 1: the last-admin guard is a check-then-act with no lock across users (each apply holds only its
    own ``user:<email>`` claim), so two enabled Organization Admins who leave at the same moment (two work
    threads, or two serve processes applying two approved removals) both see the other and both go: the
    organization is left with no enabled Organization Admin. The barrier only makes the two DELETEs meet;
    with a guard that serialised the check and the removal, the second would wait, then be refused."""
    _disable(sandbox, "carol@example.com")  # bob and erin are the last two enabled Organization Admins
    org_admin = groups["Organization Admin"]
    meet = threading.Barrier(2, timeout=5)
    real = service.polaris.transport

    def transport(method, path, params, body, ok):
        if method == "DELETE" and path == f"/v1/groups/{org_admin}/members":
            try:
                meet.wait()
            except threading.BrokenBarrierError:  # a serialised guard: the other never gets here meanwhile
                pass
        return real(method, path, params, body, ok)

    service.polaris.transport = transport
    answers = {}

    def leave(who):
        answers[who] = service.handle_command(who, "leave Organization Admin").text

    threads = [threading.Thread(target=leave, args=(who,)) for who in (APPROVER, APPROVER2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    service.polaris.transport = real
    assert _enabled_org_admins(sandbox) != [], answers  # main: both removed, nobody administers the organization


# ----------------------------------------------------------------------------------- 2. a deactivation lost
def test_a_deactivation_seen_while_polaris_fails_still_gets_its_offboarding_card(service, db, sandbox, groups):
    """Finding 2: the deactivation is handled once, in the event's background work, after its ``event_id`` is
    recorded: when Polaris (or Slack) fails at that moment the exception ends the work, Slack got its 200 and
    will not send it again (a retry would be deduplicated anyway), and nothing retries it later. The
    deactivated person keeps their Polaris access with no card and no audit row saying so."""
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], actions=[])
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/users$", status=503, times=None))
    assert service.first_delivery("Ev0GONE")
    try:  # what handlers/events.py runs in the background lane
        service.slack_user_deactivated(GONE, "gone@example.com")
    except Exception:
        pass  # main: PolarisUnavailable, logged by the lane and forgotten
    sandbox.clear_faults()
    assert not service.first_delivery("Ev0GONE")  # Slack's retry of the event is dropped
    _later(service, 3600)
    service.run_due()
    offboardings = _requests(db, OFFBOARD)
    assert [r.target_email for r in offboardings] == ["gone@example.com"]


# ----------------------------------------------------------------------------------- 3. a removal undone
def test_an_approved_grant_in_flight_does_not_undo_a_removal(service, db, sandbox, slack, groups):
    """Finding 3: ``remove`` (and ``leave``) neither closes nor waits for an approved grant of the same person
    and group that is still being applied (here its add landed with its answer lost, so it is retried): the
    removal is applied, ends the grant's lease, and the grant's retry then adds the person back, with a new
    lease, after the approvers removed them. An offboarding closes such grants; a removal does not."""
    _oscar(sandbox, groups, "Data Analyst")
    service.handle_command(REQUESTER, "invite oscar@example.com Viewer for 2h dashboards")
    grant = only_request(db)
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/groups/.*/members$", status=503, after_handle=True, times=None))
    service.decide(grant.id, APPROVER, approve=True)
    service.run_due()
    assert service.get(grant.id).state == APPROVED  # retried later; the membership landed
    sandbox.clear_faults()
    service.handle_command(ADMIN, "remove oscar@example.com Viewer no longer needed")
    removal = _requests(db, REMOVE)[0]
    service.decide(removal.id, APPROVER2, approve=True)
    service.run_due()
    assert service.get(removal.id).state == APPLIED
    assert _group_names(sandbox, "oscar@example.com") == ["Data Analyst"]
    _later(service, 600)
    service.run_due()
    assert _group_names(sandbox, "oscar@example.com") == ["Data Analyst"]  # main: Viewer is back


# ----------------------------------------------------------------------------------- 4, 5. a leave refused
def test_leave_is_not_refused_by_the_open_request_limit(service, db, sandbox, slack, groups):
    """Finding 4: ``leave`` counts against MAX_OPEN_REQUESTS like a request for more access, so someone at the
    limit (requests waiting for approvers) cannot drop a group they hold; less access should never wait."""
    service.settings = make_settings(sandbox, slack, db.url, max_open_requests=1)
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]])
    service.handle_command(REQUESTER, "request Data Manager")
    reply = service.handle_command(REQUESTER, "leave Viewer")
    assert "Removed alice@example.com from Viewer" in reply.text, reply.text
    assert _group_names(sandbox, "alice@example.com") == []


def test_someone_elses_pending_removal_does_not_stop_you_leaving(service, db, sandbox, slack, groups):
    """Finding 5: a pending ``remove`` of you from a group (anyone may ask for one) blocks your own ``leave`` of
    it as a duplicate ("There is already an open request for that") until the approvers decide or it
    expires: you cannot give up access you no longer want."""
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]])
    service.handle_command(APPROVER, "remove alice@example.com Viewer")
    reply = service.handle_command(REQUESTER, "leave Viewer")
    assert "Removed alice@example.com from Viewer" in reply.text, reply.text
    assert _group_names(sandbox, "alice@example.com") == []


# ----------------------------------------------------------------------------------- 6. reactivated meanwhile
def test_the_deactivation_offboarding_is_not_applied_once_the_slack_account_is_active_again(
    service, db, sandbox, slack, groups
):
    """Finding 6: the bot's own offboarding rests on one fact, "Their Slack account was deactivated"; when the
    account is reactivated (an accidental deactivation, a SCIM hiccup) the card still says so and still has
    its buttons, and an approval disables the person's Polaris account: neither the decision nor the apply
    reads the Slack account again (``_fit_to_apply`` skips every check for an offboarding)."""
    _two_admins(service, sandbox, slack, db)
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], actions=[])
    req = service.slack_user_deactivated(GONE)
    assert req is not None and req.state == PENDING
    slack.add_user(GONE, "gone", "gone@example.com", deleted=False)  # reactivated
    service.decide(req.id, ADMIN, approve=True)
    service.run_due()
    assert sandbox.find_user("gone@example.com")["enabled"] is True
    assert service.get(req.id).state in (PENDING, FAILED, CANCELLED)


# ----------------------------------------------------------------------------------- 7. the outcome after a crash
def test_an_offboarding_resumed_after_a_crash_says_what_it_did(service, db, sandbox, slack, groups):
    """Finding 7: the process dies after the offboarding PUT landed; the resumed apply finds the user disabled
    and in no group and records "was already disabled and in no group; nothing more to do": the card, the
    requester's DM and the audit row say the bot did nothing, and the groups it took away are not named."""
    _two_admins(service, sandbox, slack, db)
    _oscar(sandbox, groups, "Viewer", "Data Analyst")
    service.handle_command(ADMIN, "offboard oscar@example.com")
    req = only_request(db)
    service.decide(req.id, APPROVER2, approve=True)
    real = _crash_after_put(service)
    try:
        service.execution.apply(req.id)
    except _Crash:
        pass
    service.polaris.transport = real
    _later(service, 3600)
    service.run_due()
    done = service.get(req.id)
    assert done.state == APPLIED
    assert "nothing more to do" not in done.outcome, done.outcome
    assert "Viewer" in done.outcome and "Data Analyst" in done.outcome


# ----------------------------------------------------------------------------------- 8. two Org Admins bypassed
def test_offboarding_an_org_admin_needs_what_removing_them_from_org_admin_needs(service, db, sandbox, slack, groups):
    """Finding 8: ``remove <admin> Organization Admin`` needs two approvals by enabled Organization Admin
    members in Polaris, but ``offboard <admin>`` takes the same membership away (and disables the account) on
    one approval by anyone in ADMINS, Organization Admin in Polaris or not: the two-person rule on taking
    Organization Admin away is bypassed by asking for more."""
    service.settings = make_settings(sandbox, slack, db.url, admins=frozenset({ADMIN, OTHER}))
    _oscar(sandbox, groups, "Viewer")  # oscar: an admin of the bot, no Organization Admin in Polaris
    service.handle_command(ADMIN, "remove bob@example.com Organization Admin")
    removal = only_request(db)
    assert removal.approvals_required == 2
    assert "Only members of Organization Admin" in service.decide(removal.id, OTHER, approve=True)
    service.handle_command(ADMIN, "offboard bob@example.com")
    offboarding = _requests(db, OFFBOARD)[0]
    verdict = service.decide(offboarding.id, OTHER, approve=True)
    service.run_due()
    assert service.get(offboarding.id).state == PENDING, verdict
    assert "Organization Admin" in _group_names(sandbox, "bob@example.com")


# ----------------------------------------------------------------------------------- 9. a denied card comes back
def test_a_denied_deactivation_offboarding_is_not_opened_again_by_the_next_profile_event(
    service, db, sandbox, slack, groups
):
    """Finding 9: README says the deactivation card is opened "once per account"; once the admins deny it
    (they chose to keep the Polaris account), the next ``user_change`` of that still-deactivated account (any
    profile edit, a new ``event_id``) opens a new card for the same decision, and so on for every event."""
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], actions=[])
    first = service.slack_user_deactivated(GONE)
    assert service.decide(first.id, ADMIN, approve=False) is None
    assert service.slack_user_deactivated(GONE) is None
    assert len(_requests(db, OFFBOARD)) == 1
