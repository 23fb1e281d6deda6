#!/usr/bin/env bash
# deb: the Debian package postgresql-15-toms, the way a DBA installs it.
#
# Builds the package from the source tree with Debian's extension tooling
# (debian/, pg_buildext, "dpkg-buildpackage -us -uc"), installs the .deb
# with "apt-get install ./....deb" into the system PostgreSQL 15, runs a
# cluster of that installation (as postgres, in a private directory, on a
# private socket and port, no TCP) with shared_preload_libraries = 'toms',
# creates the extension, protects a table and reads it in a tenant
# context; then purges the package and checks that nothing of it is left.
#
# It touches the system installation, so it refuses to run when a toms is
# already there (packaged or "make install"ed): it must leave the machine
# as it found it.
set -u
HERE=$(cd "$(dirname "$0")/../.." && pwd)
SRC0=${TOMS_SRC:-$HERE}
PGBIN=/usr/lib/postgresql/15/bin
PKG=postgresql-15-toms
LIBDIR=$($PGBIN/pg_config --pkglibdir)
EXTDIR=$($PGBIN/pg_config --sharedir)/extension
PORT=${TOMS_DEB_PORT:-55491}
APT=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=300)
fail() { echo "deb: FAILED: $*"; exit 1; }

if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'ok installed'; then
	fail "$PKG is already installed on this machine; not touching it"
fi
[ -e "$LIBDIR/toms.so" ] && fail "$LIBDIR/toms.so exists (a 'make install'?); not touching it"
[ -e "$EXTDIR/toms.control" ] && fail "$EXTDIR/toms.control exists; not touching it"

T=$(mktemp -d /tmp/toms-deb.XXXXXX)
chmod 755 "$T"
installed=0
cleanup() {
	[ -f "$T/data/postmaster.pid" ] && runuser -u postgres -- $PGBIN/pg_ctl -D "$T/data" -m immediate -w stop >/dev/null 2>&1
	((installed)) && "${APT[@]}" purge "$PKG" >/dev/null 2>&1
	if [ -n "${TOMS_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# --- build -------------------------------------------------------------
mkdir -p "$T/toms"
(cd "$SRC0" && tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude=fuzz/build --exclude=node_modules --exclude='./tmp_check*' --exclude='./sql/toms--0.2.0.sql' -cf - .) | tar -xf - -C "$T/toms"
start=$(date +%s)
(cd "$T/toms" && DEB_BUILD_OPTIONS="parallel=$(nproc) noddebs" timeout 900 dpkg-buildpackage -us -uc) >"$T/build.log" 2>&1 \
	|| { tail -n 40 "$T/build.log"; fail "dpkg-buildpackage -us -uc failed"; }
echo "deb: dpkg-buildpackage -us -uc built in $(($(date +%s) - start)) s:" $(cd "$T" && ls ./*.deb)
DEB=$(ls "$T"/${PKG}_*.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ] || fail "no ${PKG}_*.deb was built"
deps=$(dpkg-deb -f "$DEB" Depends)
echo "deb: Depends: $deps"
[[ $deps == *libsodium23* ]] || fail "the package does not depend on libsodium23"
[[ $deps == *postgresql-15* ]] || fail "the package does not depend on postgresql-15"
dpkg-deb -c "$DEB" >"$T/contents.txt"
for f in usr/lib/postgresql/15/lib/toms.so usr/share/postgresql/15/extension/toms.control \
	usr/share/postgresql/15/extension/toms--0.2.0.sql usr/share/postgresql/15/extension/toms--0.1.0--0.2.0.sql; do
	grep -q " \./$f\$" "$T/contents.txt" || fail "the package lacks /$f"
done

# --- install into the system PostgreSQL 15 ------------------------------
installed=1
"${APT[@]}" install --no-install-recommends "$DEB" >"$T/install.log" 2>&1 \
	|| { cat "$T/install.log"; fail "apt-get install ./${DEB##*/} failed"; }
dpkg-query -W -f='${Status}' "$PKG" | grep -q 'ok installed' || fail "$PKG not installed after apt-get install"
[ -f "$LIBDIR/toms.so" ] || fail "$LIBDIR/toms.so not installed"

# --- a cluster of the system installation, preloading toms --------------
mkdir -p "$T/sock" "$T/keys"
(umask 077 && openssl rand -hex 32 >"$T/keys/master.key")
chown -R postgres: "$T"
chmod 700 "$T/keys"
runuser -u postgres -- $PGBIN/initdb -D "$T/data" -U postgres -A trust --no-sync -E UTF8 --locale=C \
	>"$T/initdb.log" 2>&1 || { cat "$T/initdb.log"; fail "initdb failed"; }
cat >>"$T/data/postgresql.conf" <<CONF
shared_preload_libraries = 'toms'
toms.master_key_file = '$T/keys/master.key'
listen_addresses = ''
unix_socket_directories = '$T/sock'
port = $PORT
fsync = off
CONF
runuser -u postgres -- $PGBIN/pg_ctl -D "$T/data" -l "$T/server.log" -w -t 60 start >/dev/null \
	|| { cat "$T/server.log"; fail "the cluster with shared_preload_libraries = 'toms' did not start"; }
psql() { runuser -u postgres -- $PGBIN/psql -X -q -At -v ON_ERROR_STOP=1 -h "$T/sock" -p "$PORT" "$@"; }

psql -d postgres -c "CREATE EXTENSION toms" || fail "CREATE EXTENSION toms failed"
v=$(psql -d postgres -c "SELECT extversion FROM pg_extension WHERE extname = 'toms'")
[ "$v" = 0.2.0 ] || fail "extension version is '$v', not 0.2.0"
psql -d postgres >"$T/setup.out" 2>&1 <<'SQL' || { cat "$T/setup.out"; fail "protecting a table failed"; }
CREATE ROLE deb_app LOGIN;
CREATE TABLE public.notes (id int PRIMARY KEY, tenant_id text NOT NULL, body text, secret toms.sealed);
GRANT SELECT, INSERT ON public.notes TO deb_app;
SELECT toms.create_tenant('deb_a', 'A');
SELECT toms.create_tenant('deb_b', 'B');
SELECT toms.add_member('deb_app', 'deb_a');
SELECT toms.add_member('deb_app', 'deb_b');
SELECT toms.protect('public.notes', sensitive => ARRAY['secret']::name[]);
SQL
got=$(psql -d postgres -U deb_app <<'SQL' 2>&1
BEGIN;
SELECT toms.set_tenant('deb_a', true);
INSERT INTO public.notes (id, body, secret) VALUES (1, 'note of A', toms.seal('sealed of A'));
COMMIT;
BEGIN;
SELECT toms.set_tenant('deb_b', true);
INSERT INTO public.notes (id, body, secret) VALUES (2, 'note of B', toms.seal('sealed of B'));
COMMIT;
BEGIN;
SELECT toms.set_tenant('deb_a', true);
SELECT 'read:' || string_agg(id || '/' || tenant_id || '/' || body || '/' || toms.unseal(secret), ',' ORDER BY id) FROM public.notes;
COMMIT;
SQL
)
echo "deb: in tenant deb_a: ${got//$'\n'/ }"
[[ $got == *"read:1/deb_a/note of A/sealed of A"* ]] || fail "the tenant did not read exactly its own row"
nocontext=$(psql -d postgres -U deb_app -c "SELECT count(*) FROM public.notes" 2>&1)
[[ $nocontext == *"no tenant context"* ]] || fail "reading without a tenant context was not refused: $nocontext"
echo "deb: without a context: $nocontext"

runuser -u postgres -- $PGBIN/pg_ctl -D "$T/data" -m fast -w -t 60 stop >/dev/null || fail "the cluster did not stop"

# --- purge -------------------------------------------------------------
"${APT[@]}" purge "$PKG" >"$T/purge.log" 2>&1 || { cat "$T/purge.log"; fail "apt-get purge $PKG failed"; }
installed=0
dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'ok installed' && fail "$PKG still installed after purge"
for f in "$LIBDIR/toms.so" "$EXTDIR/toms.control" "$EXTDIR/toms--0.2.0.sql"; do
	[ -e "$f" ] && fail "$f is left after the purge"
done
echo "deb: built, installed, preloaded, CREATE EXTENSION, protected and read in a tenant context, purged"
