#!/usr/bin/env bash
# sealed_fuzz: the toms.sealed parsers (src/sealed_format.c, no backend
# code) under libFuzzer with AddressSanitizer and UBSan for
# ${TOMS_FUZZ_SECONDS:-20} seconds, seeded with fuzz/corpus/sealed.  Fails
# on any crash, sanitizer report, or accepted non-canonical value.
set -eu
SRC=${TOMS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=$(mktemp -d /tmp/toms-fuzz.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror -I"$SRC/src" \
	"$SRC/src/sealed_format.c" "$SRC/fuzz/sealed_fuzz.c" -o "$OUT/sealed_fuzz" >"$OUT/build.log" 2>&1 \
	|| { cat "$OUT/build.log"; exit 1; }

mkdir -p "$OUT/corpus"
cp "$SRC"/fuzz/corpus/sealed/* "$OUT/corpus/"
cd "$OUT"
./sealed_fuzz -max_total_time="${TOMS_FUZZ_SECONDS:-20}" -max_len=4096 -timeout=10 \
	-print_final_stats=1 corpus 2>"$OUT/fuzz.log" || { tail -n 60 "$OUT/fuzz.log"; exit 1; }
grep -E '^stat::number_of_executed_units|^Done' "$OUT/fuzz.log" || true
