"""The audit settings (issue 12): AUDIT_KEY (a secret: out of repr, redacted from logs), AUDIT_CHANNEL and
RECONCILE_INTERVAL, with every problem reported at once; ``load_audit_settings`` for verify and export."""

from __future__ import annotations

import logging

import pytest

from bot import redact
from bot.config import ConfigError, load_audit_settings, load_settings
from tests.bot.test_config import env

KEY = "audit-key-SeCrEt-0123456789"


def test_defaults_and_values():
    s = load_settings(env())
    assert (s.audit_key, s.audit_channel, s.reconcile_interval) == (None, None, 3600.0)
    s = load_settings(env(AUDIT_KEY=KEY, AUDIT_CHANNEL="C0AUDIT", RECONCILE_INTERVAL="900"))
    assert (s.audit_key, s.audit_channel, s.reconcile_interval) == (KEY, "C0AUDIT", 900.0)
    assert KEY not in repr(s) and KEY in s.secrets()


def test_every_audit_problem_is_named_at_once():
    with pytest.raises(ConfigError) as e:
        load_settings(env(AUDIT_KEY="short", AUDIT_CHANNEL="#audit", RECONCILE_INTERVAL="10"))
    problems = e.value.problems
    assert any(p.startswith("AUDIT_KEY must be at least 16") for p in problems)
    assert any(p.startswith("AUDIT_CHANNEL must be a channel ID") for p in problems)
    assert any(p.startswith("RECONCILE_INTERVAL must be at least 60") for p in problems)
    assert all("short" not in p for p in problems)  # the key's value is never repeated


def test_reconcile_interval_has_an_upper_bound():
    with pytest.raises(ConfigError, match="RECONCILE_INTERVAL must be between 60 and 604800"):
        load_settings(env(RECONCILE_INTERVAL="9999999"))


def test_the_key_never_reaches_a_log_line(caplog):
    load_settings(env(AUDIT_KEY=KEY))
    assert KEY not in redact.redact(f"oops {KEY}")
    redact.install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("bot.test").info("the key is %s", KEY)
    assert KEY not in caplog.text


def test_verify_and_export_need_only_the_database_and_the_key():
    assert load_audit_settings({"AUDIT_KEY": KEY}) == ("sqlite:///polaris_access_bot.sqlite3", KEY)
    with pytest.raises(ConfigError) as e:
        load_audit_settings({"DATABASE_URL": "mysql://x/y", "AUDIT_KEY": "short"})
    assert len(e.value.problems) == 2
