/* stmt_local.c: prepared statements that the proxy answers itself (__envs, __compare, the
 * local answers of local.c, and transaction statements, which take their text's path, or
 * for BEGIN / COMMIT / ... in plain words the part of it that can apply), for
 * clients that prepare everything (PDO without emulation,
 * Go's driver with arguments, DBD with server-side prepare).
 *
 * PREPARE answers with the number of `?` placeholders and no column definitions (the result
 * carries its own). EXECUTE turns the bound values into SQL literals in place of the
 * placeholders, and the text then takes the path of a plain query, with its rows encoded in
 * the binary protocol (client.binary_rows). The text is only ever read by the proxy's own
 * parser; where a value reaches a backend (the `sql` of __compare.query) it is checked there
 * like any statement. */
#include "envproxy.h"
#include "http_api.h"
#include "log.h"
#include "rewrite.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Long data of one statement: beyond this, EXECUTE is refused rather than memory grown. */
#define LOCAL_LONG_DATA_MAX (1024 * 1024)


/* The placeholders of sql, as the lexer reads it; -1 when it cannot read the text. */
static int count_params(const char *sql, size_t len)
{
    sql_lexer lx;
    sqllex_init(&lx, sql, len, NULL);
    int n = 0;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_END)
            return n;
        if (t.kind == SQLTOK_ERROR)
            return -1;
        if (t.kind == SQLTOK_PUNCT && t.len == 1 && sql[t.start] == '?')
            n++;
    }
}

static void long_data_free(cl_stmt *st)
{
    if (!st->local_long) {
        return;
    }
    for (int i = 0; i < st->n_params; i++)
        pbuf_free(&st->local_long[i]);
    free(st->local_long);
    st->local_long = NULL;
    st->local_long_size = 0;
}

void stmt_local_free(cl_stmt *st)
{
    long_data_free(st);
}

void stmt_local_prepare(client *c, const char *sql, size_t len)
{
    int n = count_params(sql, len);
    if (n < 0 || n > 0xFFFF) {
        client_send_err(c, 1064, "42000", "envproxy: the statement cannot be read");
        client_command_done(c);
        return;
    }
    cl_stmt *st = calloc(1, sizeof(*st));
    if (!st || !(st->sql = malloc(len ? len : 1)))
        abort();
    memcpy(st->sql, sql, len);
    st->sql_len = len;
    st->id = ++c->next_stmt_id;
    st->local = true;
    st->env = -1;
    st->n_params = (uint16_t)n;
    if (n == 0) {
        /* The text each EXECUTE runs is this one: what it is, is read once. */
        st->local_control = txn_is_control(sql, len);
        st->local_words = st->local_control ? txn_words_kind(sql, len) + 1 : 0;
    }
    pbuf_init(&st->params);
    pbuf_init(&st->columns);

    pbuf out;
    pbuf_init(&out);
    size_t start = pkt_begin(&out);
    pbuf_u8(&out, 0x00);
    pbuf_u32(&out, st->id);
    pbuf_u16(&out, 0); /* columns: the result of each EXECUTE carries its own */
    pbuf_u16(&out, st->n_params);
    pbuf_u8(&out, 0x00);
    pbuf_u16(&out, 0);
    pkt_end(&out, start, &c->seq);
    for (int i = 0; i < n; i++)
        pkt_build_column(&out, &c->seq, "", "", "?", 63, 0, HT_VAR_STRING, 0x80, 0, c->ext_meta);
    if (n > 0 && !(c->caps & CAP_DEPRECATE_EOF))
        pkt_build_eof(&out, &c->seq, c->caps, 0, c->last_status ? c->last_status : ST_AUTOCOMMIT);
    client_send(c, &out);
    stmt_register(c, st);
    log_debug("conn %u: statement %u is answered by the proxy (%d parameters)", c->id, st->id, n);
    client_command_done(c);
}

void stmt_local_long_data(client *c, cl_stmt *st)
{
    /* COM_STMT_SEND_LONG_DATA: id (4), parameter (2), data. No reply either way. */
    if (c->cmd.len < 7)
        return;
    uint16_t param = pkt_u16(c->cmd.data + 5);
    size_t n = c->cmd.len - 7;
    if (param >= st->n_params)
        return;
    if (!st->local_long && !(st->local_long = calloc(st->n_params, sizeof(pbuf))))
        abort();
    st->local_long_size += n;
    if (st->local_long_size > LOCAL_LONG_DATA_MAX)
        return; /* EXECUTE reports it */
    pbuf_put(&st->local_long[param], c->cmd.data + 7, n);
}

void stmt_local_reset(cl_stmt *st)
{
    long_data_free(st);
}

/* A string value as a quoted literal for the proxy's own SQL reader. */
static void put_string_literal(pbuf *out, const uint8_t *s, size_t n)
{
    pbuf_u8(out, '\'');
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '\'':
        case '\\':
            pbuf_u8(out, '\\');
            pbuf_u8(out, s[i]);
            break;
        case '\0':
            pbuf_put(out, "\\0", 2);
            break;
        default:
            pbuf_u8(out, s[i]);
        }
    }
    pbuf_u8(out, '\'');
}

/* Reads one bound value of type (with its unsigned flag) at *pos and writes it as a literal:
 * numbers as they are, strings, dates and times quoted. The value is decoded as the binary
 * protocol's reader of the HTTP front door decodes a result value (hj_binary_value), with
 * microseconds kept. Returns false when the packet ends early, a float is not finite, or
 * the type is not one clients bind. */
static bool put_value(pbuf *out, uint8_t type, bool is_unsigned, const uint8_t *p, size_t len,
                      size_t *pos)
{
    bool number = false;
    switch (type) {
    case HT_TINY: case HT_SHORT: case HT_YEAR: case HT_LONG: case HT_INT24: case HT_LONGLONG:
    case HT_FLOAT: case HT_DOUBLE:
        number = true;
        break;
    case HT_DATE: case HT_DATETIME: case HT_TIMESTAMP: case HT_TIME:
    case HT_DECIMAL: case HT_VARCHAR: case HT_BIT: case HT_JSON: case HT_NEWDECIMAL:
    case HT_ENUM: case HT_SET: case HT_TINY_BLOB: case HT_MEDIUM_BLOB: case HT_LONG_BLOB:
    case HT_BLOB: case HT_VAR_STRING: case HT_STRING: case HT_GEOMETRY:
        break;
    default:
        return false;
    }
    if (*pos > len)
        return false;
    hj_column col = {.type = type, .flags = is_unsigned ? HT_FLAG_UNSIGNED : 0, .decimals = 6};
    preader r;
    pr_init(&r, p + *pos, len - *pos);
    char text[96];
    const char *v;
    size_t n;
    if (!hj_binary_value(&r, &col, text, sizeof(text), &v, &n))
        return false;
    if (number && (type == HT_FLOAT || type == HT_DOUBLE)) {
        char *end;
        double d = strtod(text, &end);
        if (*end || !isfinite(d))
            return false;
    }
    if (number)
        pbuf_put(out, v, n);
    else
        put_string_literal(out, (const uint8_t *)v, n); /* strings, and quoted dates */
    *pos = len - pr_left(&r);
    return true;
}

/* The statement's text with the EXECUTE packet's values in place of its placeholders, into
 * out. Returns 0, or an error code with msg filled. */
static unsigned bind_text(client *c, cl_stmt *st, pbuf *out, char *msg, size_t cap)
{
    const uint8_t *p = c->cmd.data;
    size_t len = c->cmd.len;
    int n = st->n_params;
    size_t nb = ((size_t)n + 7) / 8;
    size_t pos = 10 + nb + 1;
    if (st->local_long_size > LOCAL_LONG_DATA_MAX) {
        snprintf(msg, cap, "envproxy: more than %d bytes of long data for a statement that "
                 "envproxy answers itself", LOCAL_LONG_DATA_MAX);
        return 1153;
    }
    if (n == 0) {
        pbuf_put(out, st->sql, st->sql_len); /* nothing to bind: the text as prepared */
        return 0;
    }
    if (len < pos) {
        snprintf(msg, cap, "Malformed communication packet");
        return 1835;
    }
    if (p[10 + nb] > 1) { /* as the server: new_params_bound_flag is 0 or 1 */
        snprintf(msg, cap, "Malformed communication packet");
        return 1835;
    }
    if (p[10 + nb] == 1) {
        size_t types_len = 2 * (size_t)n;
        if (len - pos < types_len) {
            snprintf(msg, cap, "Malformed communication packet");
            return 1835;
        }
        if (!st->param_types && !(st->param_types = malloc(types_len)))
            abort();
        memcpy(st->param_types, p + pos, types_len);
        pos += types_len;
    } else if (!st->param_types) {
        snprintf(msg, cap, "Incorrect arguments to mysqld_stmt_execute: no parameter types "
                 "were ever sent for statement %u", st->id);
        return 1210;
    }
    sql_lexer lx;
    sqllex_init(&lx, st->sql, st->sql_len, NULL);
    size_t copied = 0;
    int k = 0;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_END || t.kind == SQLTOK_ERROR)
            break;
        if (t.kind != SQLTOK_PUNCT || t.len != 1 || st->sql[t.start] != '?' || k >= n)
            continue;
        pbuf_put(out, st->sql + copied, t.start - copied);
        copied = t.start + 1;
        bool is_null = (p[10 + (size_t)k / 8] >> (k % 8)) & 1;
        uint8_t type = st->param_types[2 * k];
        bool is_unsigned = st->param_types[2 * k + 1] & 0x80;
        if (st->local_long && st->local_long[k].len) {
            put_string_literal(out, st->local_long[k].data, st->local_long[k].len);
        } else if (is_null || type == HT_NULL) {
            pbuf_put(out, "NULL", 4);
        } else if (!put_value(out, type, is_unsigned, p, len, &pos)) {
            snprintf(msg, cap, "Incorrect arguments to mysqld_stmt_execute: parameter %d of "
                     "type %u cannot be read", k + 1, type);
            return 1210;
        }
        k++;
    }
    pbuf_put(out, st->sql + copied, st->sql_len - copied);
    return 0;
}

void stmt_local_execute(client *c, cl_stmt *st)
{
    if (c->cmd.len < 10) {
        client_send_err(c, 1835, "HY000", "Malformed communication packet");
        client_command_done(c);
        return;
    }
    pbuf text;
    pbuf_init(&text);
    pbuf_u8(&text, CMD_QUERY);
    char msg[200];
    unsigned code = bind_text(c, st, &text, msg, sizeof(msg));
    stmt_local_reset(st);
    if (code) {
        pbuf_free(&text);
        client_send_err(c, (uint16_t)code, code == 1153 ? "08S01" : "HY000", "%s", msg);
        client_command_done(c);
        return;
    }
    /* From here the command is that query: the answer paths (and the audit) read it from
     * c->cmd, and may keep pointing into it until the command ends. */
    pbuf_free(&c->cmd);
    c->cmd = text;
    c->binary_rows = true;
    const char *sql = (const char *)c->cmd.data + 1;
    size_t len = c->cmd.len - 1;
    if (st->n_params == 0 ? st->local_control : txn_is_control(sql, len)) {
        /* BEGIN, COMMIT, ...: answered with OK or ERR, no rows, exactly as their text. */
        c->binary_rows = false;
        if (st->n_params == 0 && st->local_words)
            client_handle_txn_words(c, st->local_words - 1);
        else
            client_handle_query(c);
        return;
    }
    route_hint h;
    if (!client_parse_hint(c, sql, len, &h))
        return;
    if (!(h.all_envs || h.n_envs > 1 || h.n_compare) && local_answer(c, sql + h.end, len - h.end))
        return;
    if (virtual_statement(c, &h, sql, len))
        return;
    client_send_err(c, 1295, "HY000",
                    "envproxy: with these values the statement is no longer one envproxy "
                    "answers itself; prepare it again");
    client_command_done(c);
}
