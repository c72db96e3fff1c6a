"""Slack listeners. Each module registers itself with ``register(app, service)``; listeners parse and
validate the payload, ``ack()`` at once, and hand off to :class:`bot.access.AccessService`."""

from slack_bolt import App


def register_all(app: App, service) -> None:
    """Register every listener of this package on ``app``."""
    from . import actions, commands, errors, events, views

    commands.register(app, service)
    actions.register(app, service)
    views.register(app, service)
    events.register(app, service)
    errors.register(app, service)
