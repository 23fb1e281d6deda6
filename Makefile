# toms -- PGXS build
#
#   make PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
#   make install
#   bash test/run       everything, on throw-away clusters (see README.md)
#   make installcheck   the PostgreSQL way, against a running server (below)
#
# The install script of the current version, sql/toms--$(EXTVERSION).sql,
# is assembled from the per-concern pieces in sql/install/, in file-name
# order, so that each concern owns its own SQL next to its C file.
#
# Releases (docs/operations.md, "Upgrades"): a released version's install
# script is frozen and committed (sql/toms--0.1.0.sql, tag v0.1.0); every
# later change of SQL objects goes into sql/install/ (for fresh installs)
# AND into the upgrade script sql/toms--<from>--<to>.sql; t/730_upgrade.pl
# proves that both routes give the same schema.

EXTENSION   = toms
EXTVERSION  = 0.2.0
MODULE_big  = toms
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA_built  = sql/toms--$(EXTVERSION).sql data/toms_controls.tsv
DATA        = $(filter-out $(DATA_built),$(wildcard sql/toms--*.sql)) $(wildcard data/*.txt)
PGFILEDESC  = "toms - technical and organisational measures"

SHLIB_LINK += -lsodium
PG_CPPFLAGS += -Isrc
# the version of the SQL objects this library is built for (catalog.c)
PG_CPPFLAGS += -DTOMS_LIB_VERSION='"$(EXTVERSION)"'
PG_CFLAGS   += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

# Tests, the PostgreSQL way.  Each list is computed from the file names, so
# a concern adds a test by adding files; test/run reads the same lists
# ("make list-tests") and runs them through "make installcheck".
#
#   REGRESS     sql/*.sql (not the sql/toms--* install scripts), expected/*.out
#   ISOLATION   specs/*.spec, expected/*.out
#   TAP_TESTS   t/*.pl, run with prove; t/ is on the module path (TomsNode.pm)
#
# make installcheck runs REGRESS, then ISOLATION, against the server that
# PGHOST, PGPORT and PGUSER (a superuser) name, then the TAP tests.  The
# server needs
#   - toms and the test-only extension test/toms_test installed into its
#     installation: make install; make -C test/toms_test install
#   - shared_preload_libraries = 'toms' and the settings of test/conf.d:
#     "make test-setup" writes them to $(TOMS_TEST_CONF), with the test
#     master keys beside (test/setup.d); include that file from the
#     server's postgresql.conf and restart.  The key file must belong to
#     the server's user (or root) and be private to it.
# The TAP tests start clusters of their own from $(bindir) with
# PostgreSQL::Test::Cluster, so they run as any user but root (initdb
# refuses root); they get TEMP_CONFIG and WORK from here.  Debian's PGXS
# has enable_tap_tests = yes.  An installation configured without
# --enable-tap-tests lacks src/test/perl in its PGXS tree; there, take the
# modules from a PostgreSQL 15 source tree (not tried here):
#   make installcheck enable_tap_tests=yes PROVE=prove \
#     PG_PROVE_FLAGS='-I /path/to/postgresql/src/test/perl -I t'
# Subsets:
#   make installcheck TAP_TESTS=                     REGRESS and ISOLATION only
#   make installcheck REGRESS= ISOLATION=            TAP only
#   make installcheck REGRESS= ISOLATION= PROVE_TESTS=t/001_preload.pl
#
# Under PGXS "make check" is not supported, but pg_regress can still start
# a temporary instance from $(bindir) with the settings above (the
# --temp-config of REGRESS_OPTS); as a user other than root:
#   make installcheck EXTRA_REGRESS_OPTS=--temp-instance=./tmp_check
#
# pgTAP suites (test/pgtap) and the other checks (test/suites.d) run only
# through test/run.

REGRESS     = $(filter-out toms--%,$(sort $(basename $(notdir $(wildcard sql/*.sql)))))
ISOLATION   = $(sort $(basename $(notdir $(wildcard specs/*.spec))))
TAP_TESTS   = 1

# Where "make test-setup" puts the test settings and master keys; test/run
# points both at its work directory.
TOMS_TEST_WORK ?= $(CURDIR)/tmp_check_toms
TOMS_TEST_CONF ?= $(TOMS_TEST_WORK)/toms.conf

REGRESS_OPTS   = --load-extension=toms --temp-config=$(TOMS_TEST_CONF)
ISOLATION_OPTS = --load-extension=toms --temp-config=$(TOMS_TEST_CONF)
REGRESS_PREP   = $(TOMS_TEST_CONF)

# (before the include: pgxs.mk tests ifdef EXTRA_CLEAN as it reads it)
EXTRA_CLEAN = sql/toms--$(EXTVERSION).sql data/toms_controls.tsv tmp_check_toms/

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/toms--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

# docs/controls.md as data: CREATE EXTENSION (and the update to 0.2.0)
# loads it into toms.control_tests, for toms.assess_report('html').
data/toms_controls.tsv: docs/controls.md data/controls.awk
	awk -f data/controls.awk docs/controls.md > $@

# TAP: TomsNode.pm is in t/ (prove runs in the source directory); the
# clusters get the settings of test/conf.d, t/4*_sealed_* find the keys
# under $WORK.
PG_PROVE_FLAGS += -I t
installcheck: export TEMP_CONFIG = $(TOMS_TEST_CONF)
installcheck: export WORK = $(TOMS_TEST_WORK)

# The test settings (test/conf.d/*.conf, @WORK@ and @SRC@ filled in) and
# what test/setup.d/*.sh prepares (the test master keys).
.PHONY: test-setup list-tests
test-setup: $(TOMS_TEST_CONF)

$(TOMS_TEST_CONF): $(sort $(wildcard test/conf.d/*.conf))
	mkdir -p '$(TOMS_TEST_WORK)'
	for s in $(sort $(wildcard test/setup.d/*.sh)); do \
		WORK='$(TOMS_TEST_WORK)' SRC='$(CURDIR)' bash $$s || exit 1; done
	sed -e 's|@WORK@|$(TOMS_TEST_WORK)|g' -e 's|@SRC@|$(CURDIR)|g' $^ > $@

# One "suite name" a line, for test/run.
list-tests:
	@for t in $(REGRESS); do echo "regress $$t"; done
	@for t in $(ISOLATION); do echo "isolation $$t"; done
	@for t in $(basename $(notdir $(wildcard t/*.pl))); do echo "tap $$t"; done
