#!/usr/bin/env bash
# examples: the Node and Python example applications (examples/), against
# a preloaded cluster through PgBouncer in transaction mode.
#
# Sets the cluster up as examples/README.md says (examples/schema.sql, the
# identity service's key trusted), starts Debian's pgbouncer on loopback
# (pool_mode = transaction, two server connections for the database), runs
# "npm ci" for the Node example (versions pinned by its package-lock.json)
# and both applications, and compares what they print with
# examples/*/expected.txt.  Then checks what the database recorded: the
# token's end users as audit actors, the notes sealed, and that every
# transaction went through PgBouncer.  Run through test/run.
set -u
[ -n "${WORK:-}" ] && [ -n "${BIN:-}" ] || { echo "examples: run me through test/run"; exit 1; }
. "$(dirname "$0")/../lib.sh"
PORT=55495
BPORT=${TOMS_EXAMPLES_BOUNCER_PORT:-55496}
E="$WORK/example_apps"
fail() { echo "examples: FAILED: $*"; exit 1; }
bpid=
cleanup() { [ -n "$bpid" ] && kill "$bpid" 2>/dev/null; wait 2>/dev/null; stop_clusters; }
trap cleanup EXIT
# Debian's python3, which has python3-psycopg (not a python3 earlier on PATH)
PY=/usr/bin/python3
for c in node npm pgbouncer $PY; do command -v $c >/dev/null || fail "$c is missing"; done
$PY -c "import psycopg" 2>/dev/null || fail "python3-psycopg is missing"

start_cluster examples $PORT "fsync = off" >/dev/null
PG=("$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d examples)
"$BIN/psql" -X -q -d postgres -c "CREATE DATABASE examples" || fail "createdb"
"${PG[@]}" -c "CREATE EXTENSION toms" -f "$SRC/examples/schema.sql" >/dev/null || fail "examples/schema.sql"

# The Node dependencies, exactly as locked.
rm -rf "$E" && mkdir -p "$E/idp" && chmod 700 "$E/idp"
mkdir -p "$E/src" && cp -a "$SRC/examples/." "$E/src/"
rm -rf "$E/src/node/node_modules"
(cd "$E/src/node" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >"$E/npm.log" 2>&1 \
	|| { cat "$E/npm.log"; fail "npm ci"; }
echo "examples: npm ci: $(cd "$E/src/node" && node -e 'const l=require("./package-lock.json").packages; console.log(["pg","paseto"].map(p=>p+"@"+l["node_modules/"+p].version).join(", "))')"

# The identity service's key; the database trusts its public key.
trust=$(cd "$E/src/node" && node idp.mjs keygen "$E/idp") || fail "idp.mjs keygen"
"${PG[@]}" -c "$trust" >/dev/null || fail "trust_key"

# PgBouncer, transaction mode, as postgres (it refuses root).
mkdir -p "$E/bouncer"
echo '"app_pool" ""' >"$E/bouncer/users.txt"
cat >"$E/bouncer/pgbouncer.ini" <<INI
[databases]
examples = host=$WORK/sock port=$PORT dbname=examples pool_size=2
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir =
auth_type = trust
auth_file = $E/bouncer/users.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 50
default_pool_size = 2
logfile = $E/bouncer/pgbouncer.log
pidfile = $E/bouncer/pgbouncer.pid
INI
echo '"postgres" ""' >>"$E/bouncer/users.txt"
chown -R postgres: "$E/bouncer"
runuser -u postgres -- pgbouncer "$E/bouncer/pgbouncer.ini" >"$E/bouncer/stdout.log" 2>&1 &
bpid=$!
export PGHOST=127.0.0.1 PGPORT=$BPORT PGUSER=app_pool PGDATABASE=examples TOMS_IDP_DIR="$E/idp"
for ((i = 0; i < 100; i++)); do
	"$BIN/psql" -X -At -c "SELECT 1" >/dev/null 2>&1 && break
	kill -0 "$bpid" 2>/dev/null || { cat "$E/bouncer/"*.log; fail "pgbouncer exited"; }
	sleep 0.1
done
mode=$("$BIN/psql" -X -At -U postgres -d pgbouncer -c "SHOW CONFIG" 2>/dev/null | awk -F'|' '$1 == "pool_mode" { print $2 }')
[ "$mode" = transaction ] || fail "pgbouncer's pool_mode is '$mode'"
echo "examples: pgbouncer $(pgbouncer --version | head -n 1 | awk '{print $2}') on 127.0.0.1:$BPORT, pool_mode = $mode"

status=0
run() { # NAME CMD...
	local name=$1
	shift
	(cd "$E/src/$name" && "$@") >"$E/$name.out" 2>&1
	local rc=$?
	sed 's/^/  /' "$E/$name.out"
	((rc == 0)) || { echo "examples: $name exited with $rc"; status=1; }
	if ! diff -u "$SRC/examples/$name/expected.txt" "$E/$name.out"; then
		echo "examples: $name printed other than examples/$name/expected.txt"
		status=1
	fi
}
run node node --no-warnings app.mjs
run python $PY app.py
((status)) && fail "an example application"

# What the database saw.
export PGHOST="$WORK/sock" PGPORT=$PORT PGUSER=postgres
"${PG[@]}" -c "SELECT toms.audit_flush()" >/dev/null
actors=$("${PG[@]}" -c "SELECT string_agg(DISTINCT actor, ',' ORDER BY actor) FROM toms.audit_log
	WHERE relname LIKE '%notes' AND kind = 'access' AND session_role = 'app_pool'")
[ "$actors" = "alice@acme.example,bob@acme.example,carl@globex.example,hedy@globex.example" ] \
	|| fail "audit actors are '$actors', not the tokens' end users"
plain=$("${PG[@]}" -c "SELECT count(*) FROM notes_app.notes WHERE secret::text NOT LIKE 'sealed:v1:%'")
[ "$plain" = 0 ] || fail "$plain note(s) with a secret not sealed"
x=$(PGHOST=127.0.0.1 PGPORT=$BPORT "$BIN/psql" -X -At -U postgres -d pgbouncer -c "SHOW STATS" \
	| awk -F'|' '$1 == "examples" { print $2 }')
((x >= 12)) || fail "pgbouncer counted $x transactions for the examples"
echo "examples: both applications as expected; audit actors $actors; $x transactions through pgbouncer"
