"""Trial finding (issue 11, what the approver grants): the card's gains name a project by its resource string
(``projects/5c9116aa-…``) where ``groups <name>`` and the create-group card say *analytics*; the approver cannot
tell which project is granted."""

from __future__ import annotations

from standins.polaris_sandbox import DEMO_PROJECT_IDS
from tests.handlers.test_gains import _ask, _card, _text

ANALYTICS = DEMO_PROJECT_IDS[1]


def test_gains_name_the_project(bolt, slack, groups, sandbox, db):
    sandbox.create_group("Scoped", [{"name": "AccessReports", "resources": [f"projects/{ANALYTICS}"]}])
    sandbox.create_user("alice@example.com", "Alice", "Tester", groups=[groups["Viewer"]], actions=[])
    _ask(bolt, slack, db, "request Scoped reports")
    text = _text(_card(slack))
    gained = text.split("gives them")[1]
    assert "analytics" in gained, gained
    assert f"projects/{ANALYTICS}" not in gained, gained
