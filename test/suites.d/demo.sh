#!/usr/bin/env bash
# demo: the README's first command, `bash demo/run`, runs to its end.
#
# The demo narrates refusals on purpose, so what is checked is that it
# exits 0, that every chapter ran (its headings, the optional Citus chapter
# included where Citus is built, as here), and that it wrote the evidence
# report it names.  It builds and runs in its own work directory and
# clusters (port 55433, Citus 55441-55443), like a user's run.  Run through
# test/run.
set -u
[ -n "${WORK:-}" ] && [ -n "${SRC:-}" ] || { echo "demo: run me through test/run"; exit 1; }
fail() { echo "demo: FAILED: $*"; exit 1; }
out="$WORK/demo.out"
report="$WORK/demo-evidence.html"
# a fresh environment for demo/run: nothing of test/run's clusters
env -u WORK -u SRC -u BIN -u PGXS_DIR -u CITUS -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE \
	TOMS_DEMO_REPORT="$report" bash "$SRC/demo/run" > "$out" 2>&1
rc=$?
((rc == 0)) || { tail -20 "$out"; fail "demo/run exited with $rc"; }
for h in '=== 1\.' '=== 7\. Self-assessment' '=== 8\. Citus: a coordinator and two workers'; do
	grep -q "$h" "$out" || { tail -20 "$out"; fail "no chapter heading matching '$h'"; }
done
grep -q "The evidence report (toms.assess_report('html')) is at $report" "$out" || fail "the closing line does not name the report"
[ -s "$report" ] || fail "no evidence report at $report"
grep -q '</html>' "$report" || fail "the evidence report is not a whole page"
echo "demo: ran to its end, $(grep -c '^=== ' "$out") chapters, report $(wc -c < "$report") bytes"
