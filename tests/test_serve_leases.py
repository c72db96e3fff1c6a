"""Time-bound access through ``python app.py serve`` (signed requests, the real worker): a 1-minute lease applied
and ended with the user's other properties intact, the end surviving kill -9 and a restart, and two processes
ending it once (PostgreSQL). The lease's end is moved into the past in the database, as the passing of its
minute would: the worker sees the same row either way, and the suite does not wait a minute."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, text, update

from bot.models import APPLIED, LEASE_ACTIVE, LEASE_ENDED, Lease
from standins.polaris_sandbox import Fault
from tests.conftest import APPROVER, REQUESTER, click_body, slash_body, wait_for
from tests.test_serve import Serve, requests_in


def lease_rows(db) -> list[Lease]:
    with db.session() as s:
        return list(s.scalars(select(Lease)))


def granted(server, db, slack, text_: str = "request Viewer for 1m dashboards") -> Lease:
    """Ask through ``serve``, approve with a signed click, wait until applied; the lease it made."""
    assert server.post(slash_body(slack, REQUESTER, text_)).status_code == 200
    req = wait_for(lambda: [r for r in requests_in(db) if r.approval_ts])[0]
    assert server.post(click_body(slack, APPROVER, "approve_request", req.id)).status_code == 200
    wait_for(lambda: requests_in(db)[0].state == APPLIED, timeout=15)
    return wait_for(lambda: [lease for lease in lease_rows(db) if lease.state == LEASE_ACTIVE])[0]


def end_now(db, lease: Lease) -> None:
    """The lease's minute has passed."""
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    with db.session() as s:
        s.execute(update(Lease).where(Lease.id == lease.id).values(ends_at=past, warn_at=past))


def test_a_one_minute_lease_is_applied_then_ended_keeping_everything_else(
    serve_env, servers, db, sandbox, slack, groups
):
    before = sandbox.create_user(
        "alice@example.com", "Alicia", "Keep", groups=[groups["Data Analyst"]], actions=["VERIFY_EMAIL"]
    )
    server = Serve(serve_env)
    servers.append(server)
    lease = granted(server, db, slack)
    req = requests_in(db)[0]
    assert lease.ends_at == req.applied_at + dt.timedelta(minutes=1)  # counted from the apply
    assert "until" in req.outcome
    time.sleep(1.0)  # several worker passes: nothing ends before its time
    assert lease_rows(db)[0].state == LEASE_ACTIVE
    end_now(db, lease)
    wait_for(lambda: lease_rows(db)[0].state == LEASE_ENDED, timeout=10)
    after = sandbox.find_user("alice@example.com")
    assert [g["id"] for g in after["groups"]] == [groups["Data Analyst"]]
    for key in ("id", "username", "email", "firstName", "lastName", "enabled", "createdOn", "actions"):
        assert after[key] == before[key], key
    deletes = sandbox.writes("DELETE")
    assert len(deletes) == 1 and deletes[0].path == f"/v1/groups/{groups['Viewer']}/members"
    card = slack.find_message(req.approval_channel, req.approval_ts)
    wait_for(lambda: "Access ended" in str(slack.find_message(req.approval_channel, req.approval_ts)["blocks"]))
    assert card is not None
    wait_for(lambda: any("has ended" in m["text"] for m in slack.messages_in(slack.dm_channel(REQUESTER))))
    server.stop()


def test_kill_9_mid_removal_then_restart_ends_the_lease_once(serve_env, servers, db, sandbox, slack, groups):
    env = dict(serve_env, POLARIS_TIMEOUT="3")  # a short removal hold on SQLite after the kill
    server = Serve(env, workers=1)
    servers.append(server)
    lease = granted(server, db, slack)
    sandbox.add_fault(Fault(method="DELETE", path=r"/members$", delay=3.0, times=1))  # Polaris is slow
    end_now(db, lease)
    wait_for(lambda: any(c.method == "DELETE" for c in sandbox.calls), timeout=10)
    server.kill()  # kill -9 while the removal waits on Polaris
    assert lease_rows(db)[0].state == LEASE_ACTIVE
    time.sleep(3.2)  # the slow DELETE lands on the sandbox side; its answer goes nowhere
    restarted = Serve(env, workers=1)
    servers.append(restarted)
    wait_for(lambda: lease_rows(db)[0].state == LEASE_ENDED, timeout=30)
    assert groups["Viewer"] not in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
    assert len(sandbox.writes("DELETE")) == 1  # the restarted worker looked first: no second DELETE
    with db.session() as s:
        ended = s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'lease.ended'")).scalar()
    assert ended == 1
    restarted.stop()


@pytest.mark.postgresql_only
def test_two_serve_processes_end_a_lease_once(serve_env, servers, db, sandbox, slack, groups):
    a, b = Serve(serve_env), Serve(serve_env)
    servers.extend([a, b])
    lease = granted(a, db, slack)
    end_now(db, lease)
    wait_for(lambda: lease_rows(db)[0].state == LEASE_ENDED, timeout=10)
    time.sleep(1.0)  # four workers get several more passes
    assert len(sandbox.writes("DELETE")) == 1
    with db.session() as s:
        ended = s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'lease.ended'")).scalar()
    assert ended == 1


def test_an_extension_through_serve_outlives_the_first_end(serve_env, servers, db, sandbox, slack, groups):
    server = Serve(serve_env)
    servers.append(server)
    lease = granted(server, db, slack, "request Viewer for 1m")
    server.post(slash_body(slack, REQUESTER, "request Viewer for 2h more time"))
    second = wait_for(lambda: [r for r in requests_in(db) if r.approval_ts and r.state == "pending"])[0]
    server.post(click_body(slack, APPROVER, "approve_request", second.id))
    wait_for(lambda: [r for r in requests_in(db) if r.id == second.id][0].state == APPLIED, timeout=15)
    extended = lease_rows(db)[0]
    assert extended.id == lease.id and extended.extended_by == second.id
    assert extended.ends_at > lease.ends_at + dt.timedelta(hours=1)
    assert lease_rows(db)[0].state == LEASE_ACTIVE  # (the unit tests move a clock past the first end)
    assert groups["Viewer"] in [g["id"] for g in sandbox.find_user("alice@example.com")["groups"]]
    server.stop()
