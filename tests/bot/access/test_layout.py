"""The house rules of bot/access: units depend downward only (no import circle), none over ~400 lines, and the
handlers talk to the facade only, never to its clients."""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[3]
ACCESS = ROOT / "bot" / "access"
#: Lowest first: a unit may import only units before it.
ORDER = [
    "reply",
    "context",
    "user_changes",
    "errors",
    "store",
    "lease_store",
    "authority",
    "verdicts",
    "approvers",
    "gains",
    "admission",
    "mentions",
    "threads",
    "direct_messages",
    "state_messages",
    "notifications",
    "asking",
    "queries",
    "audit_view",
    "paging",
    "decisions",
    "cancels",
    "reminders",
    "polaris_side",
    "bulk_side",
    "lease_ends",
    "leases",
    "removal_side",
    "user_side",
    "group_side",
    "execution",
    "requests",
    "bulk_invites",
    "lease_clicks",
    "removals",
    "group_info",
    "group_changes",
    "schedule",
    "form",
    "group_form",
    "user_updates",
    "decision_forms",
    "dispatch",
    "service",
]


def local_imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
    return found


def test_every_unit_is_in_the_order_and_imports_only_units_below_it():
    units = sorted(p.stem for p in ACCESS.glob("*.py") if p.stem != "__init__")
    assert sorted(ORDER) == units
    for unit in ORDER:
        below = set(ORDER[: ORDER.index(unit)])
        assert local_imports(ACCESS / f"{unit}.py") <= below, unit


def test_no_production_module_is_over_400_lines():
    """Issue 9: no module over about 400 lines outside the stand-ins (bot/, handlers/, app.py)."""
    paths = [ROOT / "app.py", *(ROOT / "bot").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]
    assert len(paths) > 30
    for path in paths:
        assert len(path.read_text().splitlines()) <= 400, path.relative_to(ROOT)


def test_authority_is_pure():
    imports = {
        a.name
        for n in ast.walk(ast.parse((ACCESS / "authority.py").read_text()))
        if isinstance(n, ast.Import)
        for a in n.names
    }
    modules = {
        n.module for n in ast.walk(ast.parse((ACCESS / "authority.py").read_text())) if isinstance(n, ast.ImportFrom)
    }
    assert not imports and modules <= {"__future__", "dataclasses", None, "slack"}


def test_handlers_use_the_facade_only():
    """Every ``service.<name>`` in a listener is a public method of the facade: never a client, nor a room
    (``service.notifications``, ``service.decisions`` ...) reached past it."""
    from bot.access import AccessService

    methods = {n for n, v in vars(AccessService).items() if callable(v) and not n.startswith("_")}
    used = set()
    for path in (ROOT / "handlers").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"service\.(slack|catalog|audit|polaris|db|store|ctx)\b", text), path.name
        used |= set(re.findall(r"service\.([A-Za-z_]+)", text))
    assert used and used <= methods, sorted(used - methods)
