-- The examples' schema and roles, run once by a superuser / toms_admin on
-- a database that has the extension (examples/README.md).  The identity
-- service's public key is trusted separately (node node/idp.mjs keygen
-- prints the call).
CREATE ROLE app_pool LOGIN IN ROLE toms_app;     -- the applications' pool user

CREATE SCHEMA notes_app;
CREATE TABLE notes_app.notes (
	tenant_id  text NOT NULL,
	id         uuid NOT NULL DEFAULT gen_random_uuid(),
	author     text NOT NULL,
	body       text NOT NULL,
	secret     toms.sealed,                   -- sealed under the tenant's key
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id)
);
GRANT USAGE ON SCHEMA notes_app TO app_pool;
GRANT SELECT, INSERT, UPDATE, DELETE ON notes_app.notes TO app_pool;

SELECT toms.create_tenant('acme', 'ACME Bank');
SELECT toms.create_tenant('globex', 'Globex Hospital');
SELECT toms.protect('notes_app.notes', sensitive => '{secret}');
