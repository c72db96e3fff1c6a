"""Parsing of ``/polaris`` slash command text into a :class:`Command` (pure: no I/O).

Handles Slack's escaped forms in command text (``<@U123|name>`` mentions, ``<mailto:a@b.c|a@b.c>`` emails),
straight and curly quotes, control characters and length caps. Anything it cannot read raises
:class:`UsageError` with a sentence for the person who typed it; nothing else is raised, whatever the input.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field, replace

from email_validator import EmailNotValidError, validate_email

from .polaris import normalize_group_name

TEXT_MAX = 4000
REASON_MAX = 500
GROUP_MAX = 100
EMAIL_MAX = 254

SUBCOMMANDS = (
    "help",
    "whois",
    "groups",
    "members",
    "permissions",
    "request",
    "invite",
    "reset-password",
    "leave",
    "remove",
    "offboard",
    "cancel",
    "status",
    "pending",
    "policy",
    "audit",
    "create-group",
    "edit-group",
    "delete-group",
    "update-user",
)
#: Commands whose text ends in a reason: kept whole, the reason measured (and refused when too long).
WITH_REASON = ("request", "invite", "leave", "remove", "offboard", "delete-group")
ALIASES = {
    "reset": "reset-password",
    "resetpassword": "reset-password",
    "reset_password": "reset-password",
    "group": "groups",
    "perms": "permissions",
    "join": "request",
    "who": "whois",
    "?": "help",
}

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}
_REQUEST_REF = re.compile(r"^[0-9a-f]{8}(?:-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f-]{0,28})$")


class UsageError(ValueError):
    """The command text cannot be understood; ``str(err)`` is a sentence to show the sender."""


@dataclass(frozen=True)
class Target:
    """Whom a command is about: a Slack user (``user_id``) or an email; both ``None`` means the sender."""

    user_id: str | None = None
    email: str | None = None

    @property
    def is_self(self) -> bool:
        return self.user_id is None and self.email is None


@dataclass(frozen=True)
class Command:
    """A parsed command: ``name`` (one of :data:`SUBCOMMANDS`), ``target`` for whois/reset-password/invite/audit,
    ``page`` for audit, ``others`` (invite's further people), ``rest`` (the unparsed ``<group> [reason]`` text for request/invite/members, resolved against the group
    list by :func:`split_group_and_reason`)."""

    name: str
    target: Target = field(default_factory=Target)
    rest: str = ""
    page: int = 1  # ``audit``, ``whois``, ``groups``: ``… page N``
    others: tuple[Target, ...] = ()  # ``invite``: the people after the first (``target``), in the order typed


def clean(text: str | None, limit: int | None = TEXT_MAX) -> str:
    """Normalize to NFC, drop control and format characters (keeping spaces), fold whitespace, cap length
    (``limit`` characters; ``None``: no cap, for text whose length is checked and reported afterwards)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", str(text))
    text = "".join(
        " " if ch in "\t\n\r\u2028\u2029" else ch
        for ch in text
        if ch in "\t\n\r\u2028\u2029" or unicodedata.category(ch)[0] != "C"
    )
    text = " ".join(text.split())
    return text if limit is None else text[:limit]


def parse_email(raw: str) -> str:
    """A syntactically valid email (lower-cased), from plain text or Slack's ``<mailto:…|…>``.
    Raises :class:`UsageError`."""
    m = _MAILTO.match(raw)
    value = (m.group(1) if m else raw).strip()
    if len(value) > EMAIL_MAX:
        raise UsageError("That email address is too long.")
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as e:
        raise UsageError(f"`{_quote(value)}` is not a valid email address ({str(e).rstrip('.')}).") from None
    return result.normalized.lower()


def parse_target(raw: str) -> Target:
    """``<@U123>``/``<@U123|name>`` -> a Slack user; anything with ``@`` inside -> an email.
    Raises :class:`UsageError` for a plain ``@name`` (Slack did not turn it into a mention)."""
    raw = raw.strip()
    m = _MENTION.match(raw)
    if m:
        return Target(user_id=m.group(1))
    if raw.startswith("@") and "@" not in raw[1:]:
        raise UsageError(f"I can't tell who `{_quote(raw)}` is: pick the person from Slack's @-menu, or give an email.")
    return Target(email=parse_email(raw))


def _quote(text: str) -> str:
    return text.replace("`", "'")[:80]


def parse(text: str | None) -> Command:
    """Parse the text after ``/polaris``. Empty text means ``help``. Raises :class:`UsageError` only.

    Nothing is cut silently: ``request`` and ``invite`` keep their whole ``rest`` (its reason is measured,
    and refused when too long, by :func:`check_reason`); any other command over :data:`TEXT_MAX` characters
    is refused with its length."""
    text = clean(text, limit=None)
    if not text:
        return Command("help")
    head, _, rest = text.partition(" ")
    name = ALIASES.get(head.lower(), head.lower())
    rest = rest.strip()
    if name not in SUBCOMMANDS:
        raise UsageError(f"I don't know `{_quote(head)}`. Try `/polaris help`.")
    if len(text) > TEXT_MAX and name not in WITH_REASON:
        raise UsageError(f"That command is {len(text):,} characters long; the limit is {TEXT_MAX:,}.")
    return _ARGUMENTS[name](name, rest)


def _no_arguments(name: str, rest: str) -> Command:
    if rest and name != "help":  # words after a command that takes none were dropped silently (new-user trial)
        raise UsageError(f"`/polaris {name}` takes nothing after it (you added `{_quote(rest)}`).")
    return Command(name)


def _one_person(name: str, rest: str) -> Command:
    if not rest:
        return Command(name)
    if " " in rest:
        raise UsageError(f"`/polaris {name}` takes one email or @mention.")
    return Command(name, target=parse_target(rest))


def _whois(name: str, rest: str) -> Command:
    """``whois [email | @user] [page N]``."""
    rest, page = split_page(rest, f"/polaris {name} page 2")
    return replace(_one_person(name, rest), page=page)


def _groups(name: str, rest: str) -> Command:
    """``groups [page N]`` (the list, paged) or ``groups <group>`` (one group in detail: the words kept whole,
    also when they end in ``page <not a number>``: ``groups Page Views`` names a group)."""
    m = _PAGE.search(rest)
    if m and not (m.group(1).isascii() and m.group(1).isdigit()):
        return Command(name, rest=rest)  # the route refuses the page once no group has this name
    rest, page = split_page(rest, "/polaris groups page 2")
    return Command(name, rest=rest, page=page)


def split_page(rest: str, example: str) -> tuple[str, int]:
    """``<words> page N`` -> (``<words>``, N); text without a trailing ``page …`` -> (text, 1). Raises
    :class:`UsageError` naming ``example`` for a page that is no whole number from 1 to :data:`PAGE_MAX`."""
    m = _PAGE.search(rest)
    if not m:
        return rest, 1
    if not page_number_ok(m.group(1)):
        raise UsageError(
            f"`page` takes a whole number from 1 to {PAGE_MAX} (you wrote `{_quote(m.group(1))}`), e.g. `{example}`."
        )
    return rest[: m.start()].strip(), int(m.group(1))


def _members(name: str, rest: str) -> Command:
    if not rest:
        raise UsageError("Which group? `/polaris members <group>`, e.g. `/polaris members Viewer`.")
    return Command(name, rest=rest)


def _optional_group(name: str, rest: str) -> Command:
    """``groups [<group>]``, ``create-group [...]``: the words kept whole (none: the list, or the form)."""
    return Command(name, rest=rest)


def _one_group(name: str, rest: str) -> Command:
    """``edit-group <group>``, ``delete-group <group> [reason]``: a group is needed."""
    if not rest:
        raise UsageError(f'Which group? `/polaris {name} <group>`, e.g. `/polaris {name} "Report Readers"`.')
    return Command(name, rest=rest)


def _update_user(name: str, rest: str) -> Command:
    """``update-user <email | @user>``: one person is needed."""
    if not rest:
        raise UsageError("Whose account? `/polaris update-user <email | @user>` opens a form with their names.")
    return _one_person(name, rest)


def _request(name: str, rest: str) -> Command:
    return Command(name, rest=rest)  # empty: the handler opens the request form


def looks_like_person(word: str) -> bool:
    """A word of ``invite`` that names a person (a mention, a ``mailto:`` or anything with ``@``), not a group."""
    return word.startswith("<@") or word.startswith("<mailto:") or "@" in word


def _invite(name: str, rest: str) -> Command:
    """``invite <email | @user> [<email | @user> ...] <group> [reason]``: the group is the first word that is
    not an email or mention after the first word (always a person); the first person is ``target``, any others are ``others`` (in the order typed,
    repeats kept: the invite drops them by email and says who was named twice)."""
    words = rest.split(" ")
    if not rest or len(words) < 2:
        raise UsageError("Usage: `/polaris invite <email> <group> [reason]`.")
    people = [parse_target(words.pop(0))]  # the first word is always a person (a bad email is named)
    while words and looks_like_person(words[0]):
        people.append(parse_target(words.pop(0)))
    after = " ".join(words).strip()
    if not after:
        raise UsageError("Usage: `/polaris invite <email> <group> [reason]`.")
    return Command(name, target=people[0], rest=after, others=tuple(people[1:]))


def _leave(name: str, rest: str) -> Command:
    """``leave <group> [reason]``."""
    if not rest:
        raise UsageError("Which group? `/polaris leave <group>`, e.g. `/polaris leave Viewer`.")
    return Command(name, rest=rest)


def _remove(name: str, rest: str) -> Command:
    """``remove <email | @user> <group> [reason]``."""
    who, _, after = rest.partition(" ")
    if not who or not after.strip():
        raise UsageError("Usage: `/polaris remove <email | @user> <group> [reason]`.")
    return Command(name, target=parse_target(who), rest=after.strip())


def _offboard(name: str, rest: str) -> Command:
    """``offboard <email | @user> [reason]``."""
    who, _, after = rest.partition(" ")
    if not who:
        raise UsageError("Usage: `/polaris offboard <email | @user> [reason]`.")
    return Command(name, target=parse_target(who), rest=after.strip())


def _cancel(name: str, rest: str) -> Command:
    """``cancel <request id>``: the full ID or the 8 characters the bot shows (``request 1a2b3c4d``)."""
    ref = rest.strip("`'\" ").lower()
    if not ref:
        raise UsageError("Which request? `/polaris cancel <request id>`; `/polaris status` shows your requests' IDs.")
    if not _REQUEST_REF.match(ref):
        raise UsageError(
            f"`{_quote(rest)}` is not a request ID: give the 8 characters the bot shows (like `1a2b3c4d`) "
            "or the full ID; `/polaris status` lists them."
        )
    return Command(name, rest=ref)


_PAGE = re.compile(r"(?:^|\s)page\s+(\S+)$", re.IGNORECASE)
PAGE_MAX = 1000


def page_number_ok(word: str) -> bool:
    """``word`` is a page number: ASCII digits only (``str.isdigit`` alone admits ``²``, which ``int``
    refuses), from 1 to :data:`PAGE_MAX`."""
    return 0 < len(word) <= 4 and word.isascii() and word.isdigit() and 1 <= int(word) <= PAGE_MAX


def _audit(name: str, rest: str) -> Command:
    """``audit <email | @user | group> [page N]``: a person (``target``) or a group (``rest``)."""
    rest, page = split_page(rest, "/polaris audit Viewer page 2")
    if not rest:
        raise UsageError("Usage: `/polaris audit <email | @user | group> [page N]`.")
    if _MENTION.match(rest) or _MAILTO.match(rest) or ("@" in rest and " " not in rest):
        return Command(name, target=parse_target(rest), page=page)
    return Command(name, rest=rest, page=page)


#: How each subcommand reads the words after its name.
_ARGUMENTS = {
    "help": _no_arguments,
    "groups": _groups,
    "permissions": _no_arguments,
    "status": _no_arguments,
    "pending": _no_arguments,
    "policy": _no_arguments,
    "whois": _whois,
    "reset-password": _one_person,
    "members": _members,
    "request": _request,
    "invite": _invite,
    "leave": _leave,
    "remove": _remove,
    "offboard": _offboard,
    "cancel": _cancel,
    "audit": _audit,
    "create-group": _optional_group,
    "edit-group": _one_group,
    "delete-group": _one_group,
    "update-user": _update_user,
}


def is_quoted(rest: str) -> bool:
    """True when ``<group> [reason]`` text starts with a quote, i.e. the group name is delimited by quotes."""
    rest = rest.strip()
    return bool(rest) and rest[0] in _QUOTES


def check_reason(reason: str) -> str:
    """``reason`` unchanged when it has at most :data:`REASON_MAX` characters; else :class:`UsageError`
    saying its real length and the limit (a reason is refused, never cut)."""
    if len(reason) > REASON_MAX:
        raise UsageError(reason_too_long(len(reason)))
    return reason


def reason_too_long(length: int) -> str:
    """The sentence for a reason of ``length`` characters, over :data:`REASON_MAX` (commands and the form)."""
    return (
        f"The reason is {length:,} characters long; the limit is {REASON_MAX:,}. Please shorten it; nothing was sent."
    )


def split_group_and_reason(rest: str, group_names: list[str], *, check_lengths: bool = True) -> tuple[str, str]:
    """Split ``<group> [reason]`` into (group name as typed, reason).

    A quoted group name ends at its closing quote; otherwise the longest run of leading words that names a
    known group (case-insensitive) wins, else the first word. Raises :class:`UsageError` for an empty
    group or an unterminated quote, and (``check_lengths``) for a group name over :data:`GROUP_MAX` or a
    reason over :data:`REASON_MAX` characters (with its real length).
    """
    rest = rest.strip()
    if not rest:
        raise UsageError("Which group? Try `/polaris groups` to see them.")
    opening = rest[0]
    if opening in _QUOTES:
        closers = {_QUOTES[opening], '"', "\u201d"} if opening in '"\u201c' else {_QUOTES[opening], "'", "\u2019"}
        found = [i for i in (rest.find(c, 1) for c in closers) if i > 0]
        end = min(found) if found else -1
        if end < 0:
            raise UsageError("The group name has an opening quote but no closing one.")
        group, reason = rest[1:end].strip(), rest[end + 1 :].strip()
    else:
        words = rest.split(" ")
        known = {normalize_group_name(n) for n in group_names}
        group, reason = words[0], " ".join(words[1:])
        for n in range(min(len(words), 8), 0, -1):
            candidate = " ".join(words[:n])
            if normalize_group_name(candidate) in known:
                group, reason = candidate, " ".join(words[n:])
                break
        else:
            # No exact name: take the run of leading words that looks most like a known name (a typo such as
            # "Data Manger" is then reported, with suggestions, as the group it is).
            best = 0.6  # below this it is no typo of a known name: keep the first word
            for n in range(1, min(len(words), 8) + 1):
                candidate = normalize_group_name(" ".join(words[:n]))
                if len(candidate) > 2 * GROUP_MAX:
                    break  # no typo of a group name is this long (and difflib is quadratic)
                score = max((difflib.SequenceMatcher(None, candidate, k).ratio() for k in known), default=0.0)
                if score > best + 1e-9:
                    best, group, reason = score, " ".join(words[:n]), " ".join(words[n:])
    if not group:
        raise UsageError("The group name is empty.")
    if check_lengths:
        if len(group) > GROUP_MAX:
            raise UsageError(f"That group name is longer than {GROUP_MAX} characters.")
        check_reason(reason)
    return group, reason
