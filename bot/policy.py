"""Approval policy as code: a TOML file (``POLICY_FILE``), read with :mod:`tomllib` and validated at start-up.

Example (every key optional; ``[defaults]`` applies to groups without a table of their own)::

    manager_field = "Xf01ABCDEF"        # Slack custom profile field holding the requester's manager (users.profile.get)

    [defaults]
    approvers = ["U01APPROVER", "S01SECURITY"]   # Slack user IDs (U…/W…), user group IDs (S…), or "manager"
    approvals = 1                        # distinct approvals needed (two-person rule: 2)
    auto_approve = false                 # approved on creation (still recorded, announced and audited)
    reason_required = false
    reason_min_length = 0
    ttl_hours = 24                       # pending requests expire after this
    permanent = true                     # false: every request must say for how long (or get default_duration)
    default_duration = "8h"              # a request that names no duration gets this one (time-bound access)
    max_duration = "1w"                  # a request for longer is refused, naming the maximum; with it, access is
                                         # time-bound only unless permanent = true is given too
    remind_after = "4h"                  # a pending request reminds its approvers after this (default 4h) ...
    max_reminders = 2                    # ... at most this many times (0: never)
    escalate_after = "8h"                # then it also goes to escalate_to, who may decide too
    escalate_to = ["U01BACKUP", "S01ONCALL"]
    deny_reason_required = false         # true: Deny needs a reason (the Deny form refuses an empty one)

    [groups."Organization Admin"]        # group names match without regard to case
    approvals = 2

    [groups.Viewer]
    auto_approve = true

    [groups."Data Analyst"]
    approvers = ["manager", "S01DATALEADS"]
    reason_required = true
    reason_min_length = 15

    [password_reset]                     # password resets (no group)
    approvers = ["U01HELPDESK"]

    [offboard]                           # offboarding (every group removed, the account disabled)
    approvers = ["S01SECURITY"]          # default: ADMINS; never the requester nor the person offboarded
    approvals = 2

    [managers]                           # where the workspace has no manager profile field
    U01ALICE = "U01BOB"

Without a file (or for what it leaves out) the environment's ``APPROVERS`` and ``ADMINS`` approve, one
approval is needed (two for Organization Admin), nothing is auto-approved and ``REQUEST_TTL`` applies.
Errors raise :class:`PolicyError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from . import durations, policy_reminders
from .policy_file import PolicyError
from .policy_file import line_of as _line_of
from .policy_file import read_toml as _read_toml
from .policy_reminders import DEFAULT_MAX_REMINDERS, DEFAULT_REMIND_AFTER, mentions

MANAGER = "manager"
ORG_ADMIN = "organization admin"
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_USERGROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_FIELD = re.compile(r"^X[A-Za-z0-9]{2,}$")
_KEYS = frozenset(
    "approvers approvals auto_approve reason_required reason_min_length ttl_hours permanent default_duration "
    "max_duration remind_after max_reminders escalate_after escalate_to deny_reason_required".split()
)


@dataclass(frozen=True)
class Rule:
    """The effective policy for one group (or for password resets).

    ``approvers``: Slack user IDs, user group IDs and/or ``"manager"``; empty means the defaults from the
    environment. ``approvals``: distinct approvals needed. ``ttl``: seconds a request stays pending.
    ``source``: where it came from, for ``/polaris policy``. Time-bound access: ``permanent`` (False: a
    request must be time-bound), ``default_duration`` and ``max_duration`` (seconds, or ``None``). Approvers:
    ``remind_after`` (seconds) between reminders, at most ``max_reminders``; ``escalate_after`` (seconds, or
    ``None``) before the request also goes to ``escalate_to`` (Slack user and user group IDs);
    ``deny_reason_required``: a Deny must say why."""

    approvers: tuple[str, ...] = ()
    approvals: int = 1
    auto_approve: bool = False
    reason_required: bool = False
    reason_min_length: int = 0
    ttl: float = 24 * 3600.0
    permanent: bool = True
    default_duration: int | None = None
    max_duration: int | None = None
    remind_after: int = DEFAULT_REMIND_AFTER
    max_reminders: int = DEFAULT_MAX_REMINDERS
    escalate_after: int | None = None
    escalate_to: tuple[str, ...] = ()
    deny_reason_required: bool = False
    source: str = "defaults"

    @property
    def wants_manager(self) -> bool:
        return MANAGER in self.approvers

    def describe_durations(self) -> str:
        """Time-bound access under this rule, in words: "time-bound only; default 8 hours; at most 1 week"."""
        parts = ["time-bound only" if not self.permanent else "for good or time-bound"]
        if self.default_duration:
            parts.append(f"default {durations.describe(self.default_duration)}")
        if self.max_duration:
            parts.append(f"at most {durations.describe(self.max_duration)}")
        return ", ".join(parts)

    def describe_approvers(self) -> str:
        """Reminders, escalation and deny reasons under this rule, in words (:func:`bot.policy_reminders.describe`)."""
        return policy_reminders.describe(self)

    def describe(self) -> str:
        who = mentions(self.approvers) or "the default approvers"
        parts = [f"approvers: {who}", f"{self.approvals} approval{'s' if self.approvals != 1 else ''}"]
        if self.auto_approve:
            parts.append("auto-approved")
        if self.reason_required:
            parts.append(f"reason required (≥ {self.reason_min_length} characters)")
        parts.append(f"expires after {self.ttl / 3600:g} h")
        if self.default_duration or self.max_duration or not self.permanent:
            parts.append(self.describe_durations())
        parts.append(self.describe_approvers())
        return "; ".join(parts) + f" _({self.source})_"


@dataclass(frozen=True)
class Policy:
    """The whole policy: ``defaults``, per-group ``groups`` (keys lower-cased names), ``password_reset``,
    ``offboard`` (offboarding; ``None``: ADMINS, one approval), ``managers`` (requester ID -> manager ID) and
    ``manager_field`` (a profile field ID)."""

    defaults: Rule = field(default_factory=Rule)
    groups: dict[str, Rule] = field(default_factory=dict)
    password_reset: Rule | None = None
    offboard: Rule | None = None
    managers: dict[str, str] = field(default_factory=dict)
    manager_field: str | None = None
    path: str | None = None

    def for_group(self, group_name: str | None) -> Rule:
        """The rule for ``group_name`` (case-insensitive); ``None`` means a password reset."""
        if group_name is None:
            if self.password_reset is not None:
                return self.password_reset
            return replace(self.defaults, auto_approve=False)  # a password reset is never auto-approved
        key = " ".join(group_name.split()).lower()
        rule = self.groups.get(key)
        if rule is not None:
            return rule
        if key == ORG_ADMIN:
            return replace(
                self.defaults,
                approvals=max(2, self.defaults.approvals),
                auto_approve=False,
                source="built-in two-person rule for Organization Admin",
            )
        return self.defaults

    def for_offboard(self) -> Rule:
        """The rule for offboarding: the ``[offboard]`` section, else ADMINS (an empty ``approvers``) with one
        approval, expiring like the defaults. Never auto-approved, never decided by a manager."""
        if self.offboard is not None:
            return self.offboard
        return Rule(ttl=self.defaults.ttl, source="built-in: ADMINS decide offboarding")

    def direct_approvers(self) -> set[str]:
        """Every Slack user ID named anywhere in the policy (not user groups)."""
        extra = [r for r in (self.password_reset, self.offboard) if r is not None]
        rules = [self.defaults, *self.groups.values(), *extra]
        return {a for r in rules for a in r.approvers if _USER.match(a)}


def _rule(data: Any, base: Rule, *, where: list[str], text: str, path: str) -> Rule:
    def fail(key: str | None, message: str):
        raise PolicyError(f"{path}:{_line_of(text, where, key)}: {message}")

    if not isinstance(data, dict):
        fail(None, f"[{'.'.join(where)}] must be a table")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        fail(unknown[0], f"unknown key {unknown[0]!r} in [{'.'.join(where)}]; allowed: {', '.join(sorted(_KEYS))}")
    values = {
        **_approvers_of(data, fail),
        **_numbers_of(data, fail),
        **_flags_of(data, fail),
        **_ttl_of(data, fail),
        **_durations_of(data, fail),
        **policy_reminders.values_of(data, fail),
    }
    line = _line_of(text, where, None) if where else 1
    rule = replace(base, **values, source=f"{path} line {line}")
    _check_consistent(rule, fail)
    return rule


def _approvers_of(data: dict, fail: Callable) -> dict[str, Any]:
    if "approvers" not in data:
        return {}
    approvers = data["approvers"]
    if not isinstance(approvers, list) or not all(isinstance(a, str) for a in approvers):
        fail("approvers", "approvers must be a list of strings")
    for a in approvers:
        if a != MANAGER and not _USER.match(a) and not _USERGROUP.match(a):
            fail("approvers", f'approver {a!r} is not a Slack user ID (U…), user group ID (S…) or "manager"')
    return {"approvers": tuple(dict.fromkeys(approvers))}


def _numbers_of(data: dict, fail: Callable) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in ("approvals", "reason_min_length"):
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "approvals" else 0) or v > 1000:
                fail(key, f"{key} must be a whole number ≥ {1 if key == 'approvals' else 0}")
            values[key] = v
    return values


def _flags_of(data: dict, fail: Callable) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in ("auto_approve", "reason_required", "permanent", "deny_reason_required"):
        if key in data:
            if not isinstance(data[key], bool):
                fail(key, f"{key} must be true or false")
            values[key] = data[key]
    return values


def _ttl_of(data: dict, fail: Callable) -> dict[str, Any]:
    if "ttl_hours" not in data:
        return {}
    v = data["ttl_hours"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.02 <= v <= 24 * 90:
        fail("ttl_hours", "ttl_hours must be a number of hours between 0.02 and 2160")
    return {"ttl": float(v) * 3600.0}


def _durations_of(data: dict, fail: Callable) -> dict[str, Any]:
    """``default_duration``/``max_duration`` as seconds. A maximum makes access time-bound only (a request for
    good would outlast it) unless the table says ``permanent = true`` as well."""
    values: dict[str, Any] = {}
    if "max_duration" in data and "permanent" not in data:
        values["permanent"] = False
    for key in ("default_duration", "max_duration", "remind_after", "escalate_after"):
        if key in data:
            v = data[key]
            if not isinstance(v, str):
                fail(key, f'{key} must be a duration in quotes, like "8h", "2d" or "90 minutes"')
            try:
                values[key] = durations.parse_duration(v)
            except ValueError as e:
                fail(key, f"{key}: {str(e).replace('`', '')}")
    return values


def _check_consistent(rule: Rule, fail: Callable) -> None:
    policy_reminders.check(rule, fail)
    if rule.default_duration and rule.max_duration and rule.default_duration > rule.max_duration:
        fail("default_duration", "default_duration is longer than max_duration")
    if rule.auto_approve and rule.approvals > 1:
        fail("auto_approve", "a rule cannot both auto-approve and need more than one approval")
    if (
        rule.approvers
        and rule.approvers != (MANAGER,)
        and rule.approvals > len([a for a in rule.approvers if a != MANAGER]) + (1 if rule.wants_manager else 0)
        and not any(_USERGROUP.match(a) for a in rule.approvers)
    ):
        fail("approvals", f"approvals = {rule.approvals} but only {len(rule.approvers)} approvers are named")


def load_policy(path: str | None, *, ttl: float = 24 * 3600.0, manager_field: str | None = None) -> Policy:
    """Read and validate the policy file at ``path`` (``None``: the built-in defaults).

    ``ttl`` (seconds) and ``manager_field`` come from the environment and are overridden by the file.
    Raises :class:`PolicyError` (``FILE:LINE: message``) for a missing file, bad TOML or a bad value.
    """
    base = Rule(ttl=ttl)
    if not path:
        return Policy(defaults=base, manager_field=manager_field)
    text, data = _read_toml(path)
    allowed = {"defaults", "groups", "password_reset", "offboard", "managers", "manager_field"}
    for key in data:
        if key not in allowed:
            raise PolicyError(
                f"{path}:{_line_of(text, None, key) if not isinstance(data[key], dict) else _line_of(text, [key], None)}: "
                f"unknown section or key {key!r}; allowed: {', '.join(sorted(allowed))}"
            )
    field_id = data.get("manager_field", manager_field)
    if field_id is not None and (not isinstance(field_id, str) or not _FIELD.match(field_id)):
        raise PolicyError(
            f"{path}:{_line_of(text, None, 'manager_field')}: manager_field must be a profile field ID like Xf01ABCDEF"
        )
    defaults = _rule(data.get("defaults", {}), base, where=["defaults"], text=text, path=path)
    if "defaults" not in data:
        defaults = replace(defaults, source="defaults")
    groups = _group_rules(data, defaults, text=text, path=path)
    reset = None
    if "password_reset" in data:
        reset = _rule(data["password_reset"], defaults, where=["password_reset"], text=text, path=path)
        if reset.auto_approve:
            raise PolicyError(
                f"{path}:{_line_of(text, ['password_reset'], 'auto_approve')}: password resets cannot be auto-approved"
            )
    managers = _managers_of(data, text=text, path=path)
    return Policy(
        defaults=defaults,
        groups=groups,
        password_reset=reset,
        offboard=_offboard_rule(data, defaults, text=text, path=path),
        managers=dict(managers),
        manager_field=field_id,
        path=path,
    )


def _group_rules(data: dict, defaults: Rule, *, text: str, path: str) -> dict[str, Rule]:
    groups: dict[str, Rule] = {}
    raw_groups = data.get("groups", {})
    if not isinstance(raw_groups, dict):
        raise PolicyError(f"{path}:{_line_of(text, None, 'groups')}: [groups] must be a table of group tables")
    for name, table in raw_groups.items():
        key = " ".join(name.split()).lower()
        inherited = defaults
        if key == ORG_ADMIN:
            inherited = replace(defaults, approvals=max(2, defaults.approvals), auto_approve=False)
        if key in groups:
            raise PolicyError(f"{path}:{_line_of(text, ['groups', name], None)}: group {name!r} appears twice")
        groups[key] = _rule(table, inherited, where=["groups", name], text=text, path=path)
        if key == ORG_ADMIN and (groups[key].approvals < 2 or groups[key].auto_approve):
            bad = "auto_approve" if groups[key].auto_approve else "approvals"
            raise PolicyError(
                f"{path}:{_line_of(text, ['groups', name], bad)}: Organization Admin needs at least two "
                "approvals and cannot be auto-approved"
            )
    return groups


def _managers_of(data: dict, *, text: str, path: str) -> dict:
    managers = data.get("managers", {})
    if not isinstance(managers, dict):
        raise PolicyError(f"{path}:{_line_of(text, None, 'managers')}: [managers] must map user IDs to user IDs")
    for who, manager in managers.items():
        if not _USER.match(who) or not isinstance(manager, str) or not _USER.match(manager):
            raise PolicyError(
                f'{path}:{_line_of(text, ["managers"], who)}: [managers] entries look like U01ALICE = "U01BOB"'
            )
        if who == manager:
            raise PolicyError(f"{path}:{_line_of(text, ['managers'], who)}: {who} cannot be their own manager")
    return managers


def _offboard_rule(data: dict, defaults: Rule, *, text: str, path: str) -> Rule | None:
    """The ``[offboard]`` section (``approvers``, ``approvals``, ``ttl_hours``, reason keys), or ``None``. It does
    not inherit the defaults' approvers (ADMINS decide unless it names others); ``auto_approve`` and
    ``"manager"`` are refused: an offboarding is always decided by a person named for it."""
    if "offboard" not in data:
        return None
    base = Rule(ttl=defaults.ttl)
    rule = _rule(data["offboard"], base, where=["offboard"], text=text, path=path)
    for bad, why in (("auto_approve", rule.auto_approve), ("approvers", rule.wants_manager)):
        if why:
            raise PolicyError(
                f"{path}:{_line_of(text, ['offboard'], bad)}: offboarding cannot be auto-approved nor decided by "
                '"manager"; name Slack users or user groups (default: ADMINS)'
            )
    return rule
