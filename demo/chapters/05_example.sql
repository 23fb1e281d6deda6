\echo
\echo '--- The example: an awareness-training service ---------------------------'
\echo 'Two customer organisations (tenants) share one database: acme (a bank) and'
\echo 'globex (a hospital).  Their learners (employees with personal data), their'
\echo 'phishing-simulation campaigns and the results live in ordinary tables.'
\echo
SET client_min_messages = warning;
CREATE ROLE app_pool LOGIN IN ROLE toms_app;          -- the application's connection pool
CREATE ROLE trainer_anna LOGIN;                        -- acme's training manager
CREATE ROLE support_sam LOGIN;                         -- the provider's support engineer
CREATE ROLE dba_dora LOGIN IN ROLE toms_admin;         -- the provider's DBA
CREATE ROLE schema_owner NOLOGIN;                      -- owns the application schema
RESET client_min_messages;

CREATE SCHEMA training AUTHORIZATION schema_owner;
GRANT USAGE ON SCHEMA training TO app_pool, trainer_anna, support_sam, dba_dora;
SET ROLE schema_owner;
CREATE TABLE training.learners (
	tenant_id  text NOT NULL,
	id         int NOT NULL,
	name       text NOT NULL,
	email      text NOT NULL,
	department text,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE training.campaigns (
	tenant_id text NOT NULL,
	id        int NOT NULL,
	title     text NOT NULL,
	starts    date NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE training.sim_results (
	tenant_id   text NOT NULL,
	campaign_id int NOT NULL,
	learner_id  int NOT NULL,
	clicked     bool NOT NULL,
	reported    bool NOT NULL,
	at          timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, campaign_id, learner_id),
	FOREIGN KEY (tenant_id, campaign_id) REFERENCES training.campaigns,
	FOREIGN KEY (tenant_id, learner_id) REFERENCES training.learners
);
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA training TO app_pool, trainer_anna, support_sam;
RESET ROLE;

INSERT INTO training.learners VALUES
	('acme', 1, 'Ada Lovelace', 'ada@acme.example', 'Treasury'),
	('acme', 2, 'Alan Turing', 'alan@acme.example', 'IT'),
	('acme', 3, 'Grace Hopper', 'grace@acme.example', 'Risk'),
	('globex', 1, 'Hedy Lamarr', 'hedy@globex.example', 'Radiology'),
	('globex', 2, 'Carl Sagan', 'carl@globex.example', 'Cardiology');
INSERT INTO training.campaigns VALUES
	('acme', 1, 'Fake invoice from a supplier', '2026-10-01'),
	('globex', 1, 'Password expiry notice', '2026-10-15');
INSERT INTO training.sim_results (tenant_id, campaign_id, learner_id, clicked, reported) VALUES
	('acme', 1, 1, false, true), ('acme', 1, 2, true, false), ('acme', 1, 3, false, false),
	('globex', 1, 1, true, false), ('globex', 1, 2, false, true);
\echo 'Loaded: 5 learners, 2 campaigns, 5 simulation results in schema training.'
