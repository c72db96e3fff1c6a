"""Slack Web API errors that no retry can cure (Slack's method docs: ``conversations.open``, ``chat.postMessage``,
``chat.update``): the person cannot get a DM, the bot cannot reach the channel, or the message is gone. The
delivery ledger (:mod:`bot.deliveries`) gives up on these at once, and tries any other error again."""

from __future__ import annotations

#: The person cannot get a DM from the bot (the ledger stops DMing them for the request: ``unreachable``).
RECIPIENT_ERRORS = frozenset(
    "user_disabled account_inactive cannot_dm_bot user_not_found users_not_found user_not_visible cannot_dm_user".split()
)
PERMANENT_ERRORS = RECIPIENT_ERRORS | frozenset(
    """channel_not_found not_in_channel is_archived channel_is_archived message_not_found cant_update_message
    edit_window_closed restricted_action restricted_action_read_only_channel restricted_action_non_threadable_channel
    ekm_access_denied team_access_not_granted invalid_blocks invalid_blocks_format msg_too_long no_text
    too_many_attachments missing_scope not_allowed_token_type users_list_not_supplied""".split()
)


def is_permanent(error: str | None) -> bool:
    """True for a Slack error code that retrying cannot cure (:data:`PERMANENT_ERRORS`)."""
    return (error or "") in PERMANENT_ERRORS
