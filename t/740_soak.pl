# Soak with faults, 60 seconds (bench/soak/run runs the same code longer;
# docs/operations.md, "Soak"): 16 clients over 100 tenants -- PASETO token and
# member contexts, a need-to-know grant, reads, writes, sealed values --
# while toms' workers are terminated and one is killed with SIGKILL, the
# postmaster is killed with kill -9 twice, a streaming standby goes away and
# comes back, tenants and subjects are deleted (both stages), tenant keys
# are rotated and re-sealed and retention purges.  At the end:
# - no client saw or wrote another tenant's row;
# - every statement of every committed transaction has its audit record;
# - verify_audit() is ok;
# - every deletion finished with a valid certificate;
# - the workers run and stay up.
# The invariants are checked in bench/soak/Soak.pm (check).
use strict;
use warnings;
use lib 'bench/soak';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Soak;

my $soak = Soak->new(seconds => $ENV{TOMS_SOAK_SECONDS} // 60, clients => $ENV{TOMS_SOAK_CLIENTS} // 16);
$soak->setup;
$soak->run;
$soak->check;
my $fig = $soak->figures;
diag($fig);
if (my $out = $ENV{TOMS_SOAK_REPORT})
{
	open(my $fh, '>', $out) or die "cannot write $out: $!";
	print $fh "$fig\n";
	close $fh;
}
done_testing();
