-- Monitoring (docs/monitoring.md; issue 19): what an operator alerts on,
-- as numbers a scraper reads in one query.  contrib/prometheus/queries.yaml
-- exports these views through Debian's prometheus-postgres-exporter.
--
-- Counts and ages only: no tenant id, role name or statement leaves
-- through these views, so they are granted to pg_monitor (the role
-- monitoring agents are given) as well as to toms_auditor and toms_admin.
-- SECURITY DEFINER functions read toms' tables and the login state, which
-- pg_monitor may not read itself.

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
