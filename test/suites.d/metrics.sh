#!/usr/bin/env bash
# metrics: toms.metrics through Debian's prometheus-postgres-exporter.
#
# Starts a preloaded cluster (the private installation of test/run), makes
# some audited work, a privileged read (an incident) and a lock-out, then
# runs prometheus-postgres-exporter on loopback with
# contrib/prometheus/queries.yaml as a role that is only in pg_monitor, and
# reads /metrics: every column of toms.metrics must be there as
# toms_<column>, the incident with its labels, and the values must be the
# ones the database has.  Run through test/run (it needs its $WORK, $BIN).
set -u
[ -n "${WORK:-}" ] && [ -n "${BIN:-}" ] || { echo "metrics: run me through test/run"; exit 1; }
. "$(dirname "$0")/../lib.sh"
EXPORTER=/usr/bin/prometheus-postgres-exporter
[ -x $EXPORTER ] || { echo "metrics: FAILED: $EXPORTER missing (package prometheus-postgres-exporter)"; exit 1; }
PORT=55492
WEB=${TOMS_METRICS_WEB_PORT:-55493}
fail() { echo "metrics: FAILED: $*"; exit 1; }
epid=
cleanup() { [ -n "$epid" ] && kill "$epid" 2>/dev/null; wait 2>/dev/null; stop_clusters; }
trap cleanup EXIT

start_cluster metrics $PORT "fsync = off" "toms.max_failed_logins = 2" "toms.lockout_duration = '1h'" >/dev/null
PG=("$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d metrics)
"$BIN/psql" -X -q -d postgres -c "CREATE DATABASE metrics" || fail "createdb"
"${PG[@]}" >/dev/null <<'SQL' || fail "setup"
CREATE EXTENSION toms;
CREATE ROLE m_scraper LOGIN IN ROLE pg_monitor;
CREATE ROLE m_app LOGIN;
CREATE ROLE m_guess LOGIN PASSWORD 'Right-horse-battery-9' VALID UNTIL 'tomorrow';
CREATE TABLE notes (id int PRIMARY KEY, tenant_id text NOT NULL, body text);
GRANT SELECT, INSERT ON notes TO m_app;
SELECT toms.create_tenant('m_a', 'A');
SELECT toms.add_member('m_app', 'm_a');
SELECT toms.protect('notes');
SQL
"${PG[@]}" -U m_app -c "SELECT toms.set_tenant('m_a'); INSERT INTO notes VALUES (1, 'm_a', 'x'); SELECT count(*) FROM notes" >/dev/null \
	|| fail "tenant work"
"${PG[@]}" -c "SELECT count(*) FROM notes" >/dev/null || fail "privileged read"
# two wrong passwords lock m_guess (toms.max_failed_logins = 2); the
# cluster trusts local logins, so the password check needs a scram line
echo "local all m_guess scram-sha-256" | cat - "$WORK/metrics/pg_hba.conf" >"$WORK/hba.tmp"
cp "$WORK/hba.tmp" "$WORK/metrics/pg_hba.conf"
"${PG[@]}" -d postgres -c "SELECT pg_reload_conf()" >/dev/null
for i in 1 2; do PGPASSWORD=wrong "$BIN/psql" -X -U m_guess -d metrics -c "SELECT 1" >/dev/null 2>&1; done
"${PG[@]}" -c "SELECT toms.audit_flush()" >/dev/null

# What the database says, as the scraper's role.
expect=$("${PG[@]}" -U m_scraper -F ' ' -c "SELECT audit_records_written, incidents_open, roles_locked, audit_launcher_up FROM toms.metrics")
read -r written incidents locked launcher <<<"$expect"
echo "metrics: toms.metrics as a pg_monitor member: written=$written incidents_open=$incidents locked=$locked launcher_up=$launcher"
((written > 0)) || fail "no audit record counted as written"
((incidents >= 1)) || fail "the privileged read raised no incident"
((locked == 1)) || fail "roles_locked is $locked, not 1"
cols=$("${PG[@]}" -c "SELECT attname FROM pg_attribute WHERE attrelid = 'toms.metrics'::regclass AND attnum > 0 ORDER BY attnum")

# The exporter, on loopback, as m_scraper.
DATA_SOURCE_NAME="host=$WORK/sock port=$PORT user=m_scraper dbname=metrics sslmode=disable" \
	$EXPORTER --web.listen-address=127.0.0.1:$WEB --extend.query-path="$SRC/contrib/prometheus/queries.yaml" \
	--disable-settings-metrics --log.level=warn >"$WORK/exporter.log" 2>&1 &
epid=$!
out="$WORK/metrics.txt"
for ((i = 0; i < 150; i++)); do
	curl -fsS --max-time 5 "http://127.0.0.1:$WEB/metrics" >"$out" 2>/dev/null && grep -qE '^toms_audit_records_written[{ ]' "$out" && break
	kill -0 "$epid" 2>/dev/null || { cat "$WORK/exporter.log"; fail "the exporter exited"; }
	sleep 0.2
done
grep -qE '^toms_audit_records_written[{ ]' "$out" || { cat "$WORK/exporter.log"; grep -i toms "$out" | head; fail "no toms metrics in /metrics"; }
missing=()
for c in $cols; do grep -qE "^toms_$c[{ ]" "$out" || missing+=("toms_$c"); done
((${#missing[@]} == 0)) || fail "not exported: ${missing[*]} (contrib/prometheus/queries.yaml)"
# the value of an unlabelled metric (the exporter adds the label server)
val() { awk -v m="$1" '{ n = $1; sub(/[{].*/, "", n) } n == m { print $NF; exit }' "$out"; }
num() { awk -v v="$1" 'BEGIN { printf "%d", v }'; }
[ "$(num "$(val toms_roles_locked)")" = 1 ] || fail "toms_roles_locked is $(val toms_roles_locked)"
[ "$(num "$(val toms_audit_launcher_up)")" = 1 ] || fail "toms_audit_launcher_up is $(val toms_audit_launcher_up)"
(($(num "$(val toms_audit_records_written)") >= written)) || fail "toms_audit_records_written is $(val toms_audit_records_written), below $written"
(($(num "$(val toms_incidents_open)") >= 1)) || fail "toms_incidents_open is $(val toms_incidents_open)"
grep -E '^toms_incident_open[{].*kind="privileged_access".*[}] 1$' "$out" >/dev/null \
	|| { grep '^toms_incident' "$out"; fail "no toms_incident_open{kind=\"privileged_access\"} 1"; }
grep -q '^# TYPE toms_audit_records_written counter' "$out" || fail "toms_audit_records_written is not a counter"
grep -qE '^pg_up([{].*[}])? 1$' "$out" || fail "the exporter is not connected (pg_up)"
echo "metrics: /metrics has the $(wc -w <<<"$cols") toms_* columns and the incident labels; e.g."
grep -E '^toms_(audit_records_written|roles_locked|incidents_open|incident_open)' "$out" | sed 's/^/  /'
