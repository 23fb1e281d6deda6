# Sourced by test/run and demo/run before clusters start, run by "make
# test-setup" ($WORK, $SRC set).
# Test master keys for sealed columns: the one every cluster loads
# (test/conf.d/40_sealed.conf), a second one for master key rotation
# tests, and a badly protected one that must be refused.  A key file must
# belong to the server's user (or root): as root they go to postgres,
# otherwise they stay with the user who runs the tests.
mkdir -p "$WORK/sealed"
umask_save=$(umask)
umask 077
openssl rand -hex 32 > "$WORK/sealed/master.key"
openssl rand -base64 32 > "$WORK/sealed/master2.key"
openssl rand -hex 32 > "$WORK/sealed/open.key"
umask "$umask_save"
chmod 0644 "$WORK/sealed/open.key"
[ "$(id -u)" != 0 ] || chown -R postgres: "$WORK/sealed"
chmod 0700 "$WORK/sealed"
