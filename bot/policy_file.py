"""Reading a policy file (:mod:`bot.policy`): the TOML text and data, the line a table or key is on, and the
error that names them (``FILE:LINE: what is wrong``). No I/O beyond reading the one file."""

from __future__ import annotations

import re
import tomllib


class PolicyError(ValueError):
    """The policy file is invalid; ``str(err)`` is ``FILE:LINE: what is wrong``."""


def line_of(text: str, table: list[str] | None, key: str | None) -> int:
    """Best-effort line number of ``key`` inside ``[table]`` (1-based; 1 when not found)."""
    lines = text.splitlines()
    start = 0
    if table:
        names = [re.escape(t) for t in table]
        pattern = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(f"(?:\"{n}\"|'{n}'|{n})" for n in names) + r"\s*\]")
        for i, line in enumerate(lines):
            if pattern.match(line):
                start = i
                if key is None:
                    return i + 1
                break
    if key is not None:
        key_re = re.compile(r'^\s*(?:"' + re.escape(key) + r'"|' + re.escape(key) + r")\s*=")
        for i in range(start, len(lines)):
            if i > start and table and lines[i].lstrip().startswith("["):
                break
            if key_re.match(lines[i]):
                return i + 1
    return start + 1


def read_toml(path: str) -> tuple[str, dict]:
    """The file's text and its parsed TOML; :class:`PolicyError` when it cannot be read or parsed."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise PolicyError(f"{path}: cannot read the policy file ({e.strerror})") from None
    text = raw.decode("utf-8", "replace")
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None) or (re.search(r"line (\d+)", str(e)) or [None, "1"])[1]
        raise PolicyError(f"{path}:{line}: invalid TOML: {getattr(e, 'msg', str(e))}") from None
