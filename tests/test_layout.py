"""The house rules of the layout, read from the source with ``ast`` (nothing is imported):

- ``bot/`` and ``handlers/`` (what ``serve`` runs) never import the dev and test stand-ins in ``standins/``;
- ``app.py`` (the CLI) and the demo console do not import each other: both build the bot through ``bot.wiring``.
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
    sample = os.path.join(ROOT, "bot", "views.py")
    assert "bot.polaris" in imported_modules(sample)  # ``from .polaris import ...``
    assert imports_of(os.path.join(ROOT, "standins", "console.py"), "standins")  # it uses the stand-ins


def test_production_code_never_imports_the_standins():
    files = python_files("bot") + python_files("handlers")
    assert len(files) > 10
    offenders = {os.path.relpath(p, ROOT): sorted(imports_of(p, "standins")) for p in files}
    assert {p: m for p, m in offenders.items() if m} == {}
