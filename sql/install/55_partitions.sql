-- Partitioned tables (issue 17) ---------------------------------------------
--
-- toms.protect() of a partitioned table protects every partition (C:
-- protect.c, guard_partition.c).  What is SQL here is the retention path
-- that drops whole expired partitions (docs/deletion.md, "Partitioned
-- tables"), called by the lifecycle worker before its row-by-row batches.

-- Partitions of a retention rule's table that can hold only expired rows:
-- range partitions on the rule's time column alone whose upper bound (which
-- is exclusive) is at or before now() - keep.  The top-most ones: a
-- partition inside one listed is not listed.
CREATE FUNCTION @extschema@._retention_expired_partitions(rule oid) RETURNS SETOF oid
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	p			record;
	expired		bool;
	taken		oid[] := '{}';
BEGIN
	SELECT * INTO r FROM @extschema@.retention WHERE relid = rule;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	FOR p IN
		SELECT t.relid::oid AS part, format_type(a.atttypid, a.atttypmod) AS typ,
			   substring(pg_get_expr(c.relpartbound, c.oid) FROM $re$ TO \('((?:[^']|'')*)'\)$$re$) AS upper
		  FROM pg_partition_tree(rule) t
		  JOIN pg_class c ON c.oid = t.relid
		  JOIN pg_partitioned_table k ON k.partrelid = t.parentrelid
		  JOIN pg_attribute a ON a.attrelid = t.parentrelid AND a.attnum = k.partattrs[0]
		 WHERE k.partstrat = 'r' AND k.partnatts = 1 AND a.attname = r.time_column
		 ORDER BY t.level, t.relid
	LOOP
		CONTINUE WHEN p.upper IS NULL;	-- MAXVALUE
		CONTINUE WHEN EXISTS (SELECT 1 FROM pg_partition_ancestors(p.part) x WHERE x.relid = ANY (taken));
		EXECUTE format('SELECT CAST(%L AS %s) <= $1', replace(p.upper, '''''', ''''), p.typ)
			INTO expired USING now() - r.keep;
		IF expired THEN
			taken := taken || p.part;
			RETURN NEXT p.part;
		END IF;
	END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._retention_expired_partitions(oid) FROM PUBLIC;

CREATE FUNCTION @extschema@._retention_drop_partition(rule oid, part oid) RETURNS bigint
	AS 'MODULE_PATHNAME', 'toms_retention_drop_partition'
	LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION @extschema@._retention_drop_partition(oid, oid) FROM PUBLIC;

-- Drop the expired partitions of one rule, each in a subtransaction: one
-- that cannot be dropped now (a lock held too long, a foreign key into it)
-- is left to the row-by-row batches and tried again at the next round.
-- DROP TABLE of a partition locks its parent; lock_timeout keeps the
-- worker from queueing every reader of the table behind it.
CREATE FUNCTION @extschema@._retention_drop_expired(rule oid) RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	SET lock_timeout = '2s'
	AS $fn$
DECLARE
	p			oid;
	n			bigint := 0;
BEGIN
	-- A Citus table's partitions are distributed tables: their expired
	-- rows go row by row, shard by shard, on each node (_retention_targets).
	IF @extschema@._citus_lifecycle() AND @extschema@._citus_table(rule) THEN
		RETURN 0;
	END IF;
	FOR p IN SELECT * FROM @extschema@._retention_expired_partitions(rule) LOOP
		BEGIN
			n := n + @extschema@._retention_drop_partition(rule, p);
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'toms retention could not drop partition % of %: %', p::regclass, rule::regclass, SQLERRM;
		END;
	END LOOP;
	RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._retention_drop_expired(oid) FROM PUBLIC;
