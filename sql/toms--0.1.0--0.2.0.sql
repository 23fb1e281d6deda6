-- toms 0.1.0 -> 0.2.0
--
-- Every change of SQL objects after the 0.1.0 release goes here (and into
-- sql/install/, which builds a fresh 0.2.0).  t/730_upgrade.pl installs
-- 0.1.0, updates, and compares the schema with a fresh install.
\echo Use "ALTER EXTENSION toms UPDATE TO '0.2.0'" to load this file. \quit

-- Audit records and incidents, per-table read audit (issues 20 and 17)
--
-- toms.audit_log.detail becomes jsonb.  The records 0.1.0 wrote keep their
-- text under "text_0_1_0" next to what it says (its JSON, or its key=value
-- pairs); the hash chain covers that text as it did when they were written,
-- and verify_audit checks that the rest is exactly its conversion
-- (src/audit_record.c).
CREATE FUNCTION @extschema@._audit_detail_0_1_0(text) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'toms_audit_detail_0_1_0'
	LANGUAGE C IMMUTABLE STRICT;
-- audit_log_seq covers chained rows only (sql/install/30_audit.sql says
-- why).  0.1.0 indexed the NULLs too.  Dropped before the rewrite and
-- built once after it.
DROP INDEX @extschema@.audit_log_seq;
ALTER TABLE @extschema@.audit_log ALTER COLUMN detail TYPE jsonb
	USING @extschema@._audit_detail_0_1_0(detail);
CREATE UNIQUE INDEX audit_log_seq ON @extschema@.audit_log (seq) WHERE seq IS NOT NULL;
DROP FUNCTION @extschema@._audit_detail_0_1_0(text);

-- Incidents are closed by appending the closing (0.1.0 had no way to close
-- one: closed_at was never set).
DROP INDEX @extschema@.incidents_open;
ALTER TABLE @extschema@.incidents DROP COLUMN closed_at;
CREATE INDEX incidents_key ON @extschema@.incidents (kind, (coalesce(tenant, '')), detail);
-- An incident is closed by appending its closing (toms.close_incident),
-- never by updating it; an open incident is one without a closing.
CREATE TABLE @extschema@.incident_closures (
	incident_id bigint PRIMARY KEY REFERENCES @extschema@.incidents (id),
	closed_at	timestamptz NOT NULL,
	closed_by	name NOT NULL,
	note		text NOT NULL
);
COMMENT ON TABLE @extschema@.incident_closures IS 'toms: the closing of each closed incident (append-only)';
CREATE TRIGGER incident_closures_append_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON @extschema@.incident_closures FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._audit_log_guard();
REVOKE ALL ON @extschema@.incident_closures FROM PUBLIC;
GRANT SELECT ON @extschema@.incident_closures TO toms_auditor, toms_admin;

ALTER TABLE @extschema@.protected_tables
	ADD COLUMN audit_reads boolean NOT NULL DEFAULT true;	-- toms.set_audit_reads (docs/audit.md)
DROP FUNCTION @extschema@.protect(regclass, name, name[], name);
CREATE FUNCTION @extschema@.protect(tbl regclass, tenant_column name DEFAULT 'tenant_id',
									sensitive name[] DEFAULT '{}', subject_column name DEFAULT NULL,
									audit_reads boolean DEFAULT true)
	RETURNS void
	AS 'MODULE_PATHNAME', 'toms_protect'
	LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.protect(regclass, name, name[], name, boolean) IS
	'toms: put a table under tenant separation (forced row security, toms-owned policy)';
REVOKE ALL ON FUNCTION @extschema@.protect(regclass, name, name[], name, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.protect(regclass, name, name[], name, boolean) TO toms_admin;

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

CREATE OR REPLACE FUNCTION @extschema@._assess_5a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	n			bigint;
	b			boolean;
BEGIN
	control := '5a';
	title := 'no stray superuser or BYPASSRLS roles';
	s := 'pass';
	SELECT array_agg(format('%s (%s%s)', r.rolname,
							concat_ws(', ', CASE WHEN r.rolsuper THEN 'superuser' END,
									  CASE WHEN r.rolbypassrls THEN 'bypassrls' END),
							CASE WHEN r.rolcanlogin THEN ', login' ELSE '' END)
					 ORDER BY r.rolname),
		   bool_or(r.rolcanlogin)
	  INTO items, b
	  FROM pg_roles r
	 WHERE (r.rolsuper OR r.rolbypassrls) AND r.oid <> 10;
	IF cardinality(items) > 0 THEN
		s := CASE WHEN b THEN 'fail' ELSE 'warn' END;
		e := e || format('roles outside row security besides the bootstrap superuser: %s (ALTER ROLE ... NOSUPERUSER NOBYPASSRLS)',
						 @extschema@._assess_list(items));
	ELSE
		e := e || 'only the bootstrap superuser bypasses row security'::text;
	END IF;
	-- toms' own workers (lifecycle, reseal) run as the bootstrap superuser;
	-- their records say so in a way no client can (docs/audit.md).
	SELECT count(*) INTO n
	  FROM @extschema@.audit_log l JOIN pg_roles r ON r.rolname = l.session_role
	 WHERE l.ts > now() - current_setting('toms.assess_period')::interval
	   AND (r.rolsuper OR r.rolbypassrls) AND l.relname IS NOT NULL AND l.action = 'SELECT'
	   AND NOT (l.kind = 'access' AND l.client_addr = 'background' AND l.detail ? 'toms_worker');
	IF n > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
	END IF;
	e := e || format('%s read(s) of protected tables by roles outside row security in the last %s',
					 n, current_setting('toms.assess_period'));
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;
CREATE OR REPLACE FUNCTION @extschema@._assess_7(prev_verified bigint,
	OUT control text, OUT title text, OUT status text, OUT evidence text, OUT verified_to bigint)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	n			bigint;
	n2			bigint;
	b			boolean;
	v			text;
	full_ts		timestamptz;
	full_to		bigint;
	base		bigint;
BEGIN
	control := '7';
	title := 'data confidential and intact: keys, sealed columns, audit chain';
	-- Declared sensitive columns must be toms.sealed.
	SELECT array_agg(format('%s.%s', pt.relid, col) ORDER BY 1)
	  INTO items
	  FROM @extschema@.protected_tables pt
	  CROSS JOIN LATERAL unnest(pt.sensitive) col
	  LEFT JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = col AND NOT a.attisdropped
	 WHERE a.atttypid IS DISTINCT FROM '@extschema@.sealed'::regtype;
	SELECT count(*) INTO n2 FROM @extschema@.protected_tables pt, unnest(pt.sensitive);
	IF @extschema@.master_key_loaded() THEN
		s := 'pass'; e := e || 'master key loaded'::text;
	ELSIF n2 > 0 THEN
		s := 'fail'; e := e || 'master key NOT loaded while sealed columns exist'::text;
	ELSE
		s := 'warn'; e := e || 'master key not loaded (toms.master_key_file or toms.master_key_command)'::text;
	END IF;
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('sensitive columns not of type toms.sealed: %s', @extschema@._assess_list(items));
	END IF;
	e := e || format('%s sensitive column(s) declared', n2);
	SELECT count(*) FILTER (WHERE k.status <> 'destroyed'),
		   count(*) FILTER (WHERE k.status <> 'destroyed' AND k.wrapped IS NULL)
	  INTO n, n2
	  FROM @extschema@.tenant_keys k;
	IF n2 > 0 THEN
		s := 'fail';
	END IF;
	e := e || format('%s tenant key(s) held, %s not wrapped', n, n2);
	-- Reads of tables with sensitive or subject columns should be audited.
	SELECT array_agg(pt.relid::text ORDER BY pt.relid::text) INTO items
	  FROM @extschema@.protected_tables pt
	 WHERE NOT pt.audit_reads AND (cardinality(pt.sensitive) > 0 OR pt.subject_column IS NOT NULL);
	IF cardinality(items) > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('reads not audited on tables with sensitive or subject columns: %s (toms.set_audit_reads(tbl, true))',
						 @extschema@._assess_list(items));
	END IF;
	-- The audit chain: no open chain-break incident, and every record
	-- verified since the last full verification (docs/assess.md).
	SELECT array_agg(format('%s (%s)', i.id, i.detail) ORDER BY i.id) INTO items
	  FROM @extschema@.incidents i
	 WHERE i.kind = 'audit_chain_break'
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c WHERE c.incident_id = i.id);
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('open audit chain break incident(s): %s (investigate, then toms.close_incident(id, note))',
						 @extschema@._assess_list(items, 3));
	END IF;
	SELECT l.ts, (l.detail ->> 'to')::bigint, (l.detail ->> 'ok')::boolean INTO full_ts, full_to, b
	  FROM @extschema@.audit_log l
	 WHERE l.kind = 'admin' AND l.action = 'verify_audit' AND (l.detail ->> 'whole')::boolean
	 ORDER BY l.ts DESC LIMIT 1;
	SELECT max(l.seq) INTO verified_to FROM @extschema@.audit_log l;
	IF full_ts IS NULL OR NOT b OR full_ts < now() - current_setting('toms.assess_period')::interval THEN
		-- no full verification within the period, or the last one failed:
		-- one now (it records itself)
		SELECT r.ok, r.first_bad, r.detail INTO b, n, v FROM @extschema@.verify_audit() r;
		IF b THEN
			e := e || format('audit chain verified in full: %s', v);
		ELSE
			s := 'fail';
			e := e || format('audit chain BROKEN at record %s: %s', coalesce(n::text, '?'), v);
			verified_to := NULL;
		END IF;
	ELSE
		base := greatest(coalesce(prev_verified, 0), coalesce(full_to, 0));
		IF verified_to IS NULL OR verified_to <= base THEN
			e := e || format('audit chain: nothing new since the full verification of %s and the records verified after it (up to %s)',
							 to_char(full_ts, 'YYYY-MM-DD HH24:MI TZ'), base);
			verified_to := base;
		ELSE
			SELECT r.ok, r.first_bad, r.detail INTO b, n, v
			  FROM @extschema@.verify_audit(base + 1, verified_to) r;
			IF b THEN
				e := e || format('audit chain verified from record %s to %s (in full on %s)',
								 base + 1, verified_to, to_char(full_ts, 'YYYY-MM-DD HH24:MI TZ'));
			ELSE
				s := 'fail';
				e := e || format('audit chain BROKEN at record %s: %s', n, v);
				verified_to := NULL;
			END IF;
		END IF;
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
	verified_to := NULL;
END
$$;
CREATE OR REPLACE FUNCTION @extschema@._assess_10a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n			bigint;
	n2			bigint;
BEGIN
	control := '10a';
	title := 'incidents recorded';
	-- An incident is closed by its row in incident_closures (close_incident).
	SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c
											   WHERE c.incident_id = i.id)),
		   count(*)
	  INTO n, n2
	  FROM @extschema@.incidents i;
	status := CASE WHEN n > 0 THEN 'warn' ELSE 'pass' END;
	evidence := format('%s open incident(s) of %s recorded', n, n2);
	IF n > 0 THEN
		evidence := evidence || ' (investigate each, then toms.close_incident(id, note))';
	END IF;
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- Audit records and incidents (issue 20): the admin acts of tenancy pass
-- their detail as a JSON object (0.1.0 passed key=value text); create_tenant,
-- add_member, grant_access and revoke_access in their final form below
-- (issue 15, "admin acts on Citus reference tables").
CREATE OR REPLACE FUNCTION @extschema@.remove_member(role regrole, tenant text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM @extschema@.members m WHERE m.role = remove_member.role AND m.tenant = remove_member.tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role "%" is not a member of tenant "%"', role, tenant USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._audit_admin_event('remove_member', tenant, json_build_object('role', role::text)::text);
END
$$;

-- monitoring: toms.metrics, toms.metrics_incidents (issue 19)
CREATE FUNCTION @extschema@._metrics(
	OUT audit_queue_size integer,
	OUT audit_queue_depth bigint,
	OUT audit_records_enqueued bigint,
	OUT audit_records_written bigint,
	OUT audit_queue_waits bigint,
	OUT audit_queue_full_errors bigint,
	OUT audit_log_fallbacks bigint,
	OUT audit_incidents_notified bigint,
	OUT audit_workers integer,
	OUT audit_launcher_up integer,
	OUT audit_worker_up integer,
	OUT audit_unchained_records bigint,
	OUT audit_chain_lag_seconds double precision,
	OUT audit_last_record_age_seconds double precision,
	OUT audit_unverified_records bigint,
	OUT audit_verified_age_seconds double precision,
	OUT lifecycle_launcher_up integer,
	OUT incidents_open bigint,
	OUT incidents_open_critical bigint,
	OUT deletions_pending bigint,
	OUT deletions_overdue bigint,
	OUT deletions_waiting_copies bigint,
	OUT deletions_failing bigint,
	OUT roles_locked bigint,
	OUT master_key_loaded integer,
	OUT assessment_age_seconds double precision,
	OUT assessment_failed integer)
	RETURNS record
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $metrics$
DECLARE
	st			record;
	last_seq	bigint;
	verified	bigint;
BEGIN
	SELECT * INTO st FROM @extschema@._audit_stats();
	audit_queue_size := st.queue_size;
	audit_queue_depth := st.queued;
	audit_records_enqueued := st.enqueued;
	audit_records_written := st.written;
	audit_queue_waits := st.queue_waits;
	audit_queue_full_errors := st.queue_full_errors;
	audit_log_fallbacks := st.written_to_log;
	audit_incidents_notified := st.incidents_notified;
	audit_workers := st.workers;
	audit_launcher_up := (st.launcher_pid IS NOT NULL)::int;

	-- Background workers of this database (backend_type is the worker's
	-- bgw_type).  The audit worker of a database starts with the first
	-- record after a start; its lag is what matters.
	SELECT count(*) FILTER (WHERE a.backend_type = 'toms audit worker' AND a.datid = d.oid)::int,
		   count(*) FILTER (WHERE a.backend_type = 'toms lifecycle launcher')::int
	  INTO audit_worker_up, lifecycle_launcher_up
	  FROM pg_stat_activity a, pg_database d
	 WHERE d.datname = current_database();
	audit_worker_up := least(audit_worker_up, 1);
	lifecycle_launcher_up := least(lifecycle_launcher_up, 1);

	-- Records committed but not yet chained by the worker, and how old the
	-- oldest is (the worker's lag); the newest chained record's age.
	SELECT count(*), coalesce(extract(epoch FROM now() - min(l.ts)), 0)
	  INTO audit_unchained_records, audit_chain_lag_seconds
	  FROM @extschema@.audit_log l WHERE l.seq IS NULL;
	SELECT l.seq, extract(epoch FROM now() - l.ts) INTO last_seq, audit_last_record_age_seconds
	  FROM @extschema@.audit_log l WHERE l.seq IS NOT NULL ORDER BY l.seq DESC LIMIT 1;

	-- Chain verification: the records toms.assess() has not verified yet,
	-- and how long ago it last verified (NULL: never).
	SELECT a.audit_verified_to, extract(epoch FROM now() - a.run_at)
	  INTO verified, audit_verified_age_seconds
	  FROM @extschema@.assessments a WHERE a.audit_verified_to IS NOT NULL
	 ORDER BY a.id DESC LIMIT 1;
	audit_unverified_records := greatest(coalesce(last_seq, 0) - coalesce(verified, 0), 0);

	SELECT count(*), count(*) FILTER (WHERE i.severity = 'critical')
	  INTO incidents_open, incidents_open_critical
	  FROM @extschema@.incidents i WHERE NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c WHERE c.incident_id = i.id);

	-- Overdue as toms.assess() 6b counts it: more than an hour past the
	-- grace period, approved if it needs approval, not held, not merely
	-- waiting for the standbys.
	SELECT count(*) FILTER (WHERE r.state NOT IN ('done', 'cancelled')),
		   count(*) FILTER (WHERE r.state NOT IN ('done', 'cancelled', 'waiting_copies')
							  AND r.not_before < now() - interval '1 hour'
							  AND (NOT r.approval_required OR r.approved_at IS NOT NULL)
							  AND NOT EXISTS (SELECT 1 FROM @extschema@.holds h WHERE h.tenant = r.tenant)),
		   count(*) FILTER (WHERE r.state = 'waiting_copies'),
		   count(*) FILTER (WHERE r.state NOT IN ('done', 'cancelled') AND r.last_error IS NOT NULL)
	  INTO deletions_pending, deletions_overdue, deletions_waiting_copies, deletions_failing
	  FROM @extschema@.deletion_requests r;

	SELECT count(*) INTO roles_locked
	  FROM @extschema@.login_state() s WHERE s.locked_until > now();
	master_key_loaded := @extschema@.master_key_loaded()::int;

	SELECT extract(epoch FROM now() - a.run_at), a.n_fail
	  INTO assessment_age_seconds, assessment_failed
	  FROM @extschema@.assessments a ORDER BY a.id DESC LIMIT 1;
END
$metrics$;
REVOKE ALL ON FUNCTION @extschema@._metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._metrics() TO pg_monitor, toms_auditor, toms_admin;

CREATE VIEW @extschema@.metrics AS SELECT * FROM @extschema@._metrics();
COMMENT ON VIEW @extschema@.metrics IS
	'toms: one row of gauges and counters for monitoring (queue, workers, chain, incidents, deletions, lock-outs)';
REVOKE ALL ON @extschema@.metrics FROM PUBLIC;
GRANT SELECT ON @extschema@.metrics TO pg_monitor, toms_auditor, toms_admin;

-- Open incidents by kind and severity (labels for the scraper).
CREATE FUNCTION @extschema@._metrics_incidents(OUT kind text, OUT severity text,
	OUT open bigint, OUT events bigint, OUT last_seen_age_seconds double precision)
	RETURNS SETOF record
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	SELECT i.kind, i.severity, count(*), sum(i.count)::bigint,
		   extract(epoch FROM now() - max(i.last_seen))::double precision
	  FROM @extschema@.incidents i WHERE NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c WHERE c.incident_id = i.id)
	 GROUP BY i.kind, i.severity
$$;
REVOKE ALL ON FUNCTION @extschema@._metrics_incidents() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._metrics_incidents() TO pg_monitor, toms_auditor, toms_admin;

CREATE VIEW @extschema@.metrics_incidents AS SELECT * FROM @extschema@._metrics_incidents();
COMMENT ON VIEW @extschema@.metrics_incidents IS 'toms: open incidents by kind and severity, for monitoring';
REVOKE ALL ON @extschema@.metrics_incidents FROM PUBLIC;
GRANT SELECT ON @extschema@.metrics_incidents TO pg_monitor, toms_auditor, toms_admin;

-- evidence report: toms.assess_report('html'), toms.control_tests (issue 19)
-- docs/controls.md as a table: which test proves each measure.  The build
-- turns the page into data/toms_controls.tsv (data/controls.awk), installed
-- beside the extension's scripts; CREATE EXTENSION and the update to 0.2.0
-- load it.  It describes this version of toms, so pg_dump leaves it out.
CREATE TABLE @extschema@.control_tests (
	ord			integer NOT NULL,
	control		text PRIMARY KEY,
	kind		text NOT NULL,
	feature		text NOT NULL,
	tests		text NOT NULL DEFAULT ''	-- "file" or "file: name", separated by "; "
);
COMMENT ON TABLE @extschema@.control_tests IS
	'toms: each measure, what toms does for it and the tests that prove it (docs/controls.md of this version)';
REVOKE ALL ON @extschema@.control_tests FROM PUBLIC;
GRANT SELECT ON @extschema@.control_tests TO toms_admin, toms_auditor;

DO $load$
DECLARE
	dir			text;
BEGIN
	SELECT setting INTO dir FROM pg_catalog.pg_config WHERE name = 'SHAREDIR';
	EXECUTE pg_catalog.format('COPY @extschema@.control_tests (ord, control, kind, feature, tests) FROM %L',
							  dir || '/extension/toms_controls.tsv');
END
$load$;

-- Text for HTML: escaped, and Markdown `code` as <code>.
CREATE FUNCTION @extschema@._html(t text) RETURNS text
	LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
	SELECT regexp_replace(replace(replace(replace(replace(replace(coalesce(t, ''),
		'&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;'),
		'`([^`]*)`', '<code>\1</code>', 'g')
$$;
REVOKE ALL ON FUNCTION @extschema@._html(text) FROM PUBLIC;

-- The page.  Called by assess_report('html') (SECURITY DEFINER), so it
-- runs as the extension's owner.
CREATE FUNCTION @extschema@._assess_report_html() RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $report$
DECLARE
	r			record;
	v			record;
	h			text[];
	rows		text[] := '{}';
	np int := 0; nw int := 0; nf int := 0; nn int := 0;
	n_records	bigint;
	first_ts	timestamptz;
	last_ts		timestamptz;
	vmax		bigint;
	svg			text[];
	i			int := 0;
	x			int;
	bh			int;
	days		int := 14;
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS pg_temp.toms_report_assess
		(control text, title text, status text, evidence text) ON COMMIT DROP;
	TRUNCATE pg_temp.toms_report_assess;
	INSERT INTO pg_temp.toms_report_assess SELECT * FROM @extschema@.assess();
	SELECT count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'warn'),
		   count(*) FILTER (WHERE status = 'fail'), count(*) FILTER (WHERE status = 'n/a')
	  INTO np, nw, nf, nn FROM pg_temp.toms_report_assess;

	-- Per measure: the assessment where toms checks it, else its kind.
	FOR r IN
		SELECT c.control, c.kind, c.feature, c.tests, a.title, a.status, a.evidence
		  FROM @extschema@.control_tests c
		  LEFT JOIN pg_temp.toms_report_assess a ON a.control = c.control
		 ORDER BY c.ord
	LOOP
		rows := rows || format('<tr class="%s"><td class="id">%s</td><td>%s</td><td class="st">%s</td><td>%s%s<div class="muted">toms: %s</div></td><td>%s</td></tr>',
			CASE WHEN r.status IS NULL THEN 'none' WHEN r.status = 'n/a' THEN 'na' ELSE r.status END,
			@extschema@._html(r.control),
			@extschema@._html(r.kind),
			CASE WHEN r.status IS NULL THEN 'not checked by the database'
				 ELSE @extschema@._html(r.status) END,
			CASE WHEN r.title IS NULL THEN '' ELSE '<b>' || @extschema@._html(r.title) || '</b><br>' END,
			CASE WHEN r.evidence IS NULL THEN '' ELSE @extschema@._html(r.evidence) END,
			@extschema@._html(r.feature),
			CASE WHEN r.tests = '' THEN '<span class="muted">—</span>'
				 ELSE '<ul>' || (SELECT string_agg('<li>' || @extschema@._html(btrim(t)) || '</li>', '')
								   FROM unnest(string_to_array(r.tests, ';')) t) || '</ul>' END);
	END LOOP;

	-- The whole audit chain, verified now.
	SELECT * INTO v FROM @extschema@.verify_audit();
	SELECT count(*), min(l.ts), max(l.ts) INTO n_records, first_ts, last_ts
	  FROM @extschema@.audit_log l WHERE l.seq IS NOT NULL;

	-- Audit volume and denials per day, the last 14 days, as inline SVG.
	CREATE TEMP TABLE IF NOT EXISTS pg_temp.toms_report_days
		(day date, total bigint, denied bigint) ON COMMIT DROP;
	TRUNCATE pg_temp.toms_report_days;
	INSERT INTO pg_temp.toms_report_days
	SELECT d::date, coalesce(c.total, 0), coalesce(c.denied, 0)
	  FROM generate_series(current_date - (days - 1), current_date, interval '1 day') d
	  LEFT JOIN (SELECT l.ts::date AS day, count(*) AS total,
						count(*) FILTER (WHERE l.kind = 'denied') AS denied
				   FROM @extschema@.audit_log l
				  WHERE l.ts >= current_date - (days - 1)
				  GROUP BY 1) c ON c.day = d::date;
	SELECT greatest(max(total), 1) INTO vmax FROM pg_temp.toms_report_days;
	svg := ARRAY[format('<svg class="chart" width="720" height="230" viewBox="0 0 720 230" role="img" aria-label="%s">',
						'audit records and denials per day, last 14 days'),
				 '<line x1="50" y1="190" x2="710" y2="190" stroke="#888"/>',
				 format('<text x="44" y="34" text-anchor="end">%s</text>', vmax),
				 '<text x="44" y="194" text-anchor="end">0</text>',
				 '<line x1="50" y1="30" x2="710" y2="30" stroke="#ddd"/>'];
	FOR r IN SELECT * FROM pg_temp.toms_report_days ORDER BY day LOOP
		x := 56 + i * 46;
		bh := (160 * r.total / vmax)::int;
		svg := svg || format('<rect class="total" x="%s" y="%s" width="18" height="%s"><title>%s: %s records</title></rect>',
							 x, 190 - bh, bh, r.day, r.total);
		bh := (160 * r.denied / vmax)::int;
		svg := svg || format('<rect class="denied" x="%s" y="%s" width="18" height="%s"><title>%s: %s denied</title></rect>',
							 x + 20, 190 - bh, bh, r.day, r.denied);
		svg := svg || format('<text x="%s" y="206" text-anchor="middle">%s</text>', x + 19, to_char(r.day, 'MM-DD'));
		i := i + 1;
	END LOOP;
	svg := svg || '<rect class="total" x="56" y="216" width="10" height="10"/><text x="70" y="225">audit records</text>'::text
			   || '<rect class="denied" x="170" y="216" width="10" height="10"/><text x="184" y="225">denied</text>'::text
			   || '</svg>'::text;

	h := ARRAY[
		'<!DOCTYPE html>',
		'<html lang="en"><head><meta charset="utf-8">',
		'<meta http-equiv="Content-Security-Policy" content="default-src ''none''; style-src ''unsafe-inline''">',
		format('<title>toms evidence report: %s</title>', @extschema@._html(current_database())),
		'<style>',
		'body{font:14px/1.45 sans-serif;margin:2em;color:#222;max-width:1200px}',
		'h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}',
		'table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}',
		'th{background:#f0f0f0}td.id{font-weight:bold;white-space:nowrap}td.st{font-weight:bold;white-space:nowrap}',
		'tr.pass td.st{color:#176b1f}tr.warn td.st{color:#9a6200}tr.fail td.st{color:#b00020}tr.na td.st,tr.none td.st{color:#666;font-weight:normal}',
		'ul{margin:0;padding-left:1.1em}code{font-size:.92em;background:#f4f4f4}.muted{color:#666}',
		'.summary span{display:inline-block;margin-right:1.2em;font-weight:bold}',
		'.ok{color:#176b1f;font-weight:bold}.bad{color:#b00020;font-weight:bold}',
		'svg.chart text{font:11px sans-serif;fill:#444}rect.total{fill:#4a78b5}rect.denied{fill:#c0392b}',
		'</style></head><body>',
		'<h1>toms evidence report</h1>',
		format('<p>Database <code>%s</code>, toms %s, PostgreSQL %s; generated %s by <code>%s</code>.</p>',
			   @extschema@._html(current_database()),
			   @extschema@._html((SELECT e.extversion FROM pg_extension e WHERE e.extname = 'toms')),
			   @extschema@._html(current_setting('server_version')),
			   to_char(now(), 'YYYY-MM-DD HH24:MI:SS TZ'), @extschema@._html(session_user)),
		format('<p class="summary" id="summary"><span>%s pass</span><span>%s warn</span><span>%s fail</span><span>%s n/a</span></p>',
			   np, nw, nf, nn),
		'<h2>Measures</h2>',
		'<p>Every measure of the source TOMs: its status in the self-assessment just run (<code>toms.assess()</code>, recorded in <code>toms.assessments</code>), the evidence it saw, and the tests of this version of toms that prove the control (<code>docs/controls.md</code>). Organisational and infrastructure measures are not checked by the database; toms contributes the evidence named.</p>',
		'<table id="measures"><thead><tr><th>#</th><th>kind</th><th>status</th><th>evidence</th><th>proved by</th></tr></thead><tbody>'];
	h := h || rows || ARRAY['</tbody></table>',
		'<h2>Audit chain</h2>',
		format('<p id="chain">%s %s chained record(s)%s. <code>toms.verify_audit()</code>: %s</p>',
			   CASE WHEN v.ok THEN '<span class="ok">verified:</span>' ELSE '<span class="bad">BROKEN:</span>' END,
			   n_records,
			   CASE WHEN n_records > 0 THEN format(' from %s to %s', to_char(first_ts, 'YYYY-MM-DD HH24:MI'),
												   to_char(last_ts, 'YYYY-MM-DD HH24:MI')) ELSE '' END,
			   CASE WHEN v.ok THEN 'the hash chain is intact'
					ELSE format('first bad record %s: %s', v.first_bad, @extschema@._html(v.detail)) END),
		'<h2>Audit volume and denials per day</h2>'];
	h := h || svg;
	h := h || '<h2>Open incidents</h2>'::text;
	SELECT h || CASE WHEN count(*) = 0 THEN ARRAY['<p id="incidents">None.</p>']
		   ELSE ARRAY['<table id="incidents"><thead><tr><th>kind</th><th>severity</th><th>tenant</th><th>events</th><th>first seen</th><th>last seen</th><th>detail</th></tr></thead><tbody>']
				|| array_agg(format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
									@extschema@._html(i.kind), @extschema@._html(i.severity), @extschema@._html(i.tenant),
									i.count, to_char(i.first_seen, 'YYYY-MM-DD HH24:MI'),
									to_char(i.last_seen, 'YYYY-MM-DD HH24:MI'), @extschema@._html(i.detail))
							 ORDER BY i.last_seen DESC)
				|| ARRAY['</tbody></table>'] END
	  INTO h
	  FROM (SELECT * FROM @extschema@.incidents i0 WHERE NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c WHERE c.incident_id = i0.id) ORDER BY last_seen DESC LIMIT 50) i;
	h := h || ARRAY['<p class="muted">Generated by <code>toms.assess_report(''html'')</code>; self-contained, no external resources.</p>',
					'</body></html>'];
	RETURN array_to_string(h, E'\n') || E'\n';
END
$report$;
REVOKE ALL ON FUNCTION @extschema@._assess_report_html() FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@.assess_report(format text DEFAULT 'text') RETURNS text
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $report$
DECLARE
	r			record;
	md			boolean;
	lines		text[];
	np int := 0; nw int := 0; nf int := 0; nn int := 0;
BEGIN
	-- 'html': the evidence report (80_report.sql)
	IF assess_report.format = 'html' THEN
		RETURN @extschema@._assess_report_html();
	END IF;
	IF assess_report.format IS NULL OR assess_report.format NOT IN ('text', 'markdown') THEN
		RAISE EXCEPTION 'unknown report format "%"', assess_report.format
			USING ERRCODE = '22023', HINT = 'Use ''text'', ''markdown'' or ''html''.';
	END IF;
	md := assess_report.format = 'markdown';
	IF md THEN
		lines := ARRAY['# toms self-assessment', '',
					   format('Database `%s`, %s, by `%s`.', current_database(),
							  to_char(now(), 'YYYY-MM-DD HH24:MI:SS TZ'), session_user), '',
					   '| control | measure | status | evidence |', '|---|---|---|---|'];
	ELSE
		lines := ARRAY[format('toms self-assessment of database "%s" at %s by %s', current_database(),
							  to_char(now(), 'YYYY-MM-DD HH24:MI:SS TZ'), session_user), ''];
	END IF;
	FOR r IN SELECT * FROM @extschema@.assess() LOOP
		CASE r.status
			WHEN 'pass' THEN np := np + 1;
			WHEN 'warn' THEN nw := nw + 1;
			WHEN 'fail' THEN nf := nf + 1;
			ELSE nn := nn + 1;
		END CASE;
		IF md THEN
			lines := lines || format('| %s | %s | %s | %s |', r.control, r.title,
									 CASE WHEN r.status IN ('fail', 'warn') THEN '**' || r.status || '**' ELSE r.status END,
									 replace(replace(r.evidence, '|', '\|'), E'\n', ' '));
		ELSE
			lines := lines || format('%-4s %-5s %s', r.control, r.status, r.title)
						   || ('           ' || r.evidence);
		END IF;
	END LOOP;
	lines := lines || ''::text || format('%s pass, %s warn, %s fail, %s n/a', np, nw, nf, nn);
	RETURN array_to_string(lines, E'\n') || E'\n';
END
$report$;
COMMENT ON FUNCTION @extschema@.assess_report(text) IS
	'toms: the self-assessment as a readable report (''text'' or ''markdown'', ending in a summary line, or ''html'', the evidence report)';

-- tenants overview: toms.tenants_overview (issue 20)
CREATE VIEW @extschema@.tenants_overview AS
SELECT t.tenant,
	   t.name,
	   t.status,
	   t.created_at,
	   coalesce((SELECT array_agg(m.role::text ORDER BY m.role::text)
				   FROM @extschema@.members m WHERE m.tenant = t.tenant), '{}') AS members,
	   coalesce((SELECT array_agg(format('%s until %s (#%s)', g.role::text,
										 to_char(g.valid_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'), g.id)
								  ORDER BY g.valid_until, g.id)
				   FROM @extschema@.grants g
				  WHERE g.tenant = t.tenant AND g.revoked_at IS NULL AND g.valid_until > now()), '{}') AS live_grants,
	   (SELECT count(*) FROM @extschema@.protected_tables) AS protected_tables,
	   (SELECT count(*) FROM @extschema@.copies) AS registered_copies,
	   (SELECT k.version FROM @extschema@.tenant_keys k
		 WHERE k.tenant = t.tenant AND k.purpose = 'data' AND k.status = 'active') AS data_key_version,
	   (SELECT count(*) FROM @extschema@.tenant_keys k
		 WHERE k.tenant = t.tenant AND k.status = 'retired') AS keys_retired,
	   (SELECT count(*) FROM @extschema@.tenant_keys k
		 WHERE k.tenant = t.tenant AND k.status = 'destroyed') AS keys_destroyed,
	   (SELECT max(r.rotated_at) FROM @extschema@.key_rotations r WHERE r.tenant = t.tenant) AS last_key_rotation,
	   d.state AS deletion_state,
	   d.not_before AS deletion_not_before,
	   d.finished_at AS deletion_finished_at,
	   (SELECT count(*) FROM @extschema@.deletion_requests s
		 WHERE s.tenant = t.tenant AND s.subject IS NOT NULL
		   AND s.state NOT IN ('done', 'cancelled')) AS subject_deletions_open,
	   h.reason AS hold
  FROM @extschema@.tenants t
  LEFT JOIN LATERAL (SELECT r.state, r.not_before, r.finished_at
					   FROM @extschema@.deletion_requests r
					  WHERE r.tenant = t.tenant AND r.subject IS NULL AND r.state <> 'cancelled'
					  ORDER BY r.requested_at DESC LIMIT 1) d ON true
  LEFT JOIN @extschema@.holds h ON h.tenant = t.tenant;
COMMENT ON VIEW @extschema@.tenants_overview IS
	'toms: each tenant with its members, live grants, protected tables, keys and deletion state';
REVOKE ALL ON @extschema@.tenants_overview FROM PUBLIC;
GRANT SELECT ON @extschema@.tenants_overview TO toms_admin, toms_auditor;

-- partitioned tables (issue 17)
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

-- Citus setup (issue 15)

-- Citus: one toms installation across a coordinator and its workers (issue 15)
--
-- toms.citus_setup(), run on the coordinator once the workers are added
-- (and again after citus_add_node), makes toms' administrative tables
-- Citus reference tables: every administrative act is then one distributed
-- transaction writing the same rows on every node (two-phase commit; a node
-- that cannot be reached fails the act everywhere), and a new node receives
-- a copy.  toms' C code reads the local shard (src/citus_catalog.c).
-- Outside Citus the function refuses and nothing changes.  docs/scaling.md.

-- Is relid a Citus table (distributed or reference) here?  false without
-- Citus.
CREATE FUNCTION @extschema@._citus_table(relid oid) RETURNS bool
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	RETURN EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = relid);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_table(oid) FROM PUBLIC;

-- The administrative tables that become reference tables, in order (a
-- referenced table before the tables that reference it).
CREATE FUNCTION @extschema@._citus_tables() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY['tenants', 'members', 'grants', 'trusted_keys', 'tenant_keys',
				 'deletion_requests', 'holds', 'retention'];
REVOKE ALL ON FUNCTION @extschema@._citus_tables() FROM PUBLIC;

-- On every node, before toms' administrative tables become reference
-- tables: the foreign keys among toms' tables that point at them go (the
-- coordinator adds back those between reference tables).  A toms function,
-- so that the guard lets it change toms' tables; superusers only.
CREATE FUNCTION @extschema@._citus_drop_fks() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	fk			record;
BEGIN
	FOR fk IN
		SELECT c.conrelid::regclass AS rel, c.conname
		  FROM pg_constraint c
		 WHERE c.contype = 'f' AND c.connamespace = '@extschema@'::regnamespace
		   AND c.confrelid::regclass::text IN
			   (SELECT format('@extschema@.%I', u) FROM unnest(@extschema@._citus_tables()) u)
		   -- a key between two tables that are reference tables already
		   -- (an earlier citus_setup) stays
		   AND NOT (@extschema@._citus_table(c.conrelid) AND @extschema@._citus_table(c.confrelid))
	LOOP
		EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', fk.rel, fk.conname);
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_drop_fks() FROM PUBLIC;

CREATE FUNCTION @extschema@.citus_setup() RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	t text;
	fk record;
	fks text[] := '{}';
	bad text;
	drops text := '';
	saved text[] := '{}';
	cols text;
	vals text;
	row record;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
		RAISE EXCEPTION 'Citus is not installed in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				HINT = 'toms.citus_setup() is for a Citus cluster; on one node there is nothing to set up.';
	END IF;
	IF NOT pg_catalog.citus_is_coordinator() THEN
		RAISE EXCEPTION 'toms.citus_setup() must run on the coordinator'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid = 0) THEN
		RAISE EXCEPTION 'the coordinator is not registered in the Citus metadata'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'toms reads its administrative tables on every node, the coordinator included.',
				HINT = 'Run SELECT citus_set_coordinator_host(''<host>'', <port>) first.';
	END IF;
	-- regrole and regclass values must travel as names, not as OIDs, which
	-- differ between nodes.
	IF current_setting('citus.enable_binary_protocol')::bool THEN
		RAISE EXCEPTION 'citus.enable_binary_protocol must be off on every node'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'toms'' tables hold role names (regrole), which Citus would copy between nodes as OIDs.',
				HINT = 'Set citus.enable_binary_protocol = off in postgresql.conf on every node and reload.';
	END IF;
	-- Every node must have toms, preloaded, in the same version.
	SELECT string_agg(format('%s:%s', r.nodename, r.nodeport), ', ') INTO bad
	  FROM run_command_on_workers(format(
			$q$SELECT (SELECT extversion FROM pg_extension WHERE extname = 'toms') IS NOT DISTINCT FROM %L
			   AND current_setting('shared_preload_libraries') ~ '(^|[ ,])toms($|[ ,])'
			   AND NOT current_setting('citus.enable_binary_protocol')::bool$q$,
			(SELECT extversion FROM pg_extension WHERE extname = 'toms'))) r
	 WHERE NOT r.success OR r.result <> 't';
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'toms is not ready on every node'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = format('Nodes without toms (preloaded, same version, citus.enable_binary_protocol off) or unreachable: %s.', bad),
				HINT = 'Every node needs shared_preload_libraries = ''citus,toms'' and CREATE EXTENSION toms.';
	END IF;

	IF EXISTS (SELECT 1 FROM unnest(@extschema@._citus_tables()) u(t)
				WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition
								   WHERE logicalrelid = format('@extschema@.%I', u.t)::regclass)) THEN
		-- Citus distributes a table only with the tables its foreign keys
		-- connect it to, which must all be Citus tables: the foreign keys
		-- among toms' tables are dropped on every node (workers keep empty
		-- copies of the tables, created with the extension), the tables
		-- become reference tables, and the keys between them come back.
		-- Tables that stay per node (deletion_steps, the coordinator's
		-- stage-2 progress) lose their key to the reference tables.
		FOR fk IN
			SELECT c.conrelid::regclass AS rel, c.conname, pg_get_constraintdef(c.oid) AS def,
				   cl.relname = ANY (@extschema@._citus_tables()) AS keep
			  FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid
			 WHERE c.contype = 'f' AND c.connamespace = '@extschema@'::regnamespace
			   AND c.confrelid::regclass::text IN
				   (SELECT format('@extschema@.%I', u) FROM unnest(@extschema@._citus_tables()) u)
			   AND NOT (@extschema@._citus_table(c.conrelid) AND @extschema@._citus_table(c.confrelid))
		LOOP
			drops := drops || format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I;', fk.rel, fk.conname);
			EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.rel, fk.conname);
			IF fk.keep THEN
				fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.conname, fk.def);
			END IF;
		END LOOP;
		IF drops <> '' THEN
			SELECT string_agg(format('%s:%s', r.nodename, r.nodeport), ', ') INTO bad
			  FROM run_command_on_workers('SELECT @extschema@._citus_drop_fks()') r WHERE NOT r.success;
			IF bad IS NOT NULL THEN
				RAISE EXCEPTION 'toms could not prepare its tables on every node'
					USING ERRCODE = 'object_not_in_prerequisite_state',
						DETAIL = format('Failed on: %s.', bad);
			END IF;
		END IF;
		SET LOCAL citus.enable_unsafe_triggers = on;
		FOREACH t IN ARRAY @extschema@._citus_tables() LOOP
			IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
							WHERE logicalrelid = format('@extschema@.%I', t)::regclass) THEN
				-- Citus copies a table's rows to the new shards in binary,
				-- which would carry role OIDs: rows with regrole/regclass
				-- values are set aside and inserted again, by name.
				IF EXISTS (SELECT 1 FROM pg_attribute
							WHERE attrelid = format('@extschema@.%I', t)::regclass AND attnum > 0
							  AND NOT attisdropped AND atttypid IN ('regrole'::regtype, 'regclass'::regtype)) THEN
					EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS SELECT * FROM @extschema@.%I',
								   '_toms_citus_' || t, t);
					EXECUTE format('DELETE FROM @extschema@.%I', t);
					saved := saved || t;
				END IF;
				PERFORM create_reference_table(format('@extschema@.%I', t)::regclass);
			END IF;
		END LOOP;
		FOREACH t IN ARRAY saved LOOP
			SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
				   string_agg(format('($1->>%L)::%s', attname, format_type(atttypid, atttypmod)), ', '
							  ORDER BY attnum)
			  INTO cols, vals
			  FROM pg_attribute
			 WHERE attrelid = format('@extschema@.%I', t)::regclass AND attnum > 0 AND NOT attisdropped;
			FOR row IN EXECUTE format('SELECT to_jsonb(s) AS j FROM %I s', '_toms_citus_' || t) LOOP
				EXECUTE format('INSERT INTO @extschema@.%I (%s) OVERRIDING SYSTEM VALUE VALUES (%s)',
							   t, cols, vals) USING row.j;
			END LOOP;
		END LOOP;
		FOREACH t IN ARRAY fks LOOP
			EXECUTE t;
		END LOOP;
	END IF;
	-- A node added since: give it its copy now.
	PERFORM replicate_reference_tables('block_writes');
	PERFORM @extschema@._audit_admin_event('citus_setup', NULL, NULL);
END;
$$;
REVOKE ALL ON FUNCTION @extschema@.citus_setup() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.citus_setup() IS
	'toms: on a Citus coordinator, make toms'' administrative tables reference tables (one installation on every node)';

-- toms' own functions and the guard (issue 16): fingerprints of toms'
-- functions, and toms.assess() (9a) comparing them.
CREATE TABLE @extschema@.function_fingerprints (
	fn			oid PRIMARY KEY,
	signature	text NOT NULL,
	fingerprint text NOT NULL
);
COMMENT ON TABLE @extschema@.function_fingerprints IS
	'toms: its functions as its extension scripts created them (written by CREATE/ALTER EXTENSION toms)';
REVOKE ALL ON @extschema@.function_fingerprints FROM PUBLIC;
GRANT SELECT ON @extschema@.function_fingerprints TO toms_admin, toms_auditor;

CREATE FUNCTION @extschema@.check_functions(OUT function text, OUT problem text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'toms_check_functions'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.check_functions() IS
	'toms: its functions added, dropped or changed since its extension scripts ran (raises an incident)';
REVOKE ALL ON FUNCTION @extschema@.check_functions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.check_functions() TO toms_admin, toms_auditor;

CREATE OR REPLACE FUNCTION @extschema@._assess_9a(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
	n			bigint;
BEGIN
	control := '9a';
	title := 'tenant tables protected, row security forced, policy intact';
	s := 'pass';
	-- Tables with a tenant column that toms does not protect.
	SELECT array_agg(format('%s (column %s)', c.oid::regclass, a.attname) ORDER BY c.oid::regclass::text)
	  INTO items
	  FROM pg_class c
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE a.attname = ANY (@extschema@._tenant_column_names())
	   AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
	   AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
								  '@extschema@'::regnamespace)
	   AND NOT @extschema@._assess_in_extension('pg_class', c.oid)
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.protected_tables pt WHERE pt.relid = c.oid);
	SELECT count(*) INTO n FROM @extschema@.protected_tables;
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('tables with a tenant column (toms.tenant_column_names = %s) not protected: %s (toms.protect() them)',
						 current_setting('toms.tenant_column_names'), @extschema@._assess_list(items));
	ELSE
		e := e || format('every table with a tenant column (%s) is protected: %s table(s)',
						 current_setting('toms.tenant_column_names'), n);
	END IF;
	-- Protected tables whose row security or policy was altered behind the
	-- guard (a superuser editing the catalogs, say).
	SELECT array_agg(format('%s (%s)', x.rel, x.problem) ORDER BY x.rel)
	  INTO items
	  FROM (
		SELECT pt.relid::text AS rel,
			   concat_ws(', ',
						 CASE WHEN NOT c.relrowsecurity THEN 'row security disabled' END,
						 CASE WHEN NOT c.relforcerowsecurity THEN 'row security not forced' END,
						 CASE WHEN p.oid IS NULL THEN 'policy toms_tenant missing'
							  WHEN NOT p.polpermissive OR p.polcmd <> '*' OR p.polroles <> '{0}'
								OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM
									@extschema@._assess_policy_expr(pt.tenant_column, a.atttypid)
								OR pg_get_expr(p.polwithcheck, p.polrelid) IS DISTINCT FROM
									@extschema@._assess_policy_expr(pt.tenant_column, a.atttypid)
							  THEN 'policy toms_tenant altered' END,
						 CASE WHEN EXISTS (SELECT 1 FROM pg_policy o
											WHERE o.polrelid = pt.relid AND o.polpermissive
											  AND o.polname <> 'toms_tenant')
							  THEN 'another permissive policy widens the filter' END,
						 CASE WHEN a.attnum IS NULL THEN 'tenant column missing' END) AS problem
		  FROM @extschema@.protected_tables pt
		  JOIN pg_class c ON c.oid = pt.relid
		  LEFT JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = pt.tenant_column
								   AND NOT a.attisdropped
		  LEFT JOIN pg_policy p ON p.polrelid = pt.relid AND p.polname = 'toms_tenant'
	  ) x
	 WHERE x.problem <> '';
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('protected tables weakened: %s (toms.unprotect() and toms.protect() again)',
						 @extschema@._assess_list(items));
	ELSE
		e := e || 'every protected table forces row security with its toms_tenant policy intact'::text;
	END IF;
	-- toms' own functions as its extension scripts created them (the filter
	-- calls toms.current_tenant()); a superuser's edit of pg_proc has no
	-- hook: toms.check_functions() compares fingerprints and raises an
	-- incident (issue 16).
	SELECT array_agg(format('%s (%s)', f.function, f.problem) ORDER BY f.function)
	  INTO items FROM @extschema@.check_functions() f;
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('toms'' functions differ from what its extension scripts created: %s (restore them; toms.function_fingerprints says what they were)',
						 @extschema@._assess_list(items));
	END IF;
	-- Paths around the filter that PostgreSQL cannot close (docs/tenancy.md,
	-- Known limits): warned about, naming the objects.
	-- SECURITY DEFINER functions of roles outside row security whose body
	-- names a protected table: they read every tenant's rows.
	SELECT array_agg(format('%s owned by %s (names %s)', p.oid::regprocedure,
							p.proowner::regrole, x.tabs) ORDER BY p.oid::regprocedure::text)
	  INTO items
	  FROM pg_proc p
	  JOIN pg_roles r ON r.oid = p.proowner
	  CROSS JOIN LATERAL (
		SELECT string_agg(c.relname, ', ' ORDER BY c.relname) AS tabs
		  FROM @extschema@.protected_tables pt JOIN pg_class c ON c.oid = pt.relid
		 WHERE p.prosrc ~* ('\m' || regexp_replace(c.relname, '([^[:alnum:]_])', '\\\1', 'g') || '\M')) x
	 WHERE p.prosecdef AND (r.rolsuper OR r.rolbypassrls)
	   AND x.tabs IS NOT NULL
	   AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
								  '@extschema@'::regnamespace)
	   AND NOT @extschema@._assess_in_extension('pg_proc', p.oid);
	IF cardinality(items) > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('SECURITY DEFINER functions owned by roles outside row security name protected tables (refused to callers under the tenant filter, every tenant''s rows to anyone else): %s (give them an owner subject to row security)',
						 @extschema@._assess_list(items));
	END IF;
	-- User-defined functions in a protected table's index, constraint,
	-- default or statistics expressions: REINDEX, VACUUM FULL, ANALYZE run
	-- them over every row, and what they call inside is untracked.
	SELECT array_agg(DISTINCT format('%s in %s', d.refobjid::regprocedure, t.relid::regclass))
	  INTO items
	  FROM @extschema@.protected_tables pt
	  CROSS JOIN LATERAL (
		SELECT 'pg_class'::regclass AS classid, i.indexrelid AS objid, i.indrelid AS relid
		  FROM pg_index i WHERE i.indrelid = pt.relid
		UNION ALL
		SELECT 'pg_constraint'::regclass, k.oid, k.conrelid FROM pg_constraint k WHERE k.conrelid = pt.relid
		UNION ALL
		SELECT 'pg_attrdef'::regclass, ad.oid, ad.adrelid FROM pg_attrdef ad WHERE ad.adrelid = pt.relid
		UNION ALL
		SELECT 'pg_statistic_ext'::regclass, x.oid, x.stxrelid FROM pg_statistic_ext x WHERE x.stxrelid = pt.relid
	  ) t
	  JOIN pg_depend d ON d.classid = t.classid AND d.objid = t.objid
					  AND d.refclassid = 'pg_proc'::regclass AND d.refobjid >= 16384
	 WHERE NOT @extschema@._assess_in_extension('pg_proc', d.refobjid);
	IF cardinality(items) > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('user-defined functions in expressions of protected tables (maintenance runs them over every tenant''s rows): %s (use built-in functions, or functions owned by toms_admin)',
						 @extschema@._assess_list(items));
	END IF;
	-- Large objects have per-object ACLs and no row security.
	IF n > 0 THEN
		SELECT array_agg(DISTINCT lo.lomowner::regrole::text ORDER BY lo.lomowner::regrole::text)
		  INTO items FROM pg_largeobject_metadata lo;
		IF cardinality(items) > 0 THEN
			s := @extschema@._assess_worst(s, 'warn');
			e := e || format('large objects exist, owned by %s: row security does not apply to them (keep tenant data in protected tables)',
							 @extschema@._assess_list(items));
		END IF;
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- pools: toms.context_scope, pooled roles in assess 9b (issue 16)
-- Login roles that may use tenant tokens (toms_app members) and would start
-- a session at toms.context_scope = session: the setting a transaction-
-- pooling connection pool needs is 'transaction' (issue 16; docs/tenancy.md,
-- "Behind PgBouncer").  The value a login gets: database-and-role setting,
-- else role, else database, else the server's configuration files.
CREATE FUNCTION @extschema@._assess_session_scope_roles() RETURNS text[]
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(array_agg(r.rolname::text ORDER BY r.rolname), '{}')
	  FROM pg_roles r
	 WHERE r.rolcanlogin AND NOT r.rolsuper
	   AND r.oid <> (SELECT oid FROM pg_roles WHERE rolname = 'toms_app')
	   AND pg_has_role(r.oid, 'toms_app', 'MEMBER')
	   AND coalesce(
			(SELECT substr(c, length('toms.context_scope=') + 1)
			   FROM pg_db_role_setting s, unnest(s.setconfig) c
			  WHERE c LIKE 'toms.context\_scope=%'
				AND (s.setrole, s.setdatabase) IN ((r.oid, (SELECT oid FROM pg_database WHERE datname = current_database())),
												   (r.oid, 0::oid),
												   (0::oid, (SELECT oid FROM pg_database WHERE datname = current_database())))
			  ORDER BY s.setrole = 0, s.setdatabase = 0
			  LIMIT 1),
			(SELECT f.setting FROM pg_file_settings f
			  WHERE f.name = 'toms.context_scope' AND f.applied AND f.error IS NULL
			  ORDER BY f.seqno DESC LIMIT 1),
			'session') <> 'transaction'
$$;
REVOKE ALL ON FUNCTION @extschema@._assess_session_scope_roles() FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._assess_9b(OUT control text, OUT title text, OUT status text, OUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text;
	e			text[] := '{}';
	items		text[];
BEGIN
	control := '9b';
	title := 'tenant identifier in every key, reference and sequence';
	s := 'pass';
	-- A unique index that does not lead with the tenant column answers
	-- "does this value exist in another tenant?" with a unique violation.
	SELECT array_agg(format('%s on %s', i.indexrelid::regclass, i.indrelid::regclass)
					 ORDER BY i.indexrelid::regclass::text)
	  INTO items
	  FROM pg_index i
	  JOIN @extschema@.protected_tables pt ON pt.relid = i.indrelid
	  JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = pt.tenant_column
	 WHERE i.indisunique AND i.indkey[0] <> a.attnum;
	IF cardinality(items) > 0 THEN
		s := 'warn';
		e := e || format('unique indexes not leading with the tenant column (they reveal values of other tenants): %s (make the tenant column their first column)',
						 @extschema@._assess_list(items));
	END IF;
	-- A foreign key into a protected table without the tenant column can
	-- point at (and probe for) another tenant's row.
	SELECT array_agg(format('%s on %s', k.conname, k.conrelid::regclass) ORDER BY k.conname)
	  INTO items
	  FROM pg_constraint k
	  JOIN @extschema@.protected_tables pt ON pt.relid = k.confrelid
	  JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = pt.tenant_column
	 WHERE k.contype = 'f' AND NOT (a.attnum = ANY (k.confkey));
	IF cardinality(items) > 0 THEN
		s := 'warn';
		e := e || format('foreign keys into protected tables without the tenant column: %s (reference (tenant column, key) instead)',
						 @extschema@._assess_list(items));
	END IF;
	-- serial / identity columns: one sequence for all tenants reveals how
	-- many rows the others create.
	SELECT array_agg(format('%s.%s', a.attrelid::regclass, quote_ident(a.attname)) ORDER BY 1)
	  INTO items
	  FROM @extschema@.protected_tables pt
	  JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE a.attidentity <> ''
		OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class q ON q.oid = d.objid AND q.relkind = 'S'
					WHERE d.refobjid = pt.relid AND d.refobjsubid = a.attnum
					  AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
		OR EXISTS (SELECT 1 FROM pg_attrdef ad
					WHERE ad.adrelid = pt.relid AND ad.adnum = a.attnum
					  AND pg_get_expr(ad.adbin, ad.adrelid) LIKE 'nextval(%');
	IF cardinality(items) > 0 THEN
		s := 'warn';
		e := e || format('columns drawing from a sequence shared by all tenants (it reveals their activity): %s (use uuid keys, gen_random_uuid())',
						 @extschema@._assess_list(items));
	END IF;
	-- The tenant column is filled from the context.
	SELECT array_agg(pt.relid::text ORDER BY pt.relid::text) INTO items
	  FROM @extschema@.protected_tables pt
	  JOIN pg_attribute a ON a.attrelid = pt.relid AND a.attname = pt.tenant_column
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = pt.relid AND ad.adnum = a.attnum
	 WHERE pg_get_expr(ad.adbin, ad.adrelid) IS NULL
		OR pg_get_expr(ad.adbin, ad.adrelid) NOT LIKE '%@extschema@.current_tenant()%';
	IF cardinality(items) > 0 THEN
		s := 'fail';
		e := e || format('tenant column not filled from the tenant context: %s', @extschema@._assess_list(items));
	END IF;
	-- Pools (issue 16): a context left at session level by one client of a
	-- transaction-pooling pool is the next client's context.
	items := @extschema@._assess_session_scope_roles();
	IF cardinality(items) > 0 THEN
		s := @extschema@._assess_worst(s, 'warn');
		e := e || format('token-using login roles (toms_app) at toms.context_scope = session (behind a transaction-pooling pool one client''s tenant context reaches the next): %s (ALTER ROLE ... SET toms.context_scope = ''transaction'')',
						 @extschema@._assess_list(items));
	END IF;
	IF s = 'pass' THEN
		e := e || 'every unique index and foreign key of protected tables includes the tenant column; no shared sequences; tenant columns filled from the context; token-using login roles at toms.context_scope = transaction'::text;
	END IF;
	status := s;
	evidence := array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'n/a';
	evidence := 'check could not run: ' || SQLERRM;
END
$$;

-- issue 15: audit and self-assessment across a Citus cluster (90_citus.sql, 70_assess.sql)
-- Audit and self-assessment across the cluster (issue 15) -----------------
--
-- Every node audits what it executes into its own chain; on the
-- coordinator, toms.citus_verify_audit() verifies every node's chain and
-- toms.assess() adds every worker to measures 7, 8a and 9a.  The nodes are
-- reached over Citus' own connections (master_run_on_worker, which
-- run_command_on_all_nodes uses), as the current user.  On a node that is
-- not a Citus coordinator with workers nothing changes.  docs/scaling.md.

-- Is this the coordinator of a Citus cluster with workers?
CREATE FUNCTION @extschema@._citus_coordinator() RETURNS boolean
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
		RETURN false;
	END IF;
	RETURN (SELECT l.groupid FROM pg_dist_local_group l) = 0
		   AND EXISTS (SELECT 1 FROM pg_dist_node n
						WHERE n.groupid <> 0 AND n.noderole = 'primary'
						  AND n.nodecluster = current_setting('citus.cluster_name'));
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_coordinator() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._citus_coordinator() TO toms_auditor, toms_admin;

-- The primary workers, as host:port: active or not (audit and assessment:
-- a disabled node is reported, not skipped), or the active ones only (the
-- deletion steps: those that hold the shards' placements).
CREATE FUNCTION @extschema@._citus_workers(active_only boolean DEFAULT false) RETURNS SETOF text
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY SELECT format('%s:%s', n.nodename, n.nodeport)
				   FROM pg_dist_node n
				  WHERE n.groupid <> 0 AND n.noderole = 'primary'
					AND n.nodecluster = current_setting('citus.cluster_name')
					AND (n.isactive OR NOT active_only)
				  ORDER BY n.nodename, n.nodeport;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_workers(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._citus_workers(boolean) TO toms_auditor, toms_admin;

-- Run commands[i] on nodes[i] (host:port), in parallel, each in a new
-- connection Citus opens as the current user; a node that cannot be
-- reached gives success = false and Citus' message.
CREATE FUNCTION @extschema@._citus_run(nodes text[], commands text[],
	OUT node text, OUT success boolean, OUT result text)
	RETURNS SETOF record
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	hosts		text[] := '{}';
	ports		int[] := '{}';
	i			int;
BEGIN
	FOR i IN 1 .. coalesce(cardinality(nodes), 0) LOOP
		hosts := hosts || substring(nodes[i] FROM '^(.*):[0-9]+$');
		ports := ports || substring(nodes[i] FROM ':([0-9]+)$')::int;
	END LOOP;
	IF cardinality(hosts) = 0 THEN
		RETURN;
	END IF;
	RETURN QUERY SELECT format('%s:%s', r.node_name, r.node_port), r.success, r.result
				   FROM pg_catalog.master_run_on_worker(hosts, ports, commands, true) r;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_run(text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._citus_run(text[], text[]) TO toms_auditor, toms_admin;

-- What the coordinator asks each node: this node's chain verified, and its
-- open chain-break incidents.  In full (recorded, as every whole
-- verify_audit()), unless since is given: the record up to which the
-- coordinator's last assessment verified this node, on the server whose
-- system identifier is since_system.  Then, as toms.assess() does on one
-- node (control 7), only the records added since are verified, while this
-- node's last verification of its whole chain passed within
-- toms.assess_period.
CREATE FUNCTION @extschema@._citus_verify_node(since bigint DEFAULT NULL, since_system text DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v			record;
	n			bigint;
	sysid		text;
	head		bigint;
	full_ts		timestamptz;
	full_to		bigint;
	full_ok		boolean;
	base		bigint;
BEGIN
	SELECT c.system_identifier::text INTO sysid FROM pg_control_system() c;
	SELECT max(l.seq) INTO head FROM @extschema@.audit_log l;
	IF since IS NOT NULL AND since_system = sysid AND since <= coalesce(head, 0) THEN
		SELECT l.ts, (l.detail ->> 'to')::bigint, (l.detail ->> 'ok')::boolean
		  INTO full_ts, full_to, full_ok
		  FROM @extschema@.audit_log l
		 WHERE l.kind = 'admin' AND l.action = 'verify_audit' AND (l.detail ->> 'whole')::boolean
		 ORDER BY l.ts DESC LIMIT 1;
		IF full_ok AND full_ts >= now() - current_setting('toms.assess_period')::interval THEN
			base := greatest(since, full_to);
		END IF;
	END IF;
	IF base IS NULL THEN
		SELECT r.ok, r.first_bad, r.detail INTO v FROM @extschema@.verify_audit() r;
	ELSIF head <= base THEN
		SELECT true AS ok, NULL::bigint AS first_bad,
			   format('nothing new since the full verification of %s and the records verified after it (up to %s)',
					  to_char(full_ts, 'YYYY-MM-DD HH24:MI TZ'), base) AS detail
		  INTO v;
	ELSE
		SELECT r.ok, r.first_bad, r.detail INTO v FROM @extschema@.verify_audit(base + 1, head) r;
		IF v.ok THEN
			v.detail := format('verified from record %s to %s (in full on %s)',
							   base + 1, head, to_char(full_ts, 'YYYY-MM-DD HH24:MI TZ'));
		END IF;
	END IF;
	SELECT count(*) INTO n FROM @extschema@.incidents i
	 WHERE i.kind = 'audit_chain_break'
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.incident_closures c WHERE c.incident_id = i.id);
	RETURN jsonb_build_object('ok', v.ok, 'first_bad', v.first_bad, 'detail', v.detail,
							  'records', CASE WHEN v.ok AND base IS NULL THEN
								  coalesce((regexp_match(v.detail, '^([0-9]+) records verified'))[1]::bigint, 0)
								  WHEN v.ok THEN greatest(coalesce(head, 0) - base, 0) END,
							  'open_breaks', n, 'whole', base IS NULL,
							  'verified_to', CASE WHEN v.ok THEN greatest(coalesce(head, 0), coalesce(base, 0)) END,
							  'system', sysid);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_verify_node(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._citus_verify_node(bigint, text) TO toms_auditor, toms_admin;

-- toms.assess() on a coordinator: up to which record, and on which server,
-- each worker's audit chain was last verified (control 7), so that the
-- next assessment verifies only what was added since.  Written by
-- toms._assess_citus() only; a node whose verification failed is removed
-- (its next assessment verifies it in full).
CREATE TABLE @extschema@.citus_verified (
	node		text PRIMARY KEY,
	system		text NOT NULL,
	verified_to	bigint NOT NULL,
	verified_at	timestamptz NOT NULL
);
COMMENT ON TABLE @extschema@.citus_verified IS 'toms: up to where toms.assess() on a Citus coordinator last verified each worker''s audit chain';
REVOKE ALL ON @extschema@.citus_verified FROM PUBLIC;
GRANT SELECT ON @extschema@.citus_verified TO toms_admin, toms_auditor;

-- On a worker: which of these shards lost what protects them (row security
-- enabled and forced, toms' policy on the tenant column, no other
-- permissive policy).  {"checked": n, "problems": ["shard (problem)", …]}.
CREATE FUNCTION @extschema@._citus_shard_problems(shards text[], tenant_columns text[]) RETURNS jsonb
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	items		text[];
BEGIN
	SELECT array_agg(format('%s (%s)', x.shard, x.problem) ORDER BY x.shard)
	  INTO items
	  FROM (
		SELECT u.shard,
			   CASE WHEN c.oid IS NULL THEN 'shard missing' ELSE
			   concat_ws(', ',
						 CASE WHEN NOT c.relrowsecurity THEN 'row security disabled' END,
						 CASE WHEN NOT c.relforcerowsecurity THEN 'row security not forced' END,
						 CASE WHEN p.oid IS NULL THEN 'policy toms_tenant missing'
							  WHEN NOT p.polpermissive OR p.polcmd <> '*' OR p.polroles <> '{0}'
								OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM
									@extschema@._assess_policy_expr(u.col::name, a.atttypid)
								OR pg_get_expr(p.polwithcheck, p.polrelid) IS DISTINCT FROM
									@extschema@._assess_policy_expr(u.col::name, a.atttypid)
							  THEN 'policy toms_tenant altered' END,
						 CASE WHEN EXISTS (SELECT 1 FROM pg_policy o
											WHERE o.polrelid = c.oid AND o.polpermissive
											  AND o.polname <> 'toms_tenant')
							  THEN 'another permissive policy widens the filter' END,
						 CASE WHEN a.attnum IS NULL THEN 'tenant column missing' END) END AS problem
		  FROM unnest(shards, tenant_columns) u(shard, col)
		  LEFT JOIN pg_class c ON c.oid = to_regclass(u.shard)
		  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = u.col AND NOT a.attisdropped
		  LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = 'toms_tenant'
	  ) x
	 WHERE x.problem <> '';
	RETURN jsonb_build_object('checked', coalesce(cardinality(shards), 0),
							  'problems', to_jsonb(coalesce(items, '{}')));
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_shard_problems(text[], text[]) FROM PUBLIC;

-- toms.citus_verify_audit(): on the coordinator, every node's chain, one
-- row per node (the coordinator first).  A node that cannot be reached is
-- not verified: ok = false, reachable = false, Citus' message in detail.
-- SECURITY INVOKER: each node verifies as the caller (a toms_auditor or
-- toms_admin member, a login role on every node, as Citus propagates
-- roles), and records that verification in its own trail.
CREATE FUNCTION @extschema@.citus_verify_audit(OUT node text, OUT ok boolean, OUT reachable boolean,
	OUT records bigint, OUT first_bad bigint, OUT detail text)
	RETURNS SETOF record
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j			jsonb;
	r			record;
	nodes		text[];
BEGIN
	IF NOT @extschema@._citus_coordinator() THEN
		RAISE EXCEPTION 'toms.citus_verify_audit() must run on the coordinator of a Citus cluster with workers'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				HINT = 'On one node, or on a worker, run toms.verify_audit().';
	END IF;
	-- the coordinator, in this session
	SELECT coalesce(format('%s:%s', n.nodename, n.nodeport), 'coordinator') INTO node
	  FROM pg_dist_node n WHERE n.groupid = 0 AND n.noderole = 'primary' LIMIT 1;
	node := coalesce(node, 'coordinator');
	j := @extschema@._citus_verify_node();
	ok := (j ->> 'ok')::boolean;
	reachable := true;
	records := (j ->> 'records')::bigint;
	first_bad := (j ->> 'first_bad')::bigint;
	detail := j ->> 'detail';
	RETURN NEXT;
	-- every worker, over Citus' connections
	nodes := ARRAY(SELECT w FROM @extschema@._citus_workers() w);
	FOR r IN SELECT * FROM @extschema@._citus_run(nodes,
						array_fill('SELECT @extschema@._citus_verify_node()'::text, ARRAY[cardinality(nodes)]))
	LOOP
		node := r.node;
		IF r.success THEN
			j := r.result::jsonb;
			ok := (j ->> 'ok')::boolean;
			reachable := true;
			records := (j ->> 'records')::bigint;
			first_bad := (j ->> 'first_bad')::bigint;
			detail := j ->> 'detail';
		ELSE
			ok := false;
			reachable := r.result NOT LIKE 'failed to connect%' AND r.result NOT LIKE 'connection%';
			records := NULL;
			first_bad := NULL;
			detail := CASE WHEN reachable THEN format('not verified: %s', r.result)
					  ELSE format('not verified: the node could not be reached (%s)', r.result) END;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.citus_verify_audit() IS
	'toms: on a Citus coordinator, verify the audit chain of every node (one row per node; an unreachable node is not ok)';
REVOKE ALL ON FUNCTION @extschema@.citus_verify_audit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.citus_verify_audit() TO toms_auditor, toms_admin;

-- toms.assess() on a coordinator: the workers' part of measures 7, 8a and
-- 9a, merged into the row the coordinator's own check made.  Every part
-- names its node; a node that cannot be reached fails the measure.
CREATE FUNCTION @extschema@._assess_citus(ctl text, INOUT status text, INOUT evidence text)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			text := 'pass';
	e			text[] := '{}';
	r			record;
	j			jsonb;
	nodes		text[];
	cmds		text[];
	n			bigint;
BEGIN
	IF ctl = '9a' THEN
		-- every shard placed on a worker, of every table protected here
		SELECT array_agg(x.node ORDER BY x.node),
			   array_agg(format('SELECT @extschema@._citus_shard_problems(%L::text[], %L::text[])',
								x.shards, x.cols) ORDER BY x.node)
		  INTO nodes, cmds
		  FROM (SELECT format('%s:%s', dn.nodename, dn.nodeport) AS node,
					   array_agg(shard_name(sh.logicalrelid, sh.shardid, false)::text ORDER BY sh.shardid) AS shards,
					   array_agg(pt.tenant_column::text ORDER BY sh.shardid) AS cols
				  FROM @extschema@.protected_tables pt
				  JOIN pg_dist_shard sh ON sh.logicalrelid = pt.relid
				  JOIN pg_dist_placement pl ON pl.shardid = sh.shardid
				  JOIN pg_dist_node dn ON dn.groupid = pl.groupid AND dn.noderole = 'primary'
									  AND dn.groupid <> 0
				 GROUP BY dn.nodename, dn.nodeport) x;
	ELSIF ctl = '7' THEN
		-- from where the last assessment verified each worker
		SELECT array_agg(u.node ORDER BY u.i),
			   array_agg(format('SELECT @extschema@._citus_verify_node(%L, %L)', cv.verified_to, cv.system)
						 ORDER BY u.i)
		  INTO nodes, cmds
		  FROM unnest(ARRAY(SELECT w FROM @extschema@._citus_workers() w)) WITH ORDINALITY u(node, i)
		  LEFT JOIN @extschema@.citus_verified cv ON cv.node = u.node;
	ELSE
		nodes := ARRAY(SELECT w FROM @extschema@._citus_workers() w);
		-- 8a: each worker's own streaming standbys
		cmds := array_fill($q$SELECT pg_catalog.jsonb_build_object('streaming', count(*) FILTER (WHERE state = 'streaming'),
					'standbys', coalesce(string_agg(format('%s (%s, %s)', application_name, state, sync_state),
												', ' ORDER BY application_name), 'none'))
					FROM pg_catalog.pg_stat_replication$q$::text, ARRAY[cardinality(nodes)]);
	END IF;
	FOR r IN SELECT * FROM @extschema@._citus_run(nodes, cmds) LOOP
		IF NOT r.success THEN
			s := 'fail';
			e := e || format('node %s could not be checked: %s', r.node, r.result);
			CONTINUE;
		END IF;
		j := r.result::jsonb;
		IF ctl = '7' THEN
			IF (j ->> 'ok')::boolean THEN
				e := e || format(CASE WHEN (j ->> 'whole')::boolean THEN 'node %s: audit chain verified in full: %s'
								 ELSE 'node %s: audit chain %s' END, r.node, j ->> 'detail');
				INSERT INTO @extschema@.citus_verified AS cv (node, system, verified_to, verified_at)
				VALUES (r.node, j ->> 'system', (j ->> 'verified_to')::bigint, now())
				ON CONFLICT (node) DO UPDATE
				   SET system = excluded.system, verified_to = excluded.verified_to,
					   verified_at = excluded.verified_at;
			ELSE
				s := 'fail';
				e := e || format('node %s: audit chain BROKEN at record %s: %s', r.node,
								 coalesce(j ->> 'first_bad', '?'), j ->> 'detail');
				DELETE FROM @extschema@.citus_verified cv WHERE cv.node = r.node;
			END IF;
			IF (j ->> 'open_breaks')::bigint > 0 THEN
				s := 'fail';
				e := e || format('node %s: %s open audit chain break incident(s) (investigate, then toms.close_incident(id, note) on that node)',
								 r.node, j ->> 'open_breaks');
			END IF;
		ELSIF ctl = '8a' THEN
			n := (j ->> 'streaming')::bigint;
			IF n < 2 THEN
				s := @extschema@._assess_worst(s, 'warn');
			END IF;
			e := e || format('node %s: %s streaming standby(s) of 2 required for three copies: %s',
							 r.node, n, j ->> 'standbys');
		ELSE
			IF jsonb_array_length(j -> 'problems') > 0 THEN
				s := 'fail';
				e := e || format('node %s: shards weakened: %s (toms.unprotect() and toms.protect() the table again)',
								 r.node, @extschema@._assess_list(ARRAY(SELECT jsonb_array_elements_text(j -> 'problems'))));
			ELSE
				e := e || format('node %s: %s shard(s) force row security with their toms_tenant policy intact',
								 r.node, j ->> 'checked');
			END IF;
		END IF;
	END LOOP;
	IF ctl = '9a' AND cardinality(e) = 0 THEN
		e := e || 'no shard of a protected table on the workers'::text;
	END IF;
	status := @extschema@._assess_worst(status, s);
	evidence := evidence || '; ' || array_to_string(e, '; ');
EXCEPTION WHEN OTHERS THEN
	status := 'fail';
	evidence := evidence || '; the workers could not be checked: ' || SQLERRM;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._assess_citus(text, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@.assess()
	RETURNS TABLE (control text, title text, status text, evidence text)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $assess$
DECLARE
	ctl			text;
	prev_verified bigint;
	verified_to bigint;
	statuses	text[] := '{}';
	controls	text[] := '{}';
	citus		boolean := @extschema@._citus_coordinator();
BEGIN
	SELECT a.audit_verified_to INTO prev_verified
	  FROM @extschema@.assessments a WHERE a.audit_verified_to IS NOT NULL
	 ORDER BY a.id DESC LIMIT 1;

	FOREACH ctl IN ARRAY ARRAY['4a', '4b', '4c', '4d', '4e', '5a', '5b', '5c', '6a', '6b',
							   '7', '8a', '9a', '9b', '10a', '10b', '11a']
	LOOP
		IF ctl = '7' THEN
			SELECT * INTO control, title, status, evidence, verified_to
			  FROM @extschema@._assess_7(prev_verified);
		ELSE
			EXECUTE format('SELECT * FROM @extschema@.%I()', '_assess_' || ctl)
			   INTO control, title, status, evidence;
		END IF;
		-- on a Citus coordinator: every worker too (90_citus.sql)
		IF citus AND ctl IN ('7', '8a', '9a') THEN
			SELECT c.status, c.evidence INTO status, evidence
			  FROM @extschema@._assess_citus(ctl, status, evidence) c;
		END IF;
		RETURN NEXT;
		statuses := statuses || status;
		controls := controls || control;
	END LOOP;

	-- Record this run (not on a standby or in a read-only transaction).
	IF NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off' THEN
		INSERT INTO @extschema@.assessments (n_pass, n_warn, n_fail, n_na, failed, audit_verified_to)
		SELECT count(*) FILTER (WHERE x.st = 'pass'), count(*) FILTER (WHERE x.st = 'warn'),
			   count(*) FILTER (WHERE x.st = 'fail'), count(*) FILTER (WHERE x.st = 'n/a'),
			   coalesce(array_agg(x.ctl ORDER BY x.i) FILTER (WHERE x.st = 'fail'), '{}'),
			   coalesce(verified_to, prev_verified)
		  FROM unnest(statuses, controls) WITH ORDINALITY AS x(st, ctl, i);
	END IF;
END
$assess$;

-- issue 15: deletions, holds and retention across a Citus cluster
-- (the same objects as sql/install/50_lifecycle.sql, 55_partitions.sql, 90_citus.sql)
ALTER TABLE @extschema@.deletion_requests ADD COLUMN nodes jsonb NOT NULL DEFAULT '{}';
CREATE FUNCTION @extschema@._lifecycle_invalidate_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'toms_lifecycle_invalidate_trigger' LANGUAGE C;
REVOKE ALL ON FUNCTION @extschema@._lifecycle_invalidate_trigger() FROM PUBLIC;
CREATE TRIGGER toms_invalidate AFTER INSERT OR UPDATE OF tenant, subject, state OR DELETE OR TRUNCATE
	ON @extschema@.deletion_requests FOR EACH STATEMENT
	EXECUTE FUNCTION @extschema@._lifecycle_invalidate_trigger();

CREATE OR REPLACE FUNCTION @extschema@._citus_lifecycle() RETURNS bool
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN @extschema@._citus_table('@extschema@.deletion_requests'::regclass);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_lifecycle() FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._citus_worker_node() RETURNS bool
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF NOT @extschema@._citus_lifecycle() THEN
		RETURN false;
	END IF;
	RETURN (SELECT groupid FROM pg_dist_local_group) <> 0;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_worker_node() FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._citus_self() RETURNS text
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF to_regclass('pg_catalog.pg_dist_node') IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN (SELECT format('%s:%s', n.nodename, n.nodeport)
			  FROM pg_dist_node n JOIN pg_dist_local_group l USING (groupid)
			 WHERE n.noderole = 'primary' ORDER BY n.nodeid LIMIT 1);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_self() FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._citus_on_workers(cmd text) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	w			record;
	nodes		text[];
	res			jsonb := '{}';
BEGIN
	IF NOT @extschema@._citus_lifecycle() OR @extschema@._citus_worker_node() THEN
		RETURN res;
	END IF;
	-- the active primary workers: those holding the shards' placements
	-- (Citus refuses to disable a node holding a shard's only placement)
	nodes := ARRAY(SELECT n FROM @extschema@._citus_workers(active_only => true) n);
	FOR w IN SELECT * FROM @extschema@._citus_run(nodes, array_fill(cmd, ARRAY[cardinality(nodes)]))
			  ORDER BY node LOOP
		IF NOT w.success THEN
			RAISE EXCEPTION 'toms could not complete a deletion step on Citus node %', w.node
				USING ERRCODE = 'connection_failure',
					DETAIL = format('The node answered: %s', w.result),
					HINT = 'The step is retried; a deletion is certified only once every node has done its part.';
		END IF;
		res := res || jsonb_build_object(w.node, w.result);
	END LOOP;
	RETURN res;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_on_workers(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._deletion_node_horizon(xids jsonb) RETURNS bool
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RETURN @extschema@._lifecycle_horizon_passed((xids->>@extschema@._citus_self())::xid8);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._deletion_node_horizon(jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._citus_vacuum(tbl oid) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	p			record;
BEGIN
	IF NOT @extschema@._citus_table(tbl) OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = tbl) THEN
		RETURN;
	END IF;
	FOR p IN SELECT * FROM run_command_on_placements(tbl::regclass, 'VACUUM (INDEX_CLEANUP ON) %s')
			  ORDER BY nodename, nodeport, shardid LOOP
		IF NOT p.success THEN
			RAISE EXCEPTION 'toms could not complete a deletion step on Citus node %:%', p.nodename, p.nodeport
				USING ERRCODE = 'connection_failure',
					DETAIL = format('VACUUM of shard %s of %s: %s', p.shardid, tbl::regclass, p.result),
					HINT = 'The step is retried; a deletion is certified only once every node has done its part.';
		END IF;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_vacuum(oid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@.request_deletion(tenant text, subject text DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION @extschema@.cancel_deletion(id uuid) RETURNS void
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

CREATE OR REPLACE FUNCTION @extschema@.approve_deletion(id uuid) RETURNS void
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

CREATE OR REPLACE FUNCTION @extschema@.hold(tenant text, reason text) RETURNS void
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

CREATE OR REPLACE FUNCTION @extschema@.set_retention(tbl regclass, time_column name, keep interval)
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

CREATE OR REPLACE FUNCTION @extschema@._deletion_batch(req uuid, tbl oid, batch int) RETURNS bigint
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

CREATE OR REPLACE FUNCTION @extschema@._deletion_certify(req uuid, shortfall bool) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION @extschema@._deletion_work(skip uuid[] DEFAULT '{}',
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

CREATE OR REPLACE FUNCTION @extschema@._retention_targets(OUT rule oid, OUT leaf oid)
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

CREATE OR REPLACE FUNCTION @extschema@._retention_batch(rule oid, leaf oid, batch int, after tid DEFAULT '(0,0)',
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

-- issue 15: admin acts on Citus reference tables record who acted as a value
-- (Citus sends session_user to the workers unevaluated: their copies named
-- the connection's user) and revoke_access() passes its time as a value
-- (Citus refuses clock_timestamp() in a reference table's UPDATE); their
-- audit detail is a JSON object (issue 20).

CREATE OR REPLACE FUNCTION @extschema@.create_tenant(tenant text, name text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	who			name := session_user;	-- a value: Citus evaluates no session_user
BEGIN
	PERFORM @extschema@._validate_tenant_id(tenant);
	IF name IS NULL OR btrim(name) = '' THEN
		RAISE EXCEPTION 'tenant name must not be empty' USING ERRCODE = '22023';
	END IF;
	INSERT INTO @extschema@.tenants (tenant, name, created_by)
		VALUES (create_tenant.tenant, create_tenant.name, who);
	PERFORM @extschema@._audit_admin_event('create_tenant', tenant, NULL);
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'tenant "%" already exists', tenant USING ERRCODE = '42710';
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.add_member(role regrole, tenant text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	who			name := session_user;	-- see create_tenant()
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.tenants t WHERE t.tenant = add_member.tenant) THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	INSERT INTO @extschema@.members (role, tenant, added_by) VALUES (add_member.role, add_member.tenant, who)
		ON CONFLICT DO NOTHING;
	PERFORM @extschema@._audit_admin_event('add_member', tenant, json_build_object('role', role::text)::text);
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.grant_access(role regrole, tenant text, justification text,
										 valid_for interval) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	gid bigint;
	who			name := session_user;	-- see create_tenant()
	until		timestamptz := clock_timestamp() + valid_for;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM @extschema@.tenants t WHERE t.tenant = grant_access.tenant) THEN
		RAISE EXCEPTION 'tenant "%" does not exist', tenant USING ERRCODE = '42704';
	END IF;
	IF justification IS NULL OR btrim(justification) = '' THEN
		RAISE EXCEPTION 'a grant needs a justification' USING ERRCODE = '22023';
	END IF;
	IF valid_for IS NULL OR valid_for <= interval '0' THEN
		RAISE EXCEPTION 'valid_for must be a positive interval' USING ERRCODE = '22023';
	END IF;
	INSERT INTO @extschema@.grants (role, tenant, justification, valid_until, granted_by)
		VALUES (grant_access.role, grant_access.tenant, grant_access.justification, until, who)
		RETURNING id INTO gid;
	PERFORM @extschema@._audit_admin_event('grant_access', tenant,
		json_build_object('grant', gid, 'role', role::text, 'valid_for', valid_for::text,
						  'justification', justification)::text);
	RETURN gid;
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.revoke_access(grant_id bigint) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t text;
	who			name := session_user;	-- values: Citus refuses clock_timestamp()
	now_ts		timestamptz := clock_timestamp();	-- in a reference table's UPDATE
BEGIN
	UPDATE @extschema@.grants g SET revoked_at = now_ts, revoked_by = who
	 WHERE g.id = grant_id AND g.revoked_at IS NULL
	RETURNING g.tenant INTO t;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'grant % does not exist or is already revoked', grant_id USING ERRCODE = '42704';
	END IF;
	PERFORM @extschema@._audit_admin_event('revoke_access', t, json_build_object('grant', grant_id)::text);
END
$$;

-- issue 15: master key rotation across a Citus cluster (40_sealed.sql, 90_citus.sql)
-- Internal: the loaded master key's id (tenant_keys.master_key_id), NULL
-- without one; a Citus coordinator compares its workers' with its own
-- before it rotates (90_citus.sql).
CREATE FUNCTION @extschema@._master_key_id() RETURNS bytea
	AS 'MODULE_PATHNAME', 'toms_sealed_master_key_id' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION @extschema@._master_key_id() FROM PUBLIC;

-- Master key rotation on Citus (docs/encryption.md, "On Citus"):
-- toms.rotate_master_key() (sealed_admin.c) calls this first, as the owner
-- of toms.tenant_keys.  Once toms.tenant_keys is a reference table the
-- rewrap writes every node's copy in one distributed transaction, under the
-- master key of the node that runs it: refused on a worker, and on the
-- coordinator unless every worker has the coordinator's master key loaded
-- (a node without it could open none of the rewrapped keys); the node at
-- fault is named and nothing is rewrapped.
CREATE FUNCTION @extschema@._citus_master_key_check() RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	mine		text := encode(@extschema@._master_key_id(), 'hex');
	r			record;
BEGIN
	IF NOT @extschema@._citus_table('@extschema@.tenant_keys'::regclass) THEN
		RETURN;
	END IF;
	IF (SELECT l.groupid FROM pg_dist_local_group l) <> 0 THEN
		RAISE EXCEPTION 'toms.rotate_master_key() must run on the coordinator'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = 'toms.tenant_keys is a Citus reference table: the coordinator rewraps the copy of every node.';
	END IF;
	FOR r IN SELECT * FROM run_command_on_workers(
					'SELECT pg_catalog.encode(@extschema@._master_key_id(), ''hex'')')
			  ORDER BY nodename, nodeport LOOP
		IF NOT r.success THEN
			RAISE EXCEPTION 'toms could not check the master key of Citus node %:%', r.nodename, r.nodeport
				USING ERRCODE = 'connection_failure',
					DETAIL = format('The node answered: %s', r.result),
					HINT = 'Every node must be reachable: the rotation rewraps the copy of toms.tenant_keys on every node.';
		END IF;
		IF r.result IS DISTINCT FROM mine THEN
			RAISE EXCEPTION 'Citus node %:% does not have the master key of the coordinator', r.nodename, r.nodeport
				USING ERRCODE = 'object_not_in_prerequisite_state',
					DETAIL = 'The rotation rewraps the tenant keys of every node under the coordinator''s master key, which that node could not open.',
					HINT = 'On every node set toms.master_key_file (or _command) to the new key and toms.previous_master_key_file (or _command) to the old one, restart it, then run toms.rotate_master_key() again.';
		END IF;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_master_key_check() FROM PUBLIC;

-- issue 15: a node added or re-activated later receives toms' tables (90_citus.sql, lifecycle_worker.c)
-- On the coordinator of a cluster that toms.citus_setup() has set up: the
-- active primary nodes ("host:port") without a placement of one of toms'
-- reference tables -- a node added (citus_add_node) or re-activated
-- (citus_activate_node) since, to which Citus copies reference tables only
-- lazily.  The coordinator's lifecycle worker asks Citus to copy them
-- (replicate_reference_tables); until then such a node fails closed
-- (src/citus_catalog.c).  Empty off Citus, on a worker, and before
-- citus_setup().
CREATE FUNCTION @extschema@._citus_nodes_without_copy() RETURNS text[]
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
		RETURN '{}';
	END IF;
	IF (SELECT l.groupid FROM pg_dist_local_group l) IS DISTINCT FROM 0 THEN
		RETURN '{}';
	END IF;
	RETURN ARRAY(
		SELECT format('%s:%s', n.nodename, n.nodeport)
		  FROM pg_dist_node n
		 WHERE n.isactive AND n.noderole = 'primary'
		   AND EXISTS (SELECT 1
						 FROM unnest(@extschema@._citus_tables()) u(t)
						 JOIN pg_dist_partition p
						   ON p.logicalrelid = format('@extschema@.%I', u.t)::regclass
						  AND p.partmethod = 'n' AND p.repmodel = 't'
						 JOIN pg_dist_shard s ON s.logicalrelid = p.logicalrelid
						WHERE NOT EXISTS (SELECT 1 FROM pg_dist_placement pl
										   WHERE pl.shardid = s.shardid AND pl.groupid = n.groupid))
		 ORDER BY n.nodename, n.nodeport);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._citus_nodes_without_copy() FROM PUBLIC;

-- The triggers that tell every backend's caches of a change of toms'
-- tables fire under session_replication_role = replica too (a superuser's
-- session, a logical replication apply worker, a restore).
ALTER TABLE @extschema@.tenants ENABLE ALWAYS TRIGGER toms_invalidate;
ALTER TABLE @extschema@.members ENABLE ALWAYS TRIGGER toms_invalidate;
ALTER TABLE @extschema@.grants ENABLE ALWAYS TRIGGER toms_invalidate;
ALTER TABLE @extschema@.trusted_keys ENABLE ALWAYS TRIGGER toms_invalidate;
ALTER TABLE @extschema@.tenant_keys ENABLE ALWAYS TRIGGER tenant_keys_changed;
ALTER TABLE @extschema@.deletion_requests ENABLE ALWAYS TRIGGER toms_invalidate;
