"""The request store (bot/access/store.py): compare-and-set updates decide once; the set() seam; the queries."""

from __future__ import annotations

import datetime as dt
import uuid

from bot.access.store import RequestStore
from bot.models import APPROVED, DENIED, FAILED, JOIN, PENDING, AccessRequest

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc)


def add(db, store, *, state=PENDING, email="a@example.com", group="g1", expires=NOW + dt.timedelta(hours=1)):
    req = AccessRequest(
        id=str(uuid.uuid4()),
        kind=JOIN,
        state=state,
        requester_id="U0A",
        target_email=email,
        group_id=group,
        group_name="G",
        reason="",
        approvals_required=1,
        open_key=AccessRequest.make_open_key(email, group) if state == PENDING else None,
        created_at=NOW,
        updated_at=NOW,
        expires_at=expires,
        post_attempts=0,
        card_stale=False,
        attempts=0,
    )
    with db.session() as s:
        store.insert(req, session=s)
    return req.id


def test_compare_and_set_changes_a_request_once(db):
    store = RequestStore(db)
    rid = add(db, store)
    assert store.update(rid, expect=PENDING, state=DENIED, decided_by="U0B") == 1
    assert store.update(rid, expect=PENDING, state=APPROVED, decided_by="U0C") == 0  # the loser
    assert (store.get(rid).state, store.get(rid).decided_by) == (DENIED, "U0B")


def test_expiry_conditions(db):
    store = RequestStore(db)
    rid = add(db, store, expires=NOW)
    assert store.update(rid, expect=PENDING, live_at=NOW, updated_at=NOW) == 0  # expired at NOW: not live
    assert store.update(rid, expect=PENDING, expired_at=NOW - dt.timedelta(seconds=1), updated_at=NOW) == 0
    assert store.update(rid, expect=PENDING, expired_at=NOW, updated_at=NOW) == 1


def test_set_is_unconditional_and_open_duplicates_are_found(db):
    store = RequestStore(db)
    rid = add(db, store)
    assert store.open_duplicate(JOIN, "A@example.com", "g1").id == rid
    assert store.open_duplicate(JOIN, "a@example.com", "g2") is None
    assert store.count_open("U0A") == 1
    store.set(rid, state=FAILED, outcome="x")
    assert store.get(rid).state == FAILED and store.count_open("U0A") == 0
    assert store.open_duplicate(JOIN, "a@example.com", "g1") is None


def test_approvals_are_counted_in_order_and_revoked(db):
    store = RequestStore(db)
    rid = add(db, store)
    with db.session() as s:
        assert store.add_approval(rid, "U0B", NOW, session=s) == 1
        assert store.add_approval(rid, "U0C", NOW, session=s) == 2
        assert store.has_approved(rid, "U0B", session=s) and not store.has_approved(rid, "U0D", session=s)
    assert store.approver_ids(rid) == ["U0B", "U0C"]
    with db.session() as s:
        store.revoke_approval(rid, "U0B", session=s)
    assert store.approver_ids(rid) == ["U0C"]


def test_due_work(db):
    store = RequestStore(db)
    overdue = add(db, store, expires=NOW - dt.timedelta(seconds=1), email="b@example.com")
    approved = add(db, store, email="c@example.com")
    store.set(approved, state=APPROVED, decided_at=NOW)
    work = store.due_work(NOW + dt.timedelta(minutes=1), 20)
    assert overdue in work.overdue and [tuple(d) for d in work.due] == [(approved, "c@example.com")]
    assert overdue in work.unposted  # pending, never posted, older than 30 s, no card owed
