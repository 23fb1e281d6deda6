#!/usr/bin/env bash
# controls.sh -- docs/controls.md is complete and true to the tests.
#
# Every measure of the source TOMs has a row in the table, and every test a
# row names ("file" or "file: name", separated by ";" in the last column)
# exists, with the name occurring in that file.  Before trusting its own
# verdict, the script proves on temporary copies that it fails on a missing
# measure, a missing test file and a missing test name.
set -u
SRC=${TOMS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

MEASURES="1a 1b 1c 1d 1e 2 3a 3b 3c 3d 3e 3f 4a 4b 4c 4d 4e 5a 5b 5c 5d 6a 6b
7 7a 7b 7c 7d 7e 7f 8a 8b 8c 8d 8e 8f 8g 8h 8i 9a 9b 10a 10b 11a 11b"

# check FILE: print every problem, return 1 if there is one.
check() {
	local file=$1 bad=0 m row tests t path name
	[ -f "$file" ] || { echo "controls: $file does not exist"; return 1; }
	for m in $MEASURES; do
		row=$(grep -E "^\| *$m *\|" "$file")
		if [ -z "$row" ]; then
			echo "controls: measure $m has no row"
			bad=1
			continue
		fi
		if [ "$(printf '%s\n' "$row" | wc -l)" -ne 1 ]; then
			echo "controls: measure $m has more than one row"
			bad=1
		fi
		# last column: tests, or "—" for none
		tests=$(printf '%s\n' "$row" | head -n 1 | awk -F'|' '{ print $(NF-1) }')
		IFS=';' read -ra parts <<<"$tests"
		for t in "${parts[@]}"; do
			t=$(printf '%s' "$t" | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//')
			[ -z "$t" ] || [ "$t" = "—" ] || [ "$t" = "-" ] && continue
			path=${t%%:*}
			name=
			[ "$path" != "$t" ] && name=$(printf '%s' "${t#*:}" | sed -E 's/^[[:space:]]+//')
			if [ ! -f "$SRC/$path" ]; then
				echo "controls: measure $m names $path, which does not exist"
				bad=1
			elif [ -n "$name" ] && ! grep -qF -- "$name" "$SRC/$path"; then
				echo "controls: measure $m names \"$name\", which does not occur in $path"
				bad=1
			fi
		done
	done
	return $bad
}

# The check must be able to fail.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$SRC/docs/controls.md" "$tmp/ok.md"
sed -E '/^\| *9a *\|/d' "$tmp/ok.md" >"$tmp/no-measure.md"
sed -E 's/^(\| *9b *\|.*\|)[^|]*\|[[:space:]]*$/\1 sql\/no_such_test.sql |/' "$tmp/ok.md" >"$tmp/no-file.md"
sed -E 's/^(\| *9b *\|.*\|)[^|]*\|[[:space:]]*$/\1 sql\/tenant_protect.sql: no such test name anywhere |/' "$tmp/ok.md" >"$tmp/no-name.md"
selftest=0
for f in no-measure no-file no-name; do
	if check "$tmp/$f.md" >/dev/null; then
		echo "controls: self-test: a copy with $f was accepted"
		selftest=1
	fi
done
((selftest)) && exit 1

check "$SRC/docs/controls.md" || exit 1
echo "controls: $(echo $MEASURES | wc -w) measures listed, every named test exists"
