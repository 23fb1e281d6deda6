#!/usr/bin/env bash
# Accounts: login lock-out (TOMs 4a, 4e).  The demo cluster trusts local
# connections; for this chapter one role must log in with a password, so a
# pg_hba.conf line for it goes first, and is removed again at the end.
set -eu
PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1)
HBA=$("${PSQL[@]}" -At -c 'SHOW hba_file')
echo
echo '=== 6. Accounts: lock-out after repeated failed logins (measures 4a, 4e) ==='
echo
echo 'An operator account logs in with a password (scram-sha-256).'
soon=$("${PSQL[@]}" -At -c "SELECT (now() + interval '60 days')::date")
"${PSQL[@]}" -c "CREATE ROLE demo_operator LOGIN PASSWORD 'Copper-Meadow-Lynx-51' VALID UNTIL '$soon'"
sed -i '1i local all demo_operator scram-sha-256' "$HBA"
"${PSQL[@]}" -At -c 'SELECT pg_reload_conf()' >/dev/null
# Wait (bounded) until the postmaster has read the new pg_hba.conf.
for _ in $(seq 50); do
	PGPASSWORD=x "$BIN/psql" -X -w -U demo_operator -c 'SELECT 1' >/dev/null 2>&1 || break
	sleep 0.1
done
"${PSQL[@]}" -c "SELECT toms.unlock_role('demo_operator')" >/dev/null

echo
echo 'Someone guesses its password; toms.max_failed_logins is 5:'
for i in 1 2 3 4 5; do
	PGPASSWORD="guess-$i" "$BIN/psql" -X -w -U demo_operator -c 'SELECT 1' 2>&1 | sed 's/^psql: error: connection to server on socket "[^"]*" failed: //; s/^/  /' || true
done
echo
echo 'Now even the right password is refused; the answer is the same for a right and a wrong one:'
PGPASSWORD='Copper-Meadow-Lynx-51' "$BIN/psql" -X -w -U demo_operator -c 'SELECT 1' 2>&1 | sed 's/^psql: error: connection to server on socket "[^"]*" failed: //; s/^/  /' || true
echo
echo 'The lock is in shared memory and in a file in the data directory, so a'
echo 'restart does not lift it.  Administrators see it and can lift it:'
"${PSQL[@]}" -c 'SELECT role, locked_until - locked_at AS locked_for FROM toms.locked_roles'
"${PSQL[@]}" -c "SELECT toms.unlock_role('demo_operator') AS was_locked"
PGPASSWORD='Copper-Meadow-Lynx-51' "$BIN/psql" -X -w -U demo_operator -At \
	-c "SELECT '  logged in again as ' || current_user"

sed -i '1{/^local all demo_operator scram-sha-256$/d}' "$HBA"
"${PSQL[@]}" -At -c 'SELECT pg_reload_conf()' >/dev/null
"${PSQL[@]}" -c 'DROP ROLE demo_operator'
