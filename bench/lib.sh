# bench/lib.sh -- sourced by the benchmarks after test/lib.sh: variants
# interleaved per transaction instead of per round.
#
# mix_run ROUND OUT AUDITED NAME=SCRIPT...
#   One pgbench run (-M prepared, CLIENTS clients, SECONDS_EACH s, as
#   bench_user on database bench) that draws one of the scripts at random
#   for every transaction, so that every variant meets the same machine at
#   the same moments.  pgbench's per-transaction log gives each script's
#   transactions and mean latency.  The CPU the machine spent meanwhile
#   (/proc/stat, busy) is shared out: the audit workers' CPU (/proc/<pid>)
#   to the variants whose name matches the regular expression AUDITED, per
#   transaction; the rest in proportion to each script's total latency.
#   Appends to OUT one line per script: ROUND NAME CPU_US LATENCY_US
#   TRANSACTIONS WORKER_US_PER_AUDITED_TRANSACTION.  The queue is drained
#   (toms.audit_flush()) before and after, so the worker's CPU is all of
#   the run's records.  Needs WORK, BIN, PSQL, CLIENTS, SECONDS_EACH.
# AWK_MEDIAN: awk's median(arr, n) of arr[1..n] (sorts arr), to put before
# an awk program: awk "$AWK_MEDIAN"'...'
AWK_MEDIAN='function median(arr, n,    i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && arr[j-1] > arr[j]; j--) { t = arr[j]; arr[j] = arr[j-1]; arr[j-1] = t }
	return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2;
}
'
mix_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
mix_worker_ticks() {
	local p t=0
	for p in $(pgrep -f 'toms audit worker for'); do
		t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
mix_run() {
	local round=$1 out=$2 audited=$3 args=() names=() v w0 w1 b0 b1
	shift 3
	for v in "$@"; do
		names+=("${v%%=*}")
		args+=(-f "${v#*=}")
	done
	mkdir -p "$WORK/mix"
	chmod 777 "$WORK/mix"
	rm -f "$WORK"/mix/mx.*
	"${PSQL[@]}" -At -c "SELECT toms.audit_flush()" > /dev/null
	w0=$(mix_worker_ticks)
	b0=$(mix_busy)
	(cd "$WORK/mix" && "$BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_EACH" \
		-U bench_user -l --log-prefix=mx "${args[@]}" bench > pgbench.log 2>&1) ||
		{ echo "pgbench (mix ${names[*]}) failed:" >&2; tail -5 "$WORK/mix/pgbench.log" >&2; }
	"${PSQL[@]}" -At -c "SELECT toms.audit_flush()" > /dev/null
	w1=$(mix_worker_ticks)
	b1=$(mix_busy)
	# a worker started during the run has no start value: its ticks count whole
	cat "$WORK"/mix/mx.* | awk -v r="$round" -v names="${names[*]}" -v audited="$audited" \
		-v busy=$((b1 - b0)) -v worker=$((w1 - w0 < 0 ? w1 : w1 - w0)) -v hz="$(getconf CLK_TCK)" '
		{ lat[$4] += $3; n[$4]++ }
		END {
			k = split(names, nm, " ");
			for (i = 1; i <= k; i++) { tl += lat[i - 1]; if (audited != "" && nm[i] ~ audited) na += n[i - 1] }
			sync_us = (busy - (na ? worker : 0)) * 1e6 / hz;
			worker_us = worker * 1e6 / hz;
			for (i = 1; i <= k; i++) {
				c = sync_us * lat[i - 1] / tl;
				if (na && audited != "" && nm[i] ~ audited) c += worker_us * n[i - 1] / na;
				printf "%s %s %.3f %.3f %d %.3f\n", r, nm[i], c / n[i - 1], lat[i - 1] / n[i - 1], n[i - 1], (na ? worker_us / na : 0);
			}
		}' >> "$out"
}
