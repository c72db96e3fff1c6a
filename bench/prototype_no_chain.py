"""NOT the product as shipped: ``python app.py serve`` with the audit chain switched off (rows inserted as before
issue 12, unsealed), the baseline of ``bench/audit_chain.py``'s ack comparison. Everything else is unchanged."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)


def main() -> int:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    import bot.audit
    import bot.audit_chain as chain

    event.remove(Session, "before_commit", chain._seal_on_commit)
    bot.audit.attach = lambda session, sealer, row: session.add(row)
    import app

    return app.main(["serve", "--host", "127.0.0.1"])


if __name__ == "__main__":
    sys.exit(main())
