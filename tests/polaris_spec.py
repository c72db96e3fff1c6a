"""The Polaris documents the tests check against: the OpenAPI spec and the guide's sample JSON, shipped under
``tests/fixtures/polaris`` (copies of ``../shared/polaris``) so these checks run on any checkout."""

from __future__ import annotations

import json
import os
from pathlib import Path

SPEC_DIR = Path(os.environ.get("POLARIS_SPEC_DIR", Path(__file__).resolve().parent / "fixtures" / "polaris"))


def guide_json_blocks() -> list:
    """Every top-level JSON object in the guide's text, in order (sample requests and responses)."""
    text = (SPEC_DIR / "identity-management-guide.txt").read_text()
    dec, out, i = json.JSONDecoder(), [], 0
    while (j := text.find('\n{\n"', i)) >= 0:
        try:
            obj, end = dec.raw_decode(text[j + 1 :])
            out.append(obj)
            i = j + 1 + end
        except ValueError:
            i = j + 2
    return out


def openapi_spec() -> dict:
    """The parsed ``openapi-identity.json``."""
    return json.loads((SPEC_DIR / "openapi-identity.json").read_text())
