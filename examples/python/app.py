#!/usr/bin/env python3
"""app.py -- a Python application on toms (psycopg 3), the way the docs recommend.

- one connection pool's worth of connections to PgBouncer in transaction
  mode (here: plain psycopg connections, one per unit of work, as a pool
  would hand them out);
- every unit of work is one transaction that first enters the tenant with
  the end user's PASETO v4.public token, transaction-local
  (toms.enter_tenant(%s, true)), so no pooled server connection carries a
  tenant into the next client's transaction;
- every value, the token included, is a bound parameter;
- the sensitive column is sealed and opened in SQL (toms.seal, toms.unseal);
- refusals are told apart by SQLSTATE and message.

Tokens: Debian has no PASETO library for Python, so the identity service
is the Node one (../node/idp.mjs, npm "paseto"); any PASETO v4.public
implementation would do.  Connection settings come from the PG*
variables; TOMS_IDP_DIR is the identity service's key directory.

prepare_threshold=None: PgBouncer 1.18 in transaction mode cannot keep
server-side prepared statements, which psycopg 3 otherwise creates for a
query run five times.
"""
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psycopg

IDP = os.environ["TOMS_IDP_DIR"]
AUTHOR = os.environ.get("EXAMPLE_AUTHOR", "python-example")
NODE_DIR = Path(__file__).resolve().parent.parent / "node"


def say(s):
    print(f"python: {s}", flush=True)


def mint(tenant, sub, seconds=900):
    out = subprocess.run(["node", "--no-warnings", "idp.mjs", "mint", IDP, tenant, sub, str(seconds)],
                         cwd=NODE_DIR, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def connect():
    return psycopg.connect(application_name="toms-example-python", prepare_threshold=None,
                           autocommit=True)


@contextmanager
def in_tenant(token):
    """One transaction inside the token's tenant; rolled back on error."""
    with connect() as conn:
        with conn.transaction():
            conn.execute("SELECT toms.enter_tenant(%s, true)", (token,))
            yield conn


TOKEN_ERRORS = re.compile(r"^(token (expired|not yet valid|signature invalid|malformed|claims invalid)|unknown key)$")


def refusal(err):
    code, msg = err.sqlstate, err.diag.message_primary
    if code == "42501" and msg == "no tenant context":
        what = "bug: the query ran outside a tenant"
    elif TOKEN_ERRORS.match(msg or ""):
        what = "the user must sign in again"
    else:
        what = "unexpected"
    return f'refused, SQLSTATE {code} "{msg}" -> {what}'


def main():
    acme = mint("acme", "bob@acme.example")
    globex = mint("globex", "carl@globex.example")
    expired = mint("acme", "bob@acme.example", -60)

    with in_tenant(acme) as conn:
        tenant = conn.execute(
            "INSERT INTO notes_app.notes (author, body, secret) VALUES (%s, %s, toms.seal(%s))"
            " RETURNING tenant_id", (AUTHOR, "Badge printer is broken", "printer PIN 0815")).fetchone()[0]
    say(f"acme: inserted a note (tenant_id filled in by toms: {tenant})")

    with in_tenant(acme) as conn:
        rows = conn.execute(
            "SELECT toms.current_tenant(), toms.current_actor(), body, toms.unseal(secret),"
            "       secret::text LIKE 'sealed:v1:%%' FROM notes_app.notes WHERE author = %s",
            (AUTHOR,)).fetchall()
    for tenant, actor, body, secret, sealed in rows:
        say(f'acme: {len(rows)} note(s) as {actor} in {tenant}: "{body}", secret "{secret}"'
            f" (stored {'sealed' if sealed else 'IN PLAINTEXT'})")

    with in_tenant(globex) as conn:
        n = conn.execute("SELECT count(*) FROM notes_app.notes WHERE author = %s", (AUTHOR,)).fetchone()[0]
    say(f"globex: sees {n} of acme's notes")

    with connect() as conn:
        t = conn.execute("SELECT toms.current_tenant(true)").fetchone()[0]
        say(f"after COMMIT the pooled connection has tenant {t or 'none'}")
        try:
            conn.execute("SELECT count(*) FROM notes_app.notes WHERE author = %s", (AUTHOR,))
            say("no tenant context: NOT REFUSED")
        except psycopg.Error as err:
            say(f"no tenant context: {refusal(err)}")

    try:
        with in_tenant(expired) as conn:
            conn.execute("SELECT count(*) FROM notes_app.notes")
        say("expired token: NOT REFUSED")
    except psycopg.Error as err:
        say(f"expired token: {refusal(err)}")


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # the example's last resort: say what failed
        print(f"python: failed: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
