/* test_grants.c: reading SHOW GRANTS output: which accounts can change something, with the
 * exact lines MariaDB 10.11 and MySQL 8 print (column lists, routines, roles, PROXY,
 * GRANT OPTION, passwords after TO) and lines that cannot be read. */
#include "grants.h"
#include "unit.h"

#include <string.h>

/* Feeds each line of text (lines separated by '\n') and returns the verdict. */
static const char *verdict_of(const char *text, grants_info *g)
{
    grants_init(g);
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        grants_add_line(g, p, n);
        p += n + (nl ? 1 : 0);
    }
    return grants_verdict(g);
}

static void test_select_only(void)
{
    grants_info g;
    CHECK_STR(verdict_of("GRANT USAGE ON *.* TO `ro`@`127.0.0.1` IDENTIFIED BY PASSWORD "
                         "'*B69027D44F6E5EDC07F1AEAD1477967B16F28227'\n"
                         "GRANT SELECT, SHOW VIEW ON `shop`.* TO `ro`@`127.0.0.1`\n"
                         "GRANT SELECT (`id`, `name`) ON `shop`.`customers` TO `ro`@`127.0.0.1`",
                         &g),
              "no");
    CHECK_STR(g.what, "");
    CHECK_STR(verdict_of("GRANT PROCESS, SHOW DATABASES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO "
                         "`mon`@`%`",
                         &g),
              "no");
    /* MySQL 8 spells some privileges with underscores. */
    CHECK_STR(
        verdict_of("GRANT SELECT ON *.* TO `u`@`%`\nGRANT SHOW_ROUTINE ON *.* TO `u`@`%`", &g),
        "no");
}

static void test_writable(void)
{
    grants_info g;
    CHECK_STR(verdict_of("GRANT ALL PRIVILEGES ON *.* TO `app`@`127.0.0.1` IDENTIFIED BY "
                         "PASSWORD '*6C7A370C07660BC788681B3238D93E08BD74303C' WITH GRANT OPTION",
                         &g),
              "yes");
    CHECK_STR(g.what, "ALL PRIVILEGES ON *.*, GRANT OPTION");
    CHECK(strstr(g.what, "6C7A") == NULL); /* never the password hash */
    /* One writable column among readable ones. */
    CHECK_STR(
        verdict_of("GRANT SELECT (`id`), UPDATE (`name`) ON `shop`.`customers` TO `ro`@`h`", &g),
        "yes");
    CHECK_STR(g.what, "UPDATE ON `shop`.`customers`");
    CHECK_STR(verdict_of("GRANT EXECUTE ON PROCEDURE `mysql`.`p` TO `ro`@`h`", &g), "yes");
    CHECK_STR(g.what, "EXECUTE ON PROCEDURE `mysql`.`p`");
    CHECK_STR(verdict_of("GRANT PROXY ON ``@`%` TO `rr`@`127.0.0.1`", &g), "yes");
    CHECK_STR(verdict_of("GRANT SELECT, LOCK TABLES ON `shop`.* TO `u`@`%`", &g), "yes");
    CHECK_STR(g.what, "LOCK TABLES ON `shop`.*");
    CHECK_STR(verdict_of("GRANT CREATE TEMPORARY TABLES ON `shop`.* TO `u`@`%`", &g), "yes");
    CHECK_STR(
        verdict_of("GRANT SELECT ON *.* TO `u`@`%`\nGRANT INSERT ON `other`.`t` TO `u`@`%`", &g),
        "yes");
    /* MySQL 8 dynamic privileges, and names nobody knows yet. */
    CHECK_STR(verdict_of("GRANT BINLOG_ADMIN,CONNECTION_ADMIN ON *.* TO `u`@`%`", &g), "yes");
    CHECK_STR(g.what, "BINLOG_ADMIN ON *.*, CONNECTION_ADMIN ON *.*");
    CHECK_STR(verdict_of("GRANT FUTURE PRIVILEGE ON *.* TO `u`@`%`", &g), "yes");
    CHECK_STR(verdict_of("GRANT SELECT ON `shop`.* TO `u`@`%` WITH GRANT OPTION", &g), "yes");
    CHECK_STR(g.what, "GRANT OPTION");
    /* Keywords inside quotes are names, not syntax. */
    CHECK_STR(verdict_of("GRANT SELECT ON `a TO b`.* TO `u`@`%`", &g), "no");
    CHECK_STR(verdict_of("GRANT SELECT ON `x`.* TO `u`@`%` IDENTIFIED BY PASSWORD 'WITH GRANT "
                         "OPTION'",
                         &g),
              "no");
}

static void test_unreadable(void)
{
    grants_info g;
    CHECK_STR(verdict_of("GRANT SELECT ON `shop`.*", &g), "yes"); /* no TO */
    CHECK_STR(verdict_of("something else entirely", &g), "yes");
    CHECK_STR(
        verdict_of("SET DEFAULT ROLE `r` FOR `u`@`%`\nREVOKE INSERT ON `shop`.* FROM `u`@`%`", &g),
        "no");
    CHECK_STR(verdict_of("", &g), "no");
}

static void test_roles(void)
{
    grants_info g;
    /* MariaDB: the default role's grants are expanded in SHOW GRANTS. */
    CHECK_STR(verdict_of("GRANT `r_r` TO `rr`@`127.0.0.1`\n"
                         "GRANT USAGE ON *.* TO `rr`@`127.0.0.1`\n"
                         "GRANT `r_w` TO `r_r`\n"
                         "GRANT USAGE ON *.* TO `r_r`\n"
                         "GRANT SELECT ON `shop`.* TO `r_r`\n"
                         "GRANT USAGE ON *.* TO `r_w`\n"
                         "GRANT INSERT ON `shop`.* TO `r_w`\n"
                         "SET DEFAULT ROLE `r_r` FOR `rr`@`127.0.0.1`",
                         &g),
              "yes");
    CHECK_INT(g.n_roles, 2);
    CHECK(!grants_role_pending(&g, 0));
    CHECK(!grants_role_pending(&g, 1));
    /* Not active: the role's grants must be read with SHOW GRANTS FOR. */
    CHECK_STR(verdict_of("GRANT `reader` TO `u`@`%`\nGRANT USAGE ON *.* TO `u`@`%`", &g), "no");
    CHECK_INT(g.n_roles, 1);
    CHECK_STR(g.roles[0], "`reader`");
    CHECK(grants_role_pending(&g, 0));
    grants_add_line(&g, "GRANT SELECT ON `shop`.* TO `reader`", 36);
    CHECK(!grants_role_pending(&g, 0));
    CHECK_STR(grants_verdict(&g), "no");
    /* MySQL 8 roles carry a host; several per line. */
    CHECK_STR(verdict_of("GRANT `a`@`%`,`b``c`@`%` TO `u`@`%`", &g), "no");
    CHECK_INT(g.n_roles, 2);
    CHECK_STR(g.roles[1], "`b``c`@`%`");
    CHECK_STR(verdict_of("GRANT `r` TO `u`@`%` WITH ADMIN OPTION", &g), "yes");
    CHECK_STR(g.what, "ADMIN OPTION");
    /* A role name that is not as the server prints one is not sent back. */
    CHECK_STR(verdict_of("GRANT `r`; DROP TABLE x TO `u`@`%`", &g), "unknown");
    CHECK_INT(g.n_roles, 0);
    /* An unterminated name (the last backtick is a doubled one) is not sent back either. */
    CHECK_STR(verdict_of("GRANT `ab`` TO `u`@`%`", &g), "yes");
    CHECK_INT(g.n_roles, 0);
    CHECK_STR(verdict_of("GRANT `a`@`h`x TO `u`@`%`", &g), "unknown");
    CHECK_INT(g.n_roles, 0);
    grants_init(&g);
    grants_note_unknown(&g, "role `r` (its grants could not be read)");
    CHECK_STR(grants_verdict(&g), "unknown");
}

static void test_bounds(void)
{
    grants_info g;
    grants_init(&g);
    char line[300];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof(line), "GRANT INSERT ON `db%d`.* TO `u`@`%%`", i);
        grants_add_line(&g, line, (size_t)n);
    }
    CHECK(strlen(g.what) < sizeof(g.what));
    CHECK(strstr(g.what, "...") != NULL);
    grants_init(&g);
    for (int i = 0; i < 40; i++) {
        int n = snprintf(line, sizeof(line), "GRANT `role%d` TO `u`@`%%`", i);
        grants_add_line(&g, line, (size_t)n);
    }
    CHECK_INT(g.n_roles, GRANTS_MAX_ROLES);
    /* Lines read twice (a role's grants shown again) are said once. */
    grants_info d;
    grants_init(&d);
    grants_add_line(&d, "GRANT INSERT ON `s`.* TO `r`", 28);
    grants_add_line(&d, "GRANT INSERT ON `s`.* TO `r`", 28);
    CHECK_STR(d.what, "INSERT ON `s`.*");
    CHECK_STR(grants_verdict(&g), "unknown");
    /* Unterminated quotes and parentheses end at the line's end. */
    grants_init(&g);
    grants_add_line(&g, "GRANT SELECT (`a ON x TO y", 26);
    CHECK_STR(grants_verdict(&g), "yes");
    grants_init(&g);
    grants_add_line(&g, "GRANT `r TO u", 13);
    CHECK_STR(grants_verdict(&g), "yes");
}

/* Whether the account is shown every stored routine: SELECT (or ALL) on mysql.proc. */
static void test_reads_routines(void)
{
    grants_info g;
    verdict_of("GRANT SELECT, SHOW VIEW ON `shop`.* TO `ro`@`%`", &g);
    CHECK(!g.reads_routines);
    verdict_of("GRANT SELECT, SHOW VIEW ON `shop`.* TO `ro`@`%`\n"
               "GRANT SELECT ON `mysql`.`proc` TO `ro`@`%`",
               &g);
    CHECK(g.reads_routines);
    verdict_of("GRANT SELECT ON mysql.* TO `ro`@`%`", &g);
    CHECK(g.reads_routines);
    verdict_of("GRANT SELECT ON *.* TO `ro`@`%`", &g);
    CHECK(g.reads_routines);
    verdict_of("GRANT ALL PRIVILEGES ON *.* TO `app`@`%` WITH GRANT OPTION", &g);
    CHECK(g.reads_routines);
    verdict_of("GRANT SELECT ON *.* TO `u`@`%`\nGRANT SHOW_ROUTINE ON *.* TO `u`@`%`", &g);
    CHECK(g.reads_routines);
    verdict_of("GRANT SHOW_ROUTINE ON *.* TO `u`@`%`", &g);
    CHECK(g.reads_routines);
    verdict_of("GRANT SHOW CREATE ROUTINE ON `shop`.* TO `u`@`%`", &g);
    CHECK(g.reads_routines);
    CHECK(!g.reads_triggers);
    verdict_of("GRANT SELECT, INSERT, UPDATE ON `shop`.* TO `w`@`%`", &g);
    CHECK(!g.reads_triggers);
    verdict_of("GRANT SELECT, TRIGGER ON `shop`.* TO `w`@`%`", &g);
    CHECK(g.reads_triggers);
    verdict_of("GRANT ALL PRIVILEGES ON `shop`.* TO `w`@`%`", &g);
    CHECK(g.reads_triggers && !g.reads_routines);
    verdict_of("GRANT INSERT ON `mysql`.`proc` TO `x`@`%`\n"
               "GRANT SELECT ON `mysql`.`procs_priv` TO `x`@`%`",
               &g);
    CHECK(!g.reads_routines);
}

int main(void)
{
    test_select_only();
    test_reads_routines();
    test_writable();
    test_unreadable();
    test_roles();
    test_bounds();
    return unit_report("test_grants");
}
