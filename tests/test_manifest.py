"""``manifest.yml`` validated against Slack's official app manifest JSON schema (slackapi/manifest-schema, MIT),
kept in ``../shared/slack/manifest-schema/`` beside the repository; and the manifest asks for what the bot uses."""

from __future__ import annotations

import copy
import json
import os
import pathlib

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

ROOT = pathlib.Path(__file__).resolve().parent.parent
_REMOTE = "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"


def schema_dir() -> pathlib.Path | None:
    """``shared/slack/manifest-schema`` beside the repository (or beside a folder holding it, as for a git
    worktree), or ``MANIFEST_SCHEMA_DIR``."""
    if os.environ.get("MANIFEST_SCHEMA_DIR"):
        return pathlib.Path(os.environ["MANIFEST_SCHEMA_DIR"])
    for parent in ROOT.parents:
        candidate = parent / "shared" / "slack" / "manifest-schema"
        if (candidate / "manifest.schema.json").exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def validator():
    folder = schema_dir()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("Slack's manifest schema is not in ../shared/slack/manifest-schema (set MANIFEST_SCHEMA_DIR)")
        pytest.skip("Slack's manifest schema is not in ../shared/slack/manifest-schema (set MANIFEST_SCHEMA_DIR)")
    top = json.loads((folder / "manifest.schema.json").read_text())
    resources = [
        (_REMOTE + name, Resource.from_contents(json.loads((folder / name).read_text())))
        for name in ("manifest.schema.1.0.0.json", "manifest.schema.2.0.0.json")
    ]
    # The top-level schema $refs the versioned files by their public URL: served from the local copies.
    registry = Registry().with_resources(resources)
    return jsonschema.Draft7Validator(top, registry=registry)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_is_valid_under_slacks_schema(validator, manifest):
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["oauth_config"]["scopes"].update(bot="commands"),  # a string, not a list
        lambda m: m["features"]["slash_commands"][0].pop("command"),
        lambda m: m["display_information"].update(name="x" * 80),  # over 35 characters
        lambda m: m["settings"]["event_subscriptions"].update(bot_events=["app_mention", "app_mention"]),
    ],
)
def test_the_schema_check_is_real(validator, manifest, change):
    broken = copy.deepcopy(manifest)
    change(broken)
    assert list(validator.iter_errors(broken))


def test_manifest_asks_for_what_the_bot_uses(manifest):
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"commands", "chat:write", "users:read", "users:read.email", "im:write"} <= scopes
    assert {"app_home_opened", "app_mention", "message.im"} <= events
    assert {"app_mentions:read", "im:history"} <= scopes  # what those two events need
    home = manifest["features"]["app_home"]
    assert home["home_tab_enabled"] and home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"]
    readme = (ROOT / "README.md").read_text()
    for name in scopes | events:
        assert f"`{name}`" in readme, f"README does not name {name}"
