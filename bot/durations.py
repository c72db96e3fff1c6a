"""Durations of time-bound access (pure: no I/O, no clock).

- :func:`parse_duration`: ``30m``, ``4h``, ``2d``, ``1w``, ``1h30m``, ``1.5h`` and the spelled-out forms
  (``2 hours``, ``an hour``, ``1 day 4 hours``, ``90 minutes``) -> whole seconds. At least :data:`MIN_SECONDS`
  (1 minute), at most :data:`MAX_SECONDS` (a year).
- :func:`split_duration`: the words after a group name, ``for <duration> [reason]`` -> (seconds, reason);
  words after ``for`` that are no duration stay the reason ("for the dashboards").
- :func:`describe`: seconds -> "2 hours", "1 day 4 hours", "30 minutes" (what the card and DMs say).
- :func:`choose`: the duration a request gets under a group's policy (default, maximum, ``permanent``).

Every refusal is :class:`bot.commands.UsageError` with a sentence for the person who typed it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re

from .commands import UsageError

MIN_SECONDS = 60
MAX_SECONDS = 366 * 24 * 3600

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "wk": 604800,
    "wks": 604800,
    "week": 604800,
    "weeks": 604800,
    "month": 30 * 86400,
    "months": 30 * 86400,
    "year": 365 * 86400,
    "years": 365 * 86400,
}
_WORD_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty-five": 45,
    "ninety": 90,
    "half": 0.5,
}
#: Punctuation that may follow a duration ("for 4h: dashboards", "for 2 h.") and is not part of it.
_TRAILING = ",.;:!?)"
_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_COMPACT = re.compile(rf"^(?:{_NUMBER}[a-z]+)+$")
_COMPACT_PART = re.compile(rf"({_NUMBER})([a-z]+)")
_EXAMPLES = "`30m`, `4h`, `2d`, `1w` or `2 hours`"


def _amount(word: str) -> float | None:
    if word in _WORD_NUMBERS:
        return float(_WORD_NUMBERS[word])
    if re.fullmatch(_NUMBER, word):
        return float(word)
    return None


def _unit_missing(following: list[str]) -> bool:
    """After a number: nothing, or a word that looks like a misspelt unit ("minuets"), so the person meant a
    duration and must be told, rather than the words becoming part of the reason."""
    if not following:
        return True
    return bool(difflib.get_close_matches(following[0].lower(), [u for u in _UNITS if len(u) > 3], n=1, cutoff=0.75))


def _read(words: list[str]) -> tuple[float, int]:
    """The longest leading run of ``words`` that is a duration: (seconds, words used); (0, 0) when none.
    Raises :class:`UsageError` for a number without a unit right after the start (``for 30``)."""
    total, used, i = 0.0, 0, 0
    words = [w.lower().rstrip(_TRAILING) for w in words]
    while i < len(words):
        word = words[i]
        if _COMPACT.match(word) and all(unit in _UNITS for _, unit in _COMPACT_PART.findall(word)):
            total += sum(float(n) * _UNITS[unit] for n, unit in _COMPACT_PART.findall(word))
            i += 1
            used = i
            continue
        if used == 0 and re.match(rf"^{_NUMBER}[a-z]", word):
            # Starts like "4h" but is not one ("1h30", "2hrs30"): the person meant a time; say so, never read
            # it as a reason (the request would be for good).
            raise UsageError(f"`{word}` is not a duration I know; try {_EXAMPLES}.")
        amount = _amount(word)
        if word == "half" and i + 2 < len(words) and words[i + 1] in ("a", "an") and words[i + 2] in _UNITS:
            total += 0.5 * _UNITS[words[i + 2]]  # "half an hour"
            i += 3
            used = i
            continue
        if amount is not None and i + 1 < len(words) and words[i + 1] in _UNITS:
            total += amount * _UNITS[words[i + 1]]
            i += 2
            used = i
            continue
        if amount is not None and used == 0 and _unit_missing(words[i + 1 : i + 2]) and word not in ("a", "an"):
            raise UsageError(f"`{' '.join(words[i : i + 2])}` is not a duration I know; try {_EXAMPLES}.")
        if word == "and" and used and i + 1 < len(words):  # "1 hour and 30 minutes"
            i += 1
            continue
        break
    return total, used


def parse_duration(text: str) -> int:
    """``text`` (all of it) as a duration in whole seconds. Raises :class:`UsageError` when it is not one, or
    is under a minute or over a year."""
    words = text.split()
    seconds, used = _read(words)
    if not used or used != len(words):
        raise UsageError(f"`{text.strip()[:60]}` is not a duration I know; try {_EXAMPLES}.")
    return _bounded(seconds)


def _bounded(seconds: float) -> int:
    if seconds < MIN_SECONDS:
        raise UsageError("Time-bound access lasts at least 1 minute.")
    if seconds > MAX_SECONDS:
        raise UsageError("Time-bound access lasts at most a year; ask for permanent access instead.")
    return int(round(seconds))


def split_duration(words_after_group: str) -> tuple[int | None, str]:
    """``for <duration> [reason]`` -> (seconds, reason); anything else -> (None, the text unchanged).

    ``for`` followed by something that is no duration ("for the dashboards") is part of the reason. Raises
    :class:`UsageError` for a duration out of bounds or a number without a unit (``for 30``)."""
    text = words_after_group.strip()
    words = text.split(" ")
    if len(words) < 2 or words[0].lower() != "for":
        return None, text
    seconds, used = _read(words[1:])
    if not used:
        return None, text
    return _bounded(seconds), " ".join(words[1 + used :]).strip()


def describe(seconds: int | float | None) -> str:
    """``7200`` -> "2 hours"; ``93600`` -> "1 day 2 hours"; ``90`` -> "1 minute 30 seconds"; ``None`` ->
    "for good" (no end). At most the two largest units (seconds only under an hour), rounded down."""
    if seconds is None:
        return "for good"
    seconds = int(seconds)
    sizes = [("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)]
    if seconds < 3600:
        sizes.append(("second", 1))
    parts = []
    for name, size in sizes:
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {name}{'s' if n != 1 else ''}")
    return " ".join(parts[:2]) or "less than a minute"


def until(moment: dt.datetime, now: dt.datetime | None = None) -> str:
    """When access ends, as the card says it: ``21:47 UTC`` today, ``Tue 3 Dec 21:47 UTC`` otherwise."""
    moment = moment.astimezone(dt.timezone.utc)
    if now is not None and moment.date() == now.astimezone(dt.timezone.utc).date():
        return f"{moment:%H:%M} UTC"
    return f"{moment:%a} {moment.day} {moment:%b %H:%M} UTC"


def choose(asked: int | None, *, default: int | None, maximum: int | None, permanent: bool, group: str) -> int | None:
    """The duration (seconds) a request for ``group`` gets: what was ``asked``, else the policy's ``default``;
    ``None`` (for good) only when the policy allows ``permanent`` access. Raises :class:`UsageError` naming the
    maximum when ``asked`` is over it, and saying how to ask when a duration is required and none was given."""
    seconds = asked if asked is not None else default
    if seconds is None and not permanent:
        limit = f" (at most {describe(maximum)})" if maximum else ""
        raise UsageError(
            f"Access to *{group}* is time-bound: say for how long{limit}, "
            f"e.g. `/polaris request {group} for 4h <reason>`."
        )
    if seconds is not None and maximum is not None and seconds > maximum:
        raise UsageError(
            f"Access to *{group}* can be given for at most {describe(maximum)}; you asked for {describe(seconds)}. "
            "Nothing was sent."
        )
    return seconds
