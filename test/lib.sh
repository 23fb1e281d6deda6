# test/lib.sh -- shared by test/run and demo/run.  Sourced, not executed.
#
# Installs what is missing (Debian packages), builds toms, and installs it
# into a private copy of the PostgreSQL 15 installation under $WORK/inst
# (PostgreSQL binaries find their share and lib directories relative to
# themselves, as in PostgreSQL's own "make check"), so tests never touch the
# system installation and several runs can share a machine.

PGVER=15
SYS_PG_CONFIG=/usr/lib/postgresql/$PGVER/bin/pg_config
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKAGES="postgresql-$PGVER postgresql-server-dev-$PGVER libsodium-dev
  postgresql-$PGVER-pgtap libtap-parser-sourcehandler-pgtap-perl
  postgresql-$PGVER-pgaudit libipc-run-perl make gcc clang
  libclang-rt-14-dev cppcheck clang-tidy openssl libkrb5-dev
  pgbouncer"

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

ensure_packages() {
	local missing=() p
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]})); then
		[ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root"
		say "installing: ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
			|| die "apt-get install failed"
	fi
	id postgres >/dev/null 2>&1 || die "no postgres user (package postgresql-$PGVER creates it)"
	# The packaged cluster is not ours; leave it alone but make sure the
	# packages' post-install did not leave it running on our resources.
}

# make_work: $WORK, a private directory the postgres user owns.
make_work() {
	WORK=$(mktemp -d "${TOMS_TMP:-/tmp}/toms-${1:-test}.XXXXXX")
	chmod 755 "$WORK"
	chown postgres: "$WORK"
	export WORK
}

# stage_source: work on a copy of the source tree in $WORK/src (and of the
# shared/ folder beside the checkout, if any), readable by the postgres
# user whatever the checkout's permissions; builds happen in the copy, so
# the checkout stays clean.  Sets SRC to the copy.
stage_source() {
	mkdir -p "$WORK/src"
	tar -C "$SRC" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude='./sql/toms--0.2.0.sql' --exclude='./results' --exclude='./regression.*' \
		--exclude='./output_iso' --exclude='./tmp_check*' -cf - . | tar -C "$WORK/src" -xf -
	if [ -d "$SRC/../shared" ]; then
		mkdir -p "$WORK/shared"
		cp -a "$SRC/../shared/." "$WORK/shared/"
	fi
	chmod -R a+rX "$WORK/src" "$WORK/shared" 2>/dev/null
	SRC="$WORK/src"
	export SRC
}

# build_stage: build toms and install it into $WORK/inst.
build_stage() {
	local libdir sharedir
	libdir=$($SYS_PG_CONFIG --pkglibdir)
	sharedir=$($SYS_PG_CONFIG --sharedir)
	make -C "$SRC" -s PG_CONFIG=$SYS_PG_CONFIG ${TOMS_MAKEFLAGS:-} >"$WORK/build.log" 2>&1 \
		|| { cat "$WORK/build.log"; die "build failed"; }
	mkdir -p "$WORK/inst$(dirname "$libdir")" "$WORK/inst$(dirname "$sharedir")"
	cp -a "$(dirname "$libdir")/." "$WORK/inst$(dirname "$libdir")/"
	cp -a "$sharedir/." "$WORK/inst$sharedir/"
	make -C "$SRC" -s PG_CONFIG=$SYS_PG_CONFIG DESTDIR="$WORK/inst" install >>"$WORK/build.log" 2>&1 \
		|| { cat "$WORK/build.log"; die "install failed"; }
	# toms_test (TEST ONLY: mints PASETO tokens) goes into the stage only.
	make -C "$SRC/test/toms_test" -s PG_CONFIG=$SYS_PG_CONFIG DESTDIR="$WORK/inst" all install >>"$WORK/build.log" 2>&1 \
		|| { cat "$WORK/build.log"; die "toms_test install failed"; }
	BIN="$WORK/inst$($SYS_PG_CONFIG --bindir)"
	PGXS_DIR="$WORK/inst$(dirname "$($SYS_PG_CONFIG --pgxs)")/../.."
	PGXS_DIR=$(cd "$PGXS_DIR" && pwd)
	export BIN PGXS_DIR
}

# as_pg CMD...: run as the postgres user from $WORK.
as_pg() { (cd "$WORK" && runuser -u postgres -- env PATH="$BIN:$PATH" "$@"); }

# temp_config FILE: the settings every test cluster gets (test/conf.d/*.conf).
temp_config() {
	cat "$SRC"/test/conf.d/*.conf > "$1"
	sed -i "s|@WORK@|$WORK|g; s|@SRC@|$SRC|g" "$1"
	chown postgres: "$1"
}

# start_cluster NAME PORT [extra conf lines...]: initdb + start; sets PGHOST/PGPORT.
start_cluster() {
	local name=$1 port=$2 dir
	shift 2
	dir="$WORK/$name"
	mkdir -p "$WORK/sock"
	chown postgres: "$WORK/sock"
	as_pg initdb -D "$dir" -U postgres -A trust --no-sync -E UTF8 --locale=C >"$WORK/$name.initdb.log" 2>&1 \
		|| { cat "$WORK/$name.initdb.log"; die "initdb failed"; }
	temp_config "$WORK/temp.conf"
	{
		cat "$WORK/temp.conf"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$WORK/sock'"
		echo "port = $port"
		for line in "$@"; do echo "$line"; done
	} >> "$dir/postgresql.conf"
	as_pg pg_ctl -D "$dir" -l "$WORK/$name.log" -w -t 60 start >/dev/null \
		|| { cat "$WORK/$name.log"; die "cluster $name did not start"; }
	STARTED+=("$dir")
	export PGHOST="$WORK/sock" PGPORT=$port PGUSER=postgres
}

stop_clusters() {
	local d
	for d in "${STARTED[@]}"; do
		[ -f "$d/postmaster.pid" ] && as_pg pg_ctl -D "$d" -m fast -w -t 30 stop >/dev/null 2>&1
		[ -f "$d/postmaster.pid" ] && as_pg pg_ctl -D "$d" -m immediate stop >/dev/null 2>&1
	done
	STARTED=()
}

STARTED=()
