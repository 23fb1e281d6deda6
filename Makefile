# toms -- PGXS build
#
#   make PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
#   make install
#   test/run            (everything; see README.md)
#
# The install script sql/toms--$(EXTVERSION).sql is assembled from the
# per-concern pieces in sql/install/, in file-name order, so that each
# concern owns its own SQL next to its C file.

EXTENSION   = toms
EXTVERSION  = 0.1.0
MODULE_big  = toms
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA_built  = sql/toms--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/toms--*--*.sql)) $(wildcard data/*.txt)
PGFILEDESC  = "toms - technical and organisational measures"

SHLIB_LINK += -lsodium
PG_CPPFLAGS += -Isrc
PG_CFLAGS   += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare


PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/toms--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

EXTRA_CLEAN += sql/toms--$(EXTVERSION).sql
