"""The house rules of the layout, read from the source with ``ast`` (nothing is imported):

- ``bot/`` and ``handlers/`` (what ``serve`` runs) never import the dev and test stand-ins in ``standins/``;
- the demo console never imports ``app.py`` (the CLI, which runs it): both build the bot through ``bot.wiring``.
"""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_files(folder: str) -> list[str]:
    found = []
    for base, dirs, files in os.walk(os.path.join(ROOT, folder)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.join(base, f) for f in files if f.endswith(".py")]
    return sorted(found)


def module_of(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def imported_modules(path: str) -> set[str]:
    """Every module ``path`` imports, at any depth (also inside functions), relative imports resolved."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    module = module_of(path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def imports_of(path: str, prefix: str) -> set[str]:
    return {m for m in imported_modules(path) if m == prefix or m.startswith(prefix + ".")}


def test_the_resolver_sees_relative_and_nested_imports(tmp_path):
    sample = os.path.join(ROOT, "bot", "views", "cards.py")
    assert "bot.polaris" in imported_modules(sample)  # ``from ..polaris import ...``
    assert imports_of(os.path.join(ROOT, "standins", "console.py"), "standins")  # it uses the stand-ins


def test_production_code_never_imports_the_standins():
    files = python_files("bot") + python_files("handlers")
    assert len(files) > 10
    offenders = {os.path.relpath(p, ROOT): sorted(imports_of(p, "standins")) for p in files}
    assert {p: m for p, m in offenders.items() if m} == {}


def test_no_circle_between_the_cli_the_console_and_the_wiring():
    """``app.py`` runs the demo console (``python app.py demo``); the console builds the bot through
    ``bot.wiring``, never through ``app``; the wiring knows neither."""
    app, console = os.path.join(ROOT, "app.py"), os.path.join(ROOT, "standins", "console.py")
    wiring = os.path.join(ROOT, "bot", "wiring.py")
    assert imports_of(console, "app") == set()
    assert "bot.wiring" in imported_modules(console) and "bot.wiring" in imported_modules(app)
    assert imports_of(wiring, "app") == set() and imports_of(wiring, "standins") == set()
