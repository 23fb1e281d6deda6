#!/usr/bin/env bash
# token_paseto: src/paseto.c built on its own (libc + libsodium, no
# PostgreSQL backend) under libFuzzer with AddressSanitizer and UBSan, for
# ${TOMS_FUZZ_SECONDS:-20} seconds, seeded with the official PASETO v4
# vectors (when ../shared is present) and hand-made tokens.  Fails on any
# crash, sanitizer report, or accepted non-canonical token.
set -eu
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
if [ -f "$vectors" ]; then
	grep -o '"token": *"[^"]*"' "$vectors" | sed 's/^"token": *"//; s/"$//' |
		while read -r tok; do printf '%s' "$tok" > "$OUT/corpus/$(printf '%s' "$tok" | md5sum | cut -c1-12)"; done
	echo "seeded with $(ls "$OUT/corpus" | wc -l) vector tokens from $vectors"
else
	echo "PASETO vectors not found at $vectors: seeding with hand-made tokens only"
fi
printf '%s' 'v4.public.eyJ0aWQiOiJhIn0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.eyJraWQiOiJrMSJ9' > "$OUT/corpus/h1"
printf '%s' '{"kid":"k\u0031","x":[1,{"y":null}],"z":-1.5e3}' > "$OUT/corpus/h2"
printf '%s' 'v4.public.' > "$OUT/corpus/h3"

cd "$OUT"
./paseto_fuzz -max_total_time="${TOMS_FUZZ_SECONDS:-20}" -max_len=9000 -timeout=10 \
	-print_final_stats=1 corpus 2>"$OUT/fuzz.log" || { tail -n 60 "$OUT/fuzz.log"; exit 1; }
grep -E '^stat::number_of_executed_units|^Done' "$OUT/fuzz.log" || true
