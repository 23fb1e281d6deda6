#!/usr/bin/env bash
# Citus (issue 15), optional: a coordinator and two workers are one toms
# installation.  Runs only when Citus is installed in the demo's
# PostgreSQL (demo/run builds it with test/lib.sh build_citus when
# ../shared/deps/citus has the tarball); starts its own three clusters on
# 127.0.0.1 and stops them again.  The steps are docs/scaling.md's.
set -eu -o pipefail
if [ -z "${CITUS:-}" ]; then
	echo
	echo '=== 8. Citus: skipped (Citus is not installed; see docs/scaling.md) ==='
	exit 0
fi
. "$SRC/test/lib.sh"
trap stop_clusters EXIT
COORD=55441 W1=55442 W2=55443
for n in coord:$COORD worker1:$W1 worker2:$W2; do
	start_cluster "citus_${n%%:*}" "${n#*:}" "log_min_messages = fatal" \
		"shared_preload_libraries = 'citus,toms'" "listen_addresses = '127.0.0.1'" \
		"max_connections = 60" "max_prepared_transactions = 40" "citus.shard_count = 4" \
		"citus.enable_binary_protocol = off"
done
# on NODE as USER: psql on one node of the cluster (trust on 127.0.0.1)
on() {
	local port=$1 user=$2
	shift 2
	"$BIN/psql" -X -q -P footer=off -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$user" -d postgres "$@" 2>&1 |
		sed -E 's/^psql:[^ ]*:[0-9]+: //'
}
# a statement expected to fail: its error, indented, and no stop
refused() { on "$@" -v ON_ERROR_STOP=0 | sed 's/^/  /' || true; }

echo
echo '=== 8. Citus: a coordinator and two workers, one toms installation (issue 15) ==='
echo
echo 'Every node preloads citus and toms.  On the coordinator, the DBA creates'
echo 'both extensions, adds the workers and runs toms.citus_setup(): the'
echo 'tenants, members, grants and keys of toms become Citus reference tables,'
echo 'written on every node in one distributed transaction.'
for p in $W1 $W2; do on $p postgres -c 'CREATE EXTENSION citus'; done
on $COORD postgres <<EOF
CREATE EXTENSION citus;
SELECT citus_set_coordinator_host('127.0.0.1', $COORD) \g /dev/null
CREATE EXTENSION toms;
SELECT citus_add_node('127.0.0.1', $W1) \g /dev/null
SELECT citus_add_node('127.0.0.1', $W2) \g /dev/null
SELECT toms.citus_setup() \g /dev/null
SELECT nodename, nodeport, CASE WHEN groupid = 0 THEN 'coordinator' ELSE 'worker' END AS node
  FROM pg_dist_node ORDER BY nodeport;
EOF

echo
echo 'The tenants, their members and a table: created once, on the coordinator.'
echo 'The table is protected, then distributed by its tenant column.'
on $COORD postgres <<'EOF'
CREATE ROLE anna LOGIN; CREATE ROLE greg LOGIN;
SELECT toms.create_tenant('acme', 'ACME Bank'), toms.create_tenant('globex', 'Globex Hospital') \g /dev/null
SELECT toms.add_member('anna', 'acme'), toms.add_member('greg', 'globex') \g /dev/null
CREATE TABLE learners (id int, tenant_id text NOT NULL, name text, PRIMARY KEY (tenant_id, id));
GRANT ALL ON learners TO anna, greg;
SELECT toms.protect('learners') \g /dev/null
SELECT create_distributed_table('learners', 'tenant_id') \g /dev/null
SELECT logicalrelid AS distributed_table, count(*) AS shards FROM pg_dist_shard
 WHERE logicalrelid = 'learners'::regclass GROUP BY 1;
EOF

echo
echo 'The application sets its tenant with SET LOCAL (Citus forwards it to the'
echo 'workers, which verify it themselves) and writes through the coordinator:'
on $COORD anna <<'EOF'
SET citus.propagate_set_commands = 'local';
BEGIN; SET LOCAL toms.context = 'acme';
INSERT INTO learners (id, name) VALUES (1, 'Ada Lovelace'), (2, 'Grace Hopper');
COMMIT;
EOF
on $COORD greg <<'EOF'
SET citus.propagate_set_commands = 'local';
BEGIN; SET LOCAL toms.context = 'globex';
INSERT INTO learners (id, name) VALUES (1, 'Alan Turing');
SELECT tenant_id, id, name FROM learners ORDER BY id;
COMMIT;
EOF

SHARD=$(on $COORD postgres -At -c "SELECT shard_name('learners', get_shard_id_for_distribution_column('learners', 'acme'))")
PORT=$(on $COORD postgres -At -c "SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = get_shard_id_for_distribution_column('learners', 'acme')")
echo
echo "acme's rows live in shard $SHARD on the worker at port $PORT.  The tenant"
echo 'and the membership made on the coordinator are there, and anna, connected'
echo 'directly to that worker, reads the shard in her tenant:'
on "$PORT" postgres -c "SELECT role, tenant FROM toms.members ORDER BY tenant"
on "$PORT" anna <<EOF
SET citus.override_table_visibility = off;
BEGIN; SET LOCAL toms.context = 'acme';
SELECT tenant_id, id, name FROM $SHARD ORDER BY id;
COMMIT;
EOF

echo
echo 'Another tenant is refused -- through the coordinator and on the worker:'
refused $COORD anna <<'EOF'
SET citus.propagate_set_commands = 'local';
BEGIN; SET LOCAL toms.context = 'globex';
SELECT count(*) FROM learners;
ROLLBACK;
EOF
refused "$PORT" anna <<EOF
SET citus.override_table_visibility = off;
BEGIN; SET LOCAL toms.context = 'globex';
SELECT count(*) FROM $SHARD;
ROLLBACK;
EOF
echo 'and without a context, the worker fails closed:'
refused "$PORT" anna -c "SET citus.override_table_visibility = off" -c "SELECT count(*) FROM $SHARD"

echo
echo 'The shard is a protected table on its worker: not even the worker'"'"'s'
echo 'superuser may drop its policy, stop forcing row security or drop it.'
refused "$PORT" postgres <<EOF
SET citus.override_table_visibility = off;
DROP POLICY toms_tenant ON $SHARD;
ALTER TABLE $SHARD NO FORCE ROW LEVEL SECURITY;
SET citus.enable_manual_changes_to_shards = on;
DROP TABLE $SHARD;
EOF
echo
echo "Citus' own moves pass the guard, and the moved shard is guarded again:"
OTHER=$([ "$PORT" = "$W1" ] && echo $W2 || echo $W1)
on $COORD postgres <<EOF
SELECT citus_move_shard_placement(get_shard_id_for_distribution_column('learners', 'acme'),
	'127.0.0.1', $PORT, '127.0.0.1', $OTHER, shard_transfer_mode => 'block_writes') \g /dev/null
SET client_min_messages = warning;
CALL citus_cleanup_orphaned_resources();
SELECT nodeport AS acme_now_on_port FROM pg_dist_shard_placement
 WHERE shardid = get_shard_id_for_distribution_column('learners', 'acme');
EOF
refused "$OTHER" postgres -c "SET citus.override_table_visibility = off" -c "DROP POLICY toms_tenant ON $SHARD"
on $COORD anna <<'EOF'
SET citus.propagate_set_commands = 'local';
BEGIN; SET LOCAL toms.context = 'acme';
SELECT tenant_id, id, name FROM learners ORDER BY id;
COMMIT;
EOF
