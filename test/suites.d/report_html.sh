#!/usr/bin/env bash
# report_html: toms.assess_report('html'), the evidence report, rendered in
# headless Chromium.
#
# On a preloaded cluster with some audited work (reads in a tenant, a read
# without a context: a denial), a toms_auditor writes the report; the page
# must list every measure of docs/controls.md with the tests that prove it,
# the verified audit chain and the chart with today's denial, refer to no
# external resource, and load in Chromium (Debian's chromium, headless)
# without a console message, giving a non-empty PNG.  Two negative
# controls: the console check must catch a copy of the page that loads an
# external image, and after a superuser edits an audit record behind the
# trigger the report must say the chain is broken.  Run through test/run.
set -u
[ -n "${WORK:-}" ] && [ -n "${BIN:-}" ] || { echo "report_html: run me through test/run"; exit 1; }
. "$(dirname "$0")/../lib.sh"
CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || { echo "report_html: FAILED: no chromium (Debian package chromium)"; exit 1; }
PORT=55494
fail() { echo "report_html: FAILED: $*"; exit 1; }
trap 'stop_clusters' EXIT
R="$WORK/report_html"
mkdir -p "$R"

start_cluster report $PORT "fsync = off" >/dev/null
PG=("$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d report)
"$BIN/psql" -X -q -d postgres -c "CREATE DATABASE report" || fail "createdb"
"${PG[@]}" >/dev/null <<'SQL' || fail "setup"
CREATE EXTENSION toms;
CREATE ROLE r_auditor LOGIN IN ROLE toms_auditor;
CREATE ROLE r_app LOGIN;
CREATE TABLE notes (id int PRIMARY KEY, tenant_id text NOT NULL, body text);
GRANT SELECT, INSERT ON notes TO r_app;
SELECT toms.create_tenant('r_a', 'A');
SELECT toms.add_member('r_app', 'r_a');
SELECT toms.protect('notes');
SQL
"${PG[@]}" -U r_app -c "SELECT toms.set_tenant('r_a'); INSERT INTO notes VALUES (1, 'r_a', 'x'); SELECT count(*) FROM notes" >/dev/null \
	|| fail "tenant work"
"${PG[@]}" -U r_app -c "SELECT count(*) FROM notes" >/dev/null 2>&1 && fail "a read without a context was not refused"
"${PG[@]}" -c "SELECT toms.audit_flush()" >/dev/null
n_controls=$("${PG[@]}" -c "SELECT count(*) FROM toms.control_tests")
n_md=$(grep -cE '^\|[[:space:]]*[0-9]+[a-z]?[[:space:]]*\|' "$SRC/docs/controls.md")
[ "$n_controls" = "$n_md" ] && ((n_md > 40)) || fail "toms.control_tests has $n_controls rows, docs/controls.md $n_md"

"${PG[@]}" -U r_auditor -c "SELECT toms.assess_report('html')" >"$R/report.html" || fail "assess_report('html') as a toms_auditor"
H="$R/report.html"
echo "report_html: $(wc -c <"$H") bytes of HTML"
head -n 1 "$H" | grep -q '^<!DOCTYPE html>$' || fail "not an HTML page"
tail -n 2 "$H" | grep -q '</html>' || fail "the page does not end with </html>"
rows=$(grep -c '^<tr class="[a-z]*"><td class="id">' "$H")
[ "$rows" = "$n_md" ] || fail "$rows measure rows, docs/controls.md has $n_md"
grep -q '<td class="id">9a</td><td>db</td><td class="st">pass</td>' "$H" || fail "9a is not shown as passed"
grep -q '<li>sql/tenant_protect.sql: Fail closed</li>' "$H" || fail "9a's test (docs/controls.md) is not named"
grep -q '<td class="id">3a</td><td>infrastructure</td><td class="st">not checked by the database</td>' "$H" \
	|| fail "an infrastructure measure is not shown as such"
grep -q '<p id="chain"><span class="ok">verified:</span>' "$H" || fail "the audit chain is not shown as verified"
today=$("${PG[@]}" -c "SELECT current_date")
denied=$("${PG[@]}" -c "SELECT count(*) FROM toms.audit_log WHERE kind = 'denied' AND ts >= current_date")
((denied >= 1)) || fail "no denial recorded today"
grep -q "<title>$today: $denied denied</title>" "$H" || fail "the chart does not show today's $denied denial(s)"
[ "$(grep -o '<rect class="total"' "$H" | wc -l)" = 15 ] || fail "the chart has not 14 days (and the legend)"
# self-contained: nothing is loaded from anywhere
if grep -nE '(src|href|xlink:href)[[:space:]]*=|url\(|@import|<script|<link|<iframe|<object' "$H"; then
	fail "the page refers to resources"
fi

# render: Chromium, headless, a console message is a failure
render() { # HTML PNG LOG
	rm -rf "$R/profile"
	timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
		--no-first-run --user-data-dir="$R/profile" --enable-logging=stderr --v=0 \
		--window-size=1280,2000 --screenshot="$2" "file://$1" >"$3" 2>&1
}
render "$H" "$R/report.png" "$R/chromium.log" || { tail -n 20 "$R/chromium.log"; fail "chromium failed"; }
if grep -E ':CONSOLE[:(]' "$R/chromium.log"; then fail "the page logged to the console"; fi
sig=$(head -c 8 "$R/report.png" | od -An -tx1 | tr -d ' \n')
[ "$sig" = 89504e470d0a1a0a ] || fail "no PNG written"
size=$(stat -c %s "$R/report.png")
((size > 20000)) || fail "the PNG has only $size bytes"
echo "report_html: rendered by $("$CHROMIUM" --version 2>/dev/null | head -n 1): $size-byte PNG, no console message"
# negative control: the same check on a page that loads an outside image
sed 's|</body>|<img src="http://127.0.0.1:9/x.png"></body>|' "$H" >"$R/bad.html"
render "$R/bad.html" "$R/bad.png" "$R/bad.log"
grep -qE ':CONSOLE[:(]' "$R/bad.log" || fail "the console check did not see the outside image being refused"

# a superuser edits an audit record behind the trigger: the report says so
"${PG[@]}" >/dev/null <<'SQL' || fail "tampering"
SET session_replication_role = replica;
UPDATE toms.audit_log SET actor = 'someone else' WHERE seq = (SELECT min(seq) FROM toms.audit_log);
SQL
"${PG[@]}" -U r_auditor -c "SELECT toms.assess_report('html')" >"$R/broken.html" || fail "second report"
grep -q '<p id="chain"><span class="bad">BROKEN:</span>' "$R/broken.html" || fail "an edited record is not reported"
echo "report_html: every measure with its tests, the verified chain, the chart; an edit shows as BROKEN"
