\echo
\echo '=== toms demo: an awareness-training SaaS with two customer tenants ==='
\echo
\echo 'A DBA installs toms (the cluster preloads it: shared_preload_libraries = toms).'
\echo
CREATE EXTENSION toms;
SELECT extname, extversion FROM pg_extension WHERE extname = 'toms';
