"""Tests for bot.commands: parsing ``/polaris`` slash command text (pure, no I/O).

Covers every subcommand and alias, Slack's escaped mentions and mailto links, email validation, quoting
(straight and curly), the longest-known-group-prefix rule, length caps, control characters, and property
tests: whatever the text, ``parse`` returns a :class:`Command` or raises :class:`UsageError`, nothing else.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


from bot.commands import (
    ALIASES,
    EMAIL_MAX,
    GROUP_MAX,
    REASON_MAX,
    SUBCOMMANDS,
    TEXT_MAX,
    Command,
    Target,
    UsageError,
    clean,
    parse,
    parse_email,
    parse_target,
    split_group_and_reason,
)

NO_ARG = ("help", "permissions", "status", "pending", "policy")


# ------------------------------------------------------------------------------------------- clean
class TestClean:
    def test_none_and_empty(self):
        assert clean(None) == ""
        assert clean("") == ""
        assert clean("   \t\n ") == ""

    def test_control_and_format_characters_are_dropped(self):
        assert clean("gr\x00o\x07u\x1bp\u200b\u200e\ufeff") == "group"
        assert clean("a\x7fb\x9fc") == "abc"

    def test_line_breaks_and_tabs_become_single_spaces(self):
        assert clean("request\tData\n\nneed\r\nit\u2028now\u2029ok") == "request Data need it now ok"

    def test_whitespace_folded_and_stripped(self):
        assert clean("  request   Data \u00a0 Analyst  ") == "request Data Analyst"

    def test_nfc_normalization(self):
        decomposed = "Cafe\u0301"
        assert clean(decomposed) == "Caf\u00e9"
        assert clean(decomposed) == unicodedata.normalize("NFC", decomposed)

    def test_length_cap(self):
        assert len(clean("x" * (TEXT_MAX + 500))) == TEXT_MAX
        assert clean("abcdef", limit=3) == "abc"


# ------------------------------------------------------------------------------------------- parse
class TestParseSubcommands:
    def test_empty_text_is_help(self):
        for text in (None, "", "   ", "\n\t", "\x00\x01"):
            assert parse(text) == Command("help")

    @pytest.mark.parametrize("name", NO_ARG)
    def test_no_argument_subcommands(self, name):
        assert parse(name) == Command(name)
        assert parse(name.upper()) == Command(name)
        if name == "help":  # help with words after it is still help
            assert parse("help something else") == Command("help")
            return
        # trailing words are refused, naming them (new-user trial: they were dropped silently)
        with pytest.raises(UsageError) as e:
            parse(f"{name} something `else`")
        assert f"`/polaris {name}` takes nothing after it" in str(e.value) and "something 'else'" in str(e.value)

    def test_group_commands(self):
        """Issue 11: `groups Viewer` ignored its argument; create-, edit- and delete-group were unknown."""
        assert parse("groups Viewer") == Command("groups", rest="Viewer")
        assert parse("create-group") == Command("create-group")
        assert parse('create-group "R R" AccessReports in demo') == Command(
            "create-group", rest='"R R" AccessReports in demo'
        )
        assert parse("edit-group Alerts") == Command("edit-group", rest="Alerts")
        assert parse("delete-group Temp old") == Command("delete-group", rest="Temp old")
        for name in ("edit-group", "delete-group"):
            with pytest.raises(UsageError, match="Which group"):
                parse(name)

    @pytest.mark.parametrize("alias,name", sorted(ALIASES.items()))
    def test_every_alias(self, alias, name):
        assert name in SUBCOMMANDS
        if name in NO_ARG:
            assert parse(alias) == Command(name)
        elif name in ("whois", "reset-password"):
            assert parse(alias) == Command(name)
            assert parse(f"{alias} <@U123ABC>") == Command(name, target=Target(user_id="U123ABC"))
        elif name == "groups":  # issue 11: `groups <name>` is one group in detail
            assert parse(alias) == Command("groups")
            assert parse(f"{alias} Data Analyst") == Command("groups", rest="Data Analyst")
        elif name == "request":
            assert parse(f"{alias} Data Analyst need dashboards") == Command(
                "request", rest="Data Analyst need dashboards"
            )
        else:  # pragma: no cover - a new alias needs a test here
            pytest.fail(f"alias {alias} -> {name} not covered")

    def test_every_subcommand_is_known(self):
        # each subcommand parses to itself with a minimal valid argument
        samples = {
            "help": "help",
            "whois": "whois",
            "groups": "groups",
            "members": "members Viewer",
            "permissions": "permissions",
            "request": "request",
            "invite": "invite a@b.com Viewer",
            "reset-password": "reset-password",
            "status": "status",
            "pending": "pending",
            "policy": "policy",
            "leave": "leave Viewer",
            "remove": "remove a@b.com Viewer",
            "offboard": "offboard a@b.com",
            "cancel": "cancel 1a2b3c4d",
            "audit": "audit Viewer",
            "create-group": "create-group",
            "edit-group": "edit-group Alerts",
            "delete-group": "delete-group Alerts",
            "update-user": "update-user a@b.com",
        }
        assert set(samples) == set(SUBCOMMANDS)
        for name, text in samples.items():
            assert parse(text).name == name

    def test_update_user_needs_one_person(self):
        assert parse("update-user <@U12345|ann>") == Command("update-user", target=Target(user_id="U12345"))
        assert parse("update-user Ann@Example.com").target == Target(email="ann@example.com")
        with pytest.raises(UsageError, match="Whose account"):
            parse("update-user")
        with pytest.raises(UsageError, match="one email or @mention"):
            parse("update-user a@b.com c@d.com")

    def test_unknown_subcommand(self):
        with pytest.raises(UsageError) as e:
            parse("frobnicate Data")
        assert "frobnicate" in str(e.value)
        assert "/polaris help" in str(e.value)

    def test_unknown_subcommand_quote_is_sanitised_and_capped(self):
        with pytest.raises(UsageError) as e:
            parse("`" + "z" * 300)
        msg = str(e.value)
        assert "`'zzz" in msg  # the backtick of the input is turned into a quote, not code-breaking
        assert "z" * 81 not in msg

    def test_case_insensitive_subcommand(self):
        assert parse("WHOIS") == Command("whois")
        assert parse("Reset-Password") == Command("reset-password")
        assert parse("Join Data").name == "request"

    def test_whois_self(self):
        cmd = parse("whois")
        assert cmd == Command("whois")
        assert cmd.target.is_self

    def test_whois_mention_with_label(self):
        assert parse("whois <@U123|name>") == Command("whois", target=Target(user_id="U123"))

    def test_whois_mention_without_label(self):
        assert parse("whois <@U123>") == Command("whois", target=Target(user_id="U123"))

    def test_whois_enterprise_user_id(self):
        assert parse("who <@W0ABC12|jo>") == Command("whois", target=Target(user_id="W0ABC12"))

    def test_whois_mailto(self):
        cmd = parse("whois <mailto:a@b.com|a@b.com>")
        assert cmd == Command("whois", target=Target(email="a@b.com"))
        assert not cmd.target.is_self

    def test_whois_plain_email_lowercased(self):
        assert parse("whois Alice.Smith@Example.COM") == Command(
            "whois", target=Target(email="alice.smith@example.com")
        )

    def test_whois_two_words_refused(self):
        with pytest.raises(UsageError) as e:
            parse("whois a@b.com c@d.com")
        assert "one email or @mention" in str(e.value)

    def test_reset_password_targets(self):
        assert parse("reset-password") == Command("reset-password")
        assert parse("reset-password <@U42|bob>") == Command("reset-password", target=Target(user_id="U42"))
        assert parse("reset <mailto:Bob@Corp.io|Bob@Corp.io>") == Command(
            "reset-password", target=Target(email="bob@corp.io")
        )

    def test_plain_at_name_refused(self):
        for text in ("whois @bob", "reset-password @bob.smith", "invite @bob Viewer"):
            with pytest.raises(UsageError) as e:
                parse(text)
            msg = str(e.value)
            assert "@-menu" in msg and "email" in msg

    def test_members(self):
        assert parse("members Data Analyst") == Command("members", rest="Data Analyst")
        with pytest.raises(UsageError) as e:
            parse("members")
        assert "Which group?" in str(e.value)

    def test_request(self):
        assert parse("request") == Command("request")  # the handler opens the form
        assert parse('request "Data Analyst" for the Q3 dashboards') == Command(
            "request", rest='"Data Analyst" for the Q3 dashboards'
        )
        assert parse("join   Data\n reason") == Command("request", rest="Data reason")

    def test_invite(self):
        cmd = parse("invite <mailto:New.Person@Corp.com|New.Person@Corp.com> Data Analyst starting Monday")
        assert cmd == Command("invite", target=Target(email="new.person@corp.com"), rest="Data Analyst starting Monday")

    def test_invite_plain_email(self):
        assert parse("invite x@y.org Viewer") == Command("invite", target=Target(email="x@y.org"), rest="Viewer")

    @pytest.mark.parametrize("text", ["invite", "invite a@b.com", "invite a@b.com   "])
    def test_invite_needs_email_and_group(self, text):
        with pytest.raises(UsageError) as e:
            parse(text)
        assert "Usage: `/polaris invite <email> <group> [reason]`" in str(e.value)

    def test_invite_invalid_email(self):
        with pytest.raises(UsageError) as e:
            parse("invite not-an-email Viewer")
        assert "not a valid email address" in str(e.value)

    def test_control_characters_stripped_before_parsing(self):
        assert parse("who\x00is\u200b <@U1\x07>") == Command("whois", target=Target(user_id="U1"))
        assert parse("request\tData\x1b\nneeded") == Command("request", rest="Data needed")

    def test_long_request_text_is_kept_whole_for_its_checks(self):
        """Issue 8, finding 21: the text used to be cut at TEXT_MAX before the reason was measured."""
        cmd = parse("request Viewer " + "y" * 5000)
        assert cmd == Command("request", rest="Viewer " + "y" * 5000)

    @pytest.mark.parametrize("text", ["request Viewer ", "invite new@example.com Viewer "])
    def test_a_5000_character_reason_is_refused_with_its_real_length(self, text):
        cmd = parse(text + "r" * 5000)
        with pytest.raises(UsageError) as e:
            split_group_and_reason(cmd.rest, GROUPS)
        assert "5,000 characters" in str(e.value) and f"limit is {REASON_MAX}" in str(e.value)

    @pytest.mark.parametrize("name", ["help", "groups", "whois", "members", "reset-password"])
    def test_other_commands_over_the_cap_are_refused_with_their_length(self, name):
        with pytest.raises(UsageError) as e:
            parse(f"{name} " + "z" * 5000)
        assert f"{len(name) + 5001:,} characters" in str(e.value) and f"{TEXT_MAX:,}" in str(e.value)

    def test_a_huge_unknown_first_word_is_cheap(self):
        import time

        started = time.monotonic()
        assert split_group_and_reason("q" * 200_000, GROUPS, check_lengths=False)[0] == "q" * 200_000
        assert time.monotonic() - started < 1.0


# ------------------------------------------------------------------------------------ targets/emails
class TestTargetsAndEmails:
    def test_parse_target_mentions(self):
        assert parse_target("<@U123|name>") == Target(user_id="U123")
        assert parse_target("  <@U123>  ") == Target(user_id="U123")

    def test_malformed_mention_is_not_a_user(self):
        # lower-case or truncated IDs are not mentions; they fail as emails
        for raw in ("<@u123>", "<@U123", "<#C123|general>", "<!channel>"):
            with pytest.raises(UsageError):
                parse_target(raw)

    def test_parse_target_email(self):
        assert parse_target("A@B.com") == Target(email="a@b.com")
        assert parse_target("<mailto:a@b.com|a@b.com>") == Target(email="a@b.com")
        assert parse_target("<mailto:a@b.com>") == Target(email="a@b.com")

    def test_plain_at_name(self):
        with pytest.raises(UsageError) as e:
            parse_target("@alice")
        assert "`@alice`" in str(e.value)
        assert "@-menu" in str(e.value)

    @pytest.mark.parametrize(
        "raw",
        [
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "@",
            "a@",
            "a@b..com",
            "plainaddress",
            "<mailto:nope|nope>",
            "a@-b.com",
            "a@b.com.",
        ],
    )
    def test_invalid_emails(self, raw):
        with pytest.raises(UsageError) as e:
            parse_email(raw)
        msg = str(e.value)
        assert "is not a valid email address" in msg
        assert msg.endswith(".")
        assert msg[0] == "`"

    def test_mailto_label_ignored(self):
        assert parse_email("<mailto:real@x.com|fake@evil.com>") == "real@x.com"

    def test_email_too_long(self):
        local = "a" * 64
        domain = ".".join(["b" * 60] * 4) + ".com"
        raw = f"{local}@{domain}"
        assert len(raw) > EMAIL_MAX
        with pytest.raises(UsageError) as e:
            parse_email(raw)
        assert "too long" in str(e.value)

    def test_email_backticks_do_not_break_code_span(self):
        with pytest.raises(UsageError) as e:
            parse_email("`oops`")
        msg = str(e.value)
        assert msg.count("`") == 2  # only the message's own code span

    def test_valid_emails_normalised(self):
        assert parse_email("First.Last+tag@Sub.Example.co.uk") == "first.last+tag@sub.example.co.uk"
        assert parse_email("  x@y.io ") == "x@y.io"


# ------------------------------------------------------------------------------- group and reason
GROUPS = ["Data Analyst", "Data", "Viewer", "Project Admin Read Only", "Super Admin"]


class TestSplitGroupAndReason:
    def test_longest_known_prefix_wins(self):
        assert split_group_and_reason("data analyst need it", ["Data Analyst", "Data"]) == ("data analyst", "need it")
        assert split_group_and_reason("data analyst need it", ["Data", "Data Analyst"]) == ("data analyst", "need it")

    def test_shorter_known_group(self):
        assert split_group_and_reason("Data need it", ["Data Analyst", "Data"]) == ("Data", "need it")

    def test_four_word_group(self):
        assert split_group_and_reason("project admin read only for audit", GROUPS) == (
            "project admin read only",
            "for audit",
        )

    def test_typo_of_a_multi_word_group_is_reported_whole(self):
        assert split_group_and_reason("Data Manger ingest stuff", ["Data Manager", "Data Analyst"]) == (
            "Data Manger",
            "ingest stuff",
        )

    def test_unknown_group_is_first_word(self):
        assert split_group_and_reason("Unknown Thing please", GROUPS) == ("Unknown", "Thing please")
        assert split_group_and_reason("Unknown", []) == ("Unknown", "")

    def test_group_only(self):
        assert split_group_and_reason("Data Analyst", GROUPS) == ("Data Analyst", "")

    @pytest.mark.parametrize(
        "rest",
        [
            '"Data Analyst" need it',
            "'Data Analyst' need it",
            "\u201cData Analyst\u201d need it",
            "\u2018Data Analyst\u2019 need it",
            '\u201cData Analyst" need it',  # curly open, straight close (mixed keyboard)
        ],
    )
    def test_quoted_group(self, rest):
        assert split_group_and_reason(rest, []) == ("Data Analyst", "need it")

    def test_quoted_group_overrides_prefix_rule(self):
        assert split_group_and_reason('"Data" Analyst need it', GROUPS) == ("Data", "Analyst need it")

    def test_quoted_group_spaces_trimmed(self):
        assert split_group_and_reason('"  Super Admin  "   why', GROUPS) == ("Super Admin", "why")

    @pytest.mark.parametrize(
        "rest", ['"Data Analyst need it', "\u201cData Analyst need it", "'Data", "\u2018Data Analyst"]
    )
    def test_unterminated_quote(self, rest):
        with pytest.raises(UsageError) as e:
            split_group_and_reason(rest, GROUPS)
        assert "opening quote but no closing one" in str(e.value)

    @pytest.mark.parametrize("rest", ['"" reason', '"   " reason', "\u201c\u201d"])
    def test_empty_quoted_group(self, rest):
        with pytest.raises(UsageError) as e:
            split_group_and_reason(rest, GROUPS)
        assert "empty" in str(e.value)

    @pytest.mark.parametrize("rest", ["", "   "])
    def test_no_group(self, rest):
        with pytest.raises(UsageError) as e:
            split_group_and_reason(rest, GROUPS)
        assert "Which group?" in str(e.value)

    def test_group_length_cap(self):
        ok = "g" * GROUP_MAX
        assert split_group_and_reason(ok, []) == (ok, "")
        for rest in ("g" * (GROUP_MAX + 1), '"' + "g" * (GROUP_MAX + 1) + '" why'):
            with pytest.raises(UsageError) as e:
                split_group_and_reason(rest, [])
            assert str(GROUP_MAX) in str(e.value)

    def test_reason_length_cap(self):
        ok = "r" * REASON_MAX
        assert split_group_and_reason(f"Viewer {ok}", GROUPS) == ("Viewer", ok)
        with pytest.raises(UsageError) as e:
            split_group_and_reason(f"Viewer {ok}r", GROUPS)
        assert f"The reason is {REASON_MAX + 1} characters long; the limit is {REASON_MAX}" in str(e.value)

    def test_through_parse(self):
        cmd = parse("join \u201cdata analyst\u201d\tfor   Q3")
        assert split_group_and_reason(cmd.rest, GROUPS) == ("data analyst", "for Q3")


# --------------------------------------------------------------------------------------- properties
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
heads = st.sampled_from(list(SUBCOMMANDS) + list(ALIASES) + [s.upper() for s in SUBCOMMANDS])
tokens = st.one_of(
    st.text(max_size=20, alphabet=st.characters(blacklist_categories=("Cs",))),
    st.sampled_from(
        [
            '"',
            "'",
            "\u201c",
            "\u201d",
            "\u2018",
            "\u2019",
            "@",
            "<",
            ">",
            "|",
            "`",
            "\x00",
            "\n",
            "\u200b",
            "<@U123|x>",
            "<@U123>",
            "<@W9>",
            "<@u1>",
            "<mailto:a@b.com|a@b.com>",
            "<mailto:|>",
            "<mailto:x>",
            "a@b.com",
            "@bob",
            "a@b",
            "x@" + "y" * 300 + ".com",
            "Data Analyst",
            '"Data',
            "\u201cData\u201d",
            "\ud7ff",
            "\U0010ffff",
            "\u0301",
        ]
    ),
    st.emails(),
)
structured = st.builds(
    lambda h, ts, sep: h + sep + " ".join(ts),
    heads,
    st.lists(tokens, max_size=8),
    st.sampled_from([" ", "  ", "\t", "\n", "", " \u00a0"]),
)


def _check_parse(text):
    try:
        cmd = parse(text)
    except UsageError as e:
        assert str(e).strip(), "UsageError must carry a sentence"
        return
    assert isinstance(cmd, Command)
    assert cmd.name in SUBCOMMANDS
    assert isinstance(cmd.target, Target)
    assert isinstance(cmd.rest, str) and len(cmd.rest) <= TEXT_MAX
    assert not any(unicodedata.category(ch).startswith("C") for ch in cmd.rest)
    if cmd.target.user_id is not None:
        assert cmd.target.email is None
    if cmd.name in ("help", "permissions", "status", "pending", "policy"):  # `groups <name>`: issue 11
        assert cmd.target.is_self and cmd.rest == ""


@FUZZ
@given(any_text)
def test_parse_arbitrary_text_never_raises_other_errors(text):
    _check_parse(text)


@FUZZ
@given(structured)
def test_parse_structured_text_never_raises_other_errors(text):
    _check_parse(text)


@FUZZ
@given(st.text(max_size=400))  # surrogates included: clean() must drop them
def test_parse_text_with_surrogates(text):
    _check_parse(text)


group_names = st.lists(st.one_of(st.text(max_size=40), st.sampled_from(GROUPS)), max_size=12)
rests = st.one_of(any_text, st.builds(lambda ts: " ".join(ts), st.lists(tokens, max_size=10)))


@FUZZ
@given(rests, group_names)
def test_split_group_and_reason_never_raises_other_errors(rest, groups):
    try:
        group, reason = split_group_and_reason(rest, groups)
    except UsageError as e:
        assert str(e).strip()
        return
    assert group.strip() and len(group) <= GROUP_MAX
    assert len(reason) <= REASON_MAX
    if rest == clean(rest):  # what parse() hands over: single spaces, no control characters
        assert group.strip() == group
        assert reason.strip() == reason


@FUZZ
@given(st.lists(st.sampled_from(GROUPS), min_size=1, max_size=5), st.text(alphabet="abcdefghij ", max_size=60))
def test_known_group_prefix_property(groups, reason):
    """A known group typed in any case, followed by a reason, is split back exactly."""
    target = groups[0]
    typed = target.upper()
    reason = " ".join(reason.split())
    rest = f"{typed} {reason}".strip()
    group, got_reason = split_group_and_reason(rest, groups)
    # the longest known prefix wins; it is at least as long as the intended group
    assert len(group) >= len(typed)
    assert rest.startswith(group)
    assert (group + " " + got_reason).strip() == rest


class TestRemovalCommands:
    """leave, remove, offboard, cancel (issue 10): what each reads, and a sentence for what it cannot."""

    def test_leave_takes_a_group_and_an_optional_reason(self):
        assert parse("leave Data Analyst done") == Command("leave", rest="Data Analyst done")
        with pytest.raises(UsageError, match="leave <group>"):
            parse("leave")

    def test_remove_takes_a_person_then_a_group(self):
        assert parse("remove <@U123ABC|dan> Viewer left the team") == Command(
            "remove", target=Target(user_id="U123ABC"), rest="Viewer left the team"
        )
        assert parse("remove dan@example.com Viewer").target == Target(email="dan@example.com")
        for bad in ("remove", "remove dan@example.com"):
            with pytest.raises(UsageError, match="remove <email"):
                parse(bad)
        with pytest.raises(UsageError, match="not a valid email"):
            parse("remove dan Viewer")

    def test_offboard_takes_a_person_and_an_optional_reason(self):
        assert parse("offboard dan@example.com left the company") == Command(
            "offboard", target=Target(email="dan@example.com"), rest="left the company"
        )
        with pytest.raises(UsageError, match="offboard <email"):
            parse("offboard")

    def test_cancel_takes_the_shown_prefix_or_the_full_id(self):
        full = "1a2b3c4d-0000-4000-8000-00000000abcd"
        assert parse("cancel 1A2B3C4D") == Command("cancel", rest="1a2b3c4d")
        assert parse("cancel `1a2b3c4d`") == Command("cancel", rest="1a2b3c4d")
        assert parse(f"cancel {full}") == Command("cancel", rest=full)
        for bad in ("cancel 1a2b", "cancel xyz12345", "cancel 1a2b3c4d please"):
            with pytest.raises(UsageError, match="not a request ID"):
                parse(bad)
        with pytest.raises(UsageError, match="Which request"):
            parse("cancel")

    def test_a_long_removal_reason_is_kept_whole_for_its_length_check(self):
        text = "remove a@b.com Viewer " + "x" * 5000
        assert len(parse(text).rest) > 5000


@pytest.mark.parametrize(
    "text, expected",
    [
        ("audit alice@example.com", Command("audit", target=Target(email="alice@example.com"))),
        ("audit <@U0ALICE|alice> page 2", Command("audit", target=Target(user_id="U0ALICE"), page=2)),
        ("audit Data Analyst page 3", Command("audit", rest="Data Analyst", page=3)),
        ('audit "Data Analyst"', Command("audit", rest='"Data Analyst"')),
        ("audit Viewer PAGE 2", Command("audit", rest="Viewer", page=2)),
    ],
)
def test_audit_takes_a_person_or_a_group_and_a_page(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text", ["audit", "audit page 2", "audit Viewer page x", "audit Viewer page 0"])
def test_audit_without_a_subject_or_with_a_bad_page_is_a_sentence(text):
    with pytest.raises(UsageError):
        parse(text)


class TestInviteSeveralPeople:
    """Issue 11: ``invite a@x b@y Viewer`` read ``b@y`` as the group; the group is the first word that is not
    an email or mention."""

    def test_every_email_and_mention_before_the_group_is_a_person(self):
        cmd = parse("invite a@x.org <@U0BOB|bob> <mailto:C@x.org|C@x.org> Data Analyst for 2h onboarding")
        assert cmd.target == Target(email="a@x.org")
        assert cmd.others == (Target(user_id="U0BOB"), Target(email="c@x.org"))
        assert cmd.rest == "Data Analyst for 2h onboarding"

    def test_a_person_named_twice_is_kept_for_the_invite_to_count(self):
        # kept by the parser: the invite counts them once by email and says who was named twice
        cmd = parse("invite a@x.org A@x.org Viewer")
        assert cmd == Command(
            "invite", target=Target(email="a@x.org"), rest="Viewer", others=(Target(email="a@x.org"),)
        )

    def test_people_and_no_group_is_a_usage_error(self):
        with pytest.raises(UsageError, match="Usage: `/polaris invite"):
            parse("invite a@x.org b@x.org")

    def test_a_bad_email_among_several_is_named(self):
        with pytest.raises(UsageError, match="not a valid email"):
            parse("invite a@x.org b@@x Viewer")


def test_a_command_the_parser_trips_on_still_gets_a_lane(monkeypatch):
    """The lane is picked in the listener after the ack: a parser bug must not kill the listener (the guarded
    command on the Polaris lane answers the person)."""
    from bot import lanes

    def trips(text):
        raise ValueError("invalid literal for int()")

    monkeypatch.setattr(lanes, "parse", trips)
    assert lanes.lane_for_command("groups page 2", groups_cached=True) == lanes.POLARIS


def test_superscript_page_numbers_are_usage_errors():
    """``str.isdigit`` admits ``²``; the page parsers answer with the page sentence instead of crashing."""
    for words in ("whois page ³", "audit Viewer page ²"):  # `groups page ²`: refused by the route
        with pytest.raises(UsageError, match="whole number"):
            parse(words)
