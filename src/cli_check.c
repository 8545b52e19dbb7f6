/* cli_check.c: `envproxy check` asks each backend what envproxy's account there may do.
 *
 * A command-line tool, not the proxy: it blocks, one environment after the other, each with
 * short connect and read timeouts. What it finds are warnings, never a failure: a backend
 * that is down today does not make a configuration wrong. */
#include "envproxy.h"
#include "grants.h"
#include "secret.h"

#include <stdio.h>
#include <string.h>

#define CHECK_TIMEOUT_S 3

/* Runs sql and feeds every row's first column to g. Returns 0, or -1 with the error. */
static int read_grants(MYSQL *m, const char *sql, grants_info *g)
{
    if (mysql_query(m, sql))
        return -1;
    MYSQL_RES *res = mysql_use_result(m);
    if (!res)
        return mysql_errno(m) ? -1 : 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        unsigned long *len = mysql_fetch_lengths(res);
        if (row[0] && len)
            grants_add_line(g, row[0], len[0]);
    }
    int rc = mysql_errno(m) ? -1 : 0;
    mysql_free_result(res);
    return rc;
}

static void check_env(const cfg_env *e)
{
    const char *access = e->access == ACCESS_READ_ONLY ? "read_only" : "read_write";
    printf("env %s (%s): ", e->name, access);
    if (secret_is_encrypted(e->password)) {
        printf("WARNING: not checked: its password could not be decrypted\n");
        return;
    }
    MYSQL *m = mysql_init(NULL);
    if (!m) {
        printf("WARNING: not checked: out of memory\n");
        return;
    }
    unsigned timeout = CHECK_TIMEOUT_S, zero = 0;
    my_bool off = 0, on = 1;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &zero);
    if (e->tls_mode != BTLS_DISABLED)
        mysql_ssl_set(m, NULL, NULL, e->tls_ca, NULL, NULL);
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, e->tls_mode >= BTLS_REQUIRED ? &on : &off);
    /* verify_ca too: the password must not reach a server whose certificate is not
     * checked (a host name mismatch then shows as a warning, never as a pass). */
    if (e->tls_mode >= BTLS_VERIFY_CA)
        mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
    if (!mysql_real_connect(m, e->host, e->user, e->password, NULL, (unsigned)e->port, NULL, 0)) {
        printf("WARNING: cannot connect to %s:%d as '%s': %s\n", e->host, e->port, e->user,
               mysql_error(m));
        mysql_close(m);
        return;
    }
    printf("reachable (%s); ", mysql_get_server_info(m));
    grants_info g;
    grants_init(&g);
    if (read_grants(m, "SHOW GRANTS", &g)) {
        char why[300];
        snprintf(why, sizeof(why), "SHOW GRANTS failed: %s", mysql_error(m));
        grants_note_unknown(&g, why);
    }
    for (int i = 0; i < g.n_roles; i++) {
        if (!grants_role_pending(&g, i))
            continue;
        char sql[GRANTS_NAME_MAX + 32], role[GRANTS_NAME_MAX];
        snprintf(role, sizeof(role), "%s", g.roles[i]);
        snprintf(sql, sizeof(sql), "SHOW GRANTS FOR %s", role);
        if (read_grants(m, sql, &g) && mysql_errno(m) < 2000) {
            /* MariaDB shows a role's grants only while it is active: take it on. */
            snprintf(sql, sizeof(sql), "SET ROLE %s", role);
            if (mysql_query(m, sql) == 0)
                read_grants(m, "SHOW GRANTS", &g);
        }
        if (grants_role_pending(&g, i)) {
            char why[GRANTS_NAME_MAX + 48];
            snprintf(why, sizeof(why), "role %s (its grants cannot be read)", role);
            grants_note_unknown(&g, why);
        }
    }
    mysql_close(m);
    const char *v = grants_verdict(&g);
    if (strcmp(v, "no") == 0)
        printf("the backend account '%s' can only read\n", e->user);
    else if (e->access == ACCESS_READ_WRITE)
        printf("the backend account '%s' can change things (as a read_write environment "
               "needs)\n",
               e->user);
    else if (strcmp(v, "yes") == 0)
        printf("WARNING: the backend account '%s' can change things: %s. Give envproxy an "
               "account with SELECT only here (docs/policy.md)\n",
               e->user, g.what);
    else
        printf("WARNING: cannot tell whether the backend account '%s' can change things: %s\n",
               e->user, g.what);
}

void cli_check_backends(config *cfg)
{
    if (mysql_library_init(0, NULL, NULL)) {
        printf("WARNING: backends not checked: the MariaDB client library did not start\n");
        return;
    }
    proxy_decrypt_passwords(cfg); /* one that fails stays enc: and is skipped */
    for (int i = 0; i < cfg->n_envs; i++) {
        check_env(&cfg->envs[i]);
        fflush(stdout);
    }
    mysql_library_end();
}
