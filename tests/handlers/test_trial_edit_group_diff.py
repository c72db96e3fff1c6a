"""Trial findings (issue 11, edit-group): the card's Added/Removed and the apply compare permissions with their
``resources`` in order, so a permission kept as it was, whose projects the form lists in another order, is shown
(and applied) as removed and added again."""

from __future__ import annotations

from bot.models import APPLIED, EDIT_GROUP
from standins.polaris_sandbox import DEMO_PROJECT_IDS
from tests.conftest import ADMIN, APPROVER
from tests.handlers.conftest import dispatch
from tests.handlers.test_groups import (  # noqa: F401 - the core fixture
    ANALYTICS,
    _card,
    _card_of,
    _click,
    _opened_form,
    _requests,
    _state,
    _submission,
    core,
)
from tests.conftest import wait_for

DEMO = DEMO_PROJECT_IDS[0]


def _ask_edit_adding_access_alerts(bolt, core, slack, sandbox, db):  # noqa: F811
    # the group as Polaris has it: both projects, demo first (the order the console and Polaris show)
    scoped = [{"name": "AdministerReports", "resources": [f"projects/{DEMO}", f"projects/{ANALYTICS}"]}]
    alerts = sandbox.create_group("Alerts and reports", scoped)
    view = _opened_form(bolt, core, slack, ADMIN, "edit-group alerts and reports")
    # the form lists the projects by name (analytics, demo); the admin only adds AccessAlerts
    response = dispatch(
        bolt,
        _submission(
            view, ADMIN, "Alerts and reports", ["AdministerReports", "AccessAlerts"], "chosen", [ANALYTICS, DEMO]
        ),
    )
    assert response.status == 200
    core.service.drain()
    return alerts, _card_of(db, EDIT_GROUP)


def test_card_lists_only_the_permission_added(bolt, core, slack, sandbox, db):  # noqa: F811
    _alerts, req = _ask_edit_adding_access_alerts(bolt, core, slack, sandbox, db)
    card = _card(slack, req)
    assert "*Removed*: nothing" in card, card
    assert "*Added*: *analytics*: AccessAlerts; *demo*: AccessAlerts" in card, card


def test_outcome_counts_one_added_none_removed(bolt, core, slack, sandbox, db):  # noqa: F811
    _alerts, req = _ask_edit_adding_access_alerts(bolt, core, slack, sandbox, db)
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    outcome = next(r for r in _requests(db) if r.id == req.id).outcome
    assert "1 permission added and 0 removed" in outcome, outcome  # was "1 permission(s)": a proper plural now


def test_a_removal_made_in_polaris_meanwhile_is_not_undone(bolt, core, slack, sandbox, db):  # noqa: F811
    alerts, req = _ask_edit_adding_access_alerts(bolt, core, slack, sandbox, db)
    # meanwhile someone removes AdministerReports in Polaris; the edit only asked to add AccessAlerts
    with sandbox.lock:
        g = sandbox._groups[alerts["id"]]
        g["permissions"] = [p for p in g["permissions"] if p["name"] != "AdministerReports"]
    _click(bolt, core, slack, APPROVER, req)
    wait_for(lambda: _state(db, req) == APPLIED, timeout=15)
    names = sorted(p["name"] for p in sandbox.get_group(alerts["id"])["permissions"])
    assert names == ["AccessAlerts"], names
