/* queries_sql.c: named queries from SQL: SELECT/SHOW/DESCRIBE over __queries.queries, and
 * CALL __queries.NAME(arg, ...), which becomes the named query's own statement with each
 * argument checked against its parameter's type and written as a literal the lexer cannot
 * misread (numbers as canonical digits, strings as _utf8mb4 X'hex'); that statement then
 * takes the ordinary path (routing, grants, read-only policy, limits, audit). */
#include "envproxy.h"
#include "http_api.h"
#include "queries_sql.h"
#include "vquery.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QS_MAX_ARGS 64

static bool mentions(const char *sql, size_t len, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(sql + i, word, n) == 0)
            return true;
    return false;
}

/* Whether the account may see a definition (no environment list, or a grant on one). */
static bool visible(const account *a, const json *def)
{
    const json *envs = json_get(def, "environments");
    if (!envs || envs->type != JSON_ARRAY || envs->u.arr.n == 0)
        return true;
    for (size_t i = 0; i < envs->u.arr.n; i++)
        if (acct_grant_for(a, json_string_value(envs->u.arr.items[i])) != GRANT_NONE)
            return true;
    return false;
}

static void send_result(client *c, const vq_result *r)
{
    result_col *cols = calloc(r->n_columns ? r->n_columns : 1, sizeof(*cols));
    const char **cells = calloc(r->n_columns * r->n_rows + 1, sizeof(*cells));
    if (!cols || !cells)
        abort();
    for (size_t i = 0; i < r->n_columns; i++) {
        cols[i].name = r->columns[i].name;
        cols[i].type = r->columns[i].type == VQ_INT ? PKT_TYPE_LONGLONG : PKT_TYPE_VAR_STRING;
    }
    for (size_t row = 0; row < r->n_rows; row++)
        for (size_t col = 0; col < r->n_columns; col++) {
            const vq_value *v = vq_result_value(r, row, col);
            cells[row * r->n_columns + col] = v && !v->is_null ? v->s : NULL;
        }
    result_send(c, cols, (int)r->n_columns, cells, (int)r->n_rows, 0);
    free(cols);
    free(cells);
}

static vq_table *queries_table(const acct_snapshot *snap, const account *acct)
{
    static const vq_column cols[] = {
        {"name", VQ_STRING},         {"description", VQ_STRING}, {"sql", VQ_STRING},
        {"params", VQ_STRING},       {"environments", VQ_STRING}, {"database", VQ_STRING},
        {"owner", VQ_STRING},
    };
    vq_table *t = vq_table_new("__queries", "queries", cols, sizeof(cols) / sizeof(cols[0]));
    if (!t)
        abort();
    for (int i = 0; i < snap->n_queries; i++) {
        const json *d = snap->queries[i].def;
        if (!visible(acct, d))
            continue;
        long row = vq_table_add_row(t);
        if (row < 0)
            abort();
        static const char *const text_keys[] = {"name", "description", "sql"};
        for (size_t k = 0; k < 3; k++) {
            const char *v = json_string_value(json_get(d, text_keys[k]));
            vq_set_str(t, (size_t)row, k, v ? v : "");
        }
        char *ps = json_serialize(json_get(d, "params"), NULL);
        char *es = json_serialize(json_get(d, "environments"), NULL);
        vq_set_str(t, (size_t)row, 3, ps);
        vq_set_str(t, (size_t)row, 4, es);
        free(ps);
        free(es);
        const char *db = json_string_value(json_get(d, "database"));
        if (db)
            vq_set_str(t, (size_t)row, 5, db);
        else
            vq_set_null(t, (size_t)row, 5);
        const char *owner = json_string_value(json_get(d, "owner"));
        vq_set_str(t, (size_t)row, 6, owner ? owner : "");
    }
    return t;
}

/* The session's database is __queries (USE __queries). */
static bool in_queries(const client *c)
{
    return c->has_db && strcasecmp(c->db, "__queries") == 0;
}

/* SELECT / SHOW / DESCRIBE over __queries (named, or the session's database). 0: not one;
 * 1: answered. */
static int select_queries(client *c, const acct_snapshot *snap, const account *acct,
                          const char *sql, size_t len)
{
    vq_query q;
    char err[512];
    if (vq_parse(sql, len, &q, err, sizeof(err)) != VQ_OK)
        return 0; /* not ours to judge: the ordinary path answers */
    const char *schema = q.schema ? q.schema : in_queries(c) ? c->db : NULL;
    if (!schema || strcasecmp(schema, "__queries") != 0 || q.kind == VQ_SHOW_DATABASES) {
        vq_query_free(&q);
        return 0;
    }
    vq_result r;
    int st;
    if (q.kind == VQ_SHOW_TABLES) {
        static const char *const names[] = {"queries"};
        st = vq_show_tables(&q, "__queries", names, 1, &r, err, sizeof(err));
    } else if (!q.table || strcasecmp(q.table, "queries") != 0) {
        st = vq_error_no_table("__queries", q.table ? q.table : "", err, sizeof(err));
    } else {
        vq_table *t = queries_table(snap, acct);
        st = q.kind == VQ_DESCRIBE || q.kind == VQ_SHOW_COLUMNS
                 ? vq_describe(&q, t, &r, err, sizeof(err))
                 : vq_execute(&q, t, &r, err, sizeof(err));
        if (st == VQ_OK)
            send_result(c, &r);
        if (st == VQ_OK)
            vq_result_free(&r);
        vq_table_free(t);
        vq_query_free(&q);
        if (st != VQ_OK)
            client_send_err(c, (uint16_t)vq_error_code(st), vq_error_sqlstate(st), "%s", err);
        client_command_done(c);
        return 1;
    }
    if (st == VQ_OK) {
        send_result(c, &r);
        vq_result_free(&r);
    } else {
        client_send_err(c, (uint16_t)vq_error_code(st), vq_error_sqlstate(st), "%s", err);
    }
    vq_query_free(&q);
    client_command_done(c);
    return 1;
}

/* ---- CALL __queries.NAME(...) -------------------------------------------------------------- */

static bool tok_is(const char *sql, sql_token t, const char *word)
{
    return (t.kind == SQLTOK_WORD && t.len == strlen(word) &&
            strncasecmp(sql + t.start, word, t.len) == 0) ||
           (t.kind == SQLTOK_QIDENT && t.len == strlen(word) + 2 &&
            strncasecmp(sql + t.start + 1, word, t.len - 2) == 0);
}

static bool punct(const char *sql, sql_token t, char ch)
{
    return t.kind == SQLTOK_PUNCT && t.len == 1 && sql[t.start] == ch;
}

/* One argument as JSON: a number, a '...' string (only '' escapes: a backslash reads
 * differently under NO_BACKSLASH_ESCAPES, so it is refused), NULL, TRUE or FALSE. */
static json *read_arg(const char *sql, sql_lexer *lx, sql_token t, char *err, size_t errlen)
{
    bool neg = false;
    if (punct(sql, t, '-')) {
        neg = true;
        t = sqllex_next(lx);
    }
    if (t.kind == SQLTOK_NUMBER && !neg && t.len < 64) {
        char e[64];
        return json_parse(sql + t.start, t.len, 1, e, sizeof(e));
    }
    if (t.kind == SQLTOK_NUMBER && neg && t.len < 63) {
        char buf[64], e[64];
        buf[0] = '-';
        memcpy(buf + 1, sql + t.start, t.len);
        return json_parse(buf, t.len + 1, 1, e, sizeof(e));
    }
    if (neg) {
        snprintf(err, errlen, "a number must follow '-'");
        return NULL;
    }
    if (t.kind == SQLTOK_STRING && sql[t.start] == '\'') {
        const char *s = sql + t.start + 1;
        size_t n = t.len - 2;
        char *v = malloc(n + 1);
        size_t o = 0;
        if (!v)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\\') {
                free(v);
                snprintf(err, errlen, "a backslash in a CALL argument is not allowed");
                return NULL;
            }
            v[o++] = s[i];
            if (s[i] == '\'')
                i++; /* '' is one quote */
        }
        json *j = json_new_string(v, o);
        free(v);
        return j;
    }
    if (tok_is(sql, t, "NULL"))
        return json_new_null();
    if (tok_is(sql, t, "TRUE") || tok_is(sql, t, "FALSE"))
        return json_new_bool(tok_is(sql, t, "TRUE"));
    snprintf(err, errlen, "arguments are numbers, '...' strings, NULL, TRUE or FALSE");
    return NULL;
}

/* The literal a checked value of type is written as. */
static void put_literal(json_buf *b, const char *type, const json *v, const char *canon)
{
    if (!v || v->type == JSON_NULL) {
        json_buf_puts(b, "NULL");
    } else if (strcmp(type, "string") == 0) {
        static const char hex[] = "0123456789ABCDEF";
        json_buf_puts(b, "_utf8mb4 X'");
        for (size_t i = 0; i < v->u.str.len; i++) {
            unsigned char ch = (unsigned char)v->u.str.s[i];
            json_buf_putc(b, hex[ch >> 4]);
            json_buf_putc(b, hex[ch & 15]);
        }
        json_buf_putc(b, '\'');
    } else if (strcmp(type, "date") == 0 || strcmp(type, "datetime") == 0) {
        json_buf_printf(b, "'%s'", canon); /* digits, '-', ':', ' ', '.' only */
    } else {
        json_buf_puts(b, canon); /* int, decimal, bool: digits, '-', '.' */
    }
}

/* Rewrites CALL __queries.NAME(...) into c->cmd. 0: not one; 1: answered (an error); 2:
 * rewritten. */
static int call_query(client *c, const acct_snapshot *snap, const account *acct,
                      const route_hint *h, const char *sql, size_t len)
{
    sql_lexer lx;
    sqllex_init(&lx, sql, len, NULL);
    lx.pos = h->end;
    sql_token t = sqllex_next(&lx);
    if (!tok_is(sql, t, "CALL"))
        return 0;
    t = sqllex_next(&lx);
    if (!tok_is(sql, t, "__queries"))
        return 0;
    char err[300] = "";
    json *args = json_new_array();
    char name[65] = "";
    t = sqllex_next(&lx);
    sql_token nt = sqllex_next(&lx);
    if (!punct(sql, t, '.') || (nt.kind != SQLTOK_WORD && nt.kind != SQLTOK_QIDENT) ||
        nt.len > 64) {
        snprintf(err, sizeof(err), "use CALL __queries.NAME(arg, ...)");
    } else {
        size_t off = nt.kind == SQLTOK_QIDENT ? 1 : 0;
        snprintf(name, sizeof(name), "%.*s", (int)(nt.len - 2 * off), sql + nt.start + off);
        t = sqllex_next(&lx);
        if (!punct(sql, t, '(')) {
            snprintf(err, sizeof(err), "use CALL __queries.NAME(arg, ...)");
        } else {
            t = sqllex_next(&lx);
            while (!err[0] && !punct(sql, t, ')')) {
                if (args->u.arr.n == QS_MAX_ARGS) {
                    snprintf(err, sizeof(err), "too many arguments");
                    break;
                }
                json *a = read_arg(sql, &lx, t, err, sizeof(err));
                if (!a)
                    break;
                json_array_add(args, a);
                t = sqllex_next(&lx);
                if (punct(sql, t, ','))
                    t = sqllex_next(&lx);
                else if (!punct(sql, t, ')'))
                    snprintf(err, sizeof(err), "expected ',' or ')' after an argument");
            }
            if (!err[0]) {
                t = sqllex_next(&lx);
                if (t.kind == SQLTOK_SEMICOLON)
                    t = sqllex_next(&lx);
                if (t.kind != SQLTOK_END)
                    snprintf(err, sizeof(err), "nothing may follow CALL __queries.NAME(...)");
            }
        }
    }
    if (err[0]) {
        json_free(args);
        client_send_err(c, 1064, "42000", "envproxy: %s", err);
        client_command_done(c);
        return 1;
    }
    /* The name as written first; then one that differs only in case (a store from before
     * such names were refused may hold both). */
    const json *def = NULL;
    for (int i = 0; i < snap->n_queries && !def; i++)
        if (strcmp(snap->queries[i].name, name) == 0 && visible(acct, snap->queries[i].def))
            def = snap->queries[i].def;
    for (int i = 0; i < snap->n_queries && !def; i++)
        if (strcasecmp(snap->queries[i].name, name) == 0 && visible(acct, snap->queries[i].def))
            def = snap->queries[i].def;
    if (!def) {
        json_free(args);
        client_send_err(c, 1305, "42000", "PROCEDURE __queries.%s does not exist", name);
        client_command_done(c);
        return 1;
    }
    /* Where it runs: the hint's environment, else the query's first, else the session's. */
    const json *envs = json_get(def, "environments");
    const char *env = h->n_envs == 1 ? h->envs[0]
                      : envs && envs->u.arr.n > 0 ? json_string_value(envs->u.arr.items[0])
                      : c->env ? c->env->name : NULL;
    bool allowed = h->n_envs <= 1 && !h->all_envs && !h->n_compare;
    for (size_t i = 0; allowed && envs && envs->u.arr.n > 0 && env; i++) {
        if (i == envs->u.arr.n) {
            allowed = false;
            break;
        }
        if (strcmp(json_string_value(envs->u.arr.items[i]), env) == 0)
            break;
    }
    if (!allowed || !env) {
        json_free(args);
        client_send_err(c, 1044, "42000", "envproxy: named query '%s' may not run in %s", name,
                        env ? env : "this session");
        client_command_done(c);
        return 1;
    }
    const json *ps = json_get(def, "params");
    size_t np = ps ? ps->u.arr.n : 0;
    if (args->u.arr.n > np) {
        json_free(args);
        client_send_err(c, 1318, "42000",
                        "Incorrect number of arguments for PROCEDURE __queries.%s; expected %zu, "
                        "got %zu",
                        name, np, args->u.arr.n);
        client_command_done(c);
        return 1;
    }
    /* Check every argument, then write the statement with literals in place of :name. */
    const char *qsql = json_string_value(json_get(def, "sql"));
    json_buf out;
    json_buf_init(&out);
    const char *db = h->has_db ? h->db : json_string_value(json_get(def, "database"));
    json_buf_printf(&out, "/* env=%s", env);
    if (db)
        json_buf_printf(&out, " db=%s", db);
    json_buf_puts(&out, " */ ");
    sql_lexer ql;
    sqllex_init(&ql, qsql, strlen(qsql), NULL);
    size_t copied = 0;
    for (;;) {
        sql_token k = sqllex_next(&ql);
        if (k.kind == SQLTOK_END || k.kind == SQLTOK_ERROR)
            break;
        if (!punct(qsql, k, ':'))
            continue;
        size_t save = ql.pos;
        sql_token w = sqllex_next(&ql);
        if (w.kind != SQLTOK_WORD || w.spaced || w.start != k.start + 1) {
            ql.pos = save;
            continue;
        }
        size_t idx = np;
        for (size_t j = 0; j < np; j++) {
            const char *pn = json_string_value(json_get(ps->u.arr.items[j], "name"));
            if (strlen(pn) == w.len && strncmp(pn, qsql + w.start, w.len) == 0)
                idx = j;
        }
        if (idx == np)
            continue; /* cannot happen: checked when saved */
        const json *pd = ps->u.arr.items[idx];
        const char *type = json_string_value(json_get(pd, "type"));
        const json *v = idx < args->u.arr.n ? args->u.arr.items[idx] : NULL;
        if (!v || v->type == JSON_NULL) {
            const json *dv = json_get(pd, "default"), *rq = json_get(pd, "required");
            if (dv && dv->type != JSON_NULL)
                v = dv;
            else if (!v && rq && rq->type == JSON_BOOL && rq->u.b) {
                snprintf(err, sizeof(err), "argument %zu (%s) is required", idx + 1,
                         json_string_value(json_get(pd, "name")));
                break;
            }
        }
        char canon[96] = "", perr[128];
        if (v && v->type != JSON_NULL &&
            !hj_check_param(type, v, canon, sizeof(canon), perr, sizeof(perr))) {
            snprintf(err, sizeof(err), "argument %zu (%s, %s): %s", idx + 1,
                     json_string_value(json_get(pd, "name")), type, perr);
            break;
        }
        json_buf_put(&out, qsql + copied, k.start - copied);
        put_literal(&out, type, v, canon);
        copied = w.start + w.len;
    }
    json_free(args);
    if (err[0]) {
        json_buf_free(&out);
        client_send_err(c, 1210, "HY000", "envproxy: named query '%s': %s", name, err);
        client_command_done(c);
        return 1;
    }
    json_buf_put(&out, qsql + copied, strlen(qsql) - copied);
    pbuf_reset(&c->cmd);
    pbuf_u8(&c->cmd, CMD_QUERY);
    pbuf_put(&c->cmd, out.data, out.len);
    json_buf_free(&out);
    return 2;
}

int queries_statement(client *c, const route_hint *h, const char *sql, size_t len)
{
    if (!in_queries(c) && !mentions(sql, len, "__queries"))
        return 0;
    /* The store as it is now (the session's own copy is refreshed only at some steps). */
    acct_ref *ref = proxy_acct_get(c->p);
    const account *acct = acct_find(ref->snap, c->user);
    int r = 0;
    if (acct) {
        r = call_query(c, ref->snap, acct, h, sql, len);
        if (!r)
            r = select_queries(c, ref->snap, acct, sql + h->end, len - h->end);
    }
    proxy_acct_put(ref);
    return r;
}
