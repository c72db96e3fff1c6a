"""bot/durations.py: what people type after ``for``, in words back, and the policy's choice."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands import UsageError
from bot.durations import choose, describe, parse_duration, split_duration, until
from bot.policy import PolicyError, load_policy


@pytest.mark.parametrize(
    "typed, seconds, reason",
    [
        ("for 30m", 1800, ""),
        ("for 4h dashboards", 14400, "dashboards"),
        ("for 2d", 172800, ""),
        ("for 1w", 604800, ""),
        ("for 2 hours to debug", 7200, "to debug"),
        ("for an hour", 3600, ""),
        ("for 1h30m", 5400, ""),
        ("for 1.5h", 5400, ""),
        ("for 1 day 4 hours x", 100800, "x"),
        ("for 1 hour and 30 minutes ok", 5400, "ok"),
        ("For 90 Minutes", 5400, ""),
    ],
)
def test_durations_people_type(typed, seconds, reason):
    assert split_duration(typed) == (seconds, reason)


@pytest.mark.parametrize("typed", ["for the dashboards", "for 2 projects", "for a while", "dashboards for 2h", ""])
def test_words_that_are_no_duration_stay_the_reason(typed):
    assert split_duration(typed) == (None, typed)


@pytest.mark.parametrize(
    "typed, words",
    [
        ("for 30", "not a duration"),
        ("for 30 minuets", "not a duration"),
        ("for 30s", "at least 1 minute"),
        ("for 400d", "at most a year"),
    ],
)
def test_durations_refused_with_a_sentence(typed, words):
    with pytest.raises(UsageError, match=words):
        split_duration(typed)


def test_describe_and_until():
    assert describe(7200) == "2 hours" and describe(60) == "1 minute" and describe(93600) == "1 day 2 hours"
    assert describe(None) == "for good"
    moment = dt.datetime(2026, 12, 2, 21, 47, tzinfo=dt.timezone.utc)
    assert until(moment, moment - dt.timedelta(hours=1)) == "21:47 UTC"
    assert until(moment, moment - dt.timedelta(days=1)) == "Wed 2 Dec 21:47 UTC"


@given(st.integers(min_value=1, max_value=500), st.sampled_from(["m", "h", "d"]))
def test_compact_forms_round_trip(n, unit):
    seconds = n * {"m": 60, "h": 3600, "d": 86400}[unit]
    if seconds > 366 * 86400:
        with pytest.raises(UsageError):
            parse_duration(f"{n}{unit}")
    else:
        assert parse_duration(f"{n}{unit}") == seconds


def test_choose_under_the_policy():
    assert choose(None, default=None, maximum=None, permanent=True, group="G") is None
    assert choose(None, default=3600, maximum=None, permanent=True, group="G") == 3600
    assert choose(600, default=3600, maximum=7200, permanent=False, group="G") == 600
    with pytest.raises(UsageError, match="at most 2 hours; you asked for 3 hours"):
        choose(10800, default=None, maximum=7200, permanent=True, group="G")
    with pytest.raises(UsageError, match=r"time-bound: say for how long \(at most 2 hours\)"):
        choose(None, default=None, maximum=7200, permanent=False, group="G")


def test_policy_duration_keys(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[groups.Viewer]\npermanent = false\ndefault_duration = "1h"\nmax_duration = "2 days"\n')
    rule = load_policy(str(path)).for_group("viewer")
    assert (rule.permanent, rule.default_duration, rule.max_duration) == (False, 3600, 172800)
    assert "time-bound only, default 1 hour, at most 2 days" in rule.describe()
    for bad, words in (
        ("max_duration = 4", "in quotes"),
        ('max_duration = "soon"', "not a duration"),
        ('default_duration = "2d"\nmax_duration = "1d"', "longer than max_duration"),
        ('permanent = "no"', "true or false"),
    ):
        path.write_text(f"[groups.Viewer]\n{bad}\n")
        with pytest.raises(PolicyError, match=words):
            load_policy(str(path))
