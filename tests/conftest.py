"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when TEST_DATABASE_URL is set), the
Polaris sandbox and the Slack stand-in on 127.0.0.1, and a fully wired core and Bolt app."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.parse
import uuid

import pytest
from sqlalchemy import create_engine, text

from bot.config import Settings
from bot.db import Database, normalize_url
from bot.models import Base
from standins.polaris_sandbox import SANDBOX_API_KEY, PolarisSandbox
from standins.slack_api import SlackStandIn

for _name in [k for k in os.environ if k.startswith("SLACK_")]:
    os.environ.pop(_name)

SIGNING_SECRET = "test-signing-secret-" + "x" * 12
CHANNEL = "C0APPROVALS"
REQUESTER, APPROVER, APPROVER2, ADMIN, OTHER, GUEST, GONE, BOT = (
    "U0ALICE",
    "U0BOB",
    "U0ERIN",
    "U0CAROL",
    "U0OSCAR",
    "U0GUS",
    "U0GONE",
    "U0ROBOT",
)


def pytest_configure(config):
    config.addinivalue_line("markers", "postgresql_only: runs only on the PostgreSQL database (TEST_DATABASE_URL)")


def pytest_collection_modifyitems(config, items):
    """Tests marked postgresql_only are deselected (not skipped) where there is no PostgreSQL to run them on."""
    keep, drop = [], []
    for item in items:
        on_sqlite = getattr(item, "callspec", None) is None or item.callspec.params.get("database_url") != "postgresql"
        (drop if item.get_closest_marker("postgresql_only") and on_sqlite else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config):
    return f"database: {'PostgreSQL (TEST_DATABASE_URL)' if os.environ.get('TEST_DATABASE_URL') else 'SQLite'}"


DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request, tmp_path_factory):
    """A migrated, empty database for the session: SQLite always, and PostgreSQL (a schema of its own on the
    TEST_DATABASE_URL server) when that variable is set, so database tests run on both."""
    base = os.environ.get("TEST_DATABASE_URL")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db')}/test.sqlite3"
        Database(url).migrate()
        yield url
        return
    schema = f"pab_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    url = f"{normalize_url(base)}{sep}options=-csearch_path%3D{schema}"
    Database(url).migrate()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def db(database_url):
    """The session database, emptied before each test."""
    database = Database(database_url)
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    yield database
    database.dispose()


@pytest.fixture
def sandbox():
    box = PolarisSandbox(seed=False)
    server = box.serve()
    box.url = server.url
    yield box
    server.shutdown()


@pytest.fixture
def slack():
    standin = SlackStandIn(bot_token="xoxb-test-token-1234567890")
    standin.serve()
    for uid, name, email in (
        (REQUESTER, "alice", "alice@example.com"),
        (APPROVER, "bob", "bob@example.com"),
        (APPROVER2, "erin", "erin@example.com"),
        (ADMIN, "carol", "carol@example.com"),
        (OTHER, "oscar", "oscar@example.com"),
    ):
        first = name.capitalize()
        standin.add_user(uid, name, email, real_name=f"{first} Tester", first_name=first, last_name="Tester")
    standin.add_user(GUEST, "gus", "gus@partner.example", is_restricted=True)
    standin.add_user(GONE, "gone", "gone@example.com", deleted=True)
    standin.add_user(BOT, "robot", None, is_bot=True)
    yield standin
    standin.shutdown()


def make_settings(sandbox, slack, database_url, **overrides) -> Settings:
    values = dict(
        slack_bot_token=slack.bot_token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        polaris_api_url=sandbox.url,
        polaris_api_key=SANDBOX_API_KEY,
        database_url=database_url,
        approval_channel=CHANNEL,
        approvers=frozenset({APPROVER, APPROVER2}),
        admins=frozenset({ADMIN}),
        polaris_retry_seconds=2.0,
        polaris_max_attempts=3,
        worker_interval=0.05,
        group_cache_ttl=60,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(sandbox, slack, db):
    return make_settings(sandbox, slack, db.url)


@pytest.fixture
def core(settings, db):
    from bot import wiring

    c = wiring.build_core(settings, db=db)
    c.polaris.backoff_initial, c.polaris.backoff_max = 0.01, 0.05
    yield c
    c.service.drain()  # background work finishes before the stand-ins stop


@pytest.fixture
def service(core):
    return core.service


def seed_polaris(sandbox) -> dict:
    """Polaris accounts for the approvers (Organization Admin) and an existing analyst; returns group IDs."""
    ids = {
        name: sandbox.group_by_name(name)["id"]
        for name in ("Organization Admin", "Viewer", "Data Analyst", "Data Manager")
    }
    for email in ("bob@example.com", "erin@example.com", "carol@example.com"):
        sandbox.create_user(
            email, email.split("@")[0].capitalize(), "Tester", groups=[ids["Organization Admin"]], actions=[]
        )
    return ids


@pytest.fixture
def groups(sandbox):
    return seed_polaris(sandbox)


# ----------------------------------------------------------------------------------- signed requests
def signed_headers(
    body: str,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict:
    from slack_sdk.signature import SignatureVerifier

    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body),
    }


def slash_body(slack, user_id: str, text: str) -> str:
    return urllib.parse.urlencode(
        {
            "token": "x",
            "team_id": "T0STANDIN",
            "channel_id": "C0GENERAL",
            "user_id": user_id,
            "user_name": "u",
            "command": "/polaris",
            "text": text,
            "api_app_id": "A0TEST",
            "response_url": slack.response_url(),
            "trigger_id": f"{time.time()}.trigger",
        }
    )


def click_body(slack, user_id: str, action_id: str, request_id: str) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0STANDIN"},
        "user": {"id": user_id},
        "api_app_id": "A0TEST",
        "trigger_id": "1.2",
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1.1"},
        "response_url": slack.response_url(),
        "actions": [
            {"type": "button", "action_id": action_id, "block_id": "b", "value": request_id, "action_ts": "1.3"}
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll ``predicate`` until truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, service):
        self.now = service.clock()
        service.clock = self
        service.deliveries.jitter = lambda: 1.0  # backoff without jitter: the schedule is exact

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def serve_env(sandbox, slack, db, tmp_path, groups):
    """The environment of a ``python app.py serve`` process (``tests.test_serve.Serve``) on these stand-ins."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "POLARIS_API_URL": sandbox.url,
        "POLARIS_API_KEY": SANDBOX_API_KEY,
        "DATABASE_URL": db.url,
        "APPROVAL_CHANNEL": CHANNEL,
        "APPROVERS": f"{APPROVER},{APPROVER2}",
        "ADMINS": "",
        "WORKER_INTERVAL": "0.2",
        "POLARIS_RETRY_SECONDS": "2",
        "_LOG_DIR": str(tmp_path),
    }


@pytest.fixture
def servers():
    started: list = []  # tests.test_serve.Serve processes, killed at the end
    yield started
    for s in started:
        s.kill()
        s.log.close()
