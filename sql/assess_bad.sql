--
-- toms.assess() on a deliberately bad configuration: each mistake is
-- reported as fail or warn, naming the offending object; fixed, it is not.
--
-- Only the sentences that name this test's objects are shown, so the output
-- does not depend on which other parts of toms are installed.
CREATE FUNCTION regress_assess_says(ctl text) RETURNS TABLE (status text, says text)
	LANGUAGE sql AS $$
	SELECT a.status, e
	  FROM toms.assess() a, regexp_split_to_table(a.evidence, '; ') e
	 WHERE a.control = ctl AND e ~ 'regress_assess'
	 ORDER BY e
$$;

-- Unprotected tenant table
CREATE TABLE regress_assess_notes (tenant_id text NOT NULL, note text);
SELECT * FROM regress_assess_says('9a');
SELECT toms.protect('regress_assess_notes');
SELECT * FROM regress_assess_says('9a');
SELECT status FROM toms.assess() WHERE control = '9a';

-- toms.tenant_column_names widens what counts as tenant data
CREATE TABLE regress_assess_orgs (org_id int, name text);
SELECT * FROM regress_assess_says('9a');
SET toms.tenant_column_names = tenant_id, org_id;
SELECT * FROM regress_assess_says('9a');
-- a list of identifiers, as search_path: unquoted names fold to lower case
SET toms.tenant_column_names = 'tenant_id, "ORG_ID"';
SELECT * FROM regress_assess_says('9a');
SET toms.tenant_column_names = 'tenant_id, ORG_ID';
SELECT * FROM regress_assess_says('9a');
SET toms.tenant_column_names = 'tenant_id,';
SET toms.tenant_column_names = 'tenant_id, "org_id';
SET toms.tenant_column_names = 'tenant id';
RESET toms.tenant_column_names;
DROP TABLE regress_assess_orgs;

-- A superuser edits the catalogs behind the guard
UPDATE pg_class SET relforcerowsecurity = false WHERE oid = 'regress_assess_notes'::regclass;
SELECT * FROM regress_assess_says('9a');
UPDATE pg_class SET relforcerowsecurity = true WHERE oid = 'regress_assess_notes'::regclass;
UPDATE pg_policy SET polpermissive = false
 WHERE polrelid = 'regress_assess_notes'::regclass AND polname = 'toms_tenant';
SELECT * FROM regress_assess_says('9a');
UPDATE pg_policy SET polpermissive = true
 WHERE polrelid = 'regress_assess_notes'::regclass AND polname = 'toms_tenant';
SELECT * FROM regress_assess_says('9a');

-- Paths around the filter: a SECURITY DEFINER function of a superuser
-- naming a protected table, a user-defined function in an index
-- expression, a large object
CREATE ROLE regress_assess_su NOLOGIN SUPERUSER;
CREATE ROLE regress_assess_lo NOLOGIN;
CREATE FUNCTION regress_assess_all_notes() RETURNS bigint LANGUAGE sql SECURITY DEFINER
	AS 'SELECT count(*) FROM public.regress_assess_notes';
ALTER FUNCTION regress_assess_all_notes() OWNER TO regress_assess_su;
CREATE FUNCTION regress_assess_fold(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower($1)';
CREATE INDEX regress_assess_fold_idx ON regress_assess_notes (regress_assess_fold(note));
SELECT lo_from_bytea(424242, '\x00'::bytea) > 0 AS lo_made;
ALTER LARGE OBJECT 424242 OWNER TO regress_assess_lo;
SELECT * FROM regress_assess_says('9a');
SELECT status FROM toms.assess() WHERE control = '9a';
-- the same function not SECURITY DEFINER, or owned by an ordinary role
ALTER FUNCTION regress_assess_all_notes() SECURITY INVOKER;
SELECT * FROM regress_assess_says('9a') WHERE says ~ 'SECURITY DEFINER';
ALTER FUNCTION regress_assess_all_notes() SECURITY DEFINER;
ALTER FUNCTION regress_assess_all_notes() OWNER TO regress_assess_lo;
SELECT * FROM regress_assess_says('9a') WHERE says ~ 'SECURITY DEFINER';
DROP FUNCTION regress_assess_all_notes();
DROP INDEX regress_assess_fold_idx;
DROP FUNCTION regress_assess_fold(text);
SELECT lo_unlink(424242);
DROP ROLE regress_assess_lo, regress_assess_su;
SELECT * FROM regress_assess_says('9a');
SELECT status FROM toms.assess() WHERE control = '9a';

-- Stray BYPASSRLS and superuser roles
CREATE ROLE regress_assess_bypass LOGIN BYPASSRLS;
CREATE ROLE regress_assess_super NOLOGIN SUPERUSER;
SELECT * FROM regress_assess_says('5a');
DROP ROLE regress_assess_bypass;
SELECT * FROM regress_assess_says('5a');
DROP ROLE regress_assess_super;
SELECT status FROM toms.assess() WHERE control = '5a';

-- md5 passwords
SET password_encryption = 'md5';
SELECT status, evidence ~ 'password_encryption = md5' AS names_setting
  FROM toms.assess() WHERE control = '4c';
-- a role left from before toms, its password stored as md5 (toms' own
-- password hook refuses to store new md5 passwords)
CREATE ROLE regress_assess_md5 LOGIN VALID UNTIL 'infinity';
UPDATE pg_authid SET rolpassword = 'md5' || md5('Awareness-Regress-7-Quokka!' || rolname)
 WHERE rolname = 'regress_assess_md5';
RESET password_encryption;
SELECT * FROM regress_assess_says('4c');
DROP ROLE regress_assess_md5;
SELECT status FROM toms.assess() WHERE control = '4c';

-- Side channels: unique index without the tenant column, serial, foreign key
CREATE TABLE regress_assess_users (
	tenant_id text NOT NULL,
	id serial,
	email text,
	PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX regress_assess_users_email ON regress_assess_users (email);
CREATE UNIQUE INDEX regress_assess_users_id ON regress_assess_users (id);
SELECT toms.protect('regress_assess_users');
CREATE TABLE regress_assess_results (
	tenant_id text NOT NULL,
	user_id int REFERENCES regress_assess_users (id),
	score int
);
SELECT toms.protect('regress_assess_results');
SELECT * FROM regress_assess_says('9b');
-- fixed: uuid keys, the tenant column first in every key and reference
SELECT toms.unprotect('regress_assess_results');
DROP TABLE regress_assess_results;
DROP INDEX regress_assess_users_email, regress_assess_users_id;
ALTER TABLE regress_assess_users ALTER COLUMN id DROP DEFAULT;
DROP SEQUENCE regress_assess_users_id_seq;
ALTER TABLE regress_assess_users ALTER COLUMN id TYPE uuid USING gen_random_uuid(),
	ALTER COLUMN id SET DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX regress_assess_users_email ON regress_assess_users (tenant_id, email);
CREATE TABLE regress_assess_results (
	tenant_id text NOT NULL,
	user_id uuid,
	score int,
	FOREIGN KEY (tenant_id, user_id) REFERENCES regress_assess_users (tenant_id, id)
);
SELECT toms.protect('regress_assess_results');
SELECT * FROM regress_assess_says('9b');
SELECT status FROM toms.assess() WHERE control = '9b';

-- Least privilege: admin functions and protected tables of application roles
CREATE ROLE regress_assess_app LOGIN IN ROLE toms_app;
-- Pools: a token-using login role left at toms.context_scope = session
SELECT status, says ~ 'context_scope = session.*regress_assess_app' AS warns
  FROM regress_assess_says('9b') WHERE says ~ 'context_scope';
ALTER ROLE regress_assess_app SET toms.context_scope = 'transaction';
SELECT count(*) AS warnings FROM regress_assess_says('9b') WHERE says ~ 'context_scope';
GRANT EXECUTE ON FUNCTION toms.create_tenant(text, text) TO regress_assess_app;
GRANT EXECUTE ON FUNCTION toms.assess() TO PUBLIC;
ALTER TABLE regress_assess_notes OWNER TO regress_assess_app;
SELECT * FROM regress_assess_says('4a');
SELECT status, evidence ~ 'assess\(\) EXECUTE granted to PUBLIC' AS names_public
  FROM toms.assess() WHERE control = '4a';
REVOKE EXECUTE ON FUNCTION toms.create_tenant(text, text) FROM regress_assess_app;
REVOKE EXECUTE ON FUNCTION toms.assess() FROM PUBLIC;
ALTER TABLE regress_assess_notes OWNER TO CURRENT_USER;
SELECT status FROM toms.assess() WHERE control = '4a';

-- Only toms_auditor and toms_admin assess
SET ROLE regress_assess_app;
SELECT count(*) FROM toms.assess();
SELECT toms.assess_report();
RESET ROLE;
CREATE ROLE regress_assess_auditor IN ROLE toms_auditor;
SET ROLE regress_assess_auditor;
SELECT count(*) > 0 AS assessed FROM toms.assess();
RESET ROLE;

-- With all of that fixed, nothing fails, and every check ran
SELECT control, status, evidence FROM toms.assess()
 WHERE status = 'fail' OR evidence LIKE 'check could not run%';

-- Every run is recorded (measure 11a)
SELECT n_fail, failed FROM toms.assessments ORDER BY id DESC LIMIT 1;

-- The report: text and Markdown, each ending with the summary line
SELECT regexp_replace(toms.assess_report(), '.*\n(\d+ pass, \d+ warn, \d+ fail, \d+ n/a)\n$', '\1 (summary)')
	   ~ '^\d+ pass, \d+ warn, 0 fail, \d+ n/a \(summary\)$' AS text_summary;
SELECT toms.assess_report('markdown') ~ '\| control \| measure \| status \| evidence \|' AS md_table,
	   toms.assess_report('markdown') ~ '\n\d+ pass, \d+ warn, 0 fail, \d+ n/a\n$' AS md_summary;
SELECT toms.assess_report('pdf');

SELECT toms.unprotect(t)
  FROM unnest('{regress_assess_results,regress_assess_users,regress_assess_notes}'::regclass[]) t;
DROP TABLE regress_assess_results, regress_assess_users, regress_assess_notes;
DROP ROLE regress_assess_app, regress_assess_auditor;
DROP FUNCTION regress_assess_says(text);
