# data/controls.awk -- docs/controls.md to data/toms_controls.tsv (make).
#
# One line per measure row of the table: its place, control, kind, feature, tests
# (the "proved by" column, tests separated by "; "), tab-separated in
# COPY's text format.  CREATE EXTENSION loads the file into
# toms.control_tests, from which toms.assess_report('html') names the test
# that proves each control.  The same cells as test/suites.d/controls.sh
# reads: the first, the second, the last, and everything between.
function esc(s) {
	gsub(/\\/, "\\\\", s); gsub(/\t/, "\\t", s); gsub(/\r/, "", s)
	gsub(/^[ ]+|[ ]+$/, "", s)
	return s
}
/^\|[ ]*[0-9]+[a-z]?[ ]*\|/ {
	line = $0
	sub(/^\|/, "", line); sub(/\|[ ]*$/, "", line)
	n = split(line, c, "|")
	if (n < 4) next
	feature = c[3]
	for (i = 4; i < n; i++) feature = feature "|" c[i]
	tests = esc(c[n])
	if (tests == "—" || tests == "-") tests = ""
	printf "%d\t%s\t%s\t%s\t%s\n", ++ord, esc(c[1]), esc(c[2]), esc(feature), tests
}
