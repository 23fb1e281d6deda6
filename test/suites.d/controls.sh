#!/usr/bin/env bash
# controls.sh -- docs/controls.md is complete and true to the tests.
#
# Every measure of the source TOMs has a row in the table, and every test a
# row names ("file" or "file: name", separated by ";" in the last column)
# exists, and that the name is something the test asserts, not just a word
# in the file:
#   - t/*.pl, Perl modules of tests (*.pm), test/pgtap/*.sql: the name is in an assertion (ok, is, like,
#     throws_ok, results_eq, ... -- on its line or one of the 15 before,
#     for calls that span lines), not in a comment;
#   - sql/*.sql (pg_regress), specs/*.spec (isolation): the name occurs in
#     the expected output as well, which is what the run is compared with;
#   - anything else (scripts): the name occurs in the file.
# Before trusting its own verdict, the script proves on temporary copies
# that it fails on a missing measure, a missing test file, a missing test
# name and a name that only a comment carries.
set -u
SRC=${TOMS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

MEASURES="1a 1b 1c 1d 1e 2 3a 3b 3c 3d 3e 3f 4a 4b 4c 4d 4e 5a 5b 5c 5d 6a 6b
7 7a 7b 7c 7d 7e 7f 8a 8b 8c 8d 8e 8f 8g 8h 8i 9a 9b 10a 10b 11a 11b"

# asserts PATH NAME: is NAME something the test in PATH asserts?
asserts() {
	local path=$1 name=$2 base
	case $path in
	t/*.pl | *.pm | test/pgtap/*.sql)
		awk -v name="$name" '
			{ line[NR] = $0 }
			END {
				re = "(^|[^A-Za-z_])(ok|is|isnt|like|unlike|is_deeply|cmp_ok|pass|matches|imatches|alike|unalike|throws_ok|throws_like|throws_matching|lives_ok|results_eq|results_ne|set_eq|bag_eq|row_eq|is_empty|isnt_empty|has_[a-z_]+|hasnt_[a-z_]+|col_[a-z_]+|function_returns|policy_[a-z_]+|ok_if|poll_ok|connect_ok|connect_fails|command_ok|command_fails|command_like|command_fails_like)[ \t]*\\("
				for (i = 1; i <= NR; i++) {
					l = line[i]
					p = index(l, name)
					if (p == 0) continue
					pre = substr(l, 1, p - 1)
					if (pre ~ /^[ \t]*(#|--)/) continue
					for (j = i; j >= 1 && j >= i - 15; j--)
						if (line[j] ~ re) { found = 1; break }
					if (found) break
				}
				exit found ? 0 : 1
			}' "$SRC/$path"
		;;
	sql/*.sql | specs/*.spec)
		base=${path##*/}
		base=${base%.*}
		grep -qF -- "$name" "$SRC/$path" && grep -qF -- "$name" "$SRC/expected/$base.out"
		;;
	*)
		grep -qF -- "$name" "$SRC/$path"
		;;
	esac
}

# check FILE: print every problem, return 1 if there is one.  Bash
# built-ins only, but for one grep per named test: it must stay quick on a
# loaded machine.
check() {
	local file=$1 bad=0 line id m tests t path name
	local -A rows=()
	[ -f "$file" ] || { echo "controls: $file does not exist"; return 1; }
	while IFS= read -r line; do
		[[ $line =~ ^\|[[:space:]]*([0-9]+[a-z]?)[[:space:]]*\| ]] || continue
		id=${BASH_REMATCH[1]}
		if [[ -n ${rows[$id]+set} ]]; then
			echo "controls: measure $id has more than one row"
			bad=1
		fi
		rows[$id]=$line
	done <"$file"
	for m in $MEASURES; do
		line=${rows[$m]-}
		if [ -z "$line" ]; then
			echo "controls: measure $m has no row"
			bad=1
			continue
		fi
		# the last column: tests separated by ";", or "—" for none
		tests=${line%|*}
		tests=${tests##*|}
		IFS=';' read -ra parts <<<"$tests"
		for t in "${parts[@]}"; do
			t=${t#"${t%%[![:space:]]*}"}
			t=${t%"${t##*[![:space:]]}"}
			[[ -z $t || $t == "—" || $t == "-" ]] && continue
			path=${t%%:*}
			name=
			if [[ $path != "$t" ]]; then
				name=${t#*:}
				name=${name#"${name%%[![:space:]]*}"}
			fi
			if [ ! -f "$SRC/$path" ]; then
				echo "controls: measure $m names $path, which does not exist"
				bad=1
			elif [ -n "$name" ] && ! grep -qF -- "$name" "$SRC/$path"; then
				echo "controls: measure $m names \"$name\", which does not occur in $path"
				bad=1
			elif [ -n "$name" ] && ! asserts "$path" "$name"; then
				echo "controls: measure $m names \"$name\", which $path does not assert"
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
# a name only a comment carries: the first comment line of t/001_preload.pl
cname=$(sed -n 's/^# \(.\{12,40\}\).*/\1/p' "$SRC/t/001_preload.pl" | head -n 1)
sed -E "s/^(\| *9b *\|.*\|)[^|]*\|[[:space:]]*\$/\1 t\/001_preload.pl: $(printf '%s' "$cname" | sed 's/[\/&]/\\&/g') |/" "$tmp/ok.md" >"$tmp/comment-only.md"
selftest=0
for f in no-measure no-file no-name comment-only; do
	if check "$tmp/$f.md" >/dev/null; then
		echo "controls: self-test: a copy with $f was accepted"
		selftest=1
	fi
done
((selftest)) && exit 1

check "$SRC/docs/controls.md" || exit 1
echo "controls: $(echo $MEASURES | wc -w) measures listed, every named test exists and asserts what it is named for"
