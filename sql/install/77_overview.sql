-- toms.tenants_overview (docs/tenancy.md, "Overview"; issue 20): each
-- tenant on one row, with what a DBA asks first -- who may enter it, who
-- has need-to-know access now, where its data lives, its keys, and whether
-- it is being deleted or held.  Read from toms' own tables only (no scan of
-- the protected tables), for toms_admin and toms_auditor.
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
