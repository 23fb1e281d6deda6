# t/TomsNode.pm -- set-up shared by toms' TAP tests (t/ is on PERL5LIB).
package TomsNode;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(start_with_password_logins start_standbys);

# Start an initialised node that takes password (scram-sha-256) logins on
# 127.0.0.1 and trusts local ones, with $conf added to postgresql.conf.
# Returns a VALID UNTIL 30 days ahead, for the roles the test creates
# (toms.password_max_age wants one).
sub start_with_password_logins
{
	my ($node, $conf) = @_;

	$node->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'\n" . ($conf // ''));
	open(my $hba, '>', $node->data_dir . '/pg_hba.conf') or die "cannot write pg_hba.conf: $!";
	print $hba "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
	close($hba);
	$node->start;
	return $node->safe_psql('postgres', "SELECT (now() + interval '30 days')::text");
}

# Streaming standbys of $primary, from a fresh base backup, started, in
# the order of @names.
sub start_standbys
{
	my ($primary, @names) = @_;
	my @standbys;

	$primary->backup('base');
	for my $name (@names)
	{
		my $s = PostgreSQL::Test::Cluster->new($name);
		$s->init_from_backup($primary, 'base', has_streaming => 1);
		$s->start;
		push @standbys, $s;
	}
	return @standbys;
}

1;
