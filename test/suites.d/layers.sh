#!/usr/bin/env bash
# layers: the architecture of docs/architecture.md holds.
#
#   1. No cycle among src/ files: an edge A -> B for every symbol that A.o
#      uses (nm -u) and B.o defines (nm --defined-only); tsort must find an
#      order.  Only hooks.c and toms.c, the two files on top, may use every
#      layer; that holds by construction and is not an exception here.
#   2. Each file's layer (LAYER below) is at or above the layer of every
#      file it uses: arrows point down only.
#   3. Only hooks.c installs PostgreSQL hooks (an assignment to *_hook).
#   4. No src/ file is longer than 900 lines; headers do not include
#      postgres.h.
#   5. toms.so exports only _PG_init, Pg_magic_func, pg_finfo_* and toms_*
#      names (nm -D --defined-only): nothing that can clash with another
#      preloaded library.
#
# Before trusting its verdict, the script shows that a cycle, a downward
# exception and an extra hook installation are caught, on scratch copies of
# the edge list and a source file.
#
#   bash test/suites.d/layers.sh          (builds in a scratch copy)
set -u
SRC=${TOMS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
T=$(mktemp -d /tmp/toms-layers.XXXXXX)
trap 'rm -rf "$T"' EXIT
rc=0
bad() { echo "layers: FAIL: $*"; rc=1; }

# Layers, bottom up (docs/architecture.md).  A file may use files of its own
# layer or below; within a layer the edges must still form no cycle.
declare -A LAYER=(
	[paseto]=0 [sealed_format]=0 [tenant_id]=0
	[shmem]=1 [databases]=1 [catalog]=1 [protected]=1 [redact]=1
	[citus_catalog]=1 [citus_protected]=1
	[audit_record]=2 [audit_store]=2 [audit_queue]=2 [audit_emit]=2
	[token]=3 [context]=3 [context_cache]=3
	[guard]=4 [guard_expr]=4 [guard_fk]=4 [guard_self]=4 [guard_partition]=4 [protect]=4 [tenant_exec]=4 [citus_guard]=4 [citus_convert]=4
	[crypto]=4 [sealed_keys]=4 [sealed]=4 [sealed_admin]=4 [sealed_reseal]=4 [sealed_protect]=4
	[lifecycle]=4 [lifecycle_worker]=4 [lifecycle_partition]=4 [account]=4 [password]=4 [assess]=4
	[audit_capture]=4 [audit_sql]=4 [audit_writer]=4 [audit_worker]=4
	[hooks]=5 [toms]=6
)

mkdir -p "$T/src"
tar -C "$SRC" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | tar -C "$T/src" -xf -
make -C "$T/src" -s PG_CONFIG="$PG_CONFIG" with_llvm=no >"$T/build.log" 2>&1 || { cat "$T/build.log"; exit 1; }

# edges FILE...: "user provider" lines from the object files
edges() {
	local o s p
	declare -A def=()
	for o in "$@"; do
		for s in $(nm --defined-only -g "$o" | awk '{print $3}'); do def[$s]=$(basename "$o" .o); done
	done
	for o in "$@"; do
		for s in $(nm -u "$o" | awk '{print $2}'); do
			p=${def[$s]:-}
			[ -n "$p" ] && [ "$p" != "$(basename "$o" .o)" ] && echo "$(basename "$o" .o) $p"
		done
	done | sort -u
}

# check_edges FILE: cycles and layer order; prints problems, returns 1 if any
check_edges() {
	local f=$1 ok=0 a b
	if ! tsort "$f" >/dev/null 2>"$T/tsort.err"; then
		echo "cycle among src files:"; sed 's/^/  /' "$T/tsort.err"
		ok=1
	fi
	while read -r a b; do
		if [ -z "${LAYER[$a]:-}" ] || [ -z "${LAYER[$b]:-}" ]; then
			[ -n "${LAYER[$a]:-}" ] || echo "$a.c has no layer (add it to LAYER and docs/architecture.md)"
			[ -n "${LAYER[$b]:-}" ] || echo "$b.c has no layer (add it to LAYER and docs/architecture.md)"
			ok=1
		elif ((LAYER[$a] < LAYER[$b])); then
			echo "$a (layer ${LAYER[$a]}) uses $b (layer ${LAYER[$b]}): arrows must point down"
			ok=1
		fi
	done <"$f"
	return $ok
}

edges "$T"/src/src/*.o >"$T/edges.txt"
echo "layers: $(wc -l <"$T/edges.txt") edges between $(ls "$T"/src/src/*.o | wc -l) files"
out=$(check_edges "$T/edges.txt" | sort -u) || true
[ -z "$out" ] || bad "$out"

# self-test: a cycle and an upward edge are caught
{ cat "$T/edges.txt"; echo "catalog context"; } >"$T/edges-cycle.txt"
check_edges "$T/edges-cycle.txt" >/dev/null && bad "self-test: an added upward edge and cycle were not caught"

# 3. hooks installed only in hooks.c
hooked() { grep -lE '^[[:space:]]*[A-Za-z_]+_hook[[:space:]]*=[^=]' "$@" 2>/dev/null | xargs -r -n1 basename; }
extra=$(hooked "$T"/src/src/*.c | grep -vx 'hooks.c')
[ -z "$extra" ] || bad "hooks installed outside hooks.c: $extra"
cp "$T/src/src/catalog.c" "$T/catalog-copy.c"
printf '\nvoid x(void);\nvoid x(void)\n{\n\temit_log_hook = NULL;\n}\n' >>"$T/catalog-copy.c"
[ -n "$(hooked "$T/catalog-copy.c")" ] || bad "self-test: a hook installed outside hooks.c was not caught"

# 4. file sizes, headers
for f in "$SRC"/src/*.c "$SRC"/src/*.h; do
	n=$(wc -l <"$f")
	((n <= 900)) || bad "$(basename "$f") has $n lines (at most 900)"
done
for f in "$SRC"/src/*.h; do
	grep -q '#include "postgres.h"' "$f" && bad "$(basename "$f") includes postgres.h (a .c file includes it first)"
done

# 5. exported symbols
syms=$(nm -D --defined-only "$T/src/toms.so" | awk '{print $3}' |
	grep -vE '^(_PG_init|Pg_magic_func|pg_finfo_toms_[a-z0-9_]+|toms_[a-z0-9_]+)$')
[ -z "$syms" ] || bad "toms.so exports names without the toms_ prefix: $(echo $syms)"

((rc == 0)) && echo "layers: ok (no cycle, arrows down, hooks only in hooks.c, files <= 900 lines, toms_ symbols only)"
exit $rc
