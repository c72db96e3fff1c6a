"""``GET /metrics`` (bot/metrics.py, bot/metrics_db.py): a scrape changes after a command, labels are bounded and
carry no personal data, the database gauges follow the tables, and ``serve`` with two gunicorn workers sums
both workers' counters (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import datetime as dt
import glob
import os
import re

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot import metrics
from bot.models import AccessRequest
from tests.conftest import APPROVER, REQUESTER, slash_body, wait_for
from tests.test_http_edge import call, signed


def samples(body: bytes | str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    text_ = body.decode() if isinstance(body, bytes) else body
    out = {}
    for family in text_string_to_metric_families(text_):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict, name: str, **labels) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(edge) -> dict:
    status, headers, body = call(edge, method="GET", path="/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    return samples(body)


@pytest.fixture
def edge(core, groups):
    from bot import wiring

    bolt = wiring.build_bolt_app(core)
    yield wiring.make_wsgi(core, bolt)
    bolt.listener_pool.shutdown(wait=True)


def slash(edge, slack, user: str, words: str) -> None:
    raw, headers = signed(slash_body(slack, user, words))
    assert call(edge, raw, headers)[0] == 200


P = "polaris_access_bot_"


def test_path_templates_and_command_names_are_bounded():
    assert metrics.path_template("/v1/users/3f2a-11/effectivepermissions") == "/v1/users/{id}/effectivepermissions"
    assert metrics.path_template("/v1/groups/abc/members?top=5") == "/v1/groups/{id}/members"
    assert metrics.path_template("/v1/users") == "/v1/users"
    assert metrics.path_template("/v1/users/alice@example.com") == "/v1/users/{id}"
    assert metrics.command_name("whois alice@example.com") == "whois"
    assert metrics.command_name("reset") == "reset-password"
    assert metrics.command_name("") == "help"
    assert metrics.command_name("drop-table x") == "other"


def test_a_scrape_changes_after_a_command(edge, core, slack, sandbox):
    before = scrape(edge)
    slash(edge, slack, REQUESTER, "groups")
    core.service.drain()
    after = scrape(edge)
    commands = P + "commands_total"
    assert (
        value(after, commands, command="groups", outcome="ok")
        == value(before, commands, command="groups", outcome="ok") + 1
    )
    polaris = P + "polaris_calls_total"
    assert value(after, polaris, method="GET", path="/v1/groups", status="200") >= 1
    assert value(after, P + "polaris_call_duration_seconds_count", method="GET", path="/v1/groups") >= 1
    slack_calls = P + "slack_calls_total"
    assert value(after, slack_calls, method="users.info", error="ok") > value(
        before, slack_calls, method="users.info", error="ok"
    )
    assert value(after, P + "database_up") == 1


def test_decisions_and_work_queue_follow_the_tables(edge, core, db, slack, sandbox):
    from sqlalchemy import select

    from bot.models import AccessRequest

    slash(edge, slack, REQUESTER, "request Viewer dashboards please")
    core.service.drain()
    with db.session() as s:
        rid = s.scalar(select(AccessRequest.id))
    before = scrape(edge)
    assert value(before, P + "requests", kind="join", state="pending") == 1
    assert value(before, P + "requests", kind="join", state="applied") == 0
    assert core.service.decide(rid, REQUESTER, True)  # refused: one's own request
    core.service.decide(rid, APPROVER, True)  # approved, not yet applied: due in the apply queue
    after = scrape(edge)
    decisions = P + "decisions_total"
    assert (
        value(after, decisions, decision="refused", outcome="refused")
        == value(before, decisions, decision="refused", outcome="refused") + 1
    )
    assert (
        value(after, decisions, decision="approve", outcome="ok")
        >= value(before, decisions, decision="approve", outcome="ok") + 1
    )
    assert value(after, P + "requests", kind="join", state="approved") == 1
    assert value(after, P + "work_queue_depth", queue="apply") == 1
    assert value(after, P + "work_queue_oldest_due_seconds", queue="apply") >= 0
    core.service.run_due()
    applied = scrape(edge)
    assert value(applied, P + "requests", kind="join", state="applied") == 1
    assert value(applied, P + "work_queue_depth", queue="apply") == 0


def test_expiry_queue_age_uses_the_clock(edge, core, db, slack, sandbox):
    from tests.conftest import Clock

    clock = Clock(core.service)
    slash(edge, slack, REQUESTER, "request Viewer dashboards please")
    core.service.drain()
    clock.advance(2 * 86400)
    got = scrape(edge)
    assert value(got, P + "work_queue_depth", queue="expiry") == 1
    assert value(got, P + "work_queue_oldest_due_seconds", queue="expiry") == pytest.approx(86400, abs=120)


def test_no_personal_data_or_ids_in_labels(edge, core, slack, sandbox):
    slash(edge, slack, REQUESTER, "whois bob@example.com")
    slash(edge, slack, REQUESTER, "request Viewer reason")
    core.service.drain()
    status, _, body = call(edge, method="GET", path="/metrics")
    labels = " ".join(re.findall(r"\{([^}]*)\}", body.decode()))
    assert "@" not in labels and "U0" not in labels and slack.bot_token not in body.decode()
    for user in sandbox.users.values() if isinstance(getattr(sandbox, "users", None), dict) else []:
        assert str(user.get("id")) not in labels


def test_leases_active_and_overdue(edge, core, db, groups):
    """Time-bound grants: one in force, one past its end and not removed yet (the worker has not run)."""
    from bot.models import Lease

    service = core.service
    got = scrape(edge)
    assert value(got, P + "leases_active") == 0 and value(got, P + "leases_overdue") == 0
    for text_ in ("request Viewer for 1h", "request Data Analyst for 2h"):
        service.handle_command(REQUESTER, text_)
    with db.session() as s:
        for req in s.scalars(select(AccessRequest)):
            service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    got = scrape(edge)
    assert value(got, P + "leases_active") == 2 and value(got, P + "leases_overdue") == 0
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    with db.session() as s:
        lease = s.scalars(select(Lease).where(Lease.group_name == "Viewer")).one()
        lease.ends_at = past
    got = scrape(edge)
    assert value(got, P + "leases_active") == 2 and value(got, P + "leases_overdue") == 1


def test_a_database_that_does_not_answer_is_database_up_0(core):
    collector = metrics.Exposition(core.db, core.service.clock)
    core.db.engine.dispose()
    real = core.db.session

    def broken():
        raise RuntimeError("down")

    core.db.session = broken
    try:
        status, body, _ = collector()
    finally:
        core.db.session = real
    got = samples(body)
    assert status == 200 and value(got, P + "database_up") == 0


@pytest.mark.postgresql_only
def test_metrics_under_two_gunicorn_workers_sum_both(serve_env, servers, db, slack, tmp_path):
    from tests.test_serve import Serve

    folder = tmp_path / "prom"
    server = Serve({**serve_env, "PROMETHEUS_MULTIPROC_DIR": str(folder)}, workers=2)
    servers.append(server)
    n = 12
    for _ in range(n):
        assert server.post(slash_body(slack, REQUESTER, "help")).status_code == 200
    wait_for(lambda: sum(1 for r in slack.responses) >= n, timeout=20)
    pids = {re.search(r"_(\d+)\.db$", p).group(1) for p in glob.glob(str(folder / "*.db"))}
    assert len(pids) >= 2, f"only one worker wrote metrics: {sorted(os.listdir(folder))}"
    seen, workers = set(), set()
    for _ in range(10):  # new connections: each may land on either worker
        body = requests.get(server.url + "/metrics", timeout=5, headers={"Connection": "close"}).text
        got = samples(body)
        seen.add(value(got, P + "commands_total", command="help", outcome="ok"))
        workers.add(value(got, P + "serve_workers"))
    assert seen == {float(n)} and workers == {2.0}
