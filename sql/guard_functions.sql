-- toms' own functions (issue 16): a superuser's UPDATE of pg_proc has no
-- hook, so it is detected, not refused.  CREATE EXTENSION recorded each
-- function's fingerprint; toms' lifecycle worker compares them on every
-- round of the database and raises an incident; toms.check_functions()
-- says which function differs.
SELECT count(*) > 50 AS fingerprinted FROM toms.function_fingerprints;
SELECT * FROM toms.check_functions();
SELECT count(*) AS open_before FROM toms.incidents
 WHERE kind = 'toms_function_changed' AND NOT EXISTS (SELECT 1 FROM toms.incident_closures c WHERE c.incident_id = incidents.id);
-- The edit, committed.
UPDATE pg_proc SET prosrc = prosrc || ' '
 WHERE oid = 'toms.assess_report(text)'::regprocedure;
-- The worker's next round raises the incident (bounded wait: 60 s).
DO $$
BEGIN
	FOR i IN 1..600 LOOP
		PERFORM toms.audit_flush();
		EXIT WHEN EXISTS (SELECT 1 FROM toms.incidents
						   WHERE kind = 'toms_function_changed' AND NOT EXISTS (SELECT 1 FROM toms.incident_closures c WHERE c.incident_id = incidents.id));
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT kind, severity, detail FROM toms.incidents
 WHERE kind = 'toms_function_changed' AND NOT EXISTS (SELECT 1 FROM toms.incident_closures c WHERE c.incident_id = incidents.id);
SELECT * FROM toms.check_functions();
-- Put it back: nothing differs any more.
UPDATE pg_proc SET prosrc = left(prosrc, -1)
 WHERE oid = 'toms.assess_report(text)'::regprocedure;
SELECT * FROM toms.check_functions();
