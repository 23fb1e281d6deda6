#!/usr/bin/env bash
# sanitize: the regression suites against a toms built with
# AddressSanitizer + UndefinedBehaviorSanitizer (gcc), in a server that has
# the ASan runtime preloaded.  Any sanitizer report fails the suite.
#
#   bash test/suites.d/sanitize.sh                     fast set (CI)
#   TOMS_SANITIZE_FULL=1 bash test/suites.d/sanitize.sh   every pg_regress
#                          test and every pgTAP suite (the long run)
#   TOMS_SANITIZE_TESTS=regex   choose the tests by name instead
#
# The fast set is every pg_regress test (sql/*.sql) plus the pgTAP suites
# whose name matches TOMS_SANITIZE_PGTAP (default: redteam_).  The build
# happens in a scratch copy of the tree (the normal build is untouched),
# installed into a private stage by test/lib.sh's build_stage with
# COPT="-fsanitize=address,undefined ..." (PGXS adds COPT to CFLAGS and
# LDFLAGS).  PostgreSQL itself is not instrumented: the runtime is
# LD_PRELOADed into the postmaster, so toms' code is checked, and libc
# calls from anywhere are checked by ASan's interceptors.
#   detect_leaks=0   memory contexts free in bulk: every palloc "leaks"
#   abort_on_error=1 a report kills the backend: the test sees it too
#   log_path         reports go to $T/san/*, one file per process
set -u
HERE=$(cd "$(dirname "$0")/../.." && pwd)
SRC0=${TOMS_SRC:-$HERE}
T=$(mktemp -d /tmp/toms-sanitize.XXXXXX)
chmod 755 "$T"

# A scratch copy of the tree; lib.sh sourced from it builds it.
mkdir -p "$T/src"
(cd "$SRC0" && tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude=fuzz/build -cf - .) | tar -xf - -C "$T/src"
# the shared test data beside the checkout (PASETO vectors), if any
[ -d "$SRC0/../shared" ] && cp -a "$SRC0/../shared" "$T/shared"
. "$T/src/test/lib.sh"
WORK=$T
export WORK
chown -R postgres: "$T"
trap 'stop_clusters; [ -n "${TOMS_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"' EXIT

LIBASAN=$(gcc -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "sanitize: no gcc ASan runtime (libasan.so)"; exit 1; }
# libgpg-error (pulled into postgres by libsystemd -> libgcrypt) calls
# bindtextdomain() from its constructor, before the preloaded ASan runtime
# has initialised; ASan then initialises lazily inside glibc's locked
# region and every later bindtextdomain() (postgres' main) deadlocks.  A
# shim, preloaded after the runtime, initialises ASan first.
cat >"$T/asanfirst.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
extern void __asan_init(void);
char	   *bindtextdomain(const char *domain, const char *dir);
char *
bindtextdomain(const char *domain, const char *dir)
{
	static char *(*real) (const char *, const char *) = NULL;

	__asan_init();
	if (real == NULL)
		real = (char *(*) (const char *, const char *)) dlsym(RTLD_NEXT, "bindtextdomain");
	return real(domain, dir);
}
C
gcc -shared -fPIC -O1 -o "$T/asanfirst.so" "$T/asanfirst.c" -ldl || exit 1
PRELOAD="$LIBASAN $T/asanfirst.so"
SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
COPT="$SANFLAGS" build_stage
# Confirm the module really is instrumented (a silently plain build would
# make this suite pass vacuously).
so="$WORK/inst$($SYS_PG_CONFIG --pkglibdir)/toms.so"
nm -D "$so" | grep -q __asan_report || { echo "sanitize: $so is not instrumented"; exit 1; }
nm -D "$so" | grep -q __ubsan_handle || { echo "sanitize: $so has no UBSan checks"; exit 1; }

export TOMS_SRC=$SRC
for s in "$SRC"/test/setup.d/*.sh; do [ -f "$s" ] && . "$s"; done

mkdir -p "$T/san" "$T/sock" && chown postgres: "$T/san" "$T/sock"
# initdb runs plain (it does not load toms); the postmaster gets the
# runtime preloaded, and every backend inherits it.
as_pg initdb -D "$T/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >"$T/initdb.log" 2>&1 \
	|| { cat "$T/initdb.log"; exit 1; }
temp_config "$T/temp.conf"
{
	cat "$T/temp.conf"
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$T/sock'"
	echo "port = 55499"
	echo "fsync = off"
} >>"$T/data/postgresql.conf"
as_pg env LD_PRELOAD="$PRELOAD" \
	ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:disable_coredump=1:log_path=$T/san/asan" \
	UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$T/san/ubsan" \
	pg_ctl -D "$T/data" -l "$T/server.log" -w -t 120 start >/dev/null \
	|| { cat "$T/server.log"; ls "$T/san"; head -50 "$T"/san/* 2>/dev/null; echo "sanitize: server did not start under ASan"; exit 1; }
STARTED+=("$T/data")
export PGHOST="$T/sock" PGPORT=55499 PGUSER=postgres
grep -q "$(basename "$LIBASAN")" "/proc/$(head -1 "$T/data/postmaster.pid")/maps" \
	|| { echo "sanitize: ASan runtime is not loaded in the postmaster"; exit 1; }

pick() { # name kind
	if [ -n "${TOMS_SANITIZE_TESTS:-}" ]; then [[ $1 =~ $TOMS_SANITIZE_TESTS ]]; return; fi
	[ -n "${TOMS_SANITIZE_FULL:-}" ] && return 0
	[ "$2" = regress ] && return 0
	[[ $1 =~ ${TOMS_SANITIZE_PGTAP:-redteam_} ]]
}

failed=0 ran=0
REGRESS=()
for f in "$SRC"/sql/*.sql; do
	n=$(basename "$f" .sql)
	[[ $n == toms--* ]] && continue
	pick "$n" regress && REGRESS+=("$n")
done
if ((${#REGRESS[@]})); then
	echo "sanitize: pg_regress (${#REGRESS[@]} tests)"
	mkdir -p "$T/regress" && chown postgres: "$T/regress"
	"$PGXS_DIR/src/test/regress/pg_regress" --inputdir="$SRC" --outputdir="$T/regress" \
		--bindir="$BIN" --host="$PGHOST" --port="$PGPORT" --user=postgres \
		--dbname=contrib_regression --load-extension=toms "${REGRESS[@]}" >"$T/regress/out.txt" 2>&1
	rc=$?
	grep -E '^(test| ) |tests passed|failed' "$T/regress/out.txt"
	# pg_regress's exit status, and every test reported "ok": a run that
	# stops early (a failed CREATE DATABASE, a server that died) reports
	# no "FAILED" line at all.
	oks=$(grep -cE '^(test| ) +[a-z0-9_]+ +\.\.\. ok' "$T/regress/out.txt")
	if ((rc != 0 || oks != ${#REGRESS[@]})); then
		echo "sanitize: pg_regress exited with status $rc; $oks of ${#REGRESS[@]} tests ok"
		((oks == 0)) && tail -n 20 "$T/regress/out.txt"
		failed=1
	fi
	ran=$((ran + oks))
	[ -f "$T/regress/regression.diffs" ] && head -c 10000 "$T/regress/regression.diffs"
fi

TAPSQL=()
for f in "$SRC"/test/pgtap/*.sql; do
	[ -f "$f" ] || continue
	pick "$(basename "$f" .sql)" pgtap && TAPSQL+=("$f")
done
if ((${#TAPSQL[@]})); then
	echo "sanitize: pgTAP (${#TAPSQL[@]} suites)"
	"$BIN/psql" -X -q -d postgres -c "CREATE DATABASE toms_tap" >/dev/null
	"$BIN/psql" -X -q -d toms_tap -c "CREATE EXTENSION toms; CREATE EXTENSION pgtap" >/dev/null
	for f in "${TAPSQL[@]}"; do
		pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d toms_tap "$f" >"$T/pgtap.out" 2>&1 \
			|| { cat "$T/pgtap.out"; failed=1; }
		tail -n 1 "$T/pgtap.out" | sed "s|^|  $(basename "$f"): |"
		n=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$T/pgtap.out")
		if [ "${n:-0}" -eq 0 ]; then
			echo "sanitize: $(basename "$f") ran no test"
			failed=1
		fi
		ran=$((ran + ${n:-0}))
	done
fi
stop_clusters

# Any report, from any process, fails the run.
if ls "$T"/san/* >/dev/null 2>&1; then
	echo "sanitize: FAIL: sanitizer reports:"
	for r in "$T"/san/*; do echo "--- $r"; head -n 60 "$r"; done
	exit 1
fi
if grep -Eq 'AddressSanitizer|runtime error:|LeakSanitizer' "$T/server.log"; then
	echo "sanitize: FAIL: sanitizer output in the server log:"
	grep -E -A 30 'AddressSanitizer|runtime error:' "$T/server.log" | head -n 80
	exit 1
fi
if grep -q 'terminated by signal' "$T/server.log"; then
	echo "sanitize: FAIL: a backend died:"; grep 'terminated by signal' "$T/server.log"; exit 1
fi
((failed)) && { echo "sanitize: FAIL: tests failed under the sanitizers"; exit 1; }
((ran > 0)) || { echo "sanitize: FAIL: no test ran (TOMS_SANITIZE_TESTS matches nothing?)"; exit 1; }
echo "sanitize: no sanitizer reports"
