"""Tests for bot.config: ``load_settings(env)`` validation, defaults, and secrets kept out of ``repr``."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from bot.config import DEFAULT_DATABASE_URL, ConfigError, Settings, load_settings

BOT_TOKEN = "xoxb-1111-2222-SeCrEtBoTtOkEn"
APP_TOKEN = "xapp-1-A111-333-SeCrEtApPtOkEn"
SIGNING = "f00dfeedsigningsecret0123456789"
API_KEY = "pok_SeCrEtPoLaRiSkEy0123456789"

BASE = {
    "SLACK_BOT_TOKEN": BOT_TOKEN,
    "SLACK_SIGNING_SECRET": SIGNING,
    "POLARIS_API_URL": "https://myorg.api.imply.io/",
    "POLARIS_API_KEY": API_KEY,
    "APPROVAL_CHANNEL": "C012ABCDEF",
    "APPROVERS": "U012ABCDEF, W0ENTERPRISE",
}


def env(**changes):
    e = dict(BASE)
    for k, v in changes.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def config_error(environ, **kw) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(environ, **kw)
    return str(excinfo.value)


@pytest.fixture(autouse=True)
def _no_slack_env(monkeypatch):
    """Settings must come only from the mapping given; clear the process environment's SLACK_*."""
    import os

    for name in list(os.environ):
        if name.startswith(("SLACK_", "POLARIS_")) or name in ("APPROVERS", "ADMINS", "APPROVAL_CHANNEL", "PORT"):
            monkeypatch.delenv(name, raising=False)


# -------------------------------------------------------------------------------------------- valid
def test_minimal_valid_settings_and_defaults():
    s = load_settings(BASE)
    assert isinstance(s, Settings)
    assert s.slack_bot_token == BOT_TOKEN
    assert s.slack_signing_secret == SIGNING
    assert s.polaris_api_key == API_KEY
    assert s.polaris_api_url == "https://myorg.api.imply.io"  # trailing slash removed
    assert s.approval_channel == "C012ABCDEF"
    assert s.approvers == frozenset({"U012ABCDEF", "W0ENTERPRISE"})
    assert s.admins == frozenset()
    assert s.deciders == s.approvers
    # defaults
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.slack_app_token is None
    assert s.slack_api_url is None
    assert s.port == 3000 and isinstance(s.port, int)
    assert s.request_ttl == 24 * 3600.0
    assert s.polaris_timeout == 10.0
    assert s.polaris_retry_seconds == 30.0
    assert s.polaris_max_attempts == 5 and isinstance(s.polaris_max_attempts, int)
    assert s.worker_interval == 5.0
    assert s.group_cache_ttl == 60.0
    assert s.max_open_requests == 5
    assert s.max_commands_per_minute == 30


def test_blank_optional_values_use_defaults():
    s = load_settings(env(PORT="  ", DATABASE_URL=" ", REQUEST_TTL="", SLACK_APP_TOKEN=" ", SLACK_API_URL=""))
    assert s.port == 3000
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.request_ttl == 24 * 3600.0
    assert s.slack_app_token is None and s.slack_api_url is None


def test_all_values_given():
    s = load_settings(
        env(
            SLACK_APP_TOKEN=APP_TOKEN,
            SLACK_API_URL="http://127.0.0.1:9999/api/",
            DATABASE_URL="postgresql://db/x",
            ADMINS="UADMIN1",
            APPROVERS="",
            PORT=" 8080 ",
            REQUEST_TTL="3600",
            POLARIS_TIMEOUT="2.5",
            POLARIS_RETRY_SECONDS="0",
            POLARIS_MAX_ATTEMPTS="3",
            WORKER_INTERVAL="0.5",
            GROUP_CACHE_TTL="0",
            MAX_OPEN_REQUESTS="2",
            MAX_COMMANDS_PER_MINUTE="10",
        ),
        require_slack_app_token=True,
    )
    assert s.slack_app_token == APP_TOKEN
    assert s.slack_api_url == "http://127.0.0.1:9999/api"
    assert s.database_url == "postgresql://db/x"
    assert s.approvers == frozenset() and s.admins == frozenset({"UADMIN1"})
    assert s.deciders == frozenset({"UADMIN1"})
    assert (
        s.port,
        s.request_ttl,
        s.polaris_timeout,
        s.polaris_retry_seconds,
        s.polaris_max_attempts,
        s.worker_interval,
        s.group_cache_ttl,
        s.max_open_requests,
        s.max_commands_per_minute,
    ) == (8080, 3600.0, 2.5, 0.0, 3, 0.5, 0.0, 2, 10)


def test_deciders_union():
    s = load_settings(env(APPROVERS="UA1,UB2", ADMINS="UB2 , UC3"))
    assert s.deciders == frozenset({"UA1", "UB2", "UC3"})


def test_values_are_stripped():
    s = load_settings(
        env(SLACK_BOT_TOKEN=f"  {BOT_TOKEN}\n", APPROVAL_CHANNEL=" G012ABC ", APPROVERS=" ,U012ABCDEF,, ")
    )
    assert s.slack_bot_token == BOT_TOKEN
    assert s.approval_channel == "G012ABC"
    assert s.approvers == frozenset({"U012ABCDEF"})


def test_reads_os_environ_by_default(monkeypatch):
    for k, v in BASE.items():
        monkeypatch.setenv(k, v)
    assert load_settings().approval_channel == "C012ABCDEF"
    monkeypatch.delenv("APPROVAL_CHANNEL")
    with pytest.raises(ConfigError, match="APPROVAL_CHANNEL"):
        load_settings()


def test_demo_without_polaris():
    s = load_settings(env(POLARIS_API_URL=None, POLARIS_API_KEY=None), require_polaris=False)
    assert s.polaris_api_url == "" and s.polaris_api_key == ""
    assert s.secrets() == [BOT_TOKEN, SIGNING]


def test_settings_frozen():
    s = load_settings(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------------------- missing
@pytest.mark.parametrize(
    "name", ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "POLARIS_API_URL", "POLARIS_API_KEY", "APPROVAL_CHANNEL"]
)
@pytest.mark.parametrize("how", ["absent", "empty", "blank"])
def test_required_variable_missing(name, how):
    value = {"absent": None, "empty": "", "blank": "   "}[how]
    msg = config_error(env(**{name: value}))
    assert name in msg
    assert "not set" in msg


def test_approvers_and_admins_both_missing():
    msg = config_error(env(APPROVERS=None))
    assert "APPROVERS" in msg
    msg = config_error(env(APPROVERS=" , ", ADMINS=""))
    assert "APPROVERS" in msg


def test_app_token_required_for_socket_mode():
    msg = config_error(BASE, require_slack_app_token=True)
    assert "SLACK_APP_TOKEN" in msg
    assert load_settings(env(SLACK_APP_TOKEN=APP_TOKEN), require_slack_app_token=True).slack_app_token == APP_TOKEN


# -------------------------------------------------------------------------------------- malformed
@pytest.mark.parametrize(
    "name,value",
    [
        ("SLACK_BOT_TOKEN", "xoxp-user-token"),
        ("SLACK_BOT_TOKEN", "xapp-1-app"),
        ("SLACK_BOT_TOKEN", "token"),
        ("SLACK_APP_TOKEN", "xoxb-1-bot"),
        ("SLACK_APP_TOKEN", "app"),
        ("APPROVAL_CHANNEL", "#approvals"),
        ("APPROVAL_CHANNEL", "approvals"),
        ("APPROVAL_CHANNEL", "c012abcdef"),
        ("APPROVAL_CHANNEL", "U012ABCDEF"),
        ("APPROVAL_CHANNEL", "C0"),
        ("APPROVAL_CHANNEL", "C012 ABC"),
        ("APPROVERS", "@alice"),
        ("APPROVERS", "U012ABCDEF,alice"),
        ("APPROVERS", "u012abcdef"),
        ("APPROVERS", "U012ABCDEF;U034"),
        ("APPROVERS", "<@U012ABCDEF>"),
        ("APPROVERS", "C012ABCDEF"),
        ("ADMINS", "admin@corp.com"),
        ("PORT", "http"),
        ("PORT", "80.5"),
        ("PORT", "0"),
        ("PORT", "-1"),
        ("PORT", "65536"),
        ("PORT", "100000"),
        ("POLARIS_API_URL", "myorg.api.imply.io"),
        ("POLARIS_API_URL", "ftp://myorg.api.imply.io"),
        ("POLARIS_API_URL", "https://"),
        ("POLARIS_API_URL", "https:///path"),
        ("SLACK_API_URL", "localhost:3001"),
        ("REQUEST_TTL", "1 day"),
        ("REQUEST_TTL", "59"),
        ("POLARIS_TIMEOUT", "0"),
        ("POLARIS_RETRY_SECONDS", "-1"),
        ("POLARIS_MAX_ATTEMPTS", "0"),
        ("POLARIS_MAX_ATTEMPTS", "2.5"),
        ("WORKER_INTERVAL", "0.01"),
        ("GROUP_CACHE_TTL", "-5"),
        ("MAX_OPEN_REQUESTS", "0"),
        ("MAX_COMMANDS_PER_MINUTE", "many"),
    ],
)
def test_malformed_value_names_variable(name, value):
    msg = config_error(env(**{name: value}))
    assert name in msg
    # the message names the variable first, not some other one
    assert msg.startswith(name)


def test_port_bounds():
    assert load_settings(env(PORT="1")).port == 1
    assert load_settings(env(PORT="65535")).port == 65535


def test_bad_approver_entries_listed_and_truncated():
    msg = config_error(env(APPROVERS="U012ABCDEF, bob, " + "x" * 100))
    assert "'bob'" in msg
    assert "x" * 21 not in msg


@pytest.mark.parametrize(
    "name,value",
    [("REQUEST_TTL", "nan"), ("REQUEST_TTL", "inf"), ("POLARIS_TIMEOUT", "NaN"), ("WORKER_INTERVAL", "infinity")],
)
def test_non_finite_durations_refused(name, value):
    """A duration of NaN or infinity is malformed: every new request would crash at
    ``now + timedelta(seconds=settings.request_ttl)`` (ValueError/OverflowError). Refuse it at start-up."""
    msg = config_error(env(**{name: value}))
    assert name in msg


def test_negative_infinity_refused():
    assert "REQUEST_TTL" in config_error(env(REQUEST_TTL="-inf"))


@pytest.mark.parametrize("value", ["https://my org.api.imply.io", "https://myorg.api.imply.io # prod"])
def test_url_with_whitespace_refused(value):
    msg = config_error(env(POLARIS_API_URL=value))
    assert "POLARIS_API_URL" in msg


def test_bot_ids_are_not_approvers():
    """APPROVERS must be Slack *user* IDs (U…/W…); a bot ID (B…) can never click Approve."""
    msg = config_error(env(APPROVERS="B012ABCDEF"))
    assert "APPROVERS" in msg


def test_errors_do_not_echo_secrets():
    for environ in (env(SLACK_BOT_TOKEN="xoxp-" + "S3CR3T" * 3), env(SLACK_APP_TOKEN="xoxb-" + "S3CR3T" * 3)):
        assert "S3CR3T" not in config_error(environ)


# ----------------------------------------------------------------------------------------- secrets
def test_repr_contains_no_secret():
    s = load_settings(env(SLACK_APP_TOKEN=APP_TOKEN))
    for text in (repr(s), str(s), f"{s}", f"{s!r}"):
        for secret in (BOT_TOKEN, APP_TOKEN, SIGNING, API_KEY):
            assert secret not in text
        assert "SeCrEt" not in text
        assert "xoxb-" not in text and "xapp-" not in text and "pok_" not in text
    assert "C012ABCDEF" in repr(s)  # repr still useful


BASIC = base64.b64encode(f"{API_KEY}:".encode()).decode()  # the Authorization credential the client sends


def test_secrets_lists_all_secret_values():
    s = load_settings(env(SLACK_APP_TOKEN=APP_TOKEN))
    assert sorted(s.secrets()) == sorted([BOT_TOKEN, SIGNING, API_KEY, APP_TOKEN, BASIC])


def test_secrets_leaves_out_empty():
    s = load_settings(BASE)
    assert sorted(s.secrets()) == sorted([BOT_TOKEN, SIGNING, API_KEY, BASIC])
    assert None not in s.secrets() and "" not in s.secrets()


def test_secret_fields_are_not_in_repr_fields():
    hidden = {f.name for f in dataclasses.fields(Settings) if not f.repr}
    assert hidden == {"slack_bot_token", "slack_signing_secret", "polaris_api_key", "slack_app_token", "audit_key"}


# ------------------------------------------------------------------ issue 8, finding 16: every problem at once
SIX_MISSING = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "POLARIS_API_URL",
    "POLARIS_API_KEY",
    "APPROVAL_CHANNEL",
    "APPROVERS",
)


def config_problems(environ, **kw) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(environ, **kw)
    assert str(excinfo.value) == "\n".join(excinfo.value.problems)
    return excinfo.value.problems


def test_every_missing_setting_is_reported_at_once_a_line_each():
    problems = config_problems({})
    assert len(problems) == len(SIX_MISSING), problems
    for name, line in zip(SIX_MISSING, problems, strict=True):
        assert line.startswith(name) and "\n" not in line


def test_missing_and_malformed_settings_are_reported_together():
    problems = config_problems(
        env(
            SLACK_BOT_TOKEN=None,
            PORT="http",
            DATABASE_URL="garbage",
            MANAGER_PROFILE_FIELD="abc",
            APPROVAL_CHANNEL="#approvals",
            REQUEST_TTL="nan",
        )
    )
    assert [p.split(" ")[0] for p in problems] == [
        "SLACK_BOT_TOKEN",
        "APPROVAL_CHANNEL",
        "DATABASE_URL",
        "PORT",
        "REQUEST_TTL",
        "MANAGER_PROFILE_FIELD",
    ], problems


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        ":memory:",
        "http://db.example.com/x",
        "mysql://u@h/db",
        "postgresql+nodriver://u@h/db",
        "postgresql+pg8000://u@h/db",
        "postgresql://u:S3CRETPASS@h:notaport/db",
        "sqlite:/x.db",
    ],
)
def test_unusable_database_url_is_one_clear_line(value):
    problems = config_problems(env(DATABASE_URL=value))
    assert len(problems) == 1 and problems[0].startswith("DATABASE_URL"), problems
    assert "sqlite:///" in problems[0] and "postgresql://" in problems[0]
    assert "S3CRETPASS" not in problems[0]


@pytest.mark.parametrize(
    "value",
    [
        "sqlite:///bot.sqlite3",
        "sqlite:////var/lib/bot.db",
        "sqlite://",
        "postgresql://u@h/db",
        "postgres://u:p@h:5432/db",
        "postgresql+psycopg2://u@h/db?sslmode=require",
    ],
)
def test_usable_database_urls_are_accepted(value):
    assert load_settings(env(DATABASE_URL=value)).database_url == value


def test_database_url_alone_is_checked_for_migrate():
    from bot.config import database_url

    assert database_url({}) == DEFAULT_DATABASE_URL
    assert database_url({"DATABASE_URL": " postgresql://u@h/db "}) == "postgresql://u@h/db"
    with pytest.raises(ConfigError) as e:
        database_url({"DATABASE_URL": "garbage"})
    assert e.value.problems[0].startswith("DATABASE_URL")


@pytest.mark.parametrize("value", ["abc", "xf01ABCDEF", "Xf", "Xf01abcdef", "Xf01 ABC", "U012ABCDEF", "Xa01ABCDEF"])
def test_manager_profile_field_must_be_a_slack_custom_field_id(value):
    problems = config_problems(env(MANAGER_PROFILE_FIELD=value))
    assert len(problems) == 1 and problems[0].startswith("MANAGER_PROFILE_FIELD") and "Xf" in problems[0]


def test_manager_profile_field_id_accepted():
    assert load_settings(env(MANAGER_PROFILE_FIELD=" Xf01ABCDEF ")).manager_field == "Xf01ABCDEF"
    assert load_settings(env(MANAGER_PROFILE_FIELD="")).manager_field is None


@pytest.mark.parametrize("name", ["WEB_CONCURRENCY", "GUNICORN_THREADS"])
@pytest.mark.parametrize("value", ["abc", "0", "257", "1.5"])
def test_gunicorn_settings_are_checked_with_the_others(name, value):
    problems = config_problems(env(**{name: value}, SLACK_SIGNING_SECRET=None))
    assert [p.split(" ")[0] for p in problems] == ["SLACK_SIGNING_SECRET", name]


def test_gunicorn_settings_defaults_and_values():
    s = load_settings(BASE)
    assert (s.web_concurrency, s.gunicorn_threads) == (2, 8)
    s = load_settings(env(WEB_CONCURRENCY="4", GUNICORN_THREADS=" 16 "))
    assert (s.web_concurrency, s.gunicorn_threads) == (4, 16)


def test_config_error_of_one_message_still_works():
    e = ConfigError("POLICY_FILE: bad")
    assert str(e) == "POLICY_FILE: bad" and e.problems == ["POLICY_FILE: bad"]


@pytest.mark.parametrize(
    "name, value",
    [("WEB_CONCURRENCY", "\u00b2"), ("GUNICORN_THREADS", "1" * 5000), ("WORK_THREADS", "1" * 5000), ("PORT", "\u00b3")],
)
def test_numbers_that_int_refuses_are_a_configuration_error(name, value):
    """``str.isdigit`` admits ``²`` and 5,000 digits, which ``int()`` then refuses: a traceback at start before."""
    assert name in config_error(env(**{name: value}))


@pytest.mark.parametrize(
    "name, value",
    [
        ("REQUEST_TTL", "1e15"),
        ("POLARIS_TIMEOUT", "1e9"),
        ("WORKER_INTERVAL", "1e12"),
        ("POLARIS_RETRY_SECONDS", "1e12"),
        ("GROUP_CACHE_TTL", "1e300"),
    ],
)
def test_durations_too_long_to_mean_anything_are_refused(name, value):
    """``REQUEST_TTL=1e15`` was accepted, and every request then failed with an OverflowError."""
    message = config_error(env(**{name: value}))
    assert name in message and "between" in message
