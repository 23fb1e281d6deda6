#!/usr/bin/env bash
# fuzz: libFuzzer targets for toms' parsers of outside input.
#
# Each fuzz/<name>_fuzz.c names the source files it is built against in a
# comment line
#     FUZZ_SOURCES: src/a.c src/b.c
# (and, if it needs libraries, "FUZZ_LIBS: -lsodium").  It is compiled with
# clang -fsanitize=fuzzer,address,undefined together with those files only
# (so they must be pure C: PostgreSQL headers for types are fine, backend
# calls are not), then run for TOMS_FUZZ_SECONDS (default 20) seconds per
# target, starting from its checked-in seed corpus fuzz/corpus/<name>/.
# Every seed is executed first, so a crash that once was found and then
# added to the corpus is a regression test from then on.
#
#   TOMS_FUZZ_SECONDS=600 bash test/suites.d/fuzz.sh      a long run
#   TOMS_FUZZ_TARGETS=regex                              only some targets
#   TOMS_FUZZ_KEEP_CORPUS=dir   copy the grown corpora there afterwards
#
# A crash, sanitizer report or failed property check fails the suite and
# prints the reproducer (hex dump) and how to replay it.  Targets without a
# FUZZ_SOURCES line, or whose sources are not in this tree yet, are
# skipped with a note.
set -u
SRC=${TOMS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SECONDS_EACH=${TOMS_FUZZ_SECONDS:-20}
CLANG=$(command -v clang-14 || command -v clang) || { echo "fuzz: clang is not installed"; exit 1; }
OUT=$(mktemp -d /tmp/toms-fuzz.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
rc=0 ran=0

for target in "$SRC"/fuzz/*_fuzz.c; do
	[ -f "$target" ] || continue
	name=$(basename "$target" _fuzz.c)
	if [ -n "${TOMS_FUZZ_TARGETS:-}" ] && ! [[ $name =~ $TOMS_FUZZ_TARGETS ]]; then
		continue
	fi
	sources=$(sed -n 's/^[ *]*FUZZ_SOURCES:[[:space:]]*//p' "$target" | head -1)
	libs=$(sed -n 's/^[ *]*FUZZ_LIBS:[[:space:]]*//p' "$target" | head -1)
	if [ -z "$sources" ]; then
		echo "fuzz: $name: skipped (no FUZZ_SOURCES line)"
		continue
	fi
	paths=() missing=""
	for s in $sources; do
		if [ -f "$SRC/$s" ]; then paths+=("$SRC/$s"); else missing="$missing $s"; fi
	done
	if [ -n "$missing" ]; then
		echo "fuzz: $name: skipped (not in this tree yet:$missing)"
		continue
	fi

	# shellcheck disable=SC2086
	if ! "$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-Wall -Wextra -Werror -Wno-unused-parameter -Wno-ignored-attributes \
		-I"$SRC/src" -I"$("$PG_CONFIG" --includedir-server)" \
		"${paths[@]}" "$target" $libs -o "$OUT/$name" >"$OUT/$name.build.log" 2>&1; then
		cat "$OUT/$name.build.log"
		echo "fuzz: FAIL: $name does not build"
		rc=1
		continue
	fi

	# Work on a copy of the seeds: new inputs must not land in the tree.
	mkdir -p "$OUT/$name.corpus" "$OUT/$name.crash"
	[ -d "$SRC/fuzz/corpus/$name" ] && cp -a "$SRC/fuzz/corpus/$name/." "$OUT/$name.corpus/"
	seeds=$(find "$OUT/$name.corpus" -type f | wc -l)
	if (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		"./$name" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$OUT/$name.crash/" \
		"$OUT/$name.corpus" >"$OUT/$name.log" 2>&1); then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$name.log")
		echo "fuzz: $name: ok ($seeds seeds, ${runs:-?} runs in ${SECONDS_EACH}s, corpus now $(find "$OUT/$name.corpus" -type f | wc -l))"
		ran=$((ran + 1))
	else
		grep -E -B2 -A40 'ERROR: |runtime error|deadly signal|==ERROR' "$OUT/$name.log" | head -n 80
		for c in "$OUT/$name.crash"/*; do
			[ -f "$c" ] || continue
			echo "--- reproducer $(basename "$c") ($(stat -c %s "$c") bytes):"
			od -A d -t x1z -v "$c" | head -n 40
			echo "--- base64: $(base64 -w0 "$c")"
		done
		echo "fuzz: FAIL: $name.  Replay: save the input, then"
		echo "  clang -g -fsanitize=fuzzer,address,undefined -I src -I \$(pg_config --includedir-server) $sources fuzz/${name}_fuzz.c $libs -o /tmp/$name && /tmp/$name <input>"
		echo "  and add the input to fuzz/corpus/$name/ once fixed (it then runs in every fuzz run)."
		rc=1
	fi
	if [ -n "${TOMS_FUZZ_KEEP_CORPUS:-}" ]; then
		mkdir -p "$TOMS_FUZZ_KEEP_CORPUS/$name" && cp -a "$OUT/$name.corpus/." "$TOMS_FUZZ_KEEP_CORPUS/$name/"
	fi
done

if ((rc == 0 && ran == 0)); then
	echo "fuzz: FAIL: no target ran"
	exit 1
fi
exit $rc
