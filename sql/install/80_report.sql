-- The evidence report: toms.assess_report('html') (docs/assess.md,
-- "Evidence report"; issue 19).  One self-contained HTML page for an
-- auditor: per measure its status, the evidence, the tests that prove the
-- control, the audit-chain verification and a chart of audit volume and
-- denials per day.

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
