-- Two-stage deletion and data-lifecycle retention (docs/deletion.md;
-- measures 6b, 8a).  Stage 1 (request_deletion) runs in the caller's
-- transaction; stage 2 is carried out by the lifecycle background worker
-- (src/lifecycle_worker.c), one committed transaction per batch, through the
-- internal functions at the end of this file.

-- One row per deletion request.  state moves pending -> purging ->
-- shredding (whole tenant only) -> vacuuming -> waiting_copies -> done, or
-- pending -> cancelled.  Every transition and every batch commits together
-- with the work it records, so a crash resumes exactly where it stopped.
CREATE TABLE @extschema@.deletion_requests (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant		text NOT NULL REFERENCES @extschema@.tenants,
	subject		text CHECK (subject IS NULL OR length(subject) BETWEEN 1 AND 256),
	reason		text,
	requested_by name NOT NULL DEFAULT session_user,
	requested_at timestamptz NOT NULL DEFAULT now(),
	grace		interval NOT NULL,
	not_before	timestamptz NOT NULL,
	approval_required bool NOT NULL,
	approved_by name,
	approved_at timestamptz,
	cancelled_by name,
	cancelled_at timestamptz,
	state		text NOT NULL DEFAULT 'pending'
				CHECK (state IN ('pending', 'purging', 'shredding', 'vacuuming',
								 'waiting_copies', 'done', 'cancelled')),
	started_at	timestamptz,
	purged_at	timestamptz,
	finished_at timestamptz,
	keys		jsonb,
	purge_xid	xid8,
	purge_lsn	pg_lsn,
	expected_copies text[],
	copies_required int,
	copies		jsonb NOT NULL DEFAULT '{}',
	waiting_since timestamptz,
	last_error	text,
	certificate jsonb,
	-- On a Citus coordinator: each worker's part of stage 2, by node
	-- ("host:port" -> expected standbys, purge xid and LSN, copies).
	nodes		jsonb NOT NULL DEFAULT '{}'
);
-- At most one live request per tenant and per subject of a tenant.
CREATE UNIQUE INDEX deletion_requests_scope
	ON @extschema@.deletion_requests (tenant, coalesce(subject, ''))
	WHERE state <> 'cancelled';
COMMENT ON TABLE @extschema@.deletion_requests IS 'toms: two-stage deletion requests and their certificates';

-- Every backend reloads the hidden subjects when a request changes; on a
-- Citus cluster, where the table is a reference table, the trigger runs on
-- each node's copy (src/lifecycle.c).
CREATE FUNCTION @extschema@._lifecycle_invalidate_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'toms_lifecycle_invalidate_trigger' LANGUAGE C;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_invalidate_trigger() FROM PUBLIC;
CREATE TRIGGER toms_invalidate AFTER INSERT OR UPDATE OF tenant, subject, state OR DELETE OR TRUNCATE
	ON @extschema@.deletion_requests FOR EACH STATEMENT
	EXECUTE FUNCTION @extschema@._lifecycle_invalidate_trigger();
-- also under session_replication_role = replica (see toms_invalidate)
ALTER TABLE @extschema@.deletion_requests ENABLE ALWAYS TRIGGER toms_invalidate;

-- The tables stage 2 purges for a request, fixed when stage 2 starts.
CREATE TABLE @extschema@.deletion_steps (
	request		uuid NOT NULL REFERENCES @extschema@.deletion_requests ON DELETE CASCADE,
	relid		oid NOT NULL,
	relname		text NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('protected', 'copy')),
	ord			int NOT NULL,
	tenant_column name NOT NULL,
	subject_column name,
	scope		text,			-- WHERE clause, fixed by _deletion_plan()
	rows_estimated bigint NOT NULL DEFAULT 0,
	rows_deleted bigint NOT NULL DEFAULT 0,
	batches		int NOT NULL DEFAULT 0,
	last_tid	tid,
	purged_at	timestamptz,
	vacuumed_at timestamptz,
	PRIMARY KEY (request, relid)
);
COMMENT ON TABLE @extschema@.deletion_steps IS 'toms: per-table progress of stage-2 deletions';

-- Archive, history and reporting tables that hold tenant data without
-- being protected: stage 2 purges them too.
CREATE TABLE @extschema@.copies (
	relid		regclass PRIMARY KEY,
	tenant_column name NOT NULL,
	subject_column name,
	registered_by name NOT NULL DEFAULT session_user,
	registered_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.copies IS 'toms: registered copies of tenant data purged by deletions';

-- Legal holds: stage 2 does not start, or continue, for a held tenant.
CREATE TABLE @extschema@.holds (
	tenant		text PRIMARY KEY REFERENCES @extschema@.tenants,
	reason		text NOT NULL CHECK (length(btrim(reason)) > 0),
	held_by		name NOT NULL DEFAULT session_user,
	held_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.holds IS 'toms: legal holds that block stage-2 deletion';

-- Data-lifecycle retention rules.
CREATE TABLE @extschema@.retention (
	relid		regclass PRIMARY KEY,
	time_column name NOT NULL,
	keep		interval NOT NULL CHECK (keep > interval '0'),
	set_by		name NOT NULL DEFAULT session_user,
	set_at		timestamptz NOT NULL DEFAULT now(),
	last_run_at timestamptz,
	rows_purged bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE @extschema@.retention IS 'toms: retention rules purged by the lifecycle worker';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.deletion_requests', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.deletion_steps', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.copies', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.holds', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.retention', '');

REVOKE ALL ON @extschema@.deletion_requests, @extschema@.deletion_steps,
	@extschema@.copies, @extschema@.holds, @extschema@.retention FROM PUBLIC;
GRANT SELECT ON @extschema@.deletion_requests, @extschema@.deletion_steps,
	@extschema@.copies, @extschema@.holds, @extschema@.retention TO toms_admin, toms_auditor;

-- C helpers (src/lifecycle.c).

-- The restrictive policy toms_subject on every protected table with a
-- subject column calls this for each row: false for a subject of the
-- current tenant whose deletion was requested.
CREATE FUNCTION @extschema@.subject_visible(subject text) RETURNS bool
	AS 'MODULE_PATHNAME', 'toms_subject_visible'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
REVOKE ALL ON FUNCTION @extschema@.subject_visible(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.subject_visible(text) TO PUBLIC;

-- Audit an administrative act of this part and, with invalidate, make every
-- backend reload what it caches about deletions (at commit).
CREATE FUNCTION @extschema@._lifecycle_event(action text, tenant text, detail text, invalidate bool)
	RETURNS void
	AS 'MODULE_PATHNAME', 'toms_lifecycle_event'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_event(text, text, text, bool) FROM PUBLIC;

-- Stage 1 ---------------------------------------------------------------

CREATE FUNCTION @extschema@.request_deletion(tenant text, subject text DEFAULT NULL,
	reason text DEFAULT NULL, grace interval DEFAULT NULL)
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	t			record;
	dflt		interval := current_setting('toms.deletion_grace')::interval;
	g			interval := coalesce(grace, dflt);
	req			uuid;
	who			name := session_user;	-- see set_retention()
BEGIN
	IF tenant IS NULL THEN
		RAISE EXCEPTION 'tenant must not be null' USING ERRCODE = '22004';
	END IF;
	IF subject IS NOT NULL AND (length(subject) = 0 OR octet_length(subject) > 256) THEN
		RAISE EXCEPTION 'subject must be between 1 and 256 bytes long' USING ERRCODE = '22023';
	END IF;
	IF g < interval '0' THEN
		RAISE EXCEPTION 'grace period must not be negative' USING ERRCODE = '22023';
	END IF;
	IF g < dflt AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
		RAISE EXCEPTION 'only a superuser may shorten the deletion grace period'
			USING ERRCODE = '42501',
				DETAIL = format('toms.deletion_grace is %s; the request asked for %s.', dflt, g);
	END IF;

	SELECT * INTO t FROM @extschema@.tenants AS x WHERE x.tenant = request_deletion.tenant FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	IF t.status <> 'active' THEN
		RAISE EXCEPTION 'tenant "%" is already being deleted', tenant
			USING ERRCODE = '55000', DETAIL = format('Its status is %s.', t.status);
	END IF;
	IF subject IS NOT NULL AND EXISTS (
		SELECT 1 FROM @extschema@.deletion_requests r
		 WHERE r.tenant = request_deletion.tenant AND r.subject = request_deletion.subject
		   AND r.state <> 'cancelled') THEN
		RAISE EXCEPTION 'deletion of subject "%" of tenant "%" has already been requested', subject, tenant
			USING ERRCODE = '55000';
	END IF;

	INSERT INTO @extschema@.deletion_requests AS r
		(tenant, subject, reason, requested_by, grace, not_before, approval_required)
	VALUES (request_deletion.tenant, request_deletion.subject, request_deletion.reason, who, g,
			now() + g, current_setting('toms.deletion_approval')::bool)
	RETURNING r.id INTO req;

	IF subject IS NULL THEN
		UPDATE @extschema@.tenants AS x SET status = 'deleting' WHERE x.tenant = request_deletion.tenant;
	END IF;

	PERFORM @extschema@._lifecycle_event('deletion_requested', tenant,
		json_build_object('request', req, 'scope', CASE WHEN subject IS NULL THEN 'tenant' ELSE 'subject' END,
						  'reason', reason, 'grace', g::text)::text, true);
	RETURN req;
END
$fn$;

CREATE FUNCTION @extschema@.cancel_deletion(id uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	who			name := session_user;	-- see set_retention()
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests x WHERE x.id = cancel_deletion.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'deletion request % does not exist', id USING ERRCODE = '42704';
	END IF;
	IF r.state <> 'pending' THEN
		RAISE EXCEPTION 'deletion request can no longer be cancelled'
			USING ERRCODE = '55000',
				DETAIL = CASE WHEN r.state = 'cancelled' THEN format('Request %s was cancelled already.', id)
						 ELSE format('Stage 2 of request %s started at %s.', id, r.started_at) END;
	END IF;
	UPDATE @extschema@.deletion_requests x
	   SET state = 'cancelled', cancelled_by = who, cancelled_at = now()
	 WHERE x.id = cancel_deletion.id;
	IF r.subject IS NULL THEN
		UPDATE @extschema@.tenants SET status = 'active' WHERE tenant = r.tenant;
	END IF;
	PERFORM @extschema@._lifecycle_event('deletion_cancelled', r.tenant,
		json_build_object('request', id)::text, true);
END
$fn$;

CREATE FUNCTION @extschema@.approve_deletion(id uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	who			name := session_user;	-- see set_retention()
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests x WHERE x.id = approve_deletion.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'deletion request % does not exist', id USING ERRCODE = '42704';
	END IF;
	IF r.state IN ('done', 'cancelled') THEN
		RAISE EXCEPTION 'deletion request is %', r.state
			USING ERRCODE = '55000', DETAIL = format('Request %s.', id);
	END IF;
	IF r.requested_by = session_user THEN
		RAISE EXCEPTION 'a deletion must be approved by a role other than its requester'
			USING ERRCODE = '42501', DETAIL = format('Role %s requested it.', r.requested_by);
	END IF;
	IF r.approved_by IS NOT NULL THEN
		RAISE EXCEPTION 'deletion request is already approved'
			USING ERRCODE = '55000', DETAIL = format('Role %s approved request %s.', r.approved_by, id);
	END IF;
	UPDATE @extschema@.deletion_requests x
	   SET approved_by = who, approved_at = now()
	 WHERE x.id = approve_deletion.id;
	PERFORM @extschema@._lifecycle_event('deletion_approved', r.tenant,
		json_build_object('request', id)::text, false);
END
$fn$;

-- Withdrawing an approval stops stage 2 at its next batch when approval is
-- required.
CREATE FUNCTION @extschema@.withdraw_approval(id uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests x WHERE x.id = withdraw_approval.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'deletion request % does not exist', id USING ERRCODE = '42704';
	END IF;
	IF r.approved_by IS NULL OR r.state IN ('done', 'cancelled') THEN
		RAISE EXCEPTION 'deletion request has no approval to withdraw'
			USING ERRCODE = '55000', DETAIL = format('Request %s.', id);
	END IF;
	UPDATE @extschema@.deletion_requests x
	   SET approved_by = NULL, approved_at = NULL
	 WHERE x.id = withdraw_approval.id;
	PERFORM @extschema@._lifecycle_event('deletion_approval_withdrawn', r.tenant,
		json_build_object('request', id, 'approved_by', r.approved_by)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.hold(tenant text, reason text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	who			name := session_user;	-- see set_retention()
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.tenants x WHERE x.tenant = hold.tenant) THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	IF reason IS NULL OR length(btrim(reason)) = 0 THEN
		RAISE EXCEPTION 'a legal hold needs a reason' USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = hold.tenant) THEN
		RAISE EXCEPTION 'tenant "%" is already on hold', tenant USING ERRCODE = '55000';
	END IF;
	INSERT INTO @extschema@.holds (tenant, reason, held_by) VALUES (hold.tenant, hold.reason, who);
	PERFORM @extschema@._lifecycle_event('hold_placed', tenant,
		json_build_object('reason', reason)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.release_hold(tenant text) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	h			record;
BEGIN
	DELETE FROM @extschema@.holds x WHERE x.tenant = release_hold.tenant RETURNING * INTO h;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant "%" is not on hold', tenant USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._lifecycle_event('hold_released', tenant,
		json_build_object('reason', h.reason, 'held_by', h.held_by, 'held_at', h.held_at)::text, false);
END
$fn$;

-- Copies and retention rules ---------------------------------------------

-- Check that tbl has a column col; returns its type.
CREATE FUNCTION @extschema@._lifecycle_column(tbl regclass, col name) RETURNS regtype
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	typ			regtype;
BEGIN
	SELECT a.atttypid INTO typ FROM pg_attribute a
	 WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl USING ERRCODE = '42703';
	END IF;
	RETURN typ;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_column(regclass, name) FROM PUBLIC;

CREATE FUNCTION @extschema@.register_copy(tbl regclass, tenant_column name,
	subject_column name DEFAULT NULL) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.protected_tables p WHERE p.relid = tbl) THEN
		RAISE EXCEPTION 'table "%" is protected', tbl USING ERRCODE = '55000',
			DETAIL = 'Deletions purge protected tables already; register only unprotected copies.';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.copies c WHERE c.relid = tbl) THEN
		RAISE EXCEPTION 'table "%" is already registered as a copy', tbl USING ERRCODE = '42710';
	END IF;
	PERFORM @extschema@._lifecycle_column(tbl, tenant_column);
	IF subject_column IS NOT NULL THEN
		PERFORM @extschema@._lifecycle_column(tbl, subject_column);
	END IF;
	INSERT INTO @extschema@.copies (relid, tenant_column, subject_column)
	VALUES (tbl, tenant_column, subject_column);
	PERFORM @extschema@._lifecycle_event('copy_registered', NULL,
		json_build_object('table', tbl::text, 'tenant_column', tenant_column,
						  'subject_column', subject_column)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.unregister_copy(tbl regclass) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	DELETE FROM @extschema@.copies c WHERE c.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" is not registered as a copy', tbl USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._lifecycle_event('copy_unregistered', NULL,
		json_build_object('table', tbl::text)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.set_retention(tbl regclass, time_column name, keep interval)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	typ			regtype;
	-- a value, not session_user in the statement: on Citus the other
	-- nodes would see the connection's user (also below)
	who			name := session_user;
	ts			timestamptz := now();
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.protected_tables p WHERE p.relid = tbl)
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.copies c WHERE c.relid = tbl) THEN
		RAISE EXCEPTION 'table "%" is neither protected nor a registered copy', tbl
			USING ERRCODE = '55000',
				HINT = 'Protect it with toms.protect() or register it with toms.register_copy() first.';
	END IF;
	typ := @extschema@._lifecycle_column(tbl, time_column);
	IF typ NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
		RAISE EXCEPTION 'column "%" of relation "%" is of type %, not a date or timestamp', time_column, tbl, typ
			USING ERRCODE = '42804';
	END IF;
	IF keep IS NULL OR keep <= interval '0' THEN
		RAISE EXCEPTION 'retention period must be positive' USING ERRCODE = '22023';
	END IF;
	INSERT INTO @extschema@.retention AS r (relid, time_column, keep, set_by)
	VALUES (tbl, time_column, keep, who)
	ON CONFLICT (relid) DO UPDATE
		SET time_column = excluded.time_column, keep = excluded.keep,
			set_by = excluded.set_by, set_at = ts;
	PERFORM @extschema@._lifecycle_event('retention_set', NULL,
		json_build_object('table', tbl::text, 'time_column', time_column, 'keep', keep::text)::text, false);
END
$fn$;

CREATE FUNCTION @extschema@.clear_retention(tbl regclass) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	DELETE FROM @extschema@.retention r WHERE r.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" has no retention rule', tbl USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._lifecycle_event('retention_cleared', NULL,
		json_build_object('table', tbl::text)::text, false);
END
$fn$;

-- Certificate and progress ----------------------------------------------

-- NULL while the request is not complete.
CREATE FUNCTION @extschema@.deletion_certificate(id uuid) RETURNS jsonb
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	c			jsonb;
BEGIN
	SELECT r.certificate INTO c FROM @extschema@.deletion_requests r WHERE r.id = deletion_certificate.id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'deletion request % does not exist', id USING ERRCODE = '42704';
	END IF;
	RETURN c;
END
$fn$;

CREATE VIEW @extschema@.deletion_progress AS
SELECT r.id AS request, r.tenant, r.subject,
	   CASE
		   WHEN r.state <> 'pending' THEN
			   CASE WHEN r.state IN ('purging', 'shredding')
						 AND EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = r.tenant)
					THEN 'held'
					WHEN r.state IN ('purging', 'shredding') AND r.approved_by IS NULL
						 AND (r.approval_required OR current_setting('toms.deletion_approval')::bool)
					THEN 'awaiting approval'
					ELSE r.state END
		   WHEN EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = r.tenant) THEN 'held'
		   WHEN now() < r.not_before THEN 'grace'
		   WHEN r.approved_by IS NULL
				AND (r.approval_required OR current_setting('toms.deletion_approval')::bool)
			   THEN 'awaiting approval'
		   ELSE 'starting'
	   END AS phase,
	   (SELECT s.relname FROM @extschema@.deletion_steps s
		 WHERE s.request = r.id AND s.purged_at IS NULL ORDER BY s.ord, s.relid LIMIT 1) AS current_table,
	   coalesce((SELECT sum(s.rows_deleted) FROM @extschema@.deletion_steps s WHERE s.request = r.id), 0)::bigint AS rows_done,
	   coalesce((SELECT sum(s.rows_estimated) FROM @extschema@.deletion_steps s WHERE s.request = r.id), 0)::bigint AS rows_total,
	   (SELECT count(*) FROM @extschema@.deletion_steps s WHERE s.request = r.id AND s.purged_at IS NOT NULL) AS tables_done,
	   (SELECT count(*) FROM @extschema@.deletion_steps s WHERE s.request = r.id) AS tables_total,
	   (SELECT count(*) FROM jsonb_object_keys(r.copies)) AS copies_confirmed,
	   r.copies_required,
	   r.not_before,
	   r.started_at,
	   r.last_error
  FROM @extschema@.deletion_requests r
 WHERE r.state NOT IN ('done', 'cancelled');
COMMENT ON VIEW @extschema@.deletion_progress IS 'toms: one row per deletion request not yet complete';
REVOKE ALL ON @extschema@.deletion_progress FROM PUBLIC;
GRANT SELECT ON @extschema@.deletion_progress TO toms_admin, toms_auditor;

-- Stage 2 and retention: called by the lifecycle worker only ------------------

-- The WHERE clause that selects a request's rows in one table ($1 tenant,
-- $2 subject), with casts to the columns' own types so indexes are used.
CREATE FUNCTION @extschema@._lifecycle_scope(tbl oid, tenant_column name, subject_column name,
	with_subject bool) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	w			text;
BEGIN
	SELECT format('%I = CAST($1 AS %s)', a.attname, format_type(a.atttypid, a.atttypmod)) INTO w
	  FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = tenant_column AND NOT a.attisdropped;
	IF w IS NULL THEN
		RAISE EXCEPTION 'column "%" of relation "%" does not exist', tenant_column, tbl::regclass
			USING ERRCODE = '42703';
	END IF;
	IF with_subject THEN
		SELECT w || format(' AND %I = CAST($2 AS %s)', a.attname, format_type(a.atttypid, a.atttypmod)) INTO w
		  FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = subject_column AND NOT a.attisdropped;
		IF w IS NULL THEN
			RAISE EXCEPTION 'column "%" of relation "%" does not exist', subject_column, tbl::regclass
				USING ERRCODE = '42703';
		END IF;
	END IF;
	RETURN w;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_scope(oid, name, name, bool) FROM PUBLIC;

-- The tables that hold a table's rows: itself, or for a partitioned table
-- its leaf partitions.
CREATE FUNCTION @extschema@._lifecycle_leaves(tbl oid) RETURNS SETOF oid
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	SELECT t.relid::oid FROM pg_partition_tree(tbl) t
	 WHERE t.isleaf AND (SELECT relkind FROM pg_class WHERE oid = tbl) = 'p'
	UNION ALL
	SELECT tbl WHERE (SELECT relkind FROM pg_class WHERE oid = tbl) = 'r';
$fn$;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_leaves(oid) FROM PUBLIC;

-- Fix the tables of a request: protected tables and registered copies in
-- scope (for a subject: those with a subject column), partitioned tables
-- replaced by their leaf partitions, ordered so that tables referencing
-- others by a foreign key come before the tables they reference.
CREATE FUNCTION @extschema@._deletion_plan(req uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	s			record;
	n			bigint;
	i			int;
	w			text;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests WHERE id = req;
	INSERT INTO @extschema@.deletion_steps (request, relid, relname, kind, ord, tenant_column, subject_column)
	SELECT DISTINCT ON (leaf.relid) req, leaf.relid, leaf.relid::regclass::text, src.kind, 0,
		   src.tenant_column, src.subject_column
	  FROM (SELECT p.relid::oid AS relid, 'protected' AS kind, p.tenant_column, p.subject_column
			  FROM @extschema@.protected_tables p
			UNION ALL
			SELECT c.relid::oid, 'copy', c.tenant_column, c.subject_column
			  FROM @extschema@.copies c) src
	  JOIN pg_class k ON k.oid = src.relid
	 CROSS JOIN LATERAL @extschema@._lifecycle_leaves(src.relid) AS leaf(relid)
	 WHERE (r.subject IS NULL OR src.subject_column IS NOT NULL)
	 ORDER BY leaf.relid, src.kind DESC;

	-- Children first: ord = 1 + the highest ord of any table in the plan
	-- that references it (bounded by the number of tables, for cycles).
	n := (SELECT count(*) FROM @extschema@.deletion_steps WHERE request = req);
	FOR i IN 1 .. n LOOP
		UPDATE @extschema@.deletion_steps p
		   SET ord = sub.ord
		  FROM (SELECT ref.confrelid AS relid, max(c.ord) + 1 AS ord
				  FROM pg_constraint ref
				  JOIN @extschema@.deletion_steps c ON c.request = req AND c.relid = ref.conrelid
				 WHERE ref.contype = 'f' AND ref.conrelid <> ref.confrelid
				 GROUP BY ref.confrelid) sub
		 WHERE p.request = req AND p.relid = sub.relid AND p.ord < sub.ord;
		EXIT WHEN NOT FOUND;
	END LOOP;

	FOR s IN SELECT * FROM @extschema@.deletion_steps WHERE request = req LOOP
		w := @extschema@._lifecycle_scope(s.relid, s.tenant_column, s.subject_column,
										  r.subject IS NOT NULL);
		EXECUTE format('SELECT count(*) FROM ONLY %s WHERE %s', s.relid::regclass, w)
			INTO n USING r.tenant, r.subject;
		UPDATE @extschema@.deletion_steps SET rows_estimated = n, scope = w
		 WHERE request = req AND relid = s.relid;
	END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_plan(uuid) FROM PUBLIC;

-- One batch of one step: delete up to batch rows in scope and record them,
-- in the caller's (the worker's) transaction.  last_tid is the step's
-- cursor: every row in scope at or before it has been deleted.
--
-- Where the scope fills at least one row per page on average (a tenant's
-- bulk), a batch is one pass over the next window of pages: the tuple id
-- of the batch-th row in scope after the cursor ends the window (a probe
-- that reads the pages in physical order: the row filter is kept away from
-- the index, synchronized scans are off), and one DELETE over that tuple
-- id range removes the window's rows -- each row is read once, as by a
-- bulk DELETE's heap scan.  A sparse scope (a subject, a small tenant in a
-- big table) goes through the index instead: the tuple ids of up to batch
-- rows after the cursor, then a DELETE of those tuple ids.
--
-- A step is complete only after a pass that started without a cursor
-- reached the end of the table (a window) or found fewer rows than a batch
-- (the closing pass, whose path the planner chooses): a row moved behind
-- the cursor meanwhile is caught there.  No row locks are taken (they would
-- double the writes): a row updated meanwhile fails the DELETE's recheck
-- of its tuple id or the window's filter and is caught by a later batch.
CREATE FUNCTION @extschema@._deletion_batch(req uuid, tbl oid, batch int) RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	SET synchronize_seqscans = off
	SET max_parallel_workers_per_gather = 0
	AS $fn$
DECLARE
	r			record;
	s			record;
	w			text;
	n			bigint;
	top			tid;
	windowed	bool;
	more		bool;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests WHERE id = req;
	SELECT * INTO s FROM @extschema@.deletion_steps WHERE request = req AND relid = tbl FOR UPDATE;
	IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = tbl) THEN
		UPDATE @extschema@.deletion_steps SET purged_at = now(), vacuumed_at = now()
		 WHERE request = req AND relid = tbl;
		RETURN 0;
	END IF;
	w := coalesce(s.scope, @extschema@._lifecycle_scope(tbl, s.tenant_column, s.subject_column,
														 r.subject IS NOT NULL));
	-- Windows from the first batch on, and as long as the cursor is set;
	-- the closing pass (batches > 0, no cursor) lets the planner choose.
	-- (On Citus the pages are in the shards: a batch goes through the
	-- scope, routed to the shard that holds it.)
	windowed := (s.batches = 0 OR s.last_tid IS NOT NULL)
		AND s.rows_estimated >= pg_relation_size(tbl) / current_setting('block_size')::int
		AND NOT @extschema@._citus_table(tbl);
	IF windowed THEN
		EXECUTE format('SELECT ctid FROM ONLY %s WHERE ctid > $3 AND (%s) IS TRUE OFFSET %s LIMIT 1',
					   tbl::regclass, w, batch - 1)
			INTO top USING r.tenant, r.subject, coalesce(s.last_tid, '(0,0)'::tid);
		EXECUTE format('DELETE FROM ONLY %s WHERE ctid > $3 AND ctid <= $4 AND %s', tbl::regclass, w)
			USING r.tenant, r.subject, coalesce(s.last_tid, '(0,0)'::tid),
				  coalesce(top, '(4294967295,65535)'::tid);
		GET DIAGNOSTICS n = ROW_COUNT;
		more := top IS NOT NULL;	-- else the window ran to the end of the table
	ELSE
		-- The DELETE repeats the scope: on Citus a tuple id names a row
		-- only within one shard, and the scope keeps the statement to the
		-- rows (and so the shard) of the request.
		EXECUTE format('WITH d AS (DELETE FROM ONLY %1$s WHERE (%2$s) AND ctid = ANY (ARRAY('
					   'SELECT ctid FROM ONLY %1$s WHERE %2$s%4$s LIMIT %3$s)) RETURNING ctid) '
					   'SELECT count(*), max(ctid) FROM d', tbl::regclass, w, batch,
					   CASE WHEN s.last_tid IS NOT NULL THEN ' AND ctid > $3' ELSE '' END)
			INTO n, top USING r.tenant, r.subject, s.last_tid;
		more := n >= batch;
	END IF;
	UPDATE @extschema@.deletion_steps
	   SET rows_deleted = rows_deleted + n,
		   batches = batches + 1,
		   last_tid = CASE WHEN more THEN top END,
		   purged_at = CASE WHEN NOT more AND s.last_tid IS NULL THEN now() END
	 WHERE request = req AND relid = tbl;
	RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_batch(uuid, oid, int) FROM PUBLIC;

-- Has every transaction and snapshot that could still see rows deleted by
-- transactions before xid ended?  The same sources as PostgreSQL's removal
-- horizon: backends (any database, to be safe), hot-standby feedback,
-- replication slots and prepared transactions.
CREATE FUNCTION @extschema@._lifecycle_horizon_passed(x xid8) RETURNS bool
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	SELECT x IS NULL OR NOT EXISTS (
		SELECT 1 FROM (
			SELECT backend_xmin AS h FROM pg_stat_activity WHERE pid <> pg_backend_pid()
			UNION ALL
			SELECT backend_xid FROM pg_stat_activity WHERE pid <> pg_backend_pid()
			UNION ALL
			SELECT backend_xmin FROM pg_stat_replication
			UNION ALL
			SELECT xmin FROM pg_replication_slots
			UNION ALL
			SELECT transaction FROM pg_prepared_xacts) o
		 WHERE o.h IS NOT NULL AND age(o.h) >= age(xid(x)));
$fn$;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_horizon_passed(xid8) FROM PUBLIC;

-- The certificate of a request whose copies have confirmed.
CREATE FUNCTION @extschema@._deletion_certify(req uuid, shortfall bool) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	cert		jsonb;
BEGIN
	SELECT * INTO r FROM @extschema@.deletion_requests WHERE id = req;
	cert := jsonb_build_object(
		'request', r.id,
		'database', current_database(),
		'system_identifier', (SELECT system_identifier::text FROM pg_control_system()),
		'scope', CASE WHEN r.subject IS NULL THEN 'tenant' ELSE 'subject' END,
		'tenant', r.tenant,
		'subject', r.subject,
		'reason', r.reason,
		'requested_by', r.requested_by,
		'requested_at', r.requested_at,
		'grace', r.grace::text,
		'approved_by', r.approved_by,
		'approved_at', r.approved_at,
		'started_at', r.started_at,
		'purged_at', r.purged_at,
		'finished_at', clock_timestamp(),
		'tables', coalesce((SELECT jsonb_agg(jsonb_build_object(
								'table', s.relname, 'kind', s.kind,
								'rows_deleted', s.rows_deleted, 'batches', s.batches,
								'vacuumed_at', s.vacuumed_at) ORDER BY s.ord, s.relname)
							  FROM @extschema@.deletion_steps s WHERE s.request = req), '[]'),
		'rows_deleted', coalesce((SELECT sum(s.rows_deleted) FROM @extschema@.deletion_steps s
								   WHERE s.request = req), 0),
		'keys', r.keys,
		'purge_lsn', r.purge_lsn::text,
		'copies_required', r.copies_required,
		'copies_confirmed', (SELECT count(*) FROM jsonb_object_keys(r.copies)),
		'standbys', coalesce((SELECT jsonb_agg(jsonb_build_object('application_name', k) || v ORDER BY k)
								FROM jsonb_each(r.copies) AS e(k, v)), '[]'),
		'proceeded_with_fewer_copies', shortfall,
		'missing_standbys', CASE WHEN shortfall THEN
			to_jsonb(ARRAY(SELECT x FROM unnest(r.expected_copies) x
							WHERE NOT r.copies ? x ORDER BY x)) END);
	-- Citus: every node, the coordinator first, with its own standbys
	IF r.nodes <> '{}' THEN
		cert := cert || jsonb_build_object('nodes',
			jsonb_build_array(jsonb_build_object(
				'node', @extschema@._citus_self(), 'role', 'coordinator',
				'purge_lsn', cert->'purge_lsn', 'standbys', cert->'standbys',
				'missing_standbys', cert->'missing_standbys'))
			|| (SELECT jsonb_agg(jsonb_build_object(
						'node', n.key, 'role', 'worker',
						'purge_lsn', n.value->'purge_lsn',
						'standbys', coalesce((SELECT jsonb_agg(jsonb_build_object('application_name', c.key) || c.value
															   ORDER BY c.key)
												FROM jsonb_each(n.value->'copies') c), '[]'),
						'missing_standbys', CASE WHEN shortfall THEN
							coalesce((SELECT jsonb_agg(x ORDER BY x)
										FROM jsonb_array_elements_text(n.value->'expected') x
									   WHERE NOT (n.value->'copies') ? x), '[]') END)
					ORDER BY n.key)
				  FROM jsonb_each(r.nodes) n));
	END IF;
	RETURN cert;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_certify(uuid, bool) FROM PUBLIC;

-- The worker's next unit of work, done in the caller's transaction:
--   ('batch', request, table)   a batch was deleted (or stage 2 started)
--   ('step', request, NULL)     a phase ended
--   ('vacuum', request, table)  the worker must VACUUM table, then call
--                                _deletion_vacuumed()
--   ('done', request, NULL)     a certificate was stored
--   ('idle', NULL, NULL)        nothing to do now (waiting, held, in grace)
-- Requests in skip are passed over (they failed in this round).
CREATE FUNCTION @extschema@._deletion_work(skip uuid[] DEFAULT '{}',
	OUT action text, OUT request uuid, OUT relid oid)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	r			record;
	s			record;
	blocked		bool;
	approval	bool := current_setting('toms.deletion_approval')::bool;
	batch		int := current_setting('toms.deletion_batch_size')::int;
	want		int := current_setting('toms.deletion_copies')::int;
	patience	interval := current_setting('toms.deletion_copies_timeout')::interval;
	nkeys		bigint;
	confirmed	jsonb;
	ok			bool;
	cert		jsonb;
	msg			text;
	expected	text[];
	nnodes		jsonb;
	res			jsonb;
	k			text;
	v			jsonb;
	cp			jsonb;
	app			text;
	lsn			pg_lsn;
	waiting		text;
	nodes_ok	bool;
	changed		bool;
	ts			timestamptz;
	pxid		xid8;
BEGIN
	-- On a Citus worker the requests are a copy: the coordinator's
	-- lifecycle worker carries out stage 2 for every node.
	IF @extschema@._citus_worker_node() THEN
		action := 'idle';
		RETURN;
	END IF;
	FOR r IN SELECT * FROM @extschema@.deletion_requests d
			  WHERE d.state NOT IN ('done', 'cancelled') AND d.id <> ALL (skip)
			  ORDER BY d.requested_at, d.id
	LOOP
		request := r.id;
		BEGIN
		blocked := EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = r.tenant)
			OR ((r.approval_required OR approval) AND r.approved_by IS NULL);

		IF r.state = 'pending' THEN
			CONTINUE WHEN blocked OR now() < r.not_before;
			PERFORM @extschema@._deletion_plan(r.id);
			-- (values, not volatile calls, in the UPDATEs of the request:
			-- Citus refuses these in a reference table's UPDATE)
			ts := clock_timestamp();
			expected := ARRAY(SELECT application_name FROM pg_stat_replication
							   WHERE state = 'streaming' ORDER BY 1);
			-- Citus: each worker's streaming standbys, the same way
			SELECT coalesce(jsonb_object_agg(w.key, jsonb_build_object('expected', w.value::jsonb,
																	  'copies', '{}'::jsonb)), '{}')
			  INTO nnodes
			  FROM jsonb_each_text(@extschema@._citus_on_workers(
					$q$SELECT coalesce(jsonb_agg(DISTINCT application_name), '[]')
						 FROM pg_stat_replication WHERE state = 'streaming'$q$)) w;
			UPDATE @extschema@.deletion_requests d
			   SET state = 'purging', started_at = ts, last_error = NULL,
				   expected_copies = expected,
				   copies_required = CASE WHEN want >= 0 THEN want ELSE cardinality(expected) END,
				   nodes = nnodes
			 WHERE d.id = r.id;
			PERFORM @extschema@._lifecycle_event('deletion_started', r.tenant,
				json_build_object('request', r.id)::text, false);
			action := 'batch';
			RETURN;

		ELSIF r.state = 'purging' THEN
			CONTINUE WHEN blocked;
			SELECT * INTO s FROM @extschema@.deletion_steps st
			 WHERE st.request = r.id AND st.purged_at IS NULL ORDER BY st.ord, st.relid LIMIT 1;
			IF FOUND THEN
				PERFORM @extschema@._deletion_batch(r.id, s.relid, batch);
				action := 'batch';
				relid := s.relid;
				RETURN;
			END IF;
			-- Citus: each worker's transaction id after the purge
			IF r.nodes <> '{}' THEN
				res := @extschema@._citus_on_workers('SELECT pg_current_xact_id()');
				SELECT jsonb_object_agg(n.key, n.value || jsonb_build_object('purge_xid', res->>n.key))
				  INTO nnodes FROM jsonb_each(r.nodes) n;
			ELSE
				nnodes := r.nodes;
			END IF;
			ts := clock_timestamp();
			pxid := pg_current_xact_id();
			UPDATE @extschema@.deletion_requests d
			   SET state = CASE WHEN r.subject IS NULL THEN 'shredding' ELSE 'vacuuming' END,
				   purged_at = ts, purge_xid = pxid,
				   nodes = nnodes
			 WHERE d.id = r.id;
			action := 'step';
			RETURN;

		ELSIF r.state = 'shredding' THEN
			CONTINUE WHEN blocked;
			PERFORM set_config('synchronous_commit', 'on', true);
			nkeys := @extschema@.destroy_tenant_keys(r.tenant);
			ts := clock_timestamp();
			UPDATE @extschema@.deletion_requests d
			   SET keys = jsonb_build_object('destroyed', true, 'destroyed_at', ts,
											 'keys_destroyed', nkeys)
			 WHERE d.id = r.id;
			UPDATE @extschema@.deletion_requests d SET state = 'vacuuming' WHERE d.id = r.id;
			action := 'step';
			RETURN;

		ELSIF r.state = 'vacuuming' THEN
			-- VACUUM can remove the deleted tuples only once no snapshot or
			-- transaction older than the purge remains; until then, wait.
			IF NOT @extschema@._lifecycle_horizon_passed(r.purge_xid) THEN
				IF r.last_error IS DISTINCT FROM 'waiting for transactions older than the purge to end' THEN
					UPDATE @extschema@.deletion_requests d
					   SET last_error = 'waiting for transactions older than the purge to end'
					 WHERE d.id = r.id;
				END IF;
				CONTINUE;
			END IF;
			-- Citus: and on every worker, against its own transaction id
			IF r.nodes <> '{}' THEN
				res := @extschema@._citus_on_workers(format('SELECT @extschema@._deletion_node_horizon(%L)',
					(SELECT jsonb_object_agg(n.key, n.value->'purge_xid') FROM jsonb_each(r.nodes) n)));
				SELECT string_agg(n.key, ', ' ORDER BY n.key) INTO waiting
				  FROM jsonb_each_text(res) n WHERE n.value IS DISTINCT FROM 't';
				IF waiting IS NOT NULL THEN
					msg := format('waiting for transactions older than the purge to end on node %s', waiting);
					IF r.last_error IS DISTINCT FROM msg THEN
						UPDATE @extschema@.deletion_requests d SET last_error = msg WHERE d.id = r.id;
					END IF;
					CONTINUE;
				END IF;
			END IF;
			SELECT * INTO s FROM @extschema@.deletion_steps st
			 WHERE st.request = r.id AND st.vacuumed_at IS NULL ORDER BY st.ord, st.relid LIMIT 1;
			IF FOUND THEN
				-- Citus: a distributed table's rows are in its shards
				PERFORM @extschema@._citus_vacuum(s.relid);
				action := 'vacuum';
				relid := s.relid;
				RETURN;
			END IF;
			-- Citus: each worker's WAL position after its shards' vacuum
			IF r.nodes <> '{}' THEN
				res := @extschema@._citus_on_workers('SELECT pg_current_wal_insert_lsn()');
				SELECT jsonb_object_agg(n.key, n.value || jsonb_build_object('purge_lsn', res->>n.key))
				  INTO nnodes FROM jsonb_each(r.nodes) n;
			ELSE
				nnodes := r.nodes;
			END IF;
			ts := clock_timestamp();
			lsn := pg_current_wal_insert_lsn();
			UPDATE @extschema@.deletion_requests d
			   SET state = 'waiting_copies', purge_lsn = lsn,
				   waiting_since = ts, last_error = NULL,
				   nodes = nnodes
			 WHERE d.id = r.id;
			action := 'step';
			RETURN;

		ELSIF r.state = 'waiting_copies' THEN
			SELECT coalesce(jsonb_object_agg(application_name,
						jsonb_build_object('replay_lsn', replay_lsn::text, 'confirmed_at', clock_timestamp())), '{}')
			  INTO confirmed
			  FROM (SELECT DISTINCT ON (application_name) application_name, replay_lsn
					  FROM pg_stat_replication
					 WHERE replay_lsn >= r.purge_lsn AND NOT r.copies ? application_name
					 ORDER BY application_name, replay_lsn DESC) x;
			IF confirmed <> '{}' THEN
				UPDATE @extschema@.deletion_requests d SET copies = confirmed || d.copies
				 WHERE d.id = r.id RETURNING * INTO r;
			END IF;
			IF want < 0 THEN
				ok := NOT EXISTS (SELECT 1 FROM unnest(r.expected_copies) x WHERE NOT r.copies ? x);
			ELSE
				ok := (SELECT count(*) FROM jsonb_object_keys(r.copies)) >= r.copies_required;
			END IF;
			-- Citus: every worker's standbys, past that worker's own purge
			changed := false;
			IF r.nodes <> '{}' THEN
				res := @extschema@._citus_on_workers(
					$q$SELECT coalesce(jsonb_object_agg(application_name, replay_lsn::text), '{}')
						 FROM (SELECT DISTINCT ON (application_name) application_name, replay_lsn
								 FROM pg_stat_replication WHERE replay_lsn IS NOT NULL
								ORDER BY application_name, replay_lsn DESC) x$q$);
				nnodes := r.nodes;
				FOR k, v IN SELECT n.key, n.value FROM jsonb_each(r.nodes) n LOOP
					cp := coalesce(v->'copies', '{}');
					FOR app, lsn IN SELECT x.key, x.value::pg_lsn
									  FROM jsonb_each_text(coalesce((res->>k)::jsonb, '{}')) x LOOP
						IF lsn >= (v->>'purge_lsn')::pg_lsn AND NOT cp ? app THEN
							cp := cp || jsonb_build_object(app, jsonb_build_object(
								'replay_lsn', lsn::text, 'confirmed_at', clock_timestamp()));
							changed := true;
						END IF;
					END LOOP;
					nnodes := jsonb_set(nnodes, ARRAY[k, 'copies'], cp);
					IF want < 0 THEN
						nodes_ok := NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(v->'expected') x
												 WHERE NOT cp ? x);
					ELSE
						nodes_ok := (SELECT count(*) FROM jsonb_object_keys(cp)) >= want;
					END IF;
					ok := ok AND nodes_ok;
				END LOOP;
				IF changed THEN
					UPDATE @extschema@.deletion_requests d SET nodes = nnodes
					 WHERE d.id = r.id RETURNING * INTO r;
				END IF;
			END IF;
			IF NOT ok AND (patience = interval '0' OR clock_timestamp() < r.waiting_since + patience) THEN
				IF confirmed <> '{}' OR changed THEN
					action := 'step';
					RETURN;
				END IF;
				CONTINUE;
			END IF;
			PERFORM set_config('synchronous_commit', 'on', true);
			cert := @extschema@._deletion_certify(r.id, NOT ok);
			UPDATE @extschema@.deletion_requests d
			   SET state = 'done', finished_at = (cert->>'finished_at')::timestamptz, certificate = cert
			 WHERE d.id = r.id;
			IF r.subject IS NULL THEN
				UPDATE @extschema@.tenants t SET status = 'deleted' WHERE t.tenant = r.tenant;
			END IF;
			PERFORM @extschema@._lifecycle_event('deletion_certificate', r.tenant, cert::text, false);
			action := 'done';
			RETURN;
		END IF;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			RAISE WARNING 'toms deletion request % failed: %', r.id, msg;
			BEGIN
				UPDATE @extschema@.deletion_requests d SET last_error = msg WHERE d.id = r.id;
			EXCEPTION WHEN OTHERS THEN
				-- on Citus, a node that cannot be reached keeps the request
				-- (a reference table) from being written: the warning says it
				NULL;
			END;
			action := 'error';
			RETURN;
		END;
	END LOOP;
	request := NULL;
	action := 'idle';
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_work(uuid[]) FROM PUBLIC;

CREATE FUNCTION @extschema@._deletion_vacuumed(req uuid, tbl oid) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	UPDATE @extschema@.deletion_steps SET vacuumed_at = clock_timestamp()
	 WHERE request = req AND relid = tbl;
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_vacuumed(uuid, oid) FROM PUBLIC;

-- Record a failure of a request's unit of work (in a new transaction).
CREATE FUNCTION @extschema@._deletion_failed(req uuid, message text) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
	UPDATE @extschema@.deletion_requests SET last_error = message WHERE id = req;
$fn$;
REVOKE ALL ON FUNCTION @extschema@._deletion_failed(uuid, text) FROM PUBLIC;

-- Retention: the leaf tables of every rule whose table still exists.  On a
-- Citus node, where the rules are a reference table, a Citus table's leaf
-- stands for its shards on this node: every node's lifecycle worker purges
-- its own shards (src/citus_catalog.c reads the rules' local copy).
CREATE FUNCTION @extschema@._retention_targets(OUT rule oid, OUT leaf oid)
	RETURNS SETOF record
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	rules		oid[];
BEGIN
	IF NOT @extschema@._citus_lifecycle() THEN
		RETURN QUERY
		SELECT r.relid::oid, t.relid::oid
		  FROM @extschema@.retention r
		  JOIN pg_class k ON k.oid = r.relid
		 CROSS JOIN LATERAL @extschema@._lifecycle_leaves(r.relid) AS t(relid)
		 ORDER BY 1, 2;
		RETURN;
	END IF;
	-- the rules (a reference table) first, then this node's catalogs
	rules := ARRAY(SELECT r.relid::oid FROM @extschema@.retention r);
	RETURN QUERY
	SELECT x.rule, x.leaf FROM (
		SELECT u.rule, t.relid::oid AS leaf
		  FROM unnest(rules) u(rule)
		  JOIN pg_class k ON k.oid = u.rule
		 CROSS JOIN LATERAL @extschema@._lifecycle_leaves(u.rule) AS t(relid)
		 WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition d WHERE d.logicalrelid = t.relid)
		UNION ALL
		SELECT u.rule, to_regclass(format('%I.%I', ns.nspname, l.relname || '_' || sh.shardid))::oid
		  FROM unnest(rules) u(rule)
		  JOIN pg_class k ON k.oid = u.rule
		 CROSS JOIN LATERAL @extschema@._lifecycle_leaves(u.rule) AS t(relid)
		  JOIN pg_class l ON l.oid = t.relid
		  JOIN pg_namespace ns ON ns.oid = l.relnamespace
		  JOIN pg_dist_shard sh ON sh.logicalrelid = t.relid
		  JOIN pg_dist_placement pl ON pl.shardid = sh.shardid
		 WHERE pl.groupid = (SELECT groupid FROM pg_dist_local_group)) x
	 WHERE x.leaf IS NOT NULL
	 ORDER BY 1, 2;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._retention_targets() FROM PUBLIC;

-- One retention batch on one leaf of a rule; counted in the rule.  With
-- an index led by the time column the batch takes the oldest expired rows
-- through it (last is NULL).  Without one, a batch goes on from tuple id
-- "after" in physical order (a TID range scan) and returns the tuple id
-- of its last row, so that a long first purge does not read the rows its
-- earlier batches left dead again and again; every row in (after, last]
-- that had expired is gone.  A pass ends with a batch of fewer rows.
CREATE FUNCTION @extschema@._retention_batch(rule oid, leaf oid, batch int, after tid DEFAULT '(0,0)',
	OUT purged bigint, OUT last tid)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	-- a large purge must not fall back to a sequential scan from the start
	SET enable_seqscan = off
	SET enable_bitmapscan = off
	AS $fn$
DECLARE
	r			record;
	indexed		bool;
	citus		bool;
BEGIN
	purged := 0;
	citus := @extschema@._citus_lifecycle();
	IF citus THEN
		-- The rules are a reference table, read here and counted on the
		-- coordinator only (a worker purges its own shards: no lock, no
		-- write on the other nodes); Citus lets toms' worker purge a shard.
		PERFORM set_config('citus.enable_manual_changes_to_shards', 'on', true);
		SELECT * INTO r FROM @extschema@.retention WHERE relid = rule;
	ELSE
		SELECT * INTO r FROM @extschema@.retention WHERE relid = rule FOR UPDATE;
	END IF;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a
					 ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
					WHERE i.indrelid = leaf AND a.attname = r.time_column
					  AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL)
	  INTO indexed;
	BEGIN
		EXECUTE format('WITH d AS (DELETE FROM ONLY %1$s WHERE ctid = ANY (ARRAY('
					   'SELECT ctid FROM ONLY %1$s WHERE %4$s%2$I < $1 LIMIT %3$s)) RETURNING ctid) '
					   'SELECT count(*), max(ctid) FROM d', leaf::regclass, r.time_column, batch,
					   CASE WHEN indexed THEN '' ELSE 'ctid > $2 AND ' END)
			INTO purged, last USING now() - r.keep, coalesce(after, '(0,0)');
		IF indexed THEN
			last := NULL;		-- no cursor: the index finds the oldest rows
		END IF;
	EXCEPTION WHEN OTHERS THEN
		-- A broken rule (column dropped, foreign key in the way) must not
		-- stop the others; it is retried at the next round.
		RAISE WARNING 'toms retention rule on % failed: %', rule::regclass, SQLERRM;
		purged := 0;
		last := NULL;
		RETURN;
	END;
	IF NOT citus OR NOT @extschema@._citus_worker_node() THEN
		UPDATE @extschema@.retention SET rows_purged = rows_purged + purged, last_run_at = now()
		 WHERE relid = rule;
	END IF;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._retention_batch(oid, oid, int, tid) FROM PUBLIC;

CREATE FUNCTION @extschema@._retention_done(rule oid, purged bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	IF purged > 0 THEN
		PERFORM @extschema@._lifecycle_event('retention_purge', NULL,
			json_build_object('table', rule::regclass::text, 'rows_deleted', purged)::text, false);
	END IF;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@._retention_done(oid, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	@extschema@.request_deletion(text, text, text, interval),
	@extschema@.cancel_deletion(uuid),
	@extschema@.approve_deletion(uuid),
	@extschema@.withdraw_approval(uuid),
	@extschema@.hold(text, text),
	@extschema@.release_hold(text),
	@extschema@.register_copy(regclass, name, name),
	@extschema@.unregister_copy(regclass),
	@extschema@.set_retention(regclass, name, interval),
	@extschema@.clear_retention(regclass),
	@extschema@.deletion_certificate(uuid)
	TO toms_admin;
GRANT EXECUTE ON FUNCTION @extschema@.deletion_certificate(uuid) TO toms_auditor;
REVOKE EXECUTE ON FUNCTION
	@extschema@.request_deletion(text, text, text, interval),
	@extschema@.cancel_deletion(uuid),
	@extschema@.approve_deletion(uuid),
	@extschema@.withdraw_approval(uuid),
	@extschema@.hold(text, text),
	@extschema@.release_hold(text),
	@extschema@.register_copy(regclass, name, name),
	@extschema@.unregister_copy(regclass),
	@extschema@.set_retention(regclass, name, interval),
	@extschema@.clear_retention(regclass),
	@extschema@.deletion_certificate(uuid),
	@extschema@._lifecycle_scope(oid, name, name, bool)
	FROM PUBLIC;
