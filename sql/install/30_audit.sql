-- Access audit (docs/audit.md; measures 4b, 4e, 5a, 5c, 7, 10b).

-- The trail.  seq is the record's place in the hash chain: NULL for the few
-- milliseconds between the commit of a write and the audit worker chaining
-- it.  hash = BLAKE2b-256(previous hash || canonical encoding of seq..detail).
CREATE TABLE @extschema@.audit_log (
	seq			bigint,
	ts			timestamptz NOT NULL,
	kind		text NOT NULL,		-- access, denied, login, admin, seal
	action		text,				-- SELECT/INSERT/.../COPY/TRUNCATE, LOGIN, reason
	session_role text,
	effective_role text,
	actor		text,				-- token "sub", or the session role
	tenant		text,
	grant_id	bigint,
	justification text,
	relname		text,
	row_count	bigint,
	query_id	bigint,
	client_addr text,
	application_name text,
	pid			integer,
	xid			bigint,
	fate		text,				-- committed, rolled back, failed, denied, ...
	statement	text,
	detail		jsonb,				-- one JSON object (docs/audit.md)
	hash		bytea
);
-- Only chained rows: a row a transaction wrote for itself has no seq until
-- the worker chains it.  Its NULL entry would sort last, behind the newest
-- seq, and every append would then land inside the tree instead of at its
-- right edge (no fast path, half-full pages) until a vacuum removed it.
CREATE UNIQUE INDEX audit_log_seq ON @extschema@.audit_log (seq) WHERE seq IS NOT NULL;
CREATE INDEX audit_log_unchained ON @extschema@.audit_log (xid) WHERE seq IS NULL;
COMMENT ON TABLE @extschema@.audit_log IS 'toms: append-only, hash-chained audit trail';

CREATE TABLE @extschema@.incidents (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind		text NOT NULL,
	severity	text NOT NULL,
	tenant		text,
	detail		text NOT NULL DEFAULT '',
	first_seen	timestamptz NOT NULL,
	last_seen	timestamptz NOT NULL,
	count		bigint NOT NULL DEFAULT 1
);
CREATE INDEX incidents_key ON @extschema@.incidents (kind, (coalesce(tenant, '')), detail);
COMMENT ON TABLE @extschema@.incidents IS 'toms: suspicious events, deduplicated (NOTIFY toms_incident)';

-- An incident is closed by appending its closing (toms.close_incident),
-- never by updating it; an open incident is one without a closing.
CREATE TABLE @extschema@.incident_closures (
	incident_id bigint PRIMARY KEY REFERENCES @extschema@.incidents (id),
	closed_at	timestamptz NOT NULL,
	closed_by	name NOT NULL,
	note		text NOT NULL
);
COMMENT ON TABLE @extschema@.incident_closures IS 'toms: the closing of each closed incident (append-only)';

CREATE FUNCTION @extschema@._audit_log_guard() RETURNS trigger
	AS 'MODULE_PATHNAME', 'toms_audit_log_guard' LANGUAGE C;
REVOKE ALL ON FUNCTION @extschema@._audit_log_guard() FROM PUBLIC;

-- Statement triggers: they fire even when no row matches, and cost one
-- call per statement.  session_replication_role = replica skips them; the
-- hash chain catches what is done that way.
CREATE TRIGGER audit_log_append_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.audit_log FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();
CREATE TRIGGER incidents_append_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.incidents FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();
CREATE TRIGGER incident_closures_append_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.incident_closures FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();

-- Not marked with pg_extension_config_dump: the trail belongs to the
-- cluster that wrote it (and to the SIEM copy), and a restore into a fresh
-- database starts a new chain instead of colliding with it.

REVOKE ALL ON @extschema@.audit_log, @extschema@.incidents, @extschema@.incident_closures FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_log, @extschema@.incidents, @extschema@.incident_closures
	TO toms_auditor, toms_admin;

CREATE FUNCTION @extschema@.close_incident(id bigint, note text) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_close_incident'
	LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.close_incident(bigint, text) IS
	'toms: close an incident, with a note (appended to toms.incident_closures, audited)';
REVOKE ALL ON FUNCTION @extschema@.close_incident(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.close_incident(bigint, text) TO toms_auditor, toms_admin;

-- The per-table read audit (docs/audit.md, "Read audit per table").
CREATE FUNCTION @extschema@.set_audit_reads(tbl regclass, "on" boolean) RETURNS void
	AS 'MODULE_PATHNAME', 'toms_set_audit_reads'
	LANGUAGE C VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.set_audit_reads(regclass, boolean) IS
	'toms: turn the per-statement read records of one protected table on or off (audited)';
REVOKE ALL ON FUNCTION @extschema@.set_audit_reads(regclass, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.set_audit_reads(regclass, boolean) TO toms_admin;

CREATE FUNCTION @extschema@.verify_audit(from_seq bigint DEFAULT NULL, to_seq bigint DEFAULT NULL,
	OUT ok boolean, OUT first_bad bigint, OUT detail text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'toms_verify_audit'
	LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.verify_audit(bigint, bigint) IS
	'toms: recompute the audit hash chain; ok, the first bad record, and why';
REVOKE ALL ON FUNCTION @extschema@.verify_audit(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.verify_audit(bigint, bigint) TO toms_auditor, toms_admin;

CREATE FUNCTION @extschema@.audit_flush(timeout_ms integer DEFAULT 10000) RETURNS boolean
	AS 'MODULE_PATHNAME', 'toms_audit_flush'
	LANGUAGE C;
COMMENT ON FUNCTION @extschema@.audit_flush(integer) IS
	'toms: wait until every audit record queued so far is committed; false on timeout';
REVOKE ALL ON FUNCTION @extschema@.audit_flush(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.audit_flush(integer) TO toms_auditor, toms_admin;

-- Behind the view toms.audit_stats; executable by its readers (a view
-- calls functions with its reader's privileges).
CREATE FUNCTION @extschema@._audit_stats(OUT queue_size integer, OUT queued bigint,
	OUT enqueued bigint, OUT written bigint, OUT queue_waits bigint,
	OUT queue_full_errors bigint, OUT written_to_log bigint, OUT incidents_notified bigint,
	OUT workers integer, OUT launcher_pid integer)
	RETURNS record
	AS 'MODULE_PATHNAME', 'toms_audit_stats'
	LANGUAGE C;
REVOKE ALL ON FUNCTION @extschema@._audit_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._audit_stats() TO toms_auditor, toms_admin;

CREATE VIEW @extschema@.audit_stats AS SELECT * FROM @extschema@._audit_stats();
COMMENT ON VIEW @extschema@.audit_stats IS 'toms: audit queue and worker counters (since server start)';
REVOKE ALL ON @extschema@.audit_stats FROM PUBLIC;
GRANT SELECT ON @extschema@.audit_stats TO toms_auditor, toms_admin;
