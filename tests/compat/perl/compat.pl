#!/usr/bin/perl
# Compatibility checks for Perl DBI with DBD::MariaDB and DBD::mysql (client-side and
# server-side prepares) through envproxy. Usage: perl compat.pl PROXY_PORT. Prints one JSON
# line per check: {"check": NAME, "ok": true|false, "detail": "..."}.
use strict;
use warnings;
use DBI;
use JSON::PP;

my $port = shift or die "usage: compat.pl PORT\n";
my $json = JSON::PP->new->canonical;

sub report {
    my ($name, $fn) = @_;
    my $detail = eval { $fn->() };
    if ($@) {
        my $e = $@; chomp $e;
        print $json->encode({check => $name, ok => JSON::PP::false, detail => $e}), "\n";
    } else {
        print $json->encode({check => $name, ok => JSON::PP::true, detail => "$detail"}), "\n";
    }
}

sub expect {
    my ($got, $want, $what) = @_;
    $got = defined $got ? $got : 'undef';
    die "$what: got '$got', want '$want'\n" unless $got eq $want;
    return "$what ok";
}

for my $drv (qw(MariaDB mysql)) {
    my $p = lc $drv;  # attribute prefix: mariadb_ / mysql_
    for my $server (0, 1) {
        my $mode = $server ? "server" : "client";
        my $connect = sub {
            my ($db) = @_;
            return DBI->connect("DBI:$drv:database=$db;host=127.0.0.1;port=$port", "alice",
                                "alice-pw", {RaiseError => 1, PrintError => 0, AutoCommit => 1,
                                             "${p}_server_prepare" => $server});
        };
        report("${p}_${mode}_connect_prod", sub {
            my $dbh = $connect->('shop@prod');
            my ($db, $env) = $dbh->selectrow_array(
                "SELECT DATABASE(), (SELECT 1)");
            expect($db, 'shop', 'DATABASE()');
            my ($e) = $dbh->selectrow_array("SELECT env FROM __envs.session");
            return expect($e, 'prod', '__envs.session env');
        });
        report("${p}_${mode}_prepared_read", sub {
            my $dbh = $connect->('shop@prod');
            my ($s) = $dbh->selectrow_array("SELECT status FROM orders WHERE id = ?", undef, 3);
            return expect($s, 'shipped', 'prod order 3');
        });
        report("${p}_${mode}_prepared_envs", sub {
            my $dbh = $connect->('shop@prod');
            my ($n, $a) = $dbh->selectrow_array(
                "SELECT name, access FROM __envs.environments WHERE name = ?", undef, 'prod');
            return expect("$n/$a", 'prod/read', '__envs.environments row');
        });
        report("${p}_${mode}_write_refused_1290", sub {
            my $dbh = $connect->('shop@prod');
            eval { $dbh->do("UPDATE orders SET status = ? WHERE id = 3", undef, 'x') };
            die "the UPDATE was not refused\n" unless $@;
            return expect($dbh->err, 1290, 'error code');
        });
        report("${p}_${mode}_use_statement", sub {
            # A prepared USE gets 1295 and the drivers retry it as a plain statement.
            my $dbh = $connect->('shop');
            $dbh->do("USE `shop\@prod`");
            my ($e) = $dbh->selectrow_array("SELECT env FROM __envs.session");
            return expect($e, 'prod', 'env after USE');
        });
        report("${p}_${mode}_transaction_then_use_prod", sub {
            my $dbh = $connect->('shop');
            $dbh->begin_work;
            $dbh->do("USE `shop\@prod`");
            my ($n) = $dbh->selectrow_array("SELECT COUNT(*) FROM orders WHERE id = 12");
            $dbh->commit;
            return expect($n, 1, 'prod-only order 12 inside the transaction');
        });
        report("${p}_${mode}_schema_names", sub {
            # In the text: a bound parameter is a value, never rewritten (docs/compat.md).
            my $dbh = $connect->('shop');
            my $tables = $dbh->selectcol_arrayref(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = " .
                "'billing\@prod' AND TABLE_NAME LIKE ?", undef, '%');
            return expect(join(',', @$tables), 'invoices', 'billing@prod tables');
        });
    }
}
