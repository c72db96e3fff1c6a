"""Admission (bot/access/admission.py): the rate limit, the command audit rows, events once.

Moved from tests/bot/test_workflow.py; against the Polaris sandbox (HTTP) and the Slack stand-in, on SQLite or
PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

from tests.bot.access.helpers import audit_actions, only_request_count
from tests.conftest import OTHER, REQUESTER, make_settings


def test_command_rate_limit(service, db, sandbox, slack, groups):
    service.settings = make_settings(sandbox, slack, db.url, max_commands_per_minute=3)
    for _ in range(3):
        assert "Polaris access bot" in service.handle_command(OTHER, "help").text
    assert "wait a moment" in service.handle_command(OTHER, "help").text


def test_every_command_and_click_is_audited(service, db, groups):
    service.handle_command(REQUESTER, "help")
    service.handle_command(REQUESTER, "nonsense")
    actions = audit_actions(db)
    assert (REQUESTER, "command", "ok") in actions and (REQUESTER, "command.invalid", "refused") in actions


def test_an_events_api_delivery_is_let_in_once(service):
    assert service.first_delivery("Ev0001") is True
    assert service.first_delivery("Ev0001") is False
    assert service.first_delivery("") is True  # no ID: never deduplicated


def test_the_request_form_refuses_a_guest_and_audits_it(service, db, groups):
    from tests.conftest import GUEST

    assert "Guest accounts" in service.form_refusal(GUEST)
    assert ("command", "refused") in [(a, o) for _, a, o in audit_actions(db)]
    assert service.form_refusal(REQUESTER) is None


def test_bad_commands_and_form_submissions_count_against_the_rate_limit(sandbox, slack, db, groups):
    """Final check: a command that does not parse wrote only ``command.invalid`` (not counted), and the form's
    submission was never limited: any number of them was answered and audited."""
    from bot import wiring

    core = wiring.build_core(make_settings(sandbox, slack, db.url, max_commands_per_minute=3), db=db)
    service = core.service
    try:
        answers = [service.handle_command(REQUESTER, "frobnicate").text for _ in range(5)]
        assert [("commands in a minute" in a) for a in answers] == [False, False, False, True, True], answers
        reply = service.submit_form(REQUESTER, groups["Viewer"], "dashboards")
        assert "commands in a minute" in reply.text
        assert only_request_count(db) == 0
    finally:
        service.drain()


def test_the_rate_limit_window_is_shared_by_processes_and_starts_again_after_a_minute(sandbox, slack, db, groups):
    """Issue 13: the limit is one upserted row per person (command_windows), not a COUNT over audit_log."""
    import datetime as dt

    from bot import wiring
    from bot.db import Database

    settings = make_settings(sandbox, slack, db.url, max_commands_per_minute=3)
    one = wiring.build_core(settings, db=db).service
    other_db = Database(db.url)  # another process: its own engine on the same database
    two = wiring.build_core(settings, db=other_db).service
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    one.clock = two.clock = lambda: now
    try:
        for service in (one, two, one):
            assert "Polaris access bot" in service.handle_command(OTHER, "help").text
        assert "wait a moment" in two.handle_command(OTHER, "help").text
        assert "Polaris access bot" in one.handle_command(REQUESTER, "help").text  # per person
        later = now + dt.timedelta(seconds=61)
        one.clock = two.clock = lambda: later
        assert "Polaris access bot" in two.handle_command(OTHER, "help").text
    finally:
        one.drain()
        two.drain()
        other_db.dispose()
