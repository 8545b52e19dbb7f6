/* mcp.c: `envproxy mcp`: a Model Context Protocol server over stdio. Every tool call is SQL
 * sent to a running envproxy as an ordinary MySQL client (Connector/C, blocking), so the
 * proxy's accounts, grants, read-only policy, row caps and timeouts apply unchanged. */
#include "mcp.h"
#include "envproxy.h"
#include "http_api.h"
#include "json.h"
#include "router.h"

#include <errmsg.h>
#include <errno.h>
#include <limits.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MCP_MAX_MESSAGE (1024 * 1024) /* bytes per input line; longer ones are refused */
#define MCP_MAX_WARNINGS 10           /* warnings copied into a result */
#define MCP_NAME_MAX 64               /* environment and database names in routing hints */

/* Protocol revisions this server speaks, newest last. */
static const char *const mcp_versions[] = {"2024-11-05", "2025-03-26", "2025-06-18"};
#define MCP_N_VERSIONS (sizeof(mcp_versions) / sizeof(mcp_versions[0]))

/* JSON-RPC error codes. */
enum {
    RPC_PARSE_ERROR = -32700,
    RPC_INVALID_REQUEST = -32600,
    RPC_METHOD_NOT_FOUND = -32601,
    RPC_INVALID_PARAMS = -32602,
};

typedef struct {
    const char *host;
    unsigned port;
    const char *user;
    const char *password_var;
    char *password; /* a copy of the variable's value; NULL when it is not set */
    const char *database;
    long long max_rows;
    size_t max_bytes;
    unsigned connect_timeout, read_timeout; /* seconds */
    bool tls;           /* TLS to envproxy required (--tls; always for the HTTP door) */
    const char *tls_ca; /* --tls-ca: the certificate is checked against this file */
    char *tls_fp;       /* HTTP door: the SHA-1 fingerprint of the proxy's own certificate */
} mcp_options;

struct mcp_server {
    mcp_options o;
    MYSQL *db; /* NULL until the first tool call, and after the connection was lost */
    /* db's connection id, or 0: read by other threads (a cancellation) while the tools use
     * db, which they may close at any moment. */
    _Atomic unsigned long conn_id;
    bool output_failed;
    json *named; /* named-query definitions offered as tools, or NULL */
    bool named_given; /* set by the HTTP door; else read from __queries.queries */
};

/* What a tool call produces: JSON text, and whether it is an error result. */
typedef struct {
    json_buf text;
    bool is_error;
} mcp_result;

/* A MySQL error, or one of ours (code 0: none). */
typedef struct {
    unsigned code;
    char sqlstate[6];
    char message[MYSQL_ERRMSG_SIZE + 256];
} mcp_error;

static double mcp_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- tool results ----------------------------------------------------------------------- */

/* Writes {"error":{"environment":env,"code":code,"sqlstate":state,"message":msg}} as the
 * tool's result; env, a zero code and an empty state are left out. */
static void mcp_out_error(mcp_result *out, const char *env, unsigned code, const char *state,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void mcp_out_error(mcp_result *out, const char *env, unsigned code, const char *state,
                          const char *fmt, ...)
{
    char msg[MYSQL_ERRMSG_SIZE + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_buf_reset(&out->text);
    json_buf_puts(&out->text, "{\"error\":{");
    if (env) {
        json_buf_puts(&out->text, "\"environment\":");
        json_write_string(&out->text, env, strlen(env));
        json_buf_putc(&out->text, ',');
    }
    if (code)
        json_buf_printf(&out->text, "\"code\":%u,", code);
    if (state && state[0]) {
        json_buf_puts(&out->text, "\"sqlstate\":");
        json_write_string(&out->text, state, strlen(state));
        json_buf_putc(&out->text, ',');
    }
    json_buf_puts(&out->text, "\"message\":");
    json_write_string(&out->text, msg, strlen(msg));
    json_buf_puts(&out->text, "}}");
    out->is_error = true;
}

static void mcp_out_db_error(mcp_result *out, const char *env, const mcp_error *e)
{
    mcp_out_error(out, env, e->code, e->sqlstate, "%s", e->message);
}

/* ---- the connection to envproxy --------------------------------------------------------- */

static bool mcp_connection_lost(unsigned code)
{
    return code == CR_SERVER_GONE_ERROR || code == CR_SERVER_LOST ||
           code == CR_SERVER_LOST_EXTENDED;
}

static void mcp_close(mcp_server *s)
{
    if (s->db) {
        atomic_store(&s->conn_id, 0);
        mysql_close(s->db);
        s->db = NULL;
    }
}

/* Copies the connection's last error into e. When the connection was lost it is closed, and
 * the next tool call opens a new one. */
static void mcp_fail(mcp_server *s, mcp_error *e)
{
    e->code = mysql_errno(s->db);
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", mysql_sqlstate(s->db));
    snprintf(e->message, sizeof(e->message), "%s", mysql_error(s->db));
    if (mcp_connection_lost(e->code)) {
        size_t n = strlen(e->message);
        snprintf(e->message + n, sizeof(e->message) - n,
                 " (the connection to envproxy was lost; the statement may or may not have "
                 "run; the next call reconnects)");
        mcp_close(s);
    }
}

/* Makes sure there is a working connection: opens one on first use, and when a ping shows
 * that the old one was lost, opens a new one once. False with e filled when envproxy cannot
 * be reached or refuses the login. */
static bool mcp_connect(mcp_server *s, mcp_error *e)
{
    if (s->db) {
        if (mysql_ping(s->db) == 0)
            return true;
        mcp_close(s);
    }
    MYSQL *c = mysql_init(NULL);
    if (!c) {
        e->code = CR_OUT_OF_MEMORY;
        snprintf(e->sqlstate, sizeof(e->sqlstate), "HY000");
        snprintf(e->message, sizeof(e->message), "out of memory");
        return false;
    }
    unsigned proto = MYSQL_PROTOCOL_TCP, off = 0;
    mysql_options(c, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &s->o.connect_timeout);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &s->o.read_timeout);
    mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &s->o.read_timeout);
    mysql_options(c, MYSQL_OPT_LOCAL_INFILE, &off);
    mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_optionsv(c, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", "envproxy-mcp");
    if (s->o.tls) {
        /* TLS or no connection. Against the proxy's own port the certificate is pinned by
         * its fingerprint (it may be the self-signed one made at start-up); --tls-ca checks
         * it against a CA file, host name included. */
        my_bool on = 1;
        mysql_optionsv(c, MYSQL_OPT_SSL_ENFORCE, &on);
        if (s->o.tls_fp)
            mysql_optionsv(c, MARIADB_OPT_TLS_PEER_FP, s->o.tls_fp);
        if (s->o.tls_ca) {
            mysql_optionsv(c, MYSQL_OPT_SSL_CA, s->o.tls_ca);
            mysql_optionsv(c, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
        }
    }
    if (!mysql_real_connect(c, s->o.host, s->o.user, s->o.password, s->o.database, s->o.port, NULL,
                            0)) {
        e->code = mysql_errno(c);
        snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", mysql_sqlstate(c));
        snprintf(e->message, sizeof(e->message),
                 "cannot connect to envproxy at %s:%u as '%s': %s%s%s%s", s->o.host, s->o.port,
                 s->o.user, mysql_error(c), s->o.password ? "" : " (the password variable ",
                 s->o.password ? "" : s->o.password_var, s->o.password ? "" : " is not set)");
        mysql_close(c);
        return false;
    }
    s->db = c;
    atomic_store(&s->conn_id, mysql_thread_id(c));
    return true;
}

/* Appends v[0..len) to b as a quoted SQL string literal, escaped for the connection. */
static void mcp_put_sql_string(mcp_server *s, json_buf *b, const char *v, size_t len)
{
    char *tmp = malloc(2 * len + 1);
    if (!tmp) {
        fprintf(stderr, "envproxy: out of memory\n");
        abort();
    }
    unsigned long n = mysql_real_escape_string(s->db, tmp, v, (unsigned long)len);
    json_buf_putc(b, '\'');
    json_buf_put(b, tmp, n);
    json_buf_putc(b, '\'');
    free(tmp);
}

/* Runs sql and stores its whole result. NULL with e filled on an error; NULL with e->code 0
 * for a statement without a result set. */
static MYSQL_RES *mcp_store(mcp_server *s, const char *sql, size_t len, mcp_error *e)
{
    e->code = 0;
    if (mysql_real_query(s->db, sql, (unsigned long)len) != 0) {
        mcp_fail(s, e);
        return NULL;
    }
    MYSQL_RES *res = mysql_store_result(s->db);
    if (!res && mysql_field_count(s->db) != 0)
        mcp_fail(s, e);
    while (s->db && mysql_more_results(s->db) && mysql_next_result(s->db) == 0) {
        MYSQL_RES *more = mysql_store_result(s->db);
        if (more)
            mysql_free_result(more);
    }
    return res;
}

/* The session's current environment (from __envs.session) into out; false if not known. */
static bool mcp_session_env(mcp_server *s, char *out, size_t n)
{
    static const char sql[] = "SELECT env FROM __envs.session";
    if (!s->db)
        return false;
    mcp_error e;
    MYSQL_RES *res = mcp_store(s, sql, sizeof(sql) - 1, &e);
    if (!res)
        return false;
    MYSQL_ROW row = mysql_fetch_row(res);
    bool ok = row && row[0];
    if (ok)
        snprintf(out, n, "%s", row[0]);
    mysql_free_result(res);
    return ok;
}

/* ---- result sets as JSON ---------------------------------------------------------------- */

/* Type names for result columns; binary_name applies with the binary character set. */
static const struct {
    enum enum_field_types type;
    const char *name, *binary_name;
    bool numeric; /* may be UNSIGNED */
} mcp_type_names[] = {
    {MYSQL_TYPE_TINY, "TINYINT", NULL, true},
    {MYSQL_TYPE_SHORT, "SMALLINT", NULL, true},
    {MYSQL_TYPE_INT24, "MEDIUMINT", NULL, true},
    {MYSQL_TYPE_LONG, "INT", NULL, true},
    {MYSQL_TYPE_LONGLONG, "BIGINT", NULL, true},
    {MYSQL_TYPE_FLOAT, "FLOAT", NULL, true},
    {MYSQL_TYPE_DOUBLE, "DOUBLE", NULL, true},
    {MYSQL_TYPE_DECIMAL, "DECIMAL", NULL, true},
    {MYSQL_TYPE_NEWDECIMAL, "DECIMAL", NULL, true},
    {MYSQL_TYPE_NULL, "NULL", NULL, false},
    {MYSQL_TYPE_TIMESTAMP, "TIMESTAMP", NULL, false},
    {MYSQL_TYPE_TIMESTAMP2, "TIMESTAMP", NULL, false},
    {MYSQL_TYPE_DATE, "DATE", NULL, false},
    {MYSQL_TYPE_NEWDATE, "DATE", NULL, false},
    {MYSQL_TYPE_TIME, "TIME", NULL, false},
    {MYSQL_TYPE_TIME2, "TIME", NULL, false},
    {MYSQL_TYPE_DATETIME, "DATETIME", NULL, false},
    {MYSQL_TYPE_DATETIME2, "DATETIME", NULL, false},
    {MYSQL_TYPE_YEAR, "YEAR", NULL, false},
    {MYSQL_TYPE_BIT, "BIT", NULL, false},
    {MYSQL_TYPE_JSON, "JSON", NULL, false},
    {MYSQL_TYPE_ENUM, "ENUM", NULL, false},
    {MYSQL_TYPE_SET, "SET", NULL, false},
    {MYSQL_TYPE_GEOMETRY, "GEOMETRY", NULL, false},
    {MYSQL_TYPE_VARCHAR, "VARCHAR", "VARBINARY", false},
    {MYSQL_TYPE_VAR_STRING, "VARCHAR", "VARBINARY", false},
    {MYSQL_TYPE_STRING, "CHAR", "BINARY", false},
    {MYSQL_TYPE_TINY_BLOB, "TEXT", "BLOB", false},
    {MYSQL_TYPE_MEDIUM_BLOB, "TEXT", "BLOB", false},
    {MYSQL_TYPE_LONG_BLOB, "TEXT", "BLOB", false},
    {MYSQL_TYPE_BLOB, "TEXT", "BLOB", false},
};

/* A SQL type name for a result column ("BIGINT UNSIGNED", "VARCHAR", "ENUM", ...); buf
 * holds it when it has to be composed. */
static const char *mcp_field_type_name(const MYSQL_FIELD *f, char *buf, size_t n)
{
    if (f->flags & ENUM_FLAG)
        return "ENUM";
    if (f->flags & SET_FLAG)
        return "SET";
    for (size_t i = 0; i < sizeof(mcp_type_names) / sizeof(mcp_type_names[0]); i++) {
        if (mcp_type_names[i].type != f->type)
            continue;
        if (mcp_type_names[i].binary_name && f->charsetnr == 63)
            return mcp_type_names[i].binary_name;
        if (mcp_type_names[i].numeric && (f->flags & UNSIGNED_FLAG)) {
            snprintf(buf, n, "%s UNSIGNED", mcp_type_names[i].name);
            return buf;
        }
        return mcp_type_names[i].name;
    }
    return "UNKNOWN";
}

/* Integer columns: their values are written as JSON numbers. */
static bool mcp_field_is_integer(const MYSQL_FIELD *f)
{
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
        return true;
    default:
        return false;
    }
}

/* Columns of bytes rather than text: a binary string type or GEOMETRY. */
static bool mcp_field_is_binary(const MYSQL_FIELD *f)
{
    switch (f->type) {
    case MYSQL_TYPE_GEOMETRY:
        return true;
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
        return f->charsetnr == 63;
    default:
        return false;
    }
}

/* True when v[0..len) is valid UTF-8 without control characters other than tab, CR, LF. */
static bool mcp_printable(const char *v, unsigned long len)
{
    const unsigned char *p = (const unsigned char *)v;
    for (unsigned long i = 0; i < len;) {
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return false;
        size_t n = json_utf8_seq_len(p + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

/* One value: null; a JSON number for integer columns (leading zeros of ZEROFILL and of YEAR
 * 0000 dropped) and for FLOAT and DOUBLE; BIT as an unsigned integer; binary values that are
 * not printable text, or that begin with "0x", as a hex literal "0x..."; everything else
 * (DECIMAL included, to stay exact) as a string. */
static void mcp_write_cell(json_buf *b, const MYSQL_FIELD *f, const char *v, unsigned long len)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!v) {
        json_buf_puts(b, "null");
        return;
    }
    if (f->type == MYSQL_TYPE_BIT && len <= 8) {
        unsigned long long x = 0;
        for (unsigned long i = 0; i < len; i++)
            x = (x << 8) | (unsigned char)v[i];
        json_buf_printf(b, "%llu", x);
        return;
    }
    if (mcp_field_is_integer(f)) {
        unsigned long i = v[0] == '-' ? 1 : 0, digits = i;
        while (digits < len && v[digits] >= '0' && v[digits] <= '9')
            digits++;
        if (digits == len && len > i) {
            while (i + 1 < len && v[i] == '0')
                i++;
            if (v[0] == '-' && !(len - i == 1 && v[i] == '0'))
                json_buf_putc(b, '-');
            json_buf_put(b, v + i, len - i);
            return;
        }
    } else if ((f->type == MYSQL_TYPE_FLOAT || f->type == MYSQL_TYPE_DOUBLE) &&
               json_number_valid(v, len)) {
        json_buf_put(b, v, len);
        return;
    }
    /* Printable bytes that begin with "0x" are hex too: "0x..." in a binary column then
     * always means hex, and the text '0xDEADBEEF' never reads as the bytes DE AD BE EF. */
    if (mcp_field_is_binary(f) &&
        (!mcp_printable(v, len) || (len >= 2 && v[0] == '0' && v[1] == 'x'))) {
        json_buf_puts(b, "\"0x");
        for (unsigned long i = 0; i < len; i++) {
            char two[2] = {hex[(unsigned char)v[i] >> 4], hex[(unsigned char)v[i] & 15]};
            json_buf_put(b, two, 2);
        }
        json_buf_putc(b, '"');
        return;
    }
    json_write_string(b, v, len);
}

/* Where a statement runs, for results, errors and the warnings that follow it. */
typedef struct {
    const char *env;       /* the single environment, when known; else looked up on error */
    bool multi;            /* fan-out or compare: no single environment */
    const char *warn_hint; /* routing comment to put before SHOW WARNINGS; NULL: don't ask */
} mcp_run_ctx;

/* Reads up to MCP_MAX_WARNINGS warnings of the last statement into b as a JSON array, and
 * notes whether envproxy said it truncated the result. */
static void mcp_fetch_warnings(mcp_server *s, const mcp_run_ctx *ctx, json_buf *b, bool *proxy_cut)
{
    static const char cut_note[] = "envproxy: the result was truncated"; /* client.c's note */
    json_buf sql;
    json_buf_init(&sql);
    json_buf_puts(&sql, ctx->warn_hint);
    json_buf_puts(&sql, "SHOW WARNINGS");
    mcp_error e;
    MYSQL_RES *res = mcp_store(s, sql.data, sql.len, &e);
    json_buf_free(&sql);
    if (!res)
        return;
    json_buf_puts(b, ",\"warnings\":[");
    MYSQL_ROW row;
    int n = 0;
    while ((row = mysql_fetch_row(res)) && n < MCP_MAX_WARNINGS) {
        if (mysql_num_fields(res) < 3)
            break;
        unsigned long *lens = mysql_fetch_lengths(res);
        if (n++)
            json_buf_putc(b, ',');
        json_buf_puts(b, "{\"level\":");
        json_write_string(b, row[0] ? row[0] : "", row[0] ? lens[0] : 0);
        json_buf_printf(b, ",\"code\":%ld,\"message\":", row[1] ? strtol(row[1], NULL, 10) : 0L);
        json_write_string(b, row[2] ? row[2] : "", row[2] ? lens[2] : 0);
        json_buf_putc(b, '}');
        if (row[1] && strcmp(row[1], "1105") == 0 && row[2] &&
            strncmp(row[2], cut_note, sizeof(cut_note) - 1) == 0)
            *proxy_cut = true;
    }
    json_buf_putc(b, ']');
    mysql_free_result(res);
}

/* Reports an error of the statement just run, naming its environment when it is known (the
 * session's own one is looked up when the statement carried no hint). */
static void mcp_statement_error(mcp_server *s, const mcp_run_ctx *ctx, const mcp_error *e,
                                mcp_result *out)
{
    char env[MCP_NAME_MAX + 1];
    const char *where = ctx->env;
    if (!where && !ctx->multi && !mcp_connection_lost(e->code) &&
        mcp_session_env(s, env, sizeof(env)))
        where = env;
    mcp_out_db_error(out, where, e);
}

/* Skips the result sets that follow the first one (a CALL); returns how many had rows. */
static int mcp_skip_more_results(mcp_server *s)
{
    int n = 0;
    while (mysql_more_results(s->db)) {
        if (mysql_next_result(s->db) != 0)
            break;
        MYSQL_RES *r = mysql_use_result(s->db);
        if (r) {
            mysql_free_result(r);
            n++;
        }
    }
    return n;
}

/* Runs sql and writes the result object (or the error) into out. Rows are streamed and cut
 * at max_rows, and after the row that takes the text past max_bytes. Returns the number of
 * rows written, -1 after an error. */
static long long mcp_run_statement(mcp_server *s, const char *sql, size_t len,
                                   const mcp_run_ctx *ctx, mcp_result *out)
{
    mcp_error e;
    double t0 = mcp_clock_ms();
    if (mysql_real_query(s->db, sql, (unsigned long)len) != 0) {
        mcp_fail(s, &e);
        mcp_statement_error(s, ctx, &e, out);
        return -1;
    }
    json_buf *b = &out->text;
    json_buf_reset(b);
    json_buf_putc(b, '{');
    if (ctx->env && !ctx->multi) {
        json_buf_puts(b, "\"environment\":");
        json_write_string(b, ctx->env, strlen(ctx->env));
        json_buf_putc(b, ',');
    }
    MYSQL_RES *res = mysql_use_result(s->db);
    if (!res) {
        if (mysql_field_count(s->db) != 0) {
            mcp_fail(s, &e);
            mcp_statement_error(s, ctx, &e, out);
            return -1;
        }
        unsigned long long affected = mysql_affected_rows(s->db);
        unsigned long long insert_id = mysql_insert_id(s->db);
        unsigned warnings = mysql_warning_count(s->db);
        const char *info = mysql_info(s->db);
        json_buf_printf(b, "\"affected_rows\":%llu", affected);
        if (insert_id)
            json_buf_printf(b, ",\"last_insert_id\":%llu", insert_id);
        if (info && info[0]) {
            json_buf_puts(b, ",\"info\":");
            json_write_string(b, info, strlen(info));
        }
        int more = mcp_skip_more_results(s);
        double t1 = mcp_clock_ms();
        if (more)
            json_buf_printf(b, ",\"discarded_result_sets\":%d", more);
        if (warnings) {
            json_buf_printf(b, ",\"warning_count\":%u", warnings);
            bool cut = false;
            if (ctx->warn_hint)
                mcp_fetch_warnings(s, ctx, b, &cut);
        }
        json_buf_printf(b, ",\"execution_time_ms\":%.3f}", t1 - t0);
        return 0;
    }

    unsigned nf = mysql_num_fields(res);
    MYSQL_FIELD *fields = mysql_fetch_fields(res);
    json_buf_puts(b, "\"columns\":[");
    for (unsigned i = 0; i < nf; i++) {
        char tmp[32];
        const char *type = mcp_field_type_name(&fields[i], tmp, sizeof(tmp));
        if (i)
            json_buf_putc(b, ',');
        json_buf_puts(b, "{\"name\":");
        json_write_string(b, fields[i].name, fields[i].name_length);
        json_buf_puts(b, ",\"type\":");
        json_write_string(b, type, strlen(type));
        json_buf_putc(b, '}');
    }
    json_buf_puts(b, "],\"rows\":[");
    size_t rows_start = b->len;
    long long count = 0;
    const char *cut_by = NULL;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        if (count >= s->o.max_rows) {
            cut_by = "max_rows";
            break;
        }
        if (b->len - rows_start >= s->o.max_bytes) {
            cut_by = "max_bytes";
            break;
        }
        unsigned long *lens = mysql_fetch_lengths(res);
        if (count)
            json_buf_putc(b, ',');
        json_buf_putc(b, '[');
        for (unsigned i = 0; i < nf; i++) {
            if (i)
                json_buf_putc(b, ',');
            mcp_write_cell(b, &fields[i], row[i], lens ? lens[i] : 0);
        }
        json_buf_putc(b, ']');
        count++;
    }
    if (!cut_by && mysql_errno(s->db)) {
        /* The result ended with an error (a timeout, a lost connection). */
        mysql_free_result(res);
        mcp_fail(s, &e);
        mcp_statement_error(s, ctx, &e, out);
        return -1;
    }
    mysql_free_result(res); /* reads and drops the rows left after a cut */
    if (mcp_connection_lost(mysql_errno(s->db)))
        mcp_close(s); /* the rows read are still good; the next call reconnects */
    unsigned warnings = s->db ? mysql_warning_count(s->db) : 0;
    int more = s->db ? mcp_skip_more_results(s) : 0;
    double t1 = mcp_clock_ms();
    json_buf warn;
    json_buf_init(&warn);
    bool proxy_cut = false;
    if (warnings && ctx->warn_hint && s->db) {
        mcp_fetch_warnings(s, ctx, &warn, &proxy_cut);
    } else if (warnings && ctx->multi && s->db) {
        /* A fan-out: envproxy answers SHOW WARNINGS itself when it cut a part to max_rows.
         * Any other answer comes from a backend's earlier statement and is not shown. */
        mcp_run_ctx plain = *ctx;
        plain.warn_hint = "";
        json_buf asked;
        json_buf_init(&asked);
        mcp_fetch_warnings(s, &plain, &asked, &proxy_cut);
        if (proxy_cut)
            json_buf_put(&warn, asked.data, asked.len);
        json_buf_free(&asked);
    }
    if (!cut_by && proxy_cut)
        cut_by = "envproxy max_rows";
    json_buf_printf(b, "],\"row_count\":%lld,\"truncated\":%s", count, cut_by ? "true" : "false");
    if (cut_by) {
        json_buf_puts(b, ",\"truncated_by\":");
        json_write_string(b, cut_by, strlen(cut_by));
    }
    if (more)
        json_buf_printf(b, ",\"discarded_result_sets\":%d", more);
    if (warnings)
        json_buf_printf(b, ",\"warning_count\":%u", warnings);
    json_buf_put(b, warn.data, warn.len);
    json_buf_free(&warn);
    json_buf_printf(b, ",\"execution_time_ms\":%.3f}", t1 - t0);
    return count;
}

/* ---- tool arguments --------------------------------------------------------------------- */

typedef enum { MCP_ARG_STRING, MCP_ARG_BOOL, MCP_ARG_LIST } mcp_arg_kind;

typedef struct {
    const char *name;
    mcp_arg_kind kind;
    bool required;
    int min_items, max_items; /* MCP_ARG_LIST */
    const char *description;
} mcp_arg;

#define MCP_MAX_ARGS 4

typedef void (*mcp_tool_fn)(mcp_server *s, const json *args, mcp_result *out);

typedef struct {
    const char *name, *title;
    const char *description; /* "{max_rows}" in it is replaced by the row cap */
    bool read_only;
    mcp_arg args[MCP_MAX_ARGS];
    mcp_tool_fn run;
} mcp_tool;

static const char *mcp_kind_name(mcp_arg_kind k)
{
    return k == MCP_ARG_STRING ? "a string"
           : k == MCP_ARG_BOOL ? "a boolean"
                               : "an array of strings";
}

/* "a number", "an object", ... for messages. */
static const char *mcp_a_type(json_type t)
{
    switch (t) {
    case JSON_NULL:
        return "null";
    case JSON_BOOL:
        return "a boolean";
    case JSON_NUMBER:
        return "a number";
    case JSON_STRING:
        return "a string";
    case JSON_ARRAY:
        return "an array";
    case JSON_OBJECT:
        return "an object";
    }
    return "?";
}

/* Checks args against the tool's specification: known names, types, required ones present,
 * strings non-empty and without NUL characters. false with the error written to out. A null
 * value counts as absent. */
static bool mcp_check_args(const mcp_tool *t, const json *args, mcp_result *out)
{
    for (size_t m = 0; m < args->u.obj.n; m++) {
        const json_member *mem = &args->u.obj.items[m];
        const mcp_arg *a = NULL;
        for (int i = 0; i < MCP_MAX_ARGS && t->args[i].name; i++)
            if (strlen(t->args[i].name) == mem->key_len &&
                memcmp(t->args[i].name, mem->key, mem->key_len) == 0)
                a = &t->args[i];
        if (!a) {
            char names[200] = "";
            for (int i = 0; i < MCP_MAX_ARGS && t->args[i].name; i++) {
                size_t n = strlen(names);
                snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "", t->args[i].name);
            }
            json_buf key;
            json_buf_init(&key);
            json_write_string(&key, mem->key, mem->key_len);
            mcp_out_error(out, NULL, 0, NULL, "unknown argument %.80s: %s takes %s", key.data,
                          t->name, names[0] ? names : "no arguments");
            json_buf_free(&key);
            return false;
        }
        const json *v = mem->val;
        if (v->type == JSON_NULL)
            continue;
        bool ok = (a->kind == MCP_ARG_STRING && v->type == JSON_STRING) ||
                  (a->kind == MCP_ARG_BOOL && v->type == JSON_BOOL) ||
                  (a->kind == MCP_ARG_LIST && v->type == JSON_ARRAY);
        if (!ok) {
            mcp_out_error(out, NULL, 0, NULL, "argument '%s' must be %s, not %s", a->name,
                          mcp_kind_name(a->kind), mcp_a_type(v->type));
            return false;
        }
        if (a->kind == MCP_ARG_STRING) {
            if (v->u.str.len == 0) {
                mcp_out_error(out, NULL, 0, NULL, "argument '%s' must not be empty", a->name);
                return false;
            }
            if (strlen(v->u.str.s) != v->u.str.len) {
                mcp_out_error(out, NULL, 0, NULL, "argument '%s' must not contain NUL characters",
                              a->name);
                return false;
            }
        }
        if (a->kind == MCP_ARG_LIST) {
            size_t n = v->u.arr.n;
            if ((int)n < a->min_items || (a->max_items && n > (size_t)a->max_items)) {
                if (a->min_items == a->max_items)
                    mcp_out_error(out, NULL, 0, NULL,
                                  "argument '%s' must hold exactly %d names, not %zu", a->name,
                                  a->min_items, n);
                else
                    mcp_out_error(out, NULL, 0, NULL,
                                  "argument '%s' must hold %d to %d names, not %zu", a->name,
                                  a->min_items, a->max_items, n);
                return false;
            }
            for (size_t i = 0; i < n; i++) {
                const json *item = v->u.arr.items[i];
                if (item->type != JSON_STRING) {
                    mcp_out_error(out, NULL, 0, NULL,
                                  "argument '%s' must be an array of strings (item %zu is %s)",
                                  a->name, i, mcp_a_type(item->type));
                    return false;
                }
                if (item->u.str.len == 0 || strlen(item->u.str.s) != item->u.str.len) {
                    mcp_out_error(out, NULL, 0, NULL,
                                  "argument '%s': item %zu is empty or contains NUL characters",
                                  a->name, i);
                    return false;
                }
            }
        }
    }
    for (int i = 0; i < MCP_MAX_ARGS && t->args[i].name; i++) {
        const json *v = json_get(args, t->args[i].name);
        if (t->args[i].required && (!v || v->type == JSON_NULL)) {
            mcp_out_error(out, NULL, 0, NULL, "missing required argument '%s' (%s)",
                          t->args[i].name, mcp_kind_name(t->args[i].kind));
            return false;
        }
    }
    return true;
}

/* A string argument, or NULL when absent or null (types were checked). */
static const char *mcp_arg_str(const json *args, const char *name)
{
    return json_string_value(json_get(args, name));
}

static bool mcp_arg_bool(const json *args, const char *name)
{
    const json *v = json_get(args, name);
    return v && v->type == JSON_BOOL && v->u.b;
}

/* Environment names as the proxy takes them in hints: [A-Za-z0-9_-]{1,64}. */
static bool mcp_check_env_name(const char *name, const char *arg, mcp_result *out)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n <= MCP_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    }
    if (!ok)
        mcp_out_error(out, NULL, 0, NULL,
                      "argument '%s': '%.80s' is not an environment name (letters, digits, '_' and "
                      "'-', at most %d; see list_environments)",
                      arg, name, MCP_NAME_MAX);
    return ok;
}

/* Database names that a routing hint can carry: at most 64 bytes, no white space, control
 * characters, '*' or '/'. */
static bool mcp_check_hint_db(const char *name, mcp_result *out)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n <= MCP_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        ok = c > 0x20 && c != 0x7F && c != '*' && c != '/';
    }
    if (!ok)
        mcp_out_error(out, NULL, 0, NULL,
                      "argument 'database': '%.80s' cannot be used as a target database (at most "
                      "%d bytes, without spaces, '*' or '/')",
                      name, MCP_NAME_MAX);
    return ok;
}

/* Appends "/\* env=E db=D *\/ " for whichever of env and db is given. */
static void mcp_put_hint(json_buf *b, const char *env, const char *db)
{
    if (!env && !db)
        return;
    json_buf_puts(b, "/*");
    if (env) {
        json_buf_puts(b, " env=");
        json_buf_puts(b, env);
    }
    if (db) {
        json_buf_puts(b, " db=");
        json_buf_puts(b, db);
    }
    json_buf_puts(b, " */ ");
}

/* The connection for a tool call, or false with the error in out. */
static bool mcp_connect_for_tool(mcp_server *s, mcp_result *out)
{
    mcp_error e;
    if (mcp_connect(s, &e))
        return true;
    mcp_out_db_error(out, NULL, &e);
    return false;
}

/* ---- the tools -------------------------------------------------------------------------- */

/* Runs a statement about __envs (answered by envproxy itself) and, when env was asked for
 * and no row came back, reports that the environment is unknown to this account. */
static void mcp_run_envs_query(mcp_server *s, json_buf *sql, const char *env, mcp_result *out)
{
    mcp_run_ctx ctx = {.env = NULL, .multi = true, .warn_hint = NULL};
    long long rows = mcp_run_statement(s, sql->data, sql->len, &ctx, out);
    if (env && rows == 0)
        mcp_out_error(out, env, 0, NULL,
                      "environment '%s' does not exist or this account has no grant there (see "
                      "list_environments)",
                      env);
}

static void mcp_tool_list_environments(mcp_server *s, const json *args, mcp_result *out)
{
    static const char sql[] = "SELECT name, description, status, access, server_version, "
                              "latency_ms FROM __envs.environments";
    if (!mcp_connect_for_tool(s, out))
        return;
    mcp_run_ctx ctx = {.multi = true};
    mcp_run_statement(s, sql, sizeof(sql) - 1, &ctx, out);
}

static void mcp_tool_health_check(mcp_server *s, const json *args, mcp_result *out)
{
    const char *env = mcp_arg_str(args, "environment");
    if (env && !mcp_check_env_name(env, "environment", out))
        return;
    if (!mcp_connect_for_tool(s, out))
        return;
    json_buf sql;
    json_buf_init(&sql);
    json_buf_puts(&sql, "SELECT name, status, latency_ms, last_error, checked_at "
                        "FROM __envs.environments");
    if (env) {
        json_buf_puts(&sql, " WHERE name = ");
        mcp_put_sql_string(s, &sql, env, strlen(env));
    }
    mcp_run_envs_query(s, &sql, env, out);
    json_buf_free(&sql);
}

static void mcp_tool_list_databases(mcp_server *s, const json *args, mcp_result *out)
{
    const char *env = mcp_arg_str(args, "environment");
    if (env && !mcp_check_env_name(env, "environment", out))
        return;
    if (!mcp_connect_for_tool(s, out))
        return;
    json_buf sql;
    json_buf_init(&sql);
    json_buf_puts(&sql, "SELECT env, `database` FROM __envs.databases");
    if (env) {
        json_buf_puts(&sql, " WHERE env = ");
        mcp_put_sql_string(s, &sql, env, strlen(env));
    }
    mcp_run_envs_query(s, &sql, env, out);
    json_buf_free(&sql);
}

static void mcp_tool_list_tables(mcp_server *s, const json *args, mcp_result *out)
{
    const char *env = mcp_arg_str(args, "environment"), *db = mcp_arg_str(args, "database");
    if (!mcp_check_env_name(env, "environment", out) || !mcp_check_hint_db(db, out))
        return;
    if (!mcp_connect_for_tool(s, out))
        return;
    json_buf hint, sql;
    json_buf_init(&hint);
    json_buf_init(&sql);
    mcp_put_hint(&hint, env, db);
    json_buf_put(&sql, hint.data, hint.len);
    json_buf_puts(&sql, "SHOW FULL TABLES");
    mcp_run_ctx ctx = {.env = env, .warn_hint = hint.data};
    mcp_run_statement(s, sql.data, sql.len, &ctx, out);
    json_buf_free(&hint);
    json_buf_free(&sql);
}

/* Builds "/\* env=E *\/ SELECT cols FROM information_schema.T WHERE TABLE_SCHEMA = 'D' AND
 * TABLE_NAME = 'T' tail" into sql and stores its result. */
static MYSQL_RES *mcp_schema_query(mcp_server *s, const char *env, const char *db,
                                   const char *table, const char *select, const char *tail,
                                   mcp_error *e)
{
    json_buf sql;
    json_buf_init(&sql);
    mcp_put_hint(&sql, env, NULL);
    json_buf_puts(&sql, select);
    json_buf_puts(&sql, " WHERE TABLE_SCHEMA = ");
    mcp_put_sql_string(s, &sql, db, strlen(db));
    json_buf_puts(&sql, " AND TABLE_NAME = ");
    mcp_put_sql_string(s, &sql, table, strlen(table));
    json_buf_puts(&sql, tail);
    MYSQL_RES *res = mcp_store(s, sql.data, sql.len, e);
    json_buf_free(&sql);
    if (!res && e->code == 0) {
        e->code = CR_UNKNOWN_ERROR;
        snprintf(e->sqlstate, sizeof(e->sqlstate), "HY000");
        snprintf(e->message, sizeof(e->message), "information_schema returned no result set");
    }
    return res;
}

static json *mcp_cell(MYSQL_ROW row, unsigned long *lens, unsigned i)
{
    return row[i] ? json_new_string(row[i], lens[i]) : json_new_null();
}

/* Same name as the previous group's (for grouping index and foreign key rows). */
static bool mcp_same_name(json *group, MYSQL_ROW row)
{
    const char *name = group ? json_string_value(json_get(group, "name")) : NULL;
    return name && row[0] && strcmp(name, row[0]) == 0;
}

static void mcp_tool_describe_table(mcp_server *s, const json *args, mcp_result *out)
{
    const char *env = mcp_arg_str(args, "environment"), *db = mcp_arg_str(args, "database"),
               *table = mcp_arg_str(args, "table");
    if (!mcp_check_env_name(env, "environment", out))
        return;
    if (!mcp_connect_for_tool(s, out))
        return;
    mcp_error e;
    MYSQL_RES *res = mcp_schema_query(
        s, env, db, table,
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_KEY, EXTRA, "
        "COLUMN_COMMENT FROM information_schema.COLUMNS",
        " ORDER BY ORDINAL_POSITION", &e);
    if (!res) {
        mcp_out_db_error(out, env, &e);
        return;
    }
    json *doc = json_new_object();
    json_object_set(doc, "environment", json_new_cstr(env));
    json_object_set(doc, "database", json_new_cstr(db));
    json_object_set(doc, "table", json_new_cstr(table));
    json *cols = json_new_array();
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) && mysql_num_fields(res) >= 7) {
        unsigned long *lens = mysql_fetch_lengths(res);
        json *c = json_new_object();
        json_object_set(c, "name", mcp_cell(row, lens, 0));
        json_object_set(c, "type", mcp_cell(row, lens, 1));
        json_object_set(c, "nullable", json_new_bool(row[2] && strcmp(row[2], "YES") == 0));
        json_object_set(c, "default", mcp_cell(row, lens, 3));
        json_object_set(c, "key", mcp_cell(row, lens, 4));
        json_object_set(c, "extra", mcp_cell(row, lens, 5));
        json_object_set(c, "comment", mcp_cell(row, lens, 6));
        json_array_add(cols, c);
    }
    mysql_free_result(res);
    json_object_set(doc, "columns", cols);
    if (cols->u.arr.n == 0) {
        json_free(doc);
        mcp_out_error(
            out, env, 1146, "42S02",
            "table '%s.%s' does not exist in environment '%s' (or this account cannot see "
            "it)",
            db, table, env);
        return;
    }

    res = mcp_schema_query(s, env, db, table,
                           "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, INDEX_TYPE "
                           "FROM information_schema.STATISTICS",
                           " ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX", &e);
    if (!res) {
        json_free(doc);
        mcp_out_db_error(out, env, &e);
        return;
    }
    json *keys = json_new_array(), *k = NULL;
    while ((row = mysql_fetch_row(res)) && mysql_num_fields(res) >= 4) {
        unsigned long *lens = mysql_fetch_lengths(res);
        if (!mcp_same_name(k, row)) {
            k = json_new_object();
            json_object_set(k, "name", mcp_cell(row, lens, 0));
            json_object_set(k, "unique", json_new_bool(row[1] && strcmp(row[1], "0") == 0));
            json_object_set(k, "type", mcp_cell(row, lens, 3));
            json_object_set(k, "columns", json_new_array());
            json_array_add(keys, k);
        }
        json_array_add(json_get(k, "columns"), mcp_cell(row, lens, 2));
    }
    mysql_free_result(res);
    json_object_set(doc, "keys", keys);

    res = mcp_schema_query(s, env, db, table,
                           "SELECT CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, "
                           "REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
                           "FROM information_schema.KEY_COLUMN_USAGE",
                           " AND REFERENCED_TABLE_NAME IS NOT NULL "
                           "ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION",
                           &e);
    if (!res) {
        json_free(doc);
        mcp_out_db_error(out, env, &e);
        return;
    }
    json *fks = json_new_array(), *fk = NULL;
    while ((row = mysql_fetch_row(res)) && mysql_num_fields(res) >= 5) {
        unsigned long *lens = mysql_fetch_lengths(res);
        if (!mcp_same_name(fk, row)) {
            fk = json_new_object();
            json_object_set(fk, "name", mcp_cell(row, lens, 0));
            json_object_set(fk, "columns", json_new_array());
            json_object_set(fk, "referenced_database", mcp_cell(row, lens, 2));
            json_object_set(fk, "referenced_table", mcp_cell(row, lens, 3));
            json_object_set(fk, "referenced_columns", json_new_array());
            json_array_add(fks, fk);
        }
        json_array_add(json_get(fk, "columns"), mcp_cell(row, lens, 1));
        json_array_add(json_get(fk, "referenced_columns"), mcp_cell(row, lens, 4));
    }
    mysql_free_result(res);
    json_object_set(doc, "foreign_keys", fks);

    json_buf_reset(&out->text);
    json_write(&out->text, doc);
    json_free(doc);
}

static void mcp_tool_execute_query(mcp_server *s, const json *args, mcp_result *out)
{
    const char *sql = mcp_arg_str(args, "sql"), *env = mcp_arg_str(args, "environment"),
               *db = mcp_arg_str(args, "database");
    if (env && !mcp_check_env_name(env, "environment", out))
        return;
    if (db && !mcp_check_hint_db(db, out))
        return;
    if (!mcp_connect_for_tool(s, out))
        return;
    json_buf hint, text;
    json_buf_init(&hint);
    json_buf_init(&text);
    mcp_run_ctx ctx = {.env = env};
    char hint_env[ROUTE_NAME_MAX + 1];
    if (env || db) {
        mcp_put_hint(&hint, env, db);
    } else {
        /* The statement may carry a routing comment of its own: its warnings are asked for
         * in the same place, and a fan-out has none to ask for. */
        route_hint h;
        char err[256];
        if (route_parse_hint(sql, strlen(sql), &h, err, sizeof(err)) == 0 && h.present) {
            if (h.all_envs || h.n_envs > 1 || h.n_compare) {
                ctx.multi = true;
            } else {
                json_buf_put(&hint, sql, h.end);
                json_buf_putc(&hint, ' ');
                if (h.n_envs == 1) {
                    snprintf(hint_env, sizeof(hint_env), "%s", h.envs[0]);
                    ctx.env = hint_env;
                }
            }
        }
    }
    json_buf_put(&text, hint.data, hint.len);
    json_buf_puts(&text, sql);
    ctx.warn_hint = ctx.multi ? NULL : hint.data;
    mcp_run_statement(s, text.data, text.len, &ctx, out);
    json_buf_free(&hint);
    json_buf_free(&text);
}

/* "a,b,c" from a checked array of environment names into b; false (error in out) when a name
 * is not one. allow_star: ["*"] alone means every readable environment. */
static bool mcp_put_env_list(json_buf *b, const json *list, const char *arg, bool allow_star,
                             mcp_result *out)
{
    for (size_t i = 0; i < list->u.arr.n; i++) {
        const char *name = list->u.arr.items[i]->u.str.s;
        if (allow_star && strcmp(name, "*") == 0) {
            if (list->u.arr.n != 1) {
                mcp_out_error(out, NULL, 0, NULL,
                              "argument '%s': \"*\" means every environment and must be alone",
                              arg);
                return false;
            }
            json_buf_putc(b, '*');
            return true;
        }
        if (!mcp_check_env_name(name, arg, out))
            return false;
        if (i)
            json_buf_putc(b, ',');
        json_buf_puts(b, name);
    }
    return true;
}

static void mcp_tool_execute_query_multi_env(mcp_server *s, const json *args, mcp_result *out)
{
    const char *sql = mcp_arg_str(args, "sql"), *db = mcp_arg_str(args, "database");
    const json *envs = json_get(args, "environments");
    bool compare = mcp_arg_bool(args, "compare");
    json_buf list, text;
    json_buf_init(&list);
    json_buf_init(&text);
    if (!mcp_put_env_list(&list, envs, "environments", !compare, out))
        goto done;
    if (compare && envs->u.arr.n != 2) {
        mcp_out_error(out, NULL, 0, NULL,
                      "compare=true needs exactly two environments, not %zu (use compare_query to "
                      "match rows on a key)",
                      envs->u.arr.n);
        goto done;
    }
    if (db && !mcp_check_hint_db(db, out))
        goto done;
    if (!mcp_connect_for_tool(s, out))
        goto done;
    json_buf_puts(&text, compare ? "/* compare=" : "/* env=");
    json_buf_put(&text, list.data, list.len);
    if (db) {
        json_buf_puts(&text, " db=");
        json_buf_puts(&text, db);
    }
    json_buf_puts(&text, " */ ");
    json_buf_puts(&text, sql);
    mcp_run_ctx ctx = {.env = list.data, .multi = true};
    mcp_run_statement(s, text.data, text.len, &ctx, out);
done:
    json_buf_free(&list);
    json_buf_free(&text);
}

static void mcp_tool_compare_query(mcp_server *s, const json *args, mcp_result *out)
{
    const char *sql = mcp_arg_str(args, "sql"), *key = mcp_arg_str(args, "key");
    json_buf list, text;
    json_buf_init(&list);
    json_buf_init(&text);
    if (!mcp_put_env_list(&list, json_get(args, "environments"), "environments", false, out))
        goto done;
    if (!mcp_connect_for_tool(s, out))
        goto done;
    json_buf_puts(&text, "SELECT * FROM __compare.query WHERE envs = ");
    mcp_put_sql_string(s, &text, list.data, list.len);
    json_buf_puts(&text, " AND `sql` = ");
    mcp_put_sql_string(s, &text, sql, strlen(sql));
    if (key) {
        json_buf_puts(&text, " AND `key` = ");
        mcp_put_sql_string(s, &text, key, strlen(key));
    }
    mcp_run_ctx ctx = {.env = list.data, .multi = true};
    mcp_run_statement(s, text.data, text.len, &ctx, out);
done:
    json_buf_free(&list);
    json_buf_free(&text);
}

static void mcp_tool_compare_schema(mcp_server *s, const json *args, mcp_result *out)
{
    const char *db = mcp_arg_str(args, "database");
    json_buf list, text;
    json_buf_init(&list);
    json_buf_init(&text);
    if (!mcp_put_env_list(&list, json_get(args, "environments"), "environments", false, out))
        goto done;
    if (!mcp_connect_for_tool(s, out))
        goto done;
    json_buf_puts(&text, "SELECT * FROM __compare.schema WHERE envs = ");
    mcp_put_sql_string(s, &text, list.data, list.len);
    if (db) {
        json_buf_puts(&text, " AND db = ");
        mcp_put_sql_string(s, &text, db, strlen(db));
    }
    mcp_run_ctx ctx = {.env = list.data, .multi = true};
    mcp_run_statement(s, text.data, text.len, &ctx, out);
done:
    json_buf_free(&list);
    json_buf_free(&text);
}

#define MCP_ENV_DESC "Environment name, as listed by list_environments (e.g. \"prod\")."

static const mcp_tool mcp_tools[] = {
    {"list_environments",
     "List environments",
     "List the database environments (for example dev, uat, prod) this account can use "
     "through envproxy. Returns one row per environment: name, description, status (up, down, "
     "or unknown before the first check), access (read: queries only; write: changes allowed), "
     "server_version and latency_ms of the last health check. Use these names as the "
     "environment arguments of the other tools.",
     true,
     {{0}},
     mcp_tool_list_environments},
    {"health_check",
     "Environment health",
     "Report envproxy's latest health check of one environment, or of every environment when "
     "environment is omitted: name, status (up/down/unknown), latency_ms, last_error and "
     "checked_at (UTC). Fails if the environment does not exist for this account.",
     true,
     {{"environment", MCP_ARG_STRING, false, 0, 0, MCP_ENV_DESC " Omit for all environments."}},
     mcp_tool_health_check},
    {"list_databases",
     "List databases",
     "List the databases (schemas) of one environment, or of every environment this account "
     "can read when environment is omitted. Returns rows of env and database; an environment "
     "that is down or does not answer in time gives one row with database null.",
     true,
     {{"environment", MCP_ARG_STRING, false, 0, 0, MCP_ENV_DESC " Omit for all environments."}},
     mcp_tool_list_databases},
    {"list_tables",
     "List tables",
     "List the tables and views of one database in one environment (SHOW FULL TABLES). Returns "
     "rows of the table name and its type (BASE TABLE, VIEW, ...).",
     true,
     {{"environment", MCP_ARG_STRING, true, 0, 0, MCP_ENV_DESC},
      {"database", MCP_ARG_STRING, true, 0, 0, "Database (schema) name in that environment."}},
     mcp_tool_list_tables},
    {"describe_table",
     "Describe a table",
     "Describe one table of one environment from its information_schema. Returns columns in "
     "order (name, type as declared, nullable, default, key, extra, comment), keys (indexes: "
     "name, unique, type, columns in order; PRIMARY first) and foreign_keys (name, columns, "
     "referenced_database, referenced_table, referenced_columns). Fails with code 1146 when the "
     "table does not exist there.",
     true,
     {{"environment", MCP_ARG_STRING, true, 0, 0, MCP_ENV_DESC},
      {"database", MCP_ARG_STRING, true, 0, 0, "Database (schema) name in that environment."},
      {"table", MCP_ARG_STRING, true, 0, 0, "Table or view name."}},
     mcp_tool_describe_table},
    {"execute_query",
     "Run a SQL statement",
     "Run one SQL statement (MySQL/MariaDB dialect; one statement per call) through envproxy. "
     "With environment and/or database it runs there for this call only; without them it runs "
     "in the connection's current environment and database (at first the account's default; a "
     "USE db@env statement moves it for later calls). Returns columns (name and SQL type), rows "
     "as arrays (NULL as null; integer and floating-point columns as numbers; binary data as "
     "\"0x...\" hex; everything else, DECIMAL included, as strings), row_count, truncated (true "
     "when only the first rows are returned: at most {max_rows} rows, and envproxy may cap "
     "results itself; narrow the query with WHERE or LIMIT), execution_time_ms and any "
     "warnings; a statement without a result set returns affected_rows instead. Writes "
     "(INSERT, UPDATE, DELETE, DDL, ...) are refused with error code 1290 in read-only "
     "environments and where this account only has read access (see access in "
     "list_environments). Errors come back with the environment, the MySQL error code and "
     "message.",
     false,
     {{"sql", MCP_ARG_STRING, true, 0, 0, "One SQL statement."},
      {"environment", MCP_ARG_STRING, false, 0, 0,
       MCP_ENV_DESC " Omit to use the connection's current environment."},
      {"database", MCP_ARG_STRING, false, 0, 0,
       "Database to run in, for this call only. Omit to use the current database."}},
     mcp_tool_execute_query},
    {"execute_query_multi_env",
     "Run a query in several environments",
     "Run one read-only SQL statement in several environments at once and return one combined "
     "result: the columns _env (where the row comes from) and _error (set, with the other values "
     "null, when that environment failed or returned different columns), then the statement's "
     "columns. With compare=true and exactly two environments only the rows that differ are "
     "returned, with the columns _diff (only_left/only_right) and _env first. Writes are "
     "refused. Rows are capped at {max_rows} (truncated says so).",
     true,
     {{"sql", MCP_ARG_STRING, true, 0, 0, "One read-only SQL statement (SELECT, SHOW, ...)."},
      {"environments", MCP_ARG_LIST, true, 1, ROUTE_MAX_ENVS,
       "Environment names, e.g. [\"dev\", \"prod\"], or [\"*\"] for every environment this "
       "account can read."},
      {"compare", MCP_ARG_BOOL, false, 0, 0,
       "true: return only the rows that differ between exactly two environments."},
      {"database", MCP_ARG_STRING, false, 0, 0,
       "Database to run in, in every environment. Omit to use the current database."}},
     mcp_tool_execute_query_multi_env},
    {"compare_query",
     "Compare a query's results",
     "Run one read-only SQL statement in two environments and return only the differences "
     "(an empty result means the results are the same). With key, rows are matched on it and "
     "_diff is only_left, only_right or changed (a changed row appears twice: left environment, "
     "then right); without key, whole rows are compared as multisets. Columns: _diff, _env, "
     "then the statement's columns. Qualify tables with their database (shop.orders); otherwise "
     "the connection's current database is used. Rows are capped at {max_rows}.",
     true,
     {{"sql", MCP_ARG_STRING, true, 0, 0,
       "One read-only SQL statement, e.g. \"SELECT id, status FROM shop.orders\"."},
      {"environments", MCP_ARG_LIST, true, 2, 2, "Exactly two environment names: [left, right]."},
      {"key", MCP_ARG_STRING, false, 0, 0,
       "Column(s) identifying a row, comma-separated, e.g. \"id\"."}},
     mcp_tool_compare_query},
    {"compare_schema",
     "Compare schemas",
     "Compare the schema of one database between two environments: tables, columns (type, "
     "nullability, default), indexes and foreign keys. Returns one row per difference: "
     "database, table_name, object_type (table/column/index/foreign_key), object_name, _diff "
     "(only_left, only_right, changed), left_definition, right_definition. An empty result "
     "means the schemas match.",
     true,
     {{"environments", MCP_ARG_LIST, true, 2, 2, "Exactly two environment names: [left, right]."},
      {"database", MCP_ARG_STRING, false, 0, 0,
       "Database to compare. Omit for the connection's current database."}},
     mcp_tool_compare_schema},
};
#define MCP_N_TOOLS (sizeof(mcp_tools) / sizeof(mcp_tools[0]))

static const mcp_tool *mcp_find_tool(const char *name)
{
    for (size_t i = 0; i < MCP_N_TOOLS; i++)
        if (strcmp(mcp_tools[i].name, name) == 0)
            return &mcp_tools[i];
    return NULL;
}

static json *mcp_arg_schema(const mcp_arg *a)
{
    json *p = json_new_object();
    if (a->kind == MCP_ARG_LIST) {
        json_object_set(p, "type", json_new_cstr("array"));
        json *items = json_new_object();
        json_object_set(items, "type", json_new_cstr("string"));
        json_object_set(p, "items", items);
        json_object_set(p, "minItems", json_new_int(a->min_items));
        if (a->max_items)
            json_object_set(p, "maxItems", json_new_int(a->max_items));
    } else {
        json_object_set(p, "type", json_new_cstr(a->kind == MCP_ARG_BOOL ? "boolean" : "string"));
    }
    json_object_set(p, "description", json_new_cstr(a->description));
    return p;
}

static json *mcp_tool_descriptor(const mcp_server *s, const mcp_tool *t)
{
    json *d = json_new_object();
    json_object_set(d, "name", json_new_cstr(t->name));
    json_object_set(d, "title", json_new_cstr(t->title));
    json_buf desc;
    json_buf_init(&desc);
    static const char mark[] = "{max_rows}";
    for (const char *p = t->description;;) {
        const char *m = strstr(p, mark);
        if (!m) {
            json_buf_puts(&desc, p);
            break;
        }
        json_buf_put(&desc, p, (size_t)(m - p));
        json_buf_printf(&desc, "%lld", s->o.max_rows);
        p = m + sizeof(mark) - 1;
    }
    json_object_set(d, "description", json_new_string(desc.data, desc.len));
    json_buf_free(&desc);
    json *schema = json_new_object(), *props = json_new_object(), *req = json_new_array();
    json_object_set(schema, "type", json_new_cstr("object"));
    for (int i = 0; i < MCP_MAX_ARGS && t->args[i].name; i++) {
        json_object_set(props, t->args[i].name, mcp_arg_schema(&t->args[i]));
        if (t->args[i].required)
            json_array_add(req, json_new_cstr(t->args[i].name));
    }
    json_object_set(schema, "properties", props);
    if (req->u.arr.n)
        json_object_set(schema, "required", req);
    else
        json_free(req);
    json_object_set(schema, "additionalProperties", json_new_bool(false));
    json_object_set(d, "inputSchema", schema);
    json *ann = json_new_object();
    json_object_set(ann, "title", json_new_cstr(t->title));
    json_object_set(ann, "readOnlyHint", json_new_bool(t->read_only));
    json_object_set(ann, "destructiveHint", json_new_bool(!t->read_only));
    json_object_set(ann, "idempotentHint", json_new_bool(t->read_only));
    json_object_set(ann, "openWorldHint", json_new_bool(false));
    json_object_set(d, "annotations", ann);
    return d;
}

/* ---- named queries as tools (MCP over HTTP) ---------------------------------------------- */

#define MCP_NAMED_PREFIX "nq_"

/* Over stdio: the named queries this account may run, read from __queries.queries (nothing
 * when envproxy cannot be reached: the tools are then the built-in ones). */
static void mcp_load_named(mcp_server *s)
{
    if (s->named_given)
        return;
    mcp_error e;
    if (!mcp_connect(s, &e))
        return;
    static const char sql[] = "SELECT name, description, sql, params, environments, database "
                              "FROM __queries.queries ORDER BY name";
    MYSQL_RES *res = mcp_store(s, sql, sizeof(sql) - 1, &e);
    if (!res)
        return;
    json *defs = json_new_array();
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) && mysql_num_fields(res) == 6) {
        char jerr[64];
        json *d = json_new_object();
        json_object_set(d, "name", json_new_cstr(row[0] ? row[0] : ""));
        json_object_set(d, "description", json_new_cstr(row[1] ? row[1] : ""));
        json_object_set(d, "sql", json_new_cstr(row[2] ? row[2] : ""));
        json *ps = row[3] ? json_parse(row[3], strlen(row[3]), 8, jerr, sizeof(jerr)) : NULL;
        json *es = row[4] ? json_parse(row[4], strlen(row[4]), 8, jerr, sizeof(jerr)) : NULL;
        json_object_set(d, "params", ps ? ps : json_new_array());
        json_object_set(d, "environments", es ? es : json_new_array());
        json_object_set(d, "database", row[5] ? json_new_cstr(row[5]) : json_new_null());
        json_array_add(defs, d);
    }
    mysql_free_result(res);
    json_free(s->named);
    s->named = defs;
}

static const json *mcp_find_named(mcp_server *s, const char *tool)
{
    size_t pl = strlen(MCP_NAMED_PREFIX);
    if (!s->named || strncmp(tool, MCP_NAMED_PREFIX, pl) != 0)
        return NULL;
    for (size_t i = 0; i < s->named->u.arr.n; i++) {
        const char *n = json_string_value(json_get(s->named->u.arr.items[i], "name"));
        if (n && strcmp(n, tool + pl) == 0)
            return s->named->u.arr.items[i];
    }
    return NULL;
}

/* A tool for a named query: its parameters are the input schema, plus "environment". */
static json *mcp_named_descriptor(const json *def)
{
    const char *name = json_string_value(json_get(def, "name"));
    const char *desc = json_string_value(json_get(def, "description"));
    const char *sql = json_string_value(json_get(def, "sql"));
    json *d = json_new_object();
    char tool[128];
    snprintf(tool, sizeof(tool), MCP_NAMED_PREFIX "%s", name ? name : "");
    json_object_set(d, "name", json_new_cstr(tool));
    json_object_set(d, "title", json_new_cstr(name ? name : ""));
    json_buf t;
    json_buf_init(&t);
    json_buf_printf(&t, "%s%sNamed query (parameters are bound, never spliced): %s",
                    desc ? desc : "", desc && desc[0] ? ". " : "", sql ? sql : "");
    json_object_set(d, "description", json_new_string(t.data, t.len));
    json_buf_free(&t);
    json *schema = json_new_object(), *props = json_new_object(), *req = json_new_array();
    json_object_set(schema, "type", json_new_cstr("object"));
    json *envp = json_new_object();
    json_object_set(envp, "type", json_new_cstr("string"));
    const json *envs = json_get(def, "environments");
    if (envs && envs->type == JSON_ARRAY && envs->u.arr.n > 0)
        json_object_set(envp, "enum", json_clone(envs));
    json_object_set(envp, "description",
                    json_new_cstr("Environment to run in (default: the first allowed one, else "
                                  "the account's default)."));
    json_object_set(props, "environment", envp);
    const json *ps = json_get(def, "params");
    for (size_t i = 0; ps && ps->type == JSON_ARRAY && i < ps->u.arr.n; i++) {
        const json *pd = ps->u.arr.items[i];
        const char *pn = json_string_value(json_get(pd, "name"));
        const char *pt = json_string_value(json_get(pd, "type"));
        if (!pn || !pt)
            continue;
        json *p = json_new_object();
        json_object_set(p, "type", json_new_cstr(strcmp(pt, "int") == 0    ? "integer"
                                                 : strcmp(pt, "bool") == 0 ? "boolean"
                                                                           : "string"));
        json_object_set(p, "description", json_new_cstr(pt));
        const json *dv = json_get(pd, "default");
        if (dv && dv->type != JSON_NULL)
            json_object_set(p, "default", json_clone(dv));
        json_object_set(props, pn, p);
        const json *rq = json_get(pd, "required");
        if (rq && rq->type == JSON_BOOL && rq->u.b)
            json_array_add(req, json_new_cstr(pn));
    }
    json_object_set(schema, "properties", props);
    if (req->u.arr.n)
        json_object_set(schema, "required", req);
    else
        json_free(req);
    json_object_set(schema, "additionalProperties", json_new_bool(false));
    json_object_set(d, "inputSchema", schema);
    return d;
}

/* Runs a named query as a server-side prepared statement with its arguments bound, in the
 * environment asked for (a routing comment in front), and writes the result into out. */
static void mcp_run_named(mcp_server *s, const json *def, const json *args, mcp_result *out)
{
    const char *sql = json_string_value(json_get(def, "sql"));
    const char *db = json_string_value(json_get(def, "database"));
    const json *envs = json_get(def, "environments"), *ps = json_get(def, "params");
    const char *env = args ? mcp_arg_str(args, "environment") : NULL;
    if (!env && envs && envs->type == JSON_ARRAY && envs->u.arr.n > 0)
        env = json_string_value(envs->u.arr.items[0]);
    if (env && !mcp_check_env_name(env, "environment", out))
        return;
    bool allowed = !env || !envs || envs->type != JSON_ARRAY || envs->u.arr.n == 0;
    for (size_t i = 0; !allowed && i < envs->u.arr.n; i++)
        allowed = strcmp(json_string_value(envs->u.arr.items[i]), env) == 0;
    if (!allowed) {
        mcp_out_error(out, env, 0, NULL, "this named query may not run in environment '%s'", env);
        return;
    }
    for (size_t i = 0; args && i < args->u.obj.n; i++) {
        const char *k = args->u.obj.items[i].key;
        bool known = strcmp(k, "environment") == 0;
        for (size_t j = 0; !known && ps && j < ps->u.arr.n; j++)
            known = strcmp(json_string_value(json_get(ps->u.arr.items[j], "name")), k) == 0;
        if (!known) {
            mcp_out_error(out, env, 0, NULL, "unknown argument '%.64s'", k);
            return;
        }
    }
    const char *names[64];
    size_t lens[64];
    char *rewritten = NULL, err[200];
    int n = hj_named_params(sql, strlen(sql), &rewritten, names, lens, 64, err, sizeof(err));
    if (n < 0) {
        mcp_out_error(out, env, 0, NULL, "%s", err);
        return;
    }
    MYSQL_BIND binds[64];
    char canon[64][96];
    my_bool nulls[64];
    unsigned long blens[64];
    long long ints[64];
    memset(binds, 0, sizeof(binds));
    for (int i = 0; i < n; i++) {
        char pn[65];
        snprintf(pn, sizeof(pn), "%.*s", (int)lens[i], names[i]);
        const json *pd = NULL;
        for (size_t j = 0; ps && j < ps->u.arr.n && !pd; j++)
            if (strcmp(json_string_value(json_get(ps->u.arr.items[j], "name")), pn) == 0)
                pd = ps->u.arr.items[j];
        const char *type = pd ? json_string_value(json_get(pd, "type")) : "string";
        const json *v = args ? json_get(args, pn) : NULL;
        if (!v || v->type == JSON_NULL) {
            const json *dv = pd ? json_get(pd, "default") : NULL;
            const json *rq = pd ? json_get(pd, "required") : NULL;
            if (dv && dv->type != JSON_NULL)
                v = dv;
            else if (rq && rq->type == JSON_BOOL && rq->u.b) {
                mcp_out_error(out, env, 0, NULL, "argument '%s' is required", pn);
                free(rewritten);
                return;
            }
        }
        nulls[i] = !v || v->type == JSON_NULL;
        binds[i].is_null = &nulls[i];
        if (nulls[i]) {
            binds[i].buffer_type = MYSQL_TYPE_NULL;
            continue;
        }
        char perr[128];
        if (!hj_check_param(type, v, canon[i], sizeof(canon[i]), perr, sizeof(perr))) {
            mcp_out_error(out, env, 0, NULL, "argument '%s' (%s): %s", pn, type, perr);
            free(rewritten);
            return;
        }
        if (strcmp(type, "int") == 0 || strcmp(type, "bool") == 0) {
            ints[i] = strtoll(canon[i], NULL, 10);
            binds[i].buffer_type = MYSQL_TYPE_LONGLONG;
            binds[i].buffer = &ints[i];
        } else if (strcmp(type, "string") == 0) {
            binds[i].buffer_type = MYSQL_TYPE_STRING;
            binds[i].buffer = (void *)v->u.str.s;
            blens[i] = (unsigned long)v->u.str.len;
            binds[i].buffer_length = blens[i];
            binds[i].length = &blens[i];
        } else {
            binds[i].buffer_type =
                strcmp(type, "decimal") == 0 ? MYSQL_TYPE_NEWDECIMAL : MYSQL_TYPE_STRING;
            binds[i].buffer = canon[i];
            blens[i] = (unsigned long)strlen(canon[i]);
            binds[i].buffer_length = blens[i];
            binds[i].length = &blens[i];
        }
    }
    if (!mcp_connect_for_tool(s, out)) {
        free(rewritten);
        return;
    }
    json_buf text;
    json_buf_init(&text);
    mcp_put_hint(&text, env, db);
    json_buf_puts(&text, rewritten);
    free(rewritten);
    double t0 = mcp_clock_ms();
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    mcp_error e = {0};
    MYSQL_RES *meta = NULL;
    MYSQL_BIND *rb = NULL;
    char **bufs = NULL;
    unsigned long *rlens = NULL, *caps = NULL;
    my_bool *rnull = NULL;
    unsigned nf = 0;
    /* The rows are read as they come (not stored whole first), each value fetched at its
     * own length, and the answer is cut at max_rows or past max_bytes, as execute_query's. */
    if (!st || mysql_stmt_prepare(st, text.data, (unsigned long)text.len) != 0 ||
        (n > 0 && mysql_stmt_bind_param(st, binds) != 0) || mysql_stmt_execute(st) != 0)
        goto fail;
    json_buf *b = &out->text;
    json_buf_reset(b);
    json_buf_putc(b, '{');
    if (env) {
        json_buf_puts(b, "\"environment\":");
        json_write_string(b, env, strlen(env));
        json_buf_putc(b, ',');
    }
    meta = mysql_stmt_result_metadata(st);
    if (!meta) {
        json_buf_printf(b, "\"affected_rows\":%llu,\"execution_time_ms\":%.3f}",
                        (unsigned long long)mysql_stmt_affected_rows(st), mcp_clock_ms() - t0);
        goto done;
    }
    nf = mysql_num_fields(meta);
    MYSQL_FIELD *fields = mysql_fetch_fields(meta);
    rb = calloc(nf, sizeof(*rb));
    bufs = calloc(nf, sizeof(*bufs));
    rlens = calloc(nf, sizeof(*rlens));
    rnull = calloc(nf, sizeof(*rnull));
    caps = calloc(nf, sizeof(*caps));
    if (!rb || !bufs || !rlens || !rnull || !caps)
        abort();
    json_buf_puts(b, "\"columns\":[");
    for (unsigned i = 0; i < nf; i++) {
        char tmp[32];
        const char *type = mcp_field_type_name(&fields[i], tmp, sizeof(tmp));
        json_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        json_write_string(b, fields[i].name, fields[i].name_length);
        json_buf_puts(b, ",\"type\":");
        json_write_string(b, type, strlen(type));
        json_buf_putc(b, '}');
        caps[i] = 256; /* grown to a longer value's length when one comes */
        bufs[i] = malloc(caps[i]);
        if (!bufs[i])
            abort();
        rb[i].buffer_type = MYSQL_TYPE_STRING;
        rb[i].buffer = bufs[i];
        rb[i].buffer_length = caps[i];
        rb[i].length = &rlens[i];
        rb[i].is_null = &rnull[i];
    }
    json_buf_puts(b, "],\"rows\":[");
    if (mysql_stmt_bind_result(st, rb) != 0)
        goto fail;
    size_t rows_start = b->len;
    long long count = 0;
    const char *cut_by = NULL;
    int rc;
    while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
        if (count >= s->o.max_rows) {
            cut_by = "max_rows";
            break;
        }
        if (b->len - rows_start >= s->o.max_bytes) {
            cut_by = "max_bytes";
            break;
        }
        for (unsigned i = 0; i < nf; i++) {
            if (rnull[i] || rlens[i] < caps[i])
                continue;
            /* Longer than its buffer: fetched again whole into a larger one. */
            char *nb = realloc(bufs[i], rlens[i] + 1);
            if (!nb)
                abort();
            bufs[i] = nb;
            caps[i] = rlens[i] + 1;
            MYSQL_BIND one = rb[i];
            one.buffer = nb;
            one.buffer_length = caps[i];
            if (mysql_stmt_fetch_column(st, &one, i, 0) != 0)
                goto fail;
            rb[i].buffer = nb;
            rb[i].buffer_length = caps[i];
            if (mysql_stmt_bind_result(st, rb) != 0)
                goto fail;
        }
        if (count)
            json_buf_putc(b, ',');
        json_buf_putc(b, '[');
        for (unsigned i = 0; i < nf; i++) {
            if (i)
                json_buf_putc(b, ',');
            mcp_write_cell(b, &fields[i], rnull[i] ? NULL : bufs[i], rlens[i]);
        }
        json_buf_putc(b, ']');
        count++;
    }
    if (!cut_by && rc == 1)
        goto fail; /* the result ended with an error (a timeout, a lost connection) */
    json_buf_printf(b, "],\"row_count\":%lld,\"truncated\":%s", count, cut_by ? "true" : "false");
    if (cut_by) {
        json_buf_puts(b, ",\"truncated_by\":");
        json_write_string(b, cut_by, strlen(cut_by));
    }
    json_buf_printf(b, ",\"execution_time_ms\":%.3f}", mcp_clock_ms() - t0);
    goto done;
fail:
    e.code = st ? mysql_stmt_errno(st) : mysql_errno(s->db);
    snprintf(e.sqlstate, sizeof(e.sqlstate), "%s", st ? mysql_stmt_sqlstate(st) : "HY000");
    snprintf(e.message, sizeof(e.message), "%s", st ? mysql_stmt_error(st) : mysql_error(s->db));
    mcp_out_db_error(out, env, &e);
    if (mcp_connection_lost(e.code))
        mcp_close(s), st = NULL;
done:
    for (unsigned i = 0; bufs && i < nf; i++)
        free(bufs[i]);
    free(bufs);
    free(rb);
    free(rlens);
    free(caps);
    free(rnull);
    if (meta)
        mysql_free_result(meta);
    if (st)
        mysql_stmt_close(st);
    json_buf_free(&text);
}

/* ---- JSON-RPC --------------------------------------------------------------------------- */

static json *mcp_rpc_result(const json *id, json *result)
{
    json *r = json_new_object();
    json_object_set(r, "jsonrpc", json_new_cstr("2.0"));
    json_object_set(r, "id", id ? json_clone(id) : json_new_null());
    json_object_set(r, "result", result);
    return r;
}

/* The answer to tools/call: the tool's text as one content item, and whether it failed.
 * Frees out's text. */
static json *mcp_tool_reply(const json *id, mcp_result *out)
{
    json *item = json_new_object();
    json_object_set(item, "type", json_new_cstr("text"));
    json_object_set(item, "text", json_new_string(out->text.data, out->text.len));
    json_buf_free(&out->text);
    json *content = json_new_array();
    json_array_add(content, item);
    json *r = json_new_object();
    json_object_set(r, "content", content);
    json_object_set(r, "isError", json_new_bool(out->is_error));
    return mcp_rpc_result(id, r);
}

static json *mcp_rpc_error(const json *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static json *mcp_rpc_error(const json *id, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json *r = json_new_object(), *e = json_new_object();
    json_object_set(r, "jsonrpc", json_new_cstr("2.0"));
    json_object_set(r, "id", id ? json_clone(id) : json_new_null());
    json_object_set(e, "code", json_new_int(code));
    json_object_set(e, "message", json_new_cstr(msg));
    json_object_set(r, "error", e);
    return r;
}

/* Writes one message and a newline to stdout. */
static void mcp_send_message(mcp_server *s, const json *msg)
{
    if (s->output_failed)
        return;
    size_t n;
    char *text = json_serialize(msg, &n);
    text[n] = '\n'; /* the terminating NUL's place: serialize leaves room for it */
    if (fwrite(text, 1, n + 1, stdout) != n + 1 || fflush(stdout) != 0)
        s->output_failed = true;
    free(text);
}

static json *mcp_do_initialize(mcp_server *s, const json *id, const json *params)
{
    const json *pv = json_get(params, "protocolVersion");
    if (pv && pv->type != JSON_STRING)
        return mcp_rpc_error(id, RPC_INVALID_PARAMS,
                             "Invalid params: protocolVersion must be a string");
    const char *version = mcp_versions[MCP_N_VERSIONS - 1];
    for (size_t i = 0; pv && i < MCP_N_VERSIONS; i++)
        if (strcmp(pv->u.str.s, mcp_versions[i]) == 0)
            version = mcp_versions[i];
    json *r = json_new_object(), *caps = json_new_object(), *tl = json_new_object(),
         *info = json_new_object();
    json_object_set(r, "protocolVersion", json_new_cstr(version));
    json_object_set(tl, "listChanged", json_new_bool(false));
    json_object_set(caps, "tools", tl);
    json_object_set(r, "capabilities", caps);
    json_object_set(info, "name", json_new_cstr("envproxy"));
    json_object_set(info, "version", json_new_cstr(ENVPROXY_VERSION));
    json_object_set(r, "serverInfo", info);
    json_object_set(
        r, "instructions",
        json_new_cstr("SQL access to several database environments (dev, prod, ...) through "
                      "envproxy. Start with list_environments; explore with list_databases, "
                      "list_tables and describe_table; query with execute_query. Environments "
                      "with access 'read' refuse writes (error 1290). Compare environments "
                      "with compare_query and compare_schema."));
    return mcp_rpc_result(id, r);
}

static json *mcp_do_tools_list(mcp_server *s, const json *id)
{
    json *list = json_new_array();
    for (size_t i = 0; i < MCP_N_TOOLS; i++)
        json_array_add(list, mcp_tool_descriptor(s, &mcp_tools[i]));
    mcp_load_named(s);
    for (size_t i = 0; s->named && i < s->named->u.arr.n; i++)
        json_array_add(list, mcp_named_descriptor(s->named->u.arr.items[i]));
    json *r = json_new_object();
    json_object_set(r, "tools", list);
    return mcp_rpc_result(id, r);
}

static json *mcp_do_tools_call(mcp_server *s, const json *id, const json *params)
{
    const json *name = json_get(params, "name");
    if (!name || name->type != JSON_STRING)
        return mcp_rpc_error(id, RPC_INVALID_PARAMS, "Invalid params: name must be a string");
    const mcp_tool *t = mcp_find_tool(name->u.str.s);
    if (!t && strncmp(name->u.str.s, MCP_NAMED_PREFIX, strlen(MCP_NAMED_PREFIX)) == 0)
        mcp_load_named(s);
    const json *nq = t ? NULL : mcp_find_named(s, name->u.str.s);
    if (nq) {
        const json *nargs = json_get(params, "arguments");
        mcp_result nout = {.is_error = false};
        json_buf_init(&nout.text);
        if (nargs && nargs->type != JSON_OBJECT && nargs->type != JSON_NULL)
            mcp_out_error(&nout, NULL, 0, NULL, "arguments must be an object");
        else
            mcp_run_named(s, nq, nargs && nargs->type == JSON_OBJECT ? nargs : NULL, &nout);
        return mcp_tool_reply(id, &nout);
    }
    if (!t) {
        json_buf q;
        json_buf_init(&q);
        json_write_string(&q, name->u.str.s, name->u.str.len);
        json *r = mcp_rpc_error(id, RPC_INVALID_PARAMS, "Unknown tool: %.100s", q.data);
        json_buf_free(&q);
        return r;
    }
    const json *args = json_get(params, "arguments");
    json *empty = NULL;
    if (!args || args->type == JSON_NULL)
        args = empty = json_new_object();
    if (args->type != JSON_OBJECT)
        return mcp_rpc_error(id, RPC_INVALID_PARAMS, "Invalid params: arguments must be an object");

    mcp_result out = {.is_error = false};
    json_buf_init(&out.text);
    if (mcp_check_args(t, args, &out))
        t->run(s, args, &out);
    json_free(empty);

    return mcp_tool_reply(id, &out);
}

/* Handles one message; returns the reply to send, or NULL for none (notifications, and
 * responses, which this server never asked for). */
static json *mcp_handle_message(mcp_server *s, const json *m)
{
    if (m->type != JSON_OBJECT)
        return mcp_rpc_error(NULL, RPC_INVALID_REQUEST, "Invalid Request: expected a JSON object");
    const json *id = json_get(m, "id");
    if (id && id->type != JSON_STRING && id->type != JSON_NUMBER)
        return mcp_rpc_error(NULL, RPC_INVALID_REQUEST,
                             "Invalid Request: id must be a string or a number");
    const json *ver = json_get(m, "jsonrpc");
    if (!ver || ver->type != JSON_STRING || strcmp(ver->u.str.s, "2.0") != 0)
        return mcp_rpc_error(id, RPC_INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\"");
    const json *method = json_get(m, "method");
    if (!method) {
        if (id && (json_get(m, "result") || json_get(m, "error")))
            return NULL;
        return mcp_rpc_error(id, RPC_INVALID_REQUEST, "Invalid Request: method is missing");
    }
    if (method->type != JSON_STRING)
        return mcp_rpc_error(id, RPC_INVALID_REQUEST, "Invalid Request: method must be a string");
    const char *name = method->u.str.s;
    const json *params = json_get(m, "params");
    if (params && params->type == JSON_NULL)
        params = NULL;
    if (!id)
        return NULL; /* notifications/initialized, notifications/cancelled, ...: nothing to do */
    if (params && params->type != JSON_OBJECT)
        return mcp_rpc_error(id, RPC_INVALID_PARAMS, "Invalid params: params must be an object");

    if (strcmp(name, "initialize") == 0)
        return mcp_do_initialize(s, id, params);
    if (strcmp(name, "ping") == 0)
        return mcp_rpc_result(id, json_new_object());
    if (strcmp(name, "tools/list") == 0)
        return mcp_do_tools_list(s, id);
    if (strcmp(name, "tools/call") == 0) {
        if (!params)
            return mcp_rpc_error(id, RPC_INVALID_PARAMS, "Invalid params: tools/call needs params");
        return mcp_do_tools_call(s, id, params);
    }
    json_buf q;
    json_buf_init(&q);
    json_write_string(&q, name, method->u.str.len);
    json *r = mcp_rpc_error(id, RPC_METHOD_NOT_FOUND, "Method not found: %.100s", q.data);
    json_buf_free(&q);
    return r;
}

/* One input line: a message or a batch (an array of messages). */
static void mcp_handle_line(mcp_server *s, const char *line, size_t len)
{
    char err[200];
    json *msg = json_parse(line, len, JSON_MAX_DEPTH, err, sizeof(err));
    if (!msg) {
        json *r = mcp_rpc_error(NULL, RPC_PARSE_ERROR, "Parse error: %s", err);
        mcp_send_message(s, r);
        json_free(r);
        return;
    }
    if (msg->type == JSON_ARRAY) {
        json *replies = json_new_array();
        if (msg->u.arr.n == 0)
            json_array_add(
                replies, mcp_rpc_error(NULL, RPC_INVALID_REQUEST, "Invalid Request: empty batch"));
        for (size_t i = 0; i < msg->u.arr.n; i++) {
            json *r = mcp_handle_message(s, msg->u.arr.items[i]);
            if (r)
                json_array_add(replies, r);
        }
        if (replies->u.arr.n == 1 && msg->u.arr.n == 0)
            mcp_send_message(s, replies->u.arr.items[0]);
        else if (replies->u.arr.n)
            mcp_send_message(s, replies);
        json_free(replies);
    } else {
        json *r = mcp_handle_message(s, msg);
        if (r) {
            mcp_send_message(s, r);
            json_free(r);
        }
    }
    json_free(msg);
}

/* ---- input ------------------------------------------------------------------------------ */

typedef struct {
    char chunk[65536];
    size_t pos, end;
    bool eof;
    json_buf line;
} mcp_reader;

/* The next line of stdin, without its newline, in r->line. Returns 1 for a line, 2 for a
 * line longer than MCP_MAX_MESSAGE (read and dropped), 0 at the end of input. */
static int mcp_next_line(mcp_reader *r)
{
    json_buf_reset(&r->line);
    bool too_long = false, any = false;
    for (;;) {
        if (r->pos == r->end) {
            if (r->eof)
                return too_long ? 2 : any ? 1 : 0;
            ssize_t n = read(STDIN_FILENO, r->chunk, sizeof(r->chunk));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (n < 0)
                    fprintf(stderr, "envproxy mcp: reading stdin: %s\n", strerror(errno));
                r->eof = true;
                continue;
            }
            r->pos = 0;
            r->end = (size_t)n;
        }
        any = true;
        const char *start = r->chunk + r->pos;
        const char *nl = memchr(start, '\n', r->end - r->pos);
        size_t take = nl ? (size_t)(nl - start) : r->end - r->pos;
        if (!too_long) {
            if (r->line.len + take > MCP_MAX_MESSAGE) {
                too_long = true;
                json_buf_reset(&r->line);
            } else {
                json_buf_put(&r->line, start, take);
            }
        }
        r->pos += take;
        if (nl) {
            r->pos++;
            return too_long ? 2 : 1;
        }
    }
}

/* ---- command line ----------------------------------------------------------------------- */

static void mcp_usage(FILE *out)
{
    fprintf(out,
            "usage: envproxy mcp [--host H] [--port P] [--user U] [--password-env VAR]\n"
            "                    [--database DB@ENV] [--max-rows N] [--max-bytes N]\n"
            "                    [--connect-timeout S] [--read-timeout S] [--tls] [--tls-ca FILE]\n"
            "Serves the Model Context Protocol on stdin/stdout (one JSON-RPC message per line);\n"
            "each tool call runs SQL as a MySQL client of the envproxy at H:P\n"
            "(default 127.0.0.1:3307), as user U (default $ENVPROXY_USER) with the password\n"
            "in the environment variable VAR (default ENVPROXY_PASSWORD).\n"
            "  --database      the connection's starting database, e.g. shop@prod\n"
            "  --max-rows      rows returned per result (default 1000)\n"
            "  --max-bytes     result rows are cut after this much JSON (default 1048576)\n"
            "  --connect-timeout, --read-timeout   seconds (defaults 5 and 300)\n"
            "  --tls           connect with TLS only (needed when envproxy has tls.require);\n"
            "                  the certificate is not checked unless --tls-ca is given\n"
            "  --tls-ca        check envproxy's certificate and host name against FILE\n"
            "                  (implies --tls)\n");
}

/* Matches option name in argv[*i] as "--name VALUE" or "--name=VALUE". */
static bool mcp_opt(int argc, char **argv, int *i, const char *name, const char **value, bool *bad)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return false;
    if (a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (a[n] != '\0')
        return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "envproxy mcp: %s needs a value\n", name);
        *bad = true;
        return true;
    }
    *value = argv[++*i];
    return true;
}

static bool mcp_parse_num(const char *name, const char *v, long long min, long long max,
                          long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max) {
        fprintf(stderr, "envproxy mcp: %s must be an integer from %lld to %lld, not '%s'\n", name,
                min, max, v);
        return false;
    }
    *out = x;
    return true;
}

/* Fills o from the command line and the environment. Returns 0, 2 for an error (printed),
 * or 1 when --help was asked for (usage printed). */
static int mcp_parse_options(int argc, char **argv, mcp_options *o)
{
    o->host = "127.0.0.1";
    o->port = 3307;
    o->user = getenv("ENVPROXY_USER");
    o->password_var = "ENVPROXY_PASSWORD";
    o->max_rows = 1000;
    o->max_bytes = 1024 * 1024;
    o->connect_timeout = 5;
    o->read_timeout = 300;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        bool bad = false;
        long long x;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            mcp_usage(stdout);
            return 1;
        } else if (mcp_opt(argc, argv, &i, "--host", &v, &bad)) {
            if (!bad)
                o->host = v;
        } else if (mcp_opt(argc, argv, &i, "--port", &v, &bad)) {
            if (bad || !mcp_parse_num("--port", v, 1, 65535, &x))
                return 2;
            o->port = (unsigned)x;
        } else if (mcp_opt(argc, argv, &i, "--user", &v, &bad)) {
            if (!bad)
                o->user = v;
        } else if (mcp_opt(argc, argv, &i, "--password-env", &v, &bad)) {
            if (!bad)
                o->password_var = v;
        } else if (mcp_opt(argc, argv, &i, "--database", &v, &bad)) {
            if (!bad)
                o->database = v;
        } else if (mcp_opt(argc, argv, &i, "--max-rows", &v, &bad)) {
            if (bad || !mcp_parse_num("--max-rows", v, 1, 1000000, &o->max_rows))
                return 2;
        } else if (mcp_opt(argc, argv, &i, "--max-bytes", &v, &bad)) {
            if (bad || !mcp_parse_num("--max-bytes", v, 1024, 1LL << 30, &x))
                return 2;
            o->max_bytes = (size_t)x;
        } else if (mcp_opt(argc, argv, &i, "--connect-timeout", &v, &bad)) {
            if (bad || !mcp_parse_num("--connect-timeout", v, 1, 3600, &x))
                return 2;
            o->connect_timeout = (unsigned)x;
        } else if (mcp_opt(argc, argv, &i, "--read-timeout", &v, &bad)) {
            if (bad || !mcp_parse_num("--read-timeout", v, 1, 86400, &x))
                return 2;
            o->read_timeout = (unsigned)x;
        } else if (strcmp(argv[i], "--tls") == 0) {
            o->tls = true;
        } else if (mcp_opt(argc, argv, &i, "--tls-ca", &v, &bad)) {
            o->tls = true;
            o->tls_ca = v;
        } else if (strcmp(argv[i], "--password") == 0 || strncmp(argv[i], "--password=", 11) == 0 ||
                   strncmp(argv[i], "-p", 2) == 0) {
            fprintf(stderr, "envproxy mcp: the password is never taken from the command line: "
                            "put it in an environment variable and name it with --password-env "
                            "(default ENVPROXY_PASSWORD)\n");
            return 2;
        } else {
            fprintf(stderr, "envproxy mcp: unknown option %s\n", argv[i]);
            mcp_usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    if (!o->user || !o->user[0]) {
        fprintf(stderr, "envproxy mcp: no user: give --user or set ENVPROXY_USER\n");
        return 2;
    }
    if (!o->password_var[0]) {
        fprintf(stderr, "envproxy mcp: --password-env needs a variable name\n");
        return 2;
    }
    const char *pw = getenv(o->password_var);
    if (pw) {
        o->password = strdup(pw);
        if (!o->password) {
            fprintf(stderr, "envproxy: out of memory\n");
            return 2;
        }
    } else {
        fprintf(stderr, "envproxy mcp: warning: %s is not set; connecting without a password\n",
                o->password_var);
    }
    return 0;
}

int mcp_main(int argc, char **argv)
{
    mcp_server s;
    memset(&s, 0, sizeof(s));
    int rc = mcp_parse_options(argc, argv, &s.o);
    if (rc) {
        free(s.o.password);
        return rc == 1 ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (mysql_library_init(0, NULL, NULL) != 0) {
        fprintf(stderr, "envproxy mcp: cannot initialise the MySQL client library\n");
        free(s.o.password);
        return 1;
    }
    fprintf(stderr, "envproxy mcp: serving MCP on stdio for %s@%s:%u\n", s.o.user, s.o.host,
            s.o.port);

    mcp_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "envproxy: out of memory\n");
        abort();
    }
    json_buf_init(&r->line);
    int got;
    while (!s.output_failed && (got = mcp_next_line(r)) != 0) {
        if (got == 2) {
            json *e = mcp_rpc_error(NULL, RPC_PARSE_ERROR,
                                    "Parse error: message longer than %d bytes", MCP_MAX_MESSAGE);
            mcp_send_message(&s, e);
            json_free(e);
            continue;
        }
        size_t len = r->line.len;
        if (len && r->line.data[len - 1] == '\r')
            len--;
        size_t i = 0;
        while (i < len && (r->line.data[i] == ' ' || r->line.data[i] == '\t'))
            i++;
        if (i == len)
            continue; /* blank lines are not messages */
        mcp_handle_line(&s, r->line.data, len);
    }
    json_buf_free(&r->line);
    free(r);
    json_free(s.named);
    mcp_close(&s);
    mysql_library_end();
    if (s.o.password) {
        explicit_bzero(s.o.password, strlen(s.o.password));
        free(s.o.password);
    }
    if (s.output_failed) {
        fprintf(stderr, "envproxy mcp: stdout is closed; stopping\n");
        return 1;
    }
    return 0;
}

/* ---- the same tools for MCP over Streamable HTTP (http/mcp.c) -------------------------------- */

mcp_server *mcp_server_new(const char *host, unsigned port, const char *user,
                           const char *password, const char *tls_fp, long long max_rows)
{
    mcp_server *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->o.host = strdup(host);
    s->o.port = port;
    s->o.user = strdup(user);
    s->o.password_var = "(internal)";
    s->o.password = strdup(password);
    s->o.max_rows = max_rows;
    s->o.max_bytes = 1024 * 1024;
    s->o.connect_timeout = 5;
    s->o.read_timeout = 300;
    s->o.tls = true;
    s->o.tls_fp = strdup(tls_fp);
    if (!s->o.host || !s->o.user || !s->o.password || !s->o.tls_fp)
        abort();
    return s;
}

json *mcp_server_handle(mcp_server *s, const json *msg)
{
    if (msg->type != JSON_ARRAY)
        return mcp_handle_message(s, msg);
    json *replies = json_new_array();
    for (size_t i = 0; i < msg->u.arr.n; i++) {
        json *r = mcp_handle_message(s, msg->u.arr.items[i]);
        if (r)
            json_array_add(replies, r);
    }
    if (replies->u.arr.n == 0) {
        json_free(replies);
        return NULL;
    }
    return replies;
}

unsigned long mcp_server_connection_id(mcp_server *s)
{
    return atomic_load(&s->conn_id);
}

void mcp_server_set_named(mcp_server *s, json *defs)
{
    json_free(s->named);
    s->named = defs;
    s->named_given = true;
}

void mcp_server_free(mcp_server *s)
{
    if (!s)
        return;
    json_free(s->named);
    mcp_close(s);
    free((char *)s->o.host);
    free((char *)s->o.user);
    free(s->o.tls_fp);
    if (s->o.password) {
        explicit_bzero(s->o.password, strlen(s->o.password));
        free(s->o.password);
    }
    free(s);
}
