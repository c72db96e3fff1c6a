"""Attacks on issue 11's admin operations (create-, edit-, delete-group), through the service: each test here
failed when written and names a defect (tests only, no fixes, on branch ``attack``)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.commands import UsageError
from bot.models import APPLIED, EDIT_GROUP, JOIN, PENDING, AccessRequest
from standins.polaris_sandbox import DEMO_PROJECT_IDS, Fault
from tests.bot.access.helpers import dms, only_request, only_request_count
from tests.conftest import ADMIN, APPROVER, APPROVER2, CHANNEL, REQUESTER, Clock, make_settings


@pytest.fixture
def settings(sandbox, slack, db):
    return make_settings(sandbox, slack, db.url, admins=frozenset({ADMIN, APPROVER, APPROVER2}))


def _of_kind(db, kind) -> list[AccessRequest]:
    with db.session() as s:
        return [r for r in s.scalars(select(AccessRequest).order_by(AccessRequest.created_at)) if r.kind == kind]


def test_a_create_never_takes_a_group_renamed_into_its_name_as_the_one_it_created(service, db, sandbox, groups):
    """A create-group whose POST was answered 503 waits to look by name before sending again. Meanwhile an
    approved edit-group renames another (privileged, populated) group to that name. The create then finds a
    group of its name, decides its own lost POST made it, and records "Created the Polaris group Reports with
    1 permission" with ``group_id`` pointing at the renamed Ops group (AdministerUsers): the audit and the
    request say a group was created that never was, and what exists is not what was approved."""
    clock = Clock(service)
    ops = sandbox.create_group("Ops", [{"name": "AdministerUsers"}])["id"]
    service.ctx.catalog.invalidate()
    assert "went to the admins" in service.handle_command(ADMIN, 'create-group "Reports" AccessReports').text
    create = only_request(db)
    service.decide(create.id, APPROVER, approve=True)
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/groups$", status=503))  # answered 503: never landed
    service.run_due()
    assert service.get(create.id).write_started_at is not None  # waiting out the write's time budget
    changes = service.group_changes
    try:  # a rename into the name of an open create may be refused when asked: that is a fix too
        changes.ask_edit(ADMIN, ops, "Reports", changes.permissions(["AdministerUsers"], None))
        edit = _of_kind(db, EDIT_GROUP)[0]
        service.decide(edit.id, APPROVER, approve=True)
        service.decide(edit.id, APPROVER2, approve=True)  # Ops is privileged: two Organization Admins
        service.run_due()  # the rename is applied while the create waits
    except UsageError:
        pass
    clock.advance(service.polaris.read_timeout + 60)
    service.run_due()
    done = service.get(create.id)
    assert not (done.state == APPLIED and done.group_id == ops), (
        f"the create claims the renamed Ops group as its own: {done.outcome}"
    )


def test_deleting_a_group_closes_the_pending_requests_for_it(service, db, sandbox, slack, groups):
    """A pending request to join a group, then that group deleted (approved, applied): the join stays pending
    with its buttons, on `pending`, reminding and escalating until it expires, and the requester is never told;
    it can only be denied. The delete should close it (as an offboarding closes the person's requests) and tell
    the requester."""
    sandbox.create_group("Doomed", [{"name": "AccessReports", "resources": ["projects/*"]}])
    service.ctx.catalog.invalidate()
    assert "went to the approvers" in service.handle_command(REQUESTER, "request Doomed dashboards").text
    join = _of_kind(db, JOIN)[0]
    assert "went to the admins" in service.handle_command(ADMIN, "delete-group Doomed not used").text
    delete = next(r for r in _of_kind(db, "delete_group"))
    service.decide(delete.id, APPROVER, approve=True)
    service.run_due()
    assert service.get(delete.id).state == APPLIED
    left = service.get(join.id)
    assert left.state != PENDING, "the request for the deleted group is still pending"
    assert any("Doomed" in m and "deleted" in m for m in dms(slack, REQUESTER)), dms(slack, REQUESTER)


def test_a_group_called_in_can_be_created_on_chosen_projects(service, db, sandbox, groups):
    """`create-group "In" AccessReports in analytics`: the first `in` (the name) is taken for the word before
    the projects, so "AccessReports" is looked up as a project and the request refused."""
    reply = service.handle_command(ADMIN, 'create-group "In" AccessReports in analytics')
    assert "went to the admins" in reply.text, reply.text
    assert only_request(db).group_name == "In"


def test_a_name_that_differs_only_in_spacing_from_an_existing_group_is_taken(service, db, sandbox, groups):
    """Polaris has "Data  Readers" (two spaces, made in the console, privileged). The name check compares the
    typed name, its spaces folded, with each group's name lower-cased but not folded, so "Data Readers" is
    free; yet the bot's own lookups (``normalize_group_name``) fold spaces, so `request Data Readers` and
    `groups Data Readers` can no longer tell the two apart."""
    sandbox.create_group("Data  Readers", [{"name": "AdministerUsers"}])
    service.ctx.catalog.invalidate()
    reply = service.handle_command(ADMIN, 'create-group "Data Readers" AccessReports')
    assert "already a Polaris group" in reply.text, reply.text
    assert only_request_count(db) == 0


def test_an_approved_narrowing_of_a_scope_is_applied_or_not_reported_done(service, db, sandbox, groups):
    """edit-group narrows AccessReports from [demo, analytics] to [demo]. Before it is applied the group is saved
    again in Polaris with the same resources in another order (nothing changed). The apply matches the planned
    removal by exact JSON, list order included, so it removes nothing, adds AccessReports on demo (Polaris merges
    it), and records "1 permission(s) added and 1 removed": the request is applied, the card and audit say the
    scope was narrowed, and the group still grants AccessReports on analytics."""
    demo, analytics = DEMO_PROJECT_IDS
    both = [f"projects/{demo}", f"projects/{analytics}"]
    gid = sandbox.create_group("Scoped", [{"name": "AccessReports", "resources": both}])["id"]
    service.ctx.catalog.invalidate()
    form = {"name": "Scoped", "permissions": ["AccessReports"], "scope": "chosen", "projects": [demo], "group_id": gid}
    assert "went to the admins" in service.group_form.submit(ADMIN, form).text
    req = only_request(db)
    assert json.loads(req.plan)["after"] == [{"name": "AccessReports", "resources": [f"projects/{demo}"]}]
    same = [{"name": "AccessReports", "resources": list(reversed(both))}]
    sandbox._r_put_group(gid, query={}, body={"name": "Scoped", "permissions": same})  # re-saved, same grants
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    done = service.get(req.id)
    resources = [r for p in sandbox.get_group(gid)["permissions"] for r in p.get("resources", [])]
    assert not (done.state == APPLIED and f"projects/{analytics}" in resources), (
        f"{done.state}: {done.outcome} -- but the group still grants on analytics: {resources}"
    )


def test_a_delete_whose_answer_was_lost_says_it_deleted_the_group(service, db, sandbox, groups):
    """DELETE /v1/groups/{id} lands but its answer is lost (503 after handling); the client sends it again,
    gets 404, and the request is recorded "The Polaris group Doomed no longer exists; nothing to delete." The
    audit trail then says this request deleted nothing, although it is the one that deleted the group (and the
    card never says how many members lost it)."""
    gid = sandbox.create_group("Doomed", [{"name": "AccessReports", "resources": ["projects/*"]}])["id"]
    service.ctx.catalog.invalidate()
    assert "went to the admins" in service.handle_command(ADMIN, "delete-group Doomed not used").text
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    sandbox.add_fault(Fault(method="DELETE", path=r"^/v1/groups/", status=503, after_handle=True))
    service.run_due()
    done = service.get(req.id)
    assert sandbox.get_group(gid) is None and done.state == APPLIED
    assert "nothing to delete" not in done.outcome and "Deleted" in done.outcome, done.outcome


def test_a_typo_of_a_group_name_never_asks_to_delete_another_group(service, db, sandbox, groups):
    """A custom group "Data" and the predefined "Data Analyst". `delete-group data analysts` (a typo of Data
    Analyst) is read as the group "Data" with the reason "analysts": a request to delete Data, all its members
    losing it, is carded. A destructive command should take only a group named exactly (or refuse, naming the
    nearest names), not guess a shorter one from the first words."""
    sandbox.create_group("Data", [{"name": "AccessReports", "resources": ["projects/*"]}])
    service.ctx.catalog.invalidate()
    reply = service.handle_command(ADMIN, "delete-group data analysts")
    asked = [(r.kind, r.group_name, r.reason) for r in _of_kind(db, "delete_group")]
    assert asked == [], f"{asked}: {reply.text}"


def test_project_names_unreadable_never_block_a_group_detail_or_a_delete(service, db, sandbox, groups):
    """``GET /v1/projects`` refused (403: an API key with only AdministerUsers, as README's Deploying asks for,
    may not read projects; or that service down). The project names only label resources, yet `groups Scoped`
    answers "The bot's Polaris API key was refused (wrong key or missing AdministerUsers)" and nothing else, and `delete-group Scoped` is refused: one cosmetic read blocks the
    lookup and the admin operation. They should fall back to the project IDs."""
    demo = DEMO_PROJECT_IDS[0]
    sandbox.create_group("Scoped", [{"name": "AccessReports", "resources": [f"projects/{demo}"]}])
    service.ctx.catalog.invalidate()
    sandbox.add_fault(Fault(method="GET", path=r"^/v1/projects", status=403, times=None))
    detail = service.handle_command(REQUESTER, "groups Scoped")
    assert detail.blocks and demo in json.dumps(detail.blocks), detail.text
    asked = service.handle_command(ADMIN, "delete-group Scoped unused")
    assert "went to the admins" in asked.text, asked.text


def test_the_audit_trail_of_a_deleted_group_stays_reachable_from_slack(service, db, sandbox, groups):
    """`/polaris audit <group>` resolves the name against Polaris's groups now, so once delete-group is applied
    `audit Doomed` answers "There is no Polaris group called `Doomed`": who deleted it, who approved, and who
    had it can no longer be read in Slack, the one question an auditor asks about a group that is gone."""
    sandbox.create_group("Doomed", [{"name": "AccessReports", "resources": ["projects/*"]}])
    service.ctx.catalog.invalidate()
    assert "went to the admins" in service.handle_command(ADMIN, "delete-group Doomed not used").text
    req = only_request(db)
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    assert service.get(req.id).state == APPLIED
    trail = service.handle_command(ADMIN, "audit Doomed")
    assert trail.blocks and "Doomed" in json.dumps(trail.blocks) and APPROVER in json.dumps(trail.blocks), trail.text


def test_an_applied_edit_updates_the_cards_of_pending_requests_for_that_group(service, db, sandbox, slack, groups):
    """alice asks to join Team (AccessReports); her card says "What Team gives them: AccessReports". An
    edit-group adding AccessDownloadLargeData and the organization-level ManageApiKeys is approved and applied.
    Her card is never rebuilt: it still shows AccessReports alone, an approver approves on it, and she gets all
    three. The pending cards of a group should show what it grants once it is changed."""
    gid = sandbox.create_group("Team", [{"name": "AccessReports", "resources": ["projects/*"]}])["id"]
    service.ctx.catalog.invalidate()
    assert "went to the approvers" in service.handle_command(REQUESTER, "request Team dashboards").text
    join = _of_kind(db, JOIN)[0]
    changes = service.group_changes
    wider = changes.permissions(["AccessReports", "AccessDownloadLargeData", "ManageApiKeys"], None)
    changes.ask_edit(ADMIN, gid, "Team", wider)
    edit = _of_kind(db, EDIT_GROUP)[0]
    service.decide(edit.id, APPROVER, approve=True)
    service.run_due()
    assert service.get(edit.id).state == APPLIED
    shown = json.dumps(slack.find_message(CHANNEL, join.approval_ts)["blocks"])
    assert "AccessDownloadLargeData" in shown and "ManageApiKeys" in shown, shown


def test_open_group_changes_count_toward_max_open_requests(service, db, sandbox, groups):
    """MAX_OPEN_REQUESTS ("open requests per person", 5 here) holds for grants, but group changes never check
    it: one admin opens eight create-group requests, eight cards in the approval channel."""
    limit = service.ctx.settings.max_open_requests
    for i in range(limit):
        assert "went to the admins" in service.handle_command(ADMIN, f'create-group "G{i}" AccessReports').text
    extra = service.handle_command(ADMIN, 'create-group "One Too Many" AccessReports')
    assert "went to the admins" not in extra.text and only_request_count(db) == limit, extra.text


def test_a_rename_that_puts_a_group_under_an_auto_approve_rule_says_so_on_its_card(
    service, db, sandbox, slack, groups, tmp_path
):
    """The policy auto-approves requests for "Open Docs". An edit-group renames Downloads
    (AccessDownloadLargeData) to "Open Docs": its card says only "Name: Downloads → Open Docs". One admin
    approves, and from then on anyone's `request Open Docs` is approved by policy, no approver asked. The
    card of a change that moves a group under another policy rule should say what that rule does (here: requests
    auto-approved), as `groups <name>` says who approves."""
    from bot.policy import load_policy

    (tmp_path / "p.toml").write_text('[groups."Open Docs"]\nauto_approve = true\n')
    service.policy = load_policy(str(tmp_path / "p.toml"))
    gid = sandbox.create_group("Downloads", [{"name": "AccessDownloadLargeData", "resources": ["projects/*"]}])["id"]
    service.ctx.catalog.invalidate()
    changes = service.group_changes
    changes.ask_edit(ADMIN, gid, "Open Docs", changes.permissions(["AccessDownloadLargeData"], None))
    edit = only_request(db)
    card = json.dumps(slack.find_message(CHANNEL, edit.approval_ts)["blocks"]).lower()
    assert "auto" in card or "approved by policy" in card, card


def test_a_group_change_nobody_can_approve_is_refused_when_asked(sandbox, slack, db, groups):
    """ADMINS has one admin (APPROVERS others). Their create-group is accepted ("went to the admins ... I'll
    message you when it is decided") though no one may decide it: the requester never can, and the approvers
    are told "Only approvers can decide access requests". It sits until it expires. It should be refused when
    asked, saying another admin is needed."""
    from bot import wiring

    core = wiring.build_core(make_settings(sandbox, slack, db.url), db=db)  # ADMINS = {carol}
    try:
        service = core.service
        reply = service.handle_command(ADMIN, 'create-group "Solo" AccessReports')
        assert "went to the admins" not in reply.text and only_request_count(db) == 0, reply.text
    finally:
        core.service.drain()
