"""Block Kit builders (one per message type) and mrkdwn escaping: ``blocks`` (shared pieces, :func:`esc`),
``cards`` (the approval card, requester DMs), ``lookups`` (answers, help, the request form).

Every piece of text that came from a person or from Polaris passes through :func:`esc` exactly once, here,
so ``<!channel>``, ``<@U…>`` and ``<https://x|label>`` typed by someone arrive as harmless text. Limits of
Slack's Block Kit reference hold: section text ≤ 3000 characters, header ≤ 150, ≤ 50 blocks a message,
≤ 100 in a modal; long lists are cut with "and N more". Every message has a fallback ``text``.
"""

from .blocks import (
    SECTION_MAX,
    HEADER_MAX,
    MESSAGE_BLOCKS_MAX,
    LIST_MAX,
    APPROVE_ACTION,
    DENY_ACTION,
    RETRY_ACTION,
    REQUEST_MODAL,
    STATE_LABEL,
    STATE_EMOJI,
    esc,
    clip,
    POLICY_ACTOR,
    mention,
    section,
    header,
    context,
    bullet_list,
    names,
    outcome_text,
    kind_phrase,
    permission_lines,
)
from .cards import (
    approval_card,
    requester_update,
)
from .leases import LEASE_DONE_ACTION, LEASE_EXTEND_ACTION
from . import leases
from .lookups import (
    whois,
    group_list,
    member_list,
    permission_catalogue,
    request_list,
    HELP_TEXT,
    help_message,
    request_modal,
)

__all__ = [
    "APPROVE_ACTION",
    "LEASE_DONE_ACTION",
    "LEASE_EXTEND_ACTION",
    "leases",
    "DENY_ACTION",
    "HEADER_MAX",
    "HELP_TEXT",
    "LIST_MAX",
    "MESSAGE_BLOCKS_MAX",
    "POLICY_ACTOR",
    "REQUEST_MODAL",
    "RETRY_ACTION",
    "SECTION_MAX",
    "STATE_EMOJI",
    "STATE_LABEL",
    "approval_card",
    "bullet_list",
    "clip",
    "context",
    "esc",
    "group_list",
    "header",
    "help_message",
    "kind_phrase",
    "member_list",
    "mention",
    "names",
    "outcome_text",
    "permission_catalogue",
    "permission_lines",
    "request_list",
    "request_modal",
    "requester_update",
    "section",
    "whois",
]
