/* schema_names.c: `db@env` where a statement (COM_QUERY, COM_STMT_PREPARE) names a schema (`shop@prod`.orders, SHOW TABLES
 * FROM `shop@prod`, information_schema ... TABLE_SCHEMA = 'shop@prod'): the text is rewritten
 * to name `shop` (rewrite.c) and the statement runs in prod, as if it carried
 * `/\* env=prod db=shop *\/`. The policy check later reads the rewritten text, the one the
 * server gets. */
#include "envproxy.h"
#include "log.h"
#include "rewrite.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How the session's statements are read (the rewrites need to know where quotes end as the
 * server will): the sql_mode of its connection where one is held, else the one the session
 * set, which its next connection gets before the statement runs. False when unknown. */
static bool session_mode(client *c, sql_mode_flags *mode)
{
    memset(mode, 0, sizeof(*mode));
    backend *held = c->env ? client_held(c, env_index(c->p, c->env)) : NULL;
    if (held) {
        *mode = held->mode;
    } else {
        for (int i = 0; i < c->n_vars; i++)
            if (strcasecmp(c->vars[i].name, "sql_mode") == 0)
                sqlpolicy_mode_from_string(c->vars[i].value, strlen(c->vars[i].value), mode);
    }
    return !mode->unknown && !mode->unreadable;
}

/* Replaces c->cmd's statement (after the routing comment) with text. */
static void replace_statement(client *c, size_t hint_end, const char *text, size_t len)
{
    pbuf cmd;
    pbuf_init(&cmd);
    pbuf_u8(&cmd, c->cmd.data[0]); /* COM_QUERY or COM_STMT_PREPARE */
    pbuf_put(&cmd, c->cmd.data + 1, hint_end);
    pbuf_put(&cmd, text, len);
    pbuf_reset(&c->cmd);
    pbuf_put(&c->cmd, cmd.data, cmd.len);
    pbuf_free(&cmd);
}

bool client_rewrite_users(client *c, const route_hint *h)
{
    const char *sql = (const char *)c->cmd.data + 1;
    size_t len = c->cmd.len - 1;
    if (len <= h->end)
        return true;
    sql_mode_flags mode;
    /* Only where the lexer reads the text as the server does: its mode, and a character set
     * whose multi-byte characters never hold a quote or a backslash byte. */
    if (!session_mode(c, &mode) || !client_charset_readable(c))
        return true;
    char user[ROUTE_NAME_MAX + 64], current[ROUTE_NAME_MAX + 8];
    snprintf(user, sizeof(user), "%s@%s", c->user, c->host);
    snprintf(current, sizeof(current), "%s@%%", c->user);
    char *out;
    size_t out_len;
    int rc = rewrite_user_calls(sql + h->end, len - h->end, &mode, user, current, &out, &out_len);
    if (rc < 0) {
        client_send_err(c, 1041, "HY000", "envproxy: out of memory");
        client_command_done(c);
        return false;
    }
    if (rc == 1) {
        replace_statement(c, h->end, out, out_len);
        free(out);
    }
    return true;
}

bool client_rewrite_schemata(client *c, const route_hint *h)
{
    const char *sql = (const char *)c->cmd.data + 1;
    size_t len = c->cmd.len - 1;
    if (c->dump_client || len <= h->end || !c->route.env)
        return true; /* a dump lists the server's databases only, as for SHOW DATABASES */
    /* The derived table has MariaDB's columns of SCHEMATA. */
    health_view v;
    health_get(&c->p->health[env_index(c->p, c->route.env)], &v);
    if (!strstr(v.version, "MariaDB"))
        return true;
    sql_mode_flags mode;
    if (!session_mode(c, &mode))
        return true;
    char *out;
    size_t out_len;
    int rc = rewrite_schemata_virtual(sql + h->end, len - h->end, &mode, &out, &out_len);
    if (rc < 0) {
        client_send_err(c, 1041, "HY000", "envproxy: out of memory");
        client_command_done(c);
        return false;
    }
    if (rc == 0)
        return true;
    replace_statement(c, h->end, out, out_len);
    free(out);
    return true;
}

bool client_rewrite_schemas(client *c, route_hint *h)
{
    const char *sql = (const char *)c->cmd.data + 1;
    size_t len = c->cmd.len - 1;
    if (len <= h->end || !memchr(sql + h->end, '@', len - h->end))
        return true;
    const config *cfg = c->p->cfg;
    const char *names[ROUTE_MAX_ENVS * 4];
    int n = 0;
    for (int i = 0; i < cfg->n_envs && n < (int)(sizeof(names) / sizeof(names[0])); i++)
        names[n++] = cfg->envs[i].name;
    rewrite_envs envs = {names, n};
    /* Read with the sql_mode of the session's connection where one is held: the rewrite
     * needs to know where quotes end as the server will. */
    sql_mode_flags mode;
    if (!session_mode(c, &mode))
        return true; /* left as it is; the policy check decides */
    char *out, env[ROUTE_NAME_MAX + 1], db[ROUTE_NAME_MAX + 1], err[200];
    size_t out_len;
    int rc = rewrite_schema_names(sql + h->end, len - h->end, &mode, &envs, &out, &out_len, env,
                                  db, err, sizeof(err));
    if (rc == 0)
        return true;
    if (rc < 0) {
        client_send_err(c, 1064, "42000", "envproxy: %s", err);
        client_command_done(c);
        return false;
    }
    if (h->present && (h->all_envs || h->n_envs > 1 || h->n_compare ||
                       (h->n_envs == 1 && strcmp(h->envs[0], env) != 0))) {
        free(out);
        client_send_err(c, 1064, "42000",
                        "envproxy: the statement names a database in environment '%s' but its "
                        "routing hint sends it elsewhere",
                        env);
        client_command_done(c);
        return false;
    }
    /* The routing comment stays as it was; the statement after it is replaced. */
    pbuf cmd;
    pbuf_init(&cmd);
    pbuf_u8(&cmd, c->cmd.data[0]); /* COM_QUERY or COM_STMT_PREPARE */
    pbuf_put(&cmd, sql, h->end);
    pbuf_put(&cmd, out, out_len);
    free(out);
    pbuf_reset(&c->cmd);
    pbuf_put(&c->cmd, cmd.data, cmd.len);
    pbuf_free(&cmd);
    log_debug("conn %u: schema names of env %s rewritten", c->id, env);
    if (!c->env || strcmp(c->env->name, env) != 0) {
        /* Another environment than the session's: this statement goes there. */
        h->present = true;
        h->n_envs = 1;
        route_copy_name(h->envs[0], sizeof(h->envs[0]), env);
        if (!h->has_db) {
            h->has_db = true;
            route_copy_name(h->db, sizeof(h->db), db);
        }
    }
    return true;
}
