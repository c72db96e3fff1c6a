"""Every command README.md shows works as written (issue 8, finding 15): on a fresh machine ``python app.py
migrate`` failed with ``No module named 'sqlalchemy'`` because the Deploying section had no install step.

Commands are read from README's fenced code blocks and inline code; each is checked against the real thing:
``app.py`` subcommands (its own ``--help``), Makefile targets, and the files scripts name."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
MAKEFILE = open(os.path.join(ROOT, "Makefile"), encoding="utf-8").read()
PROGRAMS = {"python", "python3", ".venv/bin/python", "pip", ".venv/bin/pip", "make", "bash", ".ci/run", "printf"}
VENV_PYTHON = ".venv/bin/python"


def sections(text: str) -> dict[str, str]:
    """``## Title`` -> its text (with its ``###`` subsections)."""
    parts = re.split(r"^## +(.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def shown_commands(text: str) -> list[list[str]]:
    """Every command line shown in ``text``, in order, as argv lists (pipes and ``&&`` split)."""
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"^[ \t]*```[a-z]*\n(.*?)^[ \t]*```", text, flags=re.M | re.S):
        offset = m.start(1)
        for line in m.group(1).splitlines(keepends=True):
            found.append((offset, re.sub(r"\s+#\s.*$", "", line.strip())))
            offset += len(line)
    prose = re.sub(r"^[ \t]*```.*?^[ \t]*```", lambda m: " " * len(m.group(0)), text, flags=re.M | re.S)
    found += [(m.start(), " ".join(m.group(1).split())) for m in re.finditer(r"`([^`]+)`", prose)]
    commands = []
    for _, line in sorted(found):
        for part in re.split(r"\s*(?:\|\||&&|\|)\s*", line):
            try:
                argv = shlex.split(part)
            except ValueError:
                continue
            if argv and argv[0] in PROGRAMS and (len(argv) > 1 or argv[0] == ".ci/run"):  # `make` alone: a name
                commands.append(argv)
    return commands


def app_subcommands() -> set[str]:
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(re.search(r"\{([a-z,-]+)\}", out.stdout).group(1).split(","))


def make_targets() -> dict[str, str]:
    """target -> its prerequisites."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+):(?!=)(.*)$", MAKEFILE, flags=re.M)}


def targets_recipe(target: str) -> str:
    """The recipe lines of ``target`` in the Makefile."""
    m = re.search(r"^" + re.escape(target) + r":.*\n((?:\t.*\n)+)", MAKEFILE, flags=re.M)
    return m.group(1) if m else ""


def app_py_uses(commands):
    return [c for c in commands if "app.py" in c]


def test_readme_shows_commands_at_all():
    commands = shown_commands(README)
    assert len(app_py_uses(commands)) >= 5 and any(c[0] == "make" for c in commands)


def test_every_app_py_subcommand_shown_exists_and_runs():
    subcommands = app_subcommands()
    for argv in app_py_uses(shown_commands(README)):
        sub = argv[argv.index("app.py") + 1]
        assert sub in subcommands, argv
    for sub in {c[c.index("app.py") + 1] for c in app_py_uses(shown_commands(README))}:
        out = subprocess.run(
            [sys.executable, "app.py", sub, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and "usage: app.py" in out.stdout, (sub, out.stderr)


def test_every_make_target_shown_exists():
    targets = make_targets()
    shown = [c for c in shown_commands(README) if c[0] == "make"]
    assert shown
    for argv in shown:
        assert len(argv) == 2 and argv[1] in targets, argv


def test_every_script_and_requirements_file_shown_exists():
    for argv in shown_commands(README):
        paths = [a for a in argv[1:] if re.search(r"\.(py|sh|txt)$", a)]
        if argv[0] in (".ci/run",):
            paths.append(argv[0])
        for path in paths:
            if path != "app.py" or argv[0] != "python":
                assert os.path.exists(os.path.join(ROOT, path)), (path, argv)


def test_deploying_installs_the_requirements_before_running_anything():
    deploying = sections(README)["Deploying"]
    commands = shown_commands(deploying)
    install = next(
        (i for i, c in enumerate(commands) if c[0].endswith("pip") and c[1:] == ["install", "-r", "requirements.txt"]),
        None,
    )
    assert install is not None, "the Deploying section has no `pip install -r requirements.txt` step"
    venv = next((i for i, c in enumerate(commands) if c[:3] == ["python3", "-m", "venv"]), None)
    assert venv is not None and venv < install and commands[install][0] == f"{commands[venv][3]}/bin/pip"
    runs = [i for i, c in enumerate(commands) if "app.py" in c or c[0] == "make"]
    assert runs and min(runs) > install


def test_deploying_runs_the_bot_with_the_interpreter_that_has_the_requirements():
    """A bare ``python`` on a fresh machine has none of requirements.txt (or does not exist: only python3)."""
    targets = make_targets()
    for argv in shown_commands(sections(README)["Deploying"]):
        if "app.py" in argv:
            assert argv[0] == VENV_PYTHON, argv
        if argv[0] == "make":
            # The runtime requirements, as Deploying installs them, not the dev tools (final check).
            assert targets[argv[1]].split() == ["$(RUNTIME)"], f"make {argv[1]} must install requirements.txt only"
    assert "-r requirements.txt" in targets_recipe("$(RUNTIME)") and "requirements-dev" not in targets_recipe(
        "$(RUNTIME)"
    )


def test_the_deploy_install_has_no_test_tools_and_the_dev_file_builds_on_it():
    """New-user trial: Deploying's `pip install -r requirements.txt` put pytest and hypothesis in production."""
    runtime = open(os.path.join(ROOT, "requirements.txt")).read().lower()
    dev = open(os.path.join(ROOT, "requirements-dev.txt")).read().lower().splitlines()
    for tool in ("pytest", "hypothesis", "responses", "openapi-schema-validator"):
        assert tool not in runtime
        assert any(line.startswith(tool + "==") for line in dev)
    assert "-r requirements.txt" in dev
