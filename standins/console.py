"""The local Slack console behind ``python app.py demo``: the whole main job with no account anywhere.

It starts the Polaris sandbox (``standins.polaris_sandbox``) and the Slack stand-in (``standins.slack_api``) on
127.0.0.1, a SQLite database, the real Bolt app with every listener and the background worker. You type
slash commands as a chosen Slack user; they are signed like Slack signs them and dispatched into Bolt;
what the bot posts (approval cards, DMs, ephemeral answers, the App Home) is printed as Slack would show it
(mentions as names, an escaped ``&lt;!channel&gt;`` as harmless text); ``approve``/``deny`` press the card's
buttons (a card already decided still has them on the copy a second approver saw, who then gets the ephemeral
"already decided" answer); the request form is a text form to fill in; ``wait 2h`` moves the core's clock so
expiry can be shown. At a terminal, lines are edited with readline (Left, Backspace, Up for history). It reads
commands from stdin too, so a test can script it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
import urllib.parse
from typing import Callable, TextIO

from slack_sdk.signature import SignatureVerifier

from bot.config import Settings

from .console_parts import DemoClock, fill_form, home_opened_body, parse_duration, submission_body, user_change_body
from .polaris_sandbox import SANDBOX_API_KEY, PolarisSandbox
from .slack_api import SlackStandIn

APPROVAL_CHANNEL = "C0APPROVALS"
PEOPLE = {  # name -> (Slack user ID, email, first, last, role)
    "alice": ("U0ALICE", "alice@example.com", "Alice", "Ng", "engineer with no Polaris account yet"),
    "dan": ("U0DAN", "dan@example.com", "Dan", "Okafor", "analyst, Polaris user in Viewer"),
    "bob": ("U0BOB", "bob@example.com", "Bob", "Silva", "approver, Polaris Organization Admin"),
    "carol": ("U0CAROL", "carol@example.com", "Carol", "Ito", "admin, Polaris Organization Admin"),
    "gus": ("U0GUS", "gus@partner.example", "Gus", "Guest", "a guest account"),
}

APPROVER_IDS = frozenset({"U0BOB"})
ADMIN_IDS = frozenset({"U0CAROL", "U0BOB"})  # two admins: one asks for an offboarding, the other decides

HELP = """Commands:
  as <name>                 act as alice, dan, bob (approver), carol (admin) or gus (guest)
  /polaris <subcommand>     a slash command as the current user, e.g. /polaris request Viewer dashboards;
                            @name mentions a person (/polaris whois @dan), as Slack's @-menu does
  /polaris request           the request form, filled in here: a group by number or name, for how long, then a reason
  approve [N] | deny [N]    press a button on approval card N (default: the newest) as the current user;
                            on a card already decided, the button of the copy you saw before it changed
  retry [N]                 press Retry on a failed card
  home                      open the bot's App Home tab as the current user
  wait <time>               move the bot's clock forward, e.g. wait 2h, wait 30m, wait 2d (expiry, leases)
  options [N]               press Approve with options… on card N (a comment, a shorter time)
  extend | done             press Extend / I'm done on your DM before time-bound access ends
  deactivate <name>         deactivate a person's Slack account (the bot opens an offboarding card)
  cards                     show every approval card
  audit [N]                 the last N audit rows (default 15)
  people                    who is who
  help | quit"""


class Console:
    """A scripted or interactive Slack console bound to a Bolt app's ``dispatch``."""

    def __init__(self, dispatch: Callable, signing_secret: str, slack: SlackStandIn, core, out: TextIO = sys.stdout):
        self.dispatch, self.slack, self.core, self.out = dispatch, slack, core, out
        self.verifier = SignatureVerifier(signing_secret)
        self.user = "alice"
        self.echo = True  # repeat each command (useful when input is piped; a terminal shows it already)
        self._seen_msgs: dict[tuple[str, str], int] = {}
        self._seen_responses = 0
        self._seen_ephemerals = 0
        self._seen_views = 0
        self._buttons: dict[tuple[str, str], tuple[str, str]] = {}  # (card ts, action_id) -> (value, block_id)
        self.ask: Callable[[str], str | None] = lambda prompt: None  # the next line typed (set by loop())
        self.clock: DemoClock | None = None

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # ---------------------------------------------------------------------------- sending
    def _send(self, body: str, content_type: str = "application/x-www-form-urlencoded") -> int:
        return self._dispatch(body, content_type).status

    def _dispatch(self, body: str, content_type: str = "application/x-www-form-urlencoded"):
        from slack_bolt.request import BoltRequest

        ts = str(int(time.time()))
        headers = {
            "content-type": [content_type],
            "x-slack-request-timestamp": [ts],
            "x-slack-signature": [self.verifier.generate_signature(timestamp=ts, body=body)],
        }
        return self.dispatch(BoltRequest(body=body, headers=headers))

    @staticmethod
    def mentions(text: str) -> str:
        """``@name`` of a demo person as Slack sends it in a slash command with ``should_escape`` (the
        manifest's setting): ``<@U0ALICE|alice>``."""

        def one(m: re.Match) -> str:
            name = m.group(1).lower()
            return f"<@{PEOPLE[name][0]}|{name}>" if name in PEOPLE else m.group(0)

        return re.sub(r"(?<![<\w])@([A-Za-z]+)\b", one, text)

    def slash(self, text: str) -> None:
        text = self.mentions(text)
        uid = PEOPLE[self.user][0]
        form = {
            "token": "demo",
            "team_id": "T0STANDIN",
            "team_domain": "demo",
            "channel_id": "C0GENERAL",
            "channel_name": "general",
            "user_id": uid,
            "user_name": self.user,
            "command": "/polaris",
            "text": text,
            "api_app_id": "A0DEMO",
            "response_url": self.slack.response_url(),
            "trigger_id": f"{int(time.time())}.demo.{secrets.token_hex(4)}",
        }
        status = self._send(urllib.parse.urlencode(form))
        if status != 200:
            self.say(f"(Slack would show an error: HTTP {status})")

    def click(self, action_id: str, index: int | None) -> None:
        cards = self.slack.messages_in(APPROVAL_CHANNEL)
        if not cards:
            self.say("There are no approval cards yet.")
            return
        n = len(cards) if index is None else index
        if not 1 <= n <= len(cards):
            self.say(f"Card numbers go from 1 to {len(cards)}.")
            return
        card = cards[n - 1]
        self._remember_buttons()
        value = None
        for block in card.get("blocks") or []:
            for element in block.get("elements") or []:
                if element.get("action_id") == action_id:
                    value, block_id = element.get("value"), block.get("block_id")
        if value is None and (card["ts"], action_id) in self._buttons:
            value, block_id = self._buttons[(card["ts"], action_id)]
            self.say(f"(card {n} has changed; you press the button on the copy you saw before, as Slack allows)")
        if value is None:
            self.say(f"Card {n} has no such button now.")
            return
        uid = PEOPLE[self.user][0]
        payload = {
            "type": "block_actions",
            "team": {"id": "T0STANDIN"},
            "user": {"id": uid, "name": self.user},
            "api_app_id": "A0DEMO",
            "trigger_id": f"{int(time.time())}.demo",
            "container": {"type": "message", "channel_id": APPROVAL_CHANNEL, "message_ts": card["ts"]},
            "channel": {"id": APPROVAL_CHANNEL},
            "message": {"ts": card["ts"], "text": card.get("text")},
            "response_url": self.slack.response_url(),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": value,
                    "action_ts": str(time.time()),
                }
            ],
        }
        self._send(urllib.parse.urlencode({"payload": json.dumps(payload)}))

    def press_dm(self, action_id: str) -> None:
        """Press the newest button ``action_id`` in your DMs from the bot (Extend / I'm done before a lease ends)."""
        uid = PEOPLE[self.user][0]
        channel = self.slack.dm_channel(uid)
        for message in reversed(self.slack.messages_in(channel)):
            for block in message.get("blocks") or []:
                for element in block.get("elements") or []:
                    if element.get("action_id") == action_id:
                        action = {
                            "type": "button",
                            "action_id": action_id,
                            "block_id": block.get("block_id"),
                            "value": element.get("value"),
                            "action_ts": str(time.time()),
                        }
                        payload = {
                            "type": "block_actions",
                            "team": {"id": "T0STANDIN"},
                            "user": {"id": uid, "name": self.user},
                            "api_app_id": "A0DEMO",
                            "trigger_id": f"{int(time.time())}.demo",
                            "container": {"type": "message", "channel_id": channel, "message_ts": message["ts"]},
                            "channel": {"id": channel},
                            "response_url": self.slack.response_url(),
                            "actions": [action],
                        }
                        self._send(urllib.parse.urlencode({"payload": json.dumps(payload)}))
                        return
        self.say("None of your DMs from the bot has that button (it comes before time-bound access ends).")

    def _remember_buttons(self) -> None:
        """Every button any card has shown, so a click on a card decided meanwhile can still be made."""
        for card in self.slack.messages_in(APPROVAL_CHANNEL):
            for block in card.get("blocks") or []:
                for element in block.get("elements") or []:
                    if element.get("type") == "button" and element.get("action_id") and element.get("value"):
                        self._buttons[(card["ts"], element["action_id"])] = (element["value"], block.get("block_id"))

    def open_home(self) -> None:
        """``app_home_opened`` as the current user; the Home tab the bot publishes is shown by :meth:`show_new`."""
        status = self._send(home_opened_body(PEOPLE[self.user][0]), "application/json")
        if status != 200:
            self.say(f"(Slack would show an error: HTTP {status})")

    def deactivate(self, rest: str) -> None:
        """The Slack account of a demo person is deactivated: the stand-in marks it, and Slack's ``user_change``
        event (``deleted: true``) reaches the bot, which opens an offboarding card for the admins."""
        name = rest.strip().lower()
        if name not in PEOPLE:
            self.say(f"Nobody called {rest.strip()!r}; try: {', '.join(PEOPLE)}")
            return
        user = self.slack.users[PEOPLE[name][0]]
        user["deleted"] = True
        self.say(f"(the Slack account of {name} is deactivated)")
        self._send(user_change_body(user), "application/json")

    def wait(self, rest: str) -> None:
        seconds = parse_duration(rest)
        if seconds is None or self.clock is None:
            self.say("Say how long, e.g. `wait 2h`, `wait 30m`, `wait 2d`.")
            return
        self.clock.advance(seconds)
        self.core.service.wake()  # the worker looks at once: what expired meanwhile is expired now
        self.say(f"(the bot's clock is now {self.clock():%Y-%m-%d %H:%M} UTC)")

    def fill(self, view_id: str, view: dict) -> None:
        """The request form as a text form: ask each input, then submit it as Slack would."""
        values = fill_form(view, self.ask, self.say)
        if values is None:
            self.say("(form closed; nothing was sent)")
            return
        uid = PEOPLE[self.user][0]
        payload = submission_body(view, view_id, uid, self.user, values)
        response = self._dispatch(urllib.parse.urlencode({"payload": json.dumps(payload)}))
        try:
            answer = json.loads(response.body) if response.body else {}
        except ValueError:
            answer = {}
        if answer.get("response_action") == "errors":
            for field, why in (answer.get("errors") or {}).items():
                self.say(f"(the form says, at {field}: {why})")
            return
        self.say("(form submitted)")
        self.settle()
        self.show_new()

    # ---------------------------------------------------------------------------- showing
    def settle(self, timeout: float = 15.0) -> None:
        """Wait until the bot has gone quiet (no new Slack calls for a moment, worker idle)."""
        deadline = time.monotonic() + timeout
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = len(self.slack.calls) + len(self.slack.responses)
            if n != last:
                last, quiet_since = n, time.monotonic()
            elif time.monotonic() - quiet_since > 0.5 and self.core.worker.idle.is_set():
                return
            time.sleep(0.05)

    def show_new(self) -> None:
        with self.slack.lock:
            responses = self.slack.responses[self._seen_responses :]
            self._seen_responses = len(self.slack.responses)
            ephemerals = self.slack.ephemerals[self._seen_ephemerals :]
            self._seen_ephemerals = len(self.slack.ephemerals)
            forms: dict[str, dict] = {}  # the latest state of each form opened or updated since last time
            homes: dict[str, dict] = {}
            for v in self.slack.views[self._seen_views :]:
                if v["view"].get("type") == "modal":
                    forms[v["view_id"]] = v["view"]
                elif v["view"].get("type") == "home" and v.get("user_id") == PEOPLE[self.user][0]:
                    homes[v["user_id"]] = v["view"]
            self._seen_views = len(self.slack.views)
            changed = []
            for m in self.slack.messages:
                key = (m["channel"], m["ts"])
                version = m.get("updates", 0)
                if self._seen_msgs.get(key) != version:
                    seen_before = key in self._seen_msgs
                    self._seen_msgs[key] = version
                    changed.append({**m, "_seen_before": seen_before})
        for r in responses + ephemerals:
            self.say(f"[only visible to you] {self.slack.render(r)}")
        for view in homes.values():
            self.say(f"--- App Home of {self.user} ---\n{self.slack.render(view)}")
        for view_id, view in forms.items():
            self.say(f"--- a form opens (only visible to you) ---\n{self.slack.render(view)}")
            if any(b.get("type") == "input" for b in view.get("blocks") or []):
                if view.get("callback_id") == "request_modal":
                    self.say("(fill it in here, or type `/polaris request <group> [reason]` instead)")
                self.fill(view_id, view)
        for m in changed:
            self.say(f"--- {self._where(m['channel'])}{self._label(m)} ---\n{self.slack.render(m)}")

    def _label(self, m: dict) -> str:
        """ " card 2", " card 2 (updated)" or " thread of card 2" for a message in the approval channel."""
        if m["channel"] != APPROVAL_CHANNEL:
            return ""
        cards = [c["ts"] for c in self.slack.messages_in(APPROVAL_CHANNEL)]
        if m.get("thread_ts"):  # a reply in a card's thread (no card itself)
            return f" thread of card {cards.index(m['thread_ts']) + 1}" if m["thread_ts"] in cards else ""
        return f" card {cards.index(m['ts']) + 1}" + (" (updated)" if m["_seen_before"] else "")

    def _where(self, channel: str) -> str:
        if channel == APPROVAL_CHANNEL:
            return "#polaris-approvals"
        for name, (uid, *_rest) in PEOPLE.items():
            if channel == self.slack.dm_channel(uid):
                return f"DM to {name}"
        return channel

    def show_cards(self) -> None:
        cards = self.slack.messages_in(APPROVAL_CHANNEL)
        if not cards:
            self.say("No approval cards yet.")
        for i, m in enumerate(cards, 1):
            self.say(f"--- card {i} ---\n{self.slack.render(m)}")

    def show_audit(self, n: int) -> None:
        from sqlalchemy import select

        from bot.models import AuditEvent

        with self.core.db.session() as s:
            rows = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(n)))
        for r in reversed(rows):
            polaris = f" {r.polaris_method} {r.polaris_path} -> {r.polaris_status}" if r.polaris_method else ""
            self.say(
                f"{r.at:%H:%M:%S} {r.actor:<8} {r.action:<18} {r.outcome:<8} "
                f"{(r.request_id or '')[:8]:<8} {r.target or ''}{polaris} {r.detail or ''}".rstrip()
            )

    # ---------------------------------------------------------------------------- loop
    def handle(self, line: str) -> bool:  # noqa: C901
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        if self.echo:
            self.say(f"{self.user}> {line}")
        word, _, rest = line.partition(" ")
        word = word.lower()
        if word in ("quit", "exit"):
            return False
        if word == "help":
            self.say(HELP)
        elif word == "people":
            for name, (uid, email, _first, _last, role) in PEOPLE.items():
                self.say(f"  {name:<6} {uid:<8} {email:<22} {role}")
        elif word == "as":
            name = rest.strip().lower()
            if name in PEOPLE:
                self.user = name
                self.say(f"(you are now {name}: {PEOPLE[name][4]})")
            else:
                self.say(f"Nobody called {rest.strip()!r}; try: {', '.join(PEOPLE)}")
        elif word == "/polaris":
            self.slash(rest)
        elif word in ("approve", "deny", "retry", "options"):
            try:
                index = int(rest) if rest.strip() else None
            except ValueError:
                self.say("Give a card number, e.g. `approve 1`.")
                return True
            actions = {
                "approve": "approve_request",
                "deny": "deny_request",
                "retry": "retry_request",
                "options": "approve_options",  # Approve with options…: a comment, a shorter time
            }
            self.click(actions[word], index)
        elif word == "deactivate":
            self.deactivate(rest)
        elif word in ("extend", "done"):
            self.press_dm("lease_extend" if word == "extend" else "lease_done")
        elif word == "home":
            self.open_home()
        elif word == "wait":
            self.wait(rest)
        elif word == "cards":
            self.show_cards()
        elif word == "audit":
            if rest.strip() and not (rest.strip().isascii() and rest.strip().isdigit()):
                self.say("Give a number of rows, e.g. `audit 20`.")
                return True
            self.show_audit(min(int(rest), 500) if rest.strip() else 15)
        else:
            self.say("Unknown console command; type `help`.")
        self.settle()
        self.show_new()
        return True

    def loop(self, stream: TextIO, interactive: bool) -> None:
        """Read commands until ``quit`` or the end of input. ``interactive`` (a terminal): a prompt and readline's
        line editing and history (Left, Right, Backspace, Up, Down, Ctrl-R); otherwise lines are read from
        ``stream`` and echoed."""
        self.echo = not interactive
        if interactive:
            import readline  # noqa: F401 - input() edits lines and keeps history once it is loaded

            def ask(prompt: str) -> str | None:
                try:
                    return input(prompt)
                except EOFError:
                    return None

        else:

            def ask(prompt: str) -> str | None:
                line = stream.readline()
                if not line:
                    return None
                line = line.rstrip("\n")
                self.say(f"{prompt}{line}")
                return line

        self.ask = ask
        while True:
            if interactive:
                line = ask(f"{self.user}> ")
            else:
                line = stream.readline() or None
            if line is None:
                break
            if interactive and not line.strip():
                continue
            if not self.handle(line):
                break


def seed_people(slack: SlackStandIn, sandbox: PolarisSandbox) -> None:
    """The demo's Slack users, and the Polaris accounts some of them already have."""
    for name, (uid, email, first, last, _role) in PEOPLE.items():
        slack.add_user(
            uid,
            name,
            email,
            real_name=f"{first} {last}",
            first_name=first,
            last_name=last,
            is_restricted=(name == "gus"),
        )
    admin = sandbox.group_by_name("Organization Admin")["id"]
    viewer = sandbox.group_by_name("Viewer")["id"]
    for name, groups in (("dan", [viewer]), ("bob", [admin]), ("carol", [admin])):
        _uid, email, first, last, _ = PEOPLE[name]
        if sandbox.find_user(email) is None:
            sandbox.create_user(email, first, last, groups=groups, actions=[])


def run_demo(
    *, database_url: str | None = None, script: bool = False, stream: TextIO | None = None, out: TextIO = sys.stdout
) -> int:
    """Run the demo console until ``quit`` or end of input. Returns an exit code."""
    from bot import redact, wiring
    from bot.db import Database
    from bot.worker import Worker

    if database_url is None:
        import tempfile

        database_url = "sqlite:///" + tempfile.mkdtemp(prefix="polaris-demo-") + "/demo.sqlite3"
    sandbox = PolarisSandbox(seed=True)
    polaris_server = sandbox.serve()
    slack = SlackStandIn()
    slack.serve()
    seed_people(slack, sandbox)
    signing_secret = secrets.token_hex(16)
    settings = Settings(
        slack_bot_token=slack.bot_token,
        slack_signing_secret=signing_secret,
        slack_api_url=slack.api_url,
        polaris_api_url=polaris_server.url,
        polaris_api_key=SANDBOX_API_KEY,
        database_url=database_url,
        approval_channel=APPROVAL_CHANNEL,
        approvers=APPROVER_IDS,
        admins=ADMIN_IDS,
        worker_interval=0.5,
        policy_file=os.environ.get("POLICY_FILE") or None,  # the approval policy to try (README: the demo)
        polaris_retry_seconds=5,
    )
    redact.install()
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    db = Database(settings.database_url)
    db.migrate()
    core = wiring.build_core(settings, db=db)
    clock = DemoClock(core.service.clock)
    core.service.clock = clock  # `wait 2h` moves it
    core.worker = Worker(core.service, interval=settings.worker_interval).start()
    bolt = wiring.build_bolt_app(core)
    console = Console(bolt.dispatch, signing_secret, slack, core, out=out)
    console.clock = clock
    console.say(
        "Polaris access bot demo: Polaris sandbox at "
        + polaris_server.url
        + ", Slack console, "
        + database_url
        + ". Type `help`."
    )
    console.say(HELP)
    try:
        console.loop(stream or sys.stdin, interactive=not script)
    except KeyboardInterrupt:
        console.say("")
    finally:
        if not script:
            console.say("bye")
        core.worker.stop()
        core.service.drain()  # work handed off by the last click finishes before the stand-ins go
        slack.shutdown()
        polaris_server.shutdown()
        db.dispose()
    return 0
