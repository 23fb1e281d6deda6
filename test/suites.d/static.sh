#!/usr/bin/env bash
# static: the build is warning-free and the static analysers find nothing.
#
#   1. The Makefile builds with -Wall -Wextra -Werror, and a clean copy of
#      the tree builds with it under gcc (PostgreSQL's own flags) and clang
#      (a second compiler's warnings).
#   2. cppcheck (warning, style, performance, portability) over src/*.c
#      with the PostgreSQL server headers, one configuration (the one the
#      build uses); suppressions in test/cppcheck-suppressions.txt.
#   3. clang-tidy over src/*.c with the checked-in .clang-tidy (clang
#      static analyzer, bugprone, cert, misc, performance, portability);
#      every finding is an error.
#
# What is switched off, and why, is written next to each switch and in
# docs/security-testing.md.  Runs in a scratch copy: the tree is untouched.
set -u
SRC=${TOMS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGINC=$("$PG_CONFIG" --includedir-server)
PGINC_INTERNAL=$("$PG_CONFIG" --includedir)/internal
JOBS=$(nproc 2>/dev/null || echo 2)
T=$(mktemp -d /tmp/toms-static.XXXXXX)
trap 'rm -rf "$T"' EXIT
rc=0
bad() { echo "static: FAIL: $*"; rc=1; }

for tool in cppcheck clang-tidy clang; do
	command -v "$tool" >/dev/null || { echo "static: $tool is not installed"; exit 1; }
done

# --- 1. warning-free build ------------------------------------------------
grep -Eq '^PG_CFLAGS.*-Wall' "$SRC/Makefile" && grep -Eq '^PG_CFLAGS.*-Wextra' "$SRC/Makefile" &&
	grep -Eq '^PG_CFLAGS.*-Werror' "$SRC/Makefile" || bad "Makefile does not build with -Wall -Wextra -Werror"

copy_tree() {
	mkdir -p "$1"
	(cd "$SRC" && tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=fuzz/build -cf - .) | tar -xf - -C "$1"
}
copy_tree "$T/gcc"
if make -C "$T/gcc" -s -j"$JOBS" PG_CONFIG="$PG_CONFIG" >"$T/gcc.log" 2>&1; then
	echo "static: gcc build with -Wall -Wextra -Werror: clean"
else
	cat "$T/gcc.log"; bad "gcc build has warnings or errors"
fi
# clang: PostgreSQL's CFLAGS are gcc's (-fexcess-precision, gnu_printf), so
# give clang the portable part of them; the Makefile adds -Wall -Wextra
# -Werror as always.
copy_tree "$T/clang"
if make -C "$T/clang" -s -j"$JOBS" PG_CONFIG="$PG_CONFIG" CC=clang \
	CFLAGS="-O2 -g -Wall -Wmissing-prototypes -Wpointer-arith -Wdeclaration-after-statement -Werror=vla -Wendif-labels -Wmissing-format-attribute -Wformat-security -fno-strict-aliasing -fwrapv -Wno-ignored-attributes" \
	>"$T/clang.log" 2>&1; then
	echo "static: clang build with -Wall -Wextra -Werror: clean"
else
	cat "$T/clang.log"; bad "clang build has warnings or errors"
fi

# --- 2. cppcheck ------------------------------------------------------------
# One configuration, as the build compiles it (cppcheck would otherwise try
# every #ifdef combination of PostgreSQL's headers and take minutes).
if cppcheck -j"$JOBS" --quiet --error-exitcode=1 --inline-suppr \
	--enable=warning,style,performance,portability --std=c99 \
	--suppressions-list="$SRC/test/cppcheck-suppressions.txt" \
	-D__GNUC__=12 -D__x86_64__ -D__linux__ -D_GNU_SOURCE -D__STDC_VERSION__=199901L \
	-I "$SRC/src" -I "$PGINC" "$SRC"/src/*.c >"$T/cppcheck.log" 2>&1; then
	echo "static: cppcheck: no findings ($(ls "$SRC"/src/*.c | wc -l) files)"
else
	cat "$T/cppcheck.log"; bad "cppcheck findings"
fi

# --- 3. clang-tidy ----------------------------------------------------------
# Run from the tree so that .clang-tidy applies; one file per process.
ls "$SRC"/src/*.c | xargs -P "$JOBS" -I{} sh -c \
	'clang-tidy --quiet --config-file="$1/.clang-tidy" "$2" -- -std=gnu99 -I"$1/src" -I"$3" -I"$4" -D_GNU_SOURCE "-DTOMS_LIB_VERSION=\"0\"" \
		>"$5/tidy.$(basename "$2").log" 2>&1 || echo "$2" >>"$5/tidy.failed"' \
	sh "$SRC" {} "$PGINC" "$PGINC_INTERNAL" "$T"
if [ -s "$T/tidy.failed" ] || grep -qsE 'warning:|error:' "$T"/tidy.*.log; then
	cat "$T"/tidy.*.log; bad "clang-tidy findings in: $(sort "$T/tidy.failed" 2>/dev/null | tr '\n' ' ')"
else
	echo "static: clang-tidy: no findings ($(ls "$SRC"/src/*.c | wc -l) files)"
fi

exit $rc
