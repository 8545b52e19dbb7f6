/* local.c: statements the proxy answers itself because they are about the proxy, not a
 * backend: KILL, SHOW [FULL] PROCESSLIST, SELECT CONNECTION_ID(), SELECT USER() /
 * CURRENT_USER(), SELECT @@version_comment, SHOW STATUS LIKE 'Ssl%'. */
#include "envproxy.h"
#include "log.h"

#include <ctype.h>
#include <event2/bufferevent_ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_WORDS 12

/* The statement as a short list of tokens; false when it has more than MAX_WORDS or the
 * lexer cannot read it. A trailing ';' is dropped. */
typedef struct {
    const char *sql;
    sql_token t[MAX_WORDS];
    int n;
} words;

static bool read_words(const char *sql, size_t len, words *w)
{
    sql_lexer lx;
    sql_mode_flags mode = {0};
    sqllex_init(&lx, sql, len, &mode);
    w->sql = sql;
    w->n = 0;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_END)
            break;
        if (t.kind == SQLTOK_ERROR)
            return false;
        if (t.kind == SQLTOK_SEMICOLON) {
            sql_token rest = sqllex_next(&lx);
            return rest.kind == SQLTOK_END;
        }
        if (w->n == MAX_WORDS)
            return false;
        w->t[w->n++] = t;
    }
    return true;
}

static bool is_word(const words *w, int i, const char *kw)
{
    if (i >= w->n || w->t[i].kind != SQLTOK_WORD)
        return false;
    size_t n = strlen(kw);
    return w->t[i].len == n && strncasecmp(w->sql + w->t[i].start, kw, n) == 0;
}

static bool is_punct(const words *w, int i, char ch)
{
    return i < w->n && w->t[i].kind == SQLTOK_PUNCT && w->t[i].len == 1 &&
           w->sql[w->t[i].start] == ch;
}

/* Copies token i's text (quotes removed from a quoted identifier or string). */
static void token_text(const words *w, int i, char *out, size_t cap)
{
    const char *s = w->sql + w->t[i].start;
    size_t n = w->t[i].len;
    if ((w->t[i].kind == SQLTOK_QIDENT || w->t[i].kind == SQLTOK_STRING) && n >= 2) {
        s++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* The column name of a one-column answer: the alias after [AS], else the given name.
 * Returns the index after the alias, or -1 when what follows is not an alias. */
static int alias(const words *w, int i, char *name, size_t cap)
{
    if (is_word(w, i, "AS"))
        i++;
    if (i < w->n && (w->t[i].kind == SQLTOK_WORD || w->t[i].kind == SQLTOK_QIDENT ||
                     w->t[i].kind == SQLTOK_STRING)) {
        if (is_word(w, i, "LIMIT") || is_word(w, i, "FROM"))
            return i;
        token_text(w, i, name, cap);
        return i + 1;
    }
    return i;
}

/* Case-insensitive LIKE with % and _ (no escape character). */
static bool like(const char *s, const char *p)
{
    for (; *p; p++, s++) {
        if (*p == '%') {
            for (const char *t = s;; t++) {
                if (like(t, p + 1))
                    return true;
                if (!*t)
                    return false;
            }
        }
        if (!*s || (*p != '_' && tolower((unsigned char)*p) != tolower((unsigned char)*s)))
            return false;
    }
    return *s == '\0';
}

static void one_value(client *c, const char *column, const char *value, uint8_t type)
{
    result_col col = {column, type};
    const char *cells[] = {value};
    result_send(c, &col, 1, cells, 1, 0);
}

/* ---- KILL ---------------------------------------------------------------------------------- */

/* Runs on the target's worker (a WQ_KILL request): kills the statement or the connection of
 * client id. The request names the client by id: it may have gone meanwhile. */
void local_kill_on_worker(worker *w, uint32_t id, bool query_only)
{
    for (client *c = w->clients; c; c = c->next) {
        if (c->id != id)
            continue;
        if (query_only) {
            relay_interrupt(c, RLI_KILLED);
        } else {
            log_info("conn %u %s user=%s: killed by KILL CONNECTION", c->id, c->addr, c->user);
            client_free(c);
        }
        return;
    }
}

/* KILL [HARD | SOFT] [CONNECTION | QUERY] [ID] n, and COM_PROCESS_KILL. Only sessions of
 * the same account may be killed. */
void local_kill(client *c, uint32_t id, bool query_only)
{
    proxy *p = c->p;
    if (id == c->id) {
        if (query_only) {
            client_send_ok(c, ST_AUTOCOMMIT);
            client_command_done(c);
            return;
        }
        client_send_err(c, 1927, "70100", "Connection was killed");
        client_free(c);
        return;
    }
    int found = 0; /* 0 none, 1 other account, 2 sent */
    pthread_mutex_lock(&p->reg_mu);
    for (client *t = p->registry[id % PROXY_REGISTRY]; t; t = t->reg_next) {
        if (t->id != id)
            continue;
        /* t->user is written by t's worker (COM_CHANGE_USER); ps.user is its copy under
         * ps_mu. */
        pthread_mutex_lock(&t->ps_mu);
        bool same = strcmp(t->ps.user, c->ps.user) == 0;
        pthread_mutex_unlock(&t->ps_mu);
        if (!same) {
            found = 1;
            break;
        }
        wq_item it = {.kind = WQ_KILL, .u.kill = {.id = id, .query_only = query_only}};
        worker_post(t->w, &it);
        found = 2;
        break;
    }
    pthread_mutex_unlock(&p->reg_mu);
    if (found == 0) {
        client_send_err(c, 1094, "HY000", "Unknown thread id: %u", id);
    } else if (found == 1) {
        client_send_err(c, 1095, "HY000", "You are not owner of thread %u", id);
    } else {
        log_info("conn %u %s user=%s: KILL %s%u", c->id, c->addr, c->user,
                 query_only ? "QUERY " : "", id);
        client_send_ok(c, ST_AUTOCOMMIT);
    }
    client_command_done(c);
}

/* The "db@env" the process list shows, into out (sizeof(c->ps.db)); called as each command
 * ends: plain copies, no formatting (this is on the statement path). */
static void ps_db_of(const client *c, char *out)
{
    size_t cap = sizeof(c->ps.db) - 1, n = 0;
    if (c->has_db) {
        size_t dl = strnlen(c->db, sizeof(c->db) - 1); /* fits: db holds one name */
        memcpy(out, c->db, dl);
        n = dl;
        if (c->env && n < cap) {
            out[n++] = '@';
            size_t el = strnlen(c->env->name, cap - n);
            memcpy(out + n, c->env->name, el);
            n += el;
        }
    }
    out[n] = '\0';
}

static void ps_set_db(client *c)
{
    ps_db_of(c, c->ps.db);
}

void local_register(client *c)
{
    proxy *p = c->p;
    pthread_mutex_lock(&p->reg_mu);
    pthread_mutex_lock(&c->ps_mu);
    snprintf(c->ps.user, sizeof(c->ps.user), "%s", c->user);
    ps_set_db(c);
    pthread_mutex_unlock(&c->ps_mu);
    client **head = &p->registry[c->id % PROXY_REGISTRY];
    c->reg_next = *head;
    *head = c;
    c->registered = true;
    pthread_mutex_unlock(&p->reg_mu);
}

void local_unregister(client *c)
{
    if (!c->registered)
        return;
    proxy *p = c->p;
    pthread_mutex_lock(&p->reg_mu);
    for (client **pp = &p->registry[c->id % PROXY_REGISTRY]; *pp; pp = &(*pp)->reg_next) {
        if (*pp == c) {
            *pp = c->reg_next;
            break;
        }
    }
    c->registered = false;
    pthread_mutex_unlock(&p->reg_mu);
}

/* ---- SHOW PROCESSLIST ------------------------------------------------------------------ */

/* Info keeps at most this much of a statement (SHOW FULL PROCESSLIST shows it all up to
 * here); SHOW PROCESSLIST cuts it at 100 characters, as the server does. */
#define PS_INFO_MAX 16384
#define PS_INFO_SHORT 100

static const char *ps_command(uint8_t cmd)
{
    switch (cmd) {
    case CMD_QUERY:
        return "Query";
    case CMD_INIT_DB:
        return "Init DB";
    case CMD_FIELD_LIST:
        return "Field List";
    case CMD_STMT_PREPARE:
        return "Prepare";
    case CMD_STMT_EXECUTE:
        return "Execute";
    case CMD_STMT_FETCH:
        return "Fetch";
    case CMD_STMT_CLOSE:
        return "Close stmt";
    case CMD_STMT_RESET:
        return "Reset stmt";
    case CMD_STMT_SEND_LONG_DATA:
        return "Long Data";
    case CMD_CHANGE_USER:
        return "Change user";
    case CMD_PING:
        return "Ping";
    case CMD_PROCESS_KILL:
        return "Kill";
    default:
        return "Query";
    }
}

/* The statement text goes into a buffer the session keeps (grown when a longer text comes,
 * freed with the session), so a statement costs a copy, not an allocation. */
void local_ps_begin(client *c, uint8_t cmd)
{
    /* The state first: a reader that sees the new text sees it too (the lock orders them). */
    atomic_store_explicit(&c->ps.command, ps_command(cmd), memory_order_relaxed);
    atomic_store_explicit(&c->ps.since_ms, now_ms(), memory_order_relaxed);
    if (cmd != CMD_QUERY && cmd != CMD_STMT_PREPARE) {
        atomic_store_explicit(&c->ps.has_info, false, memory_order_relaxed);
        return; /* ps.db is as the last command (or the login) left it */
    }
    pthread_mutex_lock(&c->ps_mu);
    size_t n = c->cmd.len - 1 > PS_INFO_MAX ? PS_INFO_MAX : c->cmd.len - 1;
    if (n + 1 > c->ps.info_cap) {
        size_t cap = n + 1 < 256 ? 256 : n + 1;
        char *info = realloc(c->ps.info, cap);
        if (!info)
            abort();
        c->ps.info = info;
        c->ps.info_cap = cap;
    }
    memcpy(c->ps.info, c->cmd.data + 1, n);
    c->ps.info[n] = '\0';
    c->ps.info_len = n;
    atomic_store_explicit(&c->ps.has_info, true, memory_order_relaxed);
    pthread_mutex_unlock(&c->ps_mu);
}

void local_ps_idle(client *c, uint64_t now)
{
    atomic_store_explicit(&c->ps.has_info, false, memory_order_relaxed);
    atomic_store_explicit(&c->ps.command, "Sleep", memory_order_relaxed);
    atomic_store_explicit(&c->ps.since_ms, now, memory_order_relaxed);
    /* Most commands leave the database as it was: the lock only for a change (this worker
     * is the only writer, so it reads its own ps.db without it). */
    char db[sizeof(c->ps.db)];
    ps_db_of(c, db);
    if (strcmp(db, c->ps.db) == 0)
        return;
    pthread_mutex_lock(&c->ps_mu);
    memcpy(c->ps.db, db, sizeof(db));
    pthread_mutex_unlock(&c->ps_mu);
}

/* One row, copied out of a session under its lock. */
typedef struct {
    uint32_t id;
    char id_s[12], time_s[24];
    char addr[64];
    char db[2 * ROUTE_NAME_MAX + 2];
    const char *command;
    char *info; /* NULL for none */
} ps_row;

static int ps_row_cmp(const void *a, const void *b)
{
    uint32_t x = ((const ps_row *)a)->id, y = ((const ps_row *)b)->id;
    return x < y ? -1 : x > y;
}

/* How many bytes of s (len bytes) make up its first max characters in UTF-8 (a cut never
 * splits a character). */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    size_t i = 0, chars = 0;
    while (i < len && chars < max) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        chars++;
    }
    return i;
}

/* SHOW [FULL] PROCESSLIST: this account's sessions on the proxy (every worker), not the
 * server's list (every account shares the backend account there). Each session's row is
 * copied under its ps_mu while the registry lock keeps it from being freed. */
static bool try_show_processlist(client *c, const words *w)
{
    if (!is_word(w, 0, "SHOW"))
        return false;
    int i = 1;
    bool full = false;
    if (is_word(w, i, "FULL")) {
        full = true;
        i++;
    }
    if (!is_word(w, i, "PROCESSLIST") || i + 1 != w->n)
        return false;
    if (!c)
        return true;
    proxy *p = c->p;
    size_t cap = 16, n = 0;
    ps_row *rows = malloc(cap * sizeof(*rows));
    if (!rows)
        abort();
    uint64_t now = now_ms();
    pthread_mutex_lock(&p->reg_mu);
    for (int b = 0; b < PROXY_REGISTRY; b++) {
        for (client *t = p->registry[b]; t; t = t->reg_next) {
            pthread_mutex_lock(&t->ps_mu);
            if (strcmp(t->ps.user, c->ps.user) != 0) {
                pthread_mutex_unlock(&t->ps_mu);
                continue;
            }
            if (n == cap) {
                cap *= 2;
                rows = realloc(rows, cap * sizeof(*rows));
                if (!rows)
                    abort();
            }
            ps_row *r = &rows[n++];
            r->id = t->id;
            snprintf(r->id_s, sizeof(r->id_s), "%u", t->id);
            uint64_t since = atomic_load_explicit(&t->ps.since_ms, memory_order_relaxed);
            if (!since)
                since = now;
            snprintf(r->time_s, sizeof(r->time_s), "%llu",
                     (unsigned long long)(now > since ? (now - since) / 1000 : 0));
            snprintf(r->addr, sizeof(r->addr), "%s", t->addr);
            snprintf(r->db, sizeof(r->db), "%s", t->ps.db);
            const char *command = atomic_load_explicit(&t->ps.command, memory_order_relaxed);
            r->command = command ? command : "Connect";
            r->info = NULL;
            if (atomic_load_explicit(&t->ps.has_info, memory_order_relaxed)) {
                size_t len = full ? t->ps.info_len
                                  : utf8_prefix(t->ps.info, t->ps.info_len, PS_INFO_SHORT);
                r->info = strndup(t->ps.info, len);
                if (!r->info)
                    abort();
            }
            pthread_mutex_unlock(&t->ps_mu);
        }
    }
    pthread_mutex_unlock(&p->reg_mu);
    qsort(rows, n, sizeof(*rows), ps_row_cmp);
    static const result_col cols[] = {
        {"Id", PKT_TYPE_LONGLONG},      {"User", PKT_TYPE_VAR_STRING},
        {"Host", PKT_TYPE_VAR_STRING},  {"db", PKT_TYPE_VAR_STRING},
        {"Command", PKT_TYPE_VAR_STRING}, {"Time", PKT_TYPE_LONG},
        {"State", PKT_TYPE_VAR_STRING}, {"Info", PKT_TYPE_VAR_STRING},
        {"Progress", PKT_TYPE_DOUBLE}};
    enum { NCOLS = sizeof(cols) / sizeof(cols[0]) };
    const char **cells = malloc((n ? n : 1) * NCOLS * sizeof(*cells));
    if (!cells)
        abort();
    for (size_t k = 0; k < n; k++) {
        const char **row = cells + k * NCOLS;
        row[0] = rows[k].id_s;
        row[1] = c->ps.user;
        row[2] = rows[k].addr;
        row[3] = rows[k].db[0] ? rows[k].db : NULL;
        row[4] = rows[k].command;
        row[5] = rows[k].time_s;
        row[6] = "";
        row[7] = rows[k].info;
        row[8] = "0.000";
    }
    result_send(c, cols, NCOLS, cells, (int)n, 0);
    for (size_t k = 0; k < n; k++)
        free(rows[k].info);
    free(rows);
    free(cells);
    client_command_done(c);
    return true;
}

/* ---- the statements ------------------------------------------------------------------------- */

/* Each try_ function answers its statement and returns true, or returns false when the
 * statement is not its own. With c NULL it only says whether it would answer. */
static bool try_kill(client *c, const words *w)
{
    if (!is_word(w, 0, "KILL"))
        return false;
    if (!c)
        return true;
    int i = 1;
    if (is_word(w, i, "HARD") || is_word(w, i, "SOFT"))
        i++;
    bool query_only = false;
    if (is_word(w, i, "CONNECTION")) {
        i++;
    } else if (is_word(w, i, "QUERY")) {
        query_only = true;
        i++;
    }
    if (is_word(w, i, "ID"))
        i++;
    if (i + 1 != w->n || w->t[i].kind != SQLTOK_NUMBER) {
        client_send_err(c, 1235, "42000",
                        "envproxy: supported forms are KILL [CONNECTION | QUERY] <id>, with the "
                        "id of a session of this account");
        client_command_done(c);
        return true;
    }
    char num[24];
    token_text(w, i, num, sizeof(num));
    char *end;
    unsigned long long id = strtoull(num, &end, 10);
    if (*end || id > 0xFFFFFFFFull) {
        client_send_err(c, 1094, "HY000", "Unknown thread id: %s", num);
        client_command_done(c);
        return true;
    }
    local_kill(c, (uint32_t)id, query_only);
    return true;
}

static bool try_select(client *c, const words *w)
{
    if (!is_word(w, 0, "SELECT"))
        return false;
    char name[80];
    int i;
    /* SELECT CONNECTION_ID() [[AS] alias] */
    if (is_word(w, 1, "CONNECTION_ID") && is_punct(w, 2, '(') && is_punct(w, 3, ')')) {
        snprintf(name, sizeof(name), "CONNECTION_ID()");
        i = alias(w, 4, name, sizeof(name));
        if (i != w->n)
            return false;
        if (!c)
            return true;
        char v[16];
        snprintf(v, sizeof(v), "%u", c->id);
        one_value(c, name, v, PKT_TYPE_LONGLONG);
        client_command_done(c);
        return true;
    }
    /* SELECT USER() | CURRENT_USER[()] | SESSION_USER() | SYSTEM_USER() [[AS] alias]: the
     * envproxy account, not the backend's (GUIs show it as who is logged in). */
    bool paren = is_punct(w, 2, '(') && is_punct(w, 3, ')');
    if ((paren && (is_word(w, 1, "USER") || is_word(w, 1, "CURRENT_USER") ||
                   is_word(w, 1, "SESSION_USER") || is_word(w, 1, "SYSTEM_USER"))) ||
        (!paren && is_word(w, 1, "CURRENT_USER"))) {
        int end = paren ? 4 : 2;
        snprintf(name, sizeof(name), "%.*s",
                 (int)(w->t[end - 1].start + w->t[end - 1].len - w->t[1].start),
                 w->sql + w->t[1].start);
        i = alias(w, end, name, sizeof(name));
        if (i != w->n)
            return false;
        if (!c)
            return true;
        char v[ROUTE_NAME_MAX + 64];
        /* CURRENT_USER is the account that matched: envproxy's accounts have no host part. */
        snprintf(v, sizeof(v), "%s@%s", c->user, is_word(w, 1, "CURRENT_USER") ? "%" : c->host);
        one_value(c, name, v, PKT_TYPE_VAR_STRING);
        client_command_done(c);
        return true;
    }
    /* SELECT @@[session.]version_comment [[AS] alias] [LIMIT 1] */
    if (w->n >= 3 && w->t[1].kind == SQLTOK_SYSVAR) {
        i = 2;
        if ((is_word(w, i, "session") || is_word(w, i, "global")) && is_punct(w, i + 1, '.'))
            i += 2;
        if (!is_word(w, i, "version_comment"))
            return false;
        snprintf(name, sizeof(name), "%.*s", (int)(w->t[i].start + w->t[i].len - w->t[1].start),
                 w->sql + w->t[1].start);
        i = alias(w, i + 1, name, sizeof(name));
        if (is_word(w, i, "LIMIT") && i + 2 == w->n && w->t[i + 1].kind == SQLTOK_NUMBER)
            i += 2;
        if (i != w->n)
            return false;
        if (!c)
            return true;
        one_value(c, name, "envproxy " ENVPROXY_VERSION " (MySQL proxy for many environments)",
                  PKT_TYPE_VAR_STRING);
        client_command_done(c);
        return true;
    }
    return false;
}

/* SHOW [SESSION | GLOBAL] STATUS LIKE 'Ssl...': the client's TLS session with the proxy. */
static bool try_show_ssl(client *c, const words *w)
{
    int i = 1;
    if (!is_word(w, 0, "SHOW"))
        return false;
    if (is_word(w, i, "SESSION") || is_word(w, i, "GLOBAL") || is_word(w, i, "LOCAL"))
        i++;
    if (!is_word(w, i, "STATUS") || !is_word(w, i + 1, "LIKE") || i + 3 != w->n ||
        w->t[i + 2].kind != SQLTOK_STRING)
        return false;
    char pat[64];
    token_text(w, i + 2, pat, sizeof(pat));
    if (strncasecmp(pat, "ssl", 3) != 0)
        return false;
    if (!c)
        return true;
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;
    const char *names[] = {"Ssl_cipher", "Ssl_version", "Ssl_sessions_reused"};
    const char *values[] = {ssl ? SSL_get_cipher_name(ssl) : "", ssl ? SSL_get_version(ssl) : "",
                            ssl && SSL_session_reused(ssl) ? "1" : "0"};
    const char *cells[6];
    int n = 0;
    for (int k = 0; k < 3; k++) {
        if (like(names[k], pat)) {
            cells[2 * n] = names[k];
            cells[2 * n + 1] = values[k];
            n++;
        }
    }
    static const result_col cols[] = {{"Variable_name", PKT_TYPE_VAR_STRING},
                                      {"Value", PKT_TYPE_VAR_STRING}};
    result_send(c, cols, 2, cells, n, 0);
    client_command_done(c);
    return true;
}

bool local_takes(const char *sql, size_t len)
{
    return local_answer(NULL, sql, len);
}

bool local_answer(client *c, const char *sql, size_t len)
{
    words w;
    if (!read_words(sql, len, &w) || w.n == 0)
        return false;
    return try_kill(c, &w) || try_select(c, &w) || try_show_ssl(c, &w) ||
           try_show_processlist(c, &w);
}
