"""Trial finding (issue 11, the group form): every plain_text of the form is clipped to 24 characters (the
modal title's limit), so the projects field's label reads "Projects (when scoped t…" in Slack. An input
block's label may have 2000 characters."""

from __future__ import annotations

from bot.polaris import Permission
from bot.views.groups import group_modal


def test_the_projects_label_is_not_cut():
    view = group_modal([Permission("ViewTables", ("projects/*",))], {"p1": "analytics", "p2": "demo"})
    labels = [b["label"]["text"] for b in view["blocks"] if b.get("type") == "input"]
    assert "Projects (when scoped to chosen ones)" in labels, labels
