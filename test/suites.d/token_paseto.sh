#!/usr/bin/env bash
# token_paseto: src/paseto.c built on its own (libc + libsodium, no
# PostgreSQL backend) under libFuzzer with AddressSanitizer and UBSan, for
# ${TOMS_FUZZ_SECONDS:-20} seconds, seeded with the official PASETO v4
# vectors and hand-made tokens.  Fails on any crash, sanitizer report,
# accepted non-canonical token or failed property (fuzz/paseto_fuzz.c).
#
# The vectors come from ../shared beside the checkout (TOMS_PASETO_VECTORS
# overrides the path) and must give the 17 tokens the file holds today: a
# missing file or another count fails, unless TOMS_PASETO_VECTORS_SKIP=<why>
# says to fuzz from the hand-made seeds only.
set -eu
VECTOR_TOKENS=17
SRC=${TOMS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
OUT=$(mktemp -d /tmp/toms-fuzz.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

# Linking with libsodium alone proves paseto.c needs nothing of the backend.
clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror -Wno-unused-parameter -Wno-ignored-attributes \
	-I"$SRC/src" -I"$("$PG_CONFIG" --includedir-server)" \
	"$SRC/src/paseto.c" "$SRC/fuzz/paseto_fuzz.c" -lsodium -o "$OUT/paseto_fuzz" >"$OUT/build.log" 2>&1 \
	|| { cat "$OUT/build.log"; exit 1; }

mkdir -p "$OUT/corpus"
vectors=${TOMS_PASETO_VECTORS:-$SRC/../shared/vectors/paseto/v4.json}
if [ -n "${TOMS_PASETO_VECTORS_SKIP:-}" ]; then
	echo "SKIPPED the official PASETO vectors (TOMS_PASETO_VECTORS_SKIP=$TOMS_PASETO_VECTORS_SKIP): hand-made seeds only"
elif [ -f "$vectors" ]; then
	grep -o '"token": *"[^"]*"' "$vectors" | sed 's/^"token": *"//; s/"$//' |
		while read -r tok; do printf '%s' "$tok" > "$OUT/corpus/$(printf '%s' "$tok" | md5sum | cut -c1-12)"; done
	n=$(find "$OUT/corpus" -type f | wc -l)
	echo "seeded with $n vector tokens from $vectors"
	if [ "$n" -ne "$VECTOR_TOKENS" ]; then
		echo "token_paseto: FAIL: expected $VECTOR_TOKENS distinct vector tokens in $vectors, found $n"
		exit 1
	fi
else
	echo "token_paseto: FAIL: PASETO vectors not found at $vectors (../shared beside the checkout;"
	echo "  TOMS_PASETO_VECTORS=<file> names another, TOMS_PASETO_VECTORS_SKIP=<why> fuzzes without them)"
	exit 1
fi
printf '%s' 'v4.public.eyJ0aWQiOiJhIn0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.eyJraWQiOiJrMSJ9' > "$OUT/corpus/h1"
printf '%s' '{"kid":"k\u0031","x":[1,{"y":null}],"z":-1.5e3}' > "$OUT/corpus/h2"
printf '%s' 'v4.public.' > "$OUT/corpus/h3"

cd "$OUT"
./paseto_fuzz -max_total_time="${TOMS_FUZZ_SECONDS:-20}" -max_len=9000 -timeout=10 \
	-print_final_stats=1 corpus 2>"$OUT/fuzz.log" || { tail -n 60 "$OUT/fuzz.log"; exit 1; }
grep -E '^stat::number_of_executed_units|^Done' "$OUT/fuzz.log" || true
