/* session.c: session variables a client sets (SET NAMES, time_zone, sql_mode, autocommit,
 * isolation level, ...) follow it to every backend connection it uses.
 *
 * Backend sessions report each variable change in their OK packets (session tracking of
 * all variables is switched on when a connection opens). A change made by a statement at
 * the session's position is the client's; before the client's next statement on another
 * connection, the proxy sends the SETs that connection lacks, and puts back to the
 * server's default (SET x = DEFAULT, or SET NAMES for the character set) what an earlier
 * session left there and this one did not ask for. A connection goes back to the pool
 * with its variables as they are: sessions that set the same ones (a driver's or an ORM's
 * settings) then need no SET at all, and the statements prepared on it stay. */
#include "envproxy.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The variables that are carried. Never transaction_read_only / tx_read_only: the
 * read-only wall of a read-only environment is the proxy's, not the client's. */
static const char *const carried[] = {
    "autocommit",        "character_set_client", "character_set_connection",
    "character_set_results", "collation_connection", "time_zone",
    "sql_mode",          "tx_isolation",         "transaction_isolation",
    "sql_select_limit",  "max_statement_time",   "group_concat_max_len",
};

/* The variables SET NAMES sets. */
static bool is_charset_var(const char *name)
{
    return strncasecmp(name, "character_set_", 14) == 0 ||
           strcasecmp(name, "collation_connection") == 0;
}

static bool is_carried(const uint8_t *name, size_t n)
{
    for (size_t i = 0; i < sizeof(carried) / sizeof(carried[0]); i++)
        if (strlen(carried[i]) == n && strncasecmp(carried[i], (const char *)name, n) == 0)
            return true;
    return false;
}

void session_vars_clear(sess_var *vars, int *n)
{
    for (int i = 0; i < *n; i++) {
        free(vars[i].value);
        vars[i].value = NULL;
    }
    *n = 0;
}

/* Sets name=value in vars (n entries at most SESSION_VARS; name shorter than the name
 * field, which the caller checks). Returns whether it changed; -1 when the set is full. */
static int put_var(sess_var *vars, int *n, const char *name, size_t name_len,
                   const char *value, size_t value_len)
{
    int i;
    for (i = 0; i < *n; i++)
        if (strlen(vars[i].name) == name_len && strncasecmp(vars[i].name, name, name_len) == 0)
            break;
    if (i < *n && strlen(vars[i].value) == value_len &&
        memcmp(vars[i].value, value, value_len) == 0)
        return 0;
    if (i == *n && *n == SESSION_VARS)
        return -1;
    char *copy = strndup(value, value_len);
    if (!copy)
        abort();
    if (i == *n) {
        (*n)++;
        snprintf(vars[i].name, sizeof(vars[i].name), "%.*s", (int)name_len, name);
    } else {
        free(vars[i].value);
    }
    vars[i].value = copy;
    return 1;
}

/* Removes name from vars, if there. */
static void forget_var(sess_var *vars, int *n, const char *name, size_t name_len)
{
    for (int i = 0; i < *n; i++) {
        if (strlen(vars[i].name) == name_len && strncasecmp(vars[i].name, name, name_len) == 0) {
            free(vars[i].value);
            vars[i] = vars[--*n];
            return;
        }
    }
}

/* A backend variable changed: statements prepared before may read differently now. */
static void backend_var_set(backend *b, const char *name, size_t name_len, const char *value,
                            size_t value_len)
{
    int r = put_var(b->vars, &b->n_vars, name, name_len, value, value_len);
    if (r != 0)
        b->parse_epoch++;
    if (name_len == 20 && strncasecmp(name, "character_set_client", 20) == 0)
        b->text_cs_known = false; /* the server's word replaces what the policy read */
    if (r < 0)
        b->dirty = true; /* not recorded: reset before anyone else uses it */
}

static const sess_var *get_var(const sess_var *vars, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(vars[i].name, name) == 0)
            return &vars[i];
    return NULL;
}

/* Whether a value can be written between single quotes whatever the sql_mode. */
static bool plain_value(const char *v)
{
    for (; *v; v++)
        if (*v == '\'' || *v == '\\' || (unsigned char)*v < 0x20)
            return false;
    return true;
}

void session_note_changes(client *c, backend *b, const uint8_t *state, size_t len)
{
    preader r;
    pr_init(&r, state, len);
    while (pr_left(&r) > 0) {
        uint8_t type;
        const uint8_t *data;
        size_t data_len;
        if (!pr_u8(&r, &type) || !pr_lenenc_str(&r, &data, &data_len))
            return;
        if (type != 0) /* SESSION_TRACK_SYSTEM_VARIABLES */
            continue;
        preader d;
        const uint8_t *name, *value;
        size_t name_len, value_len;
        pr_init(&d, data, data_len);
        if (!pr_lenenc_str(&d, &name, &name_len) || !pr_lenenc_str(&d, &value, &value_len))
            return;
        if (name_len == 8 && strncasecmp((const char *)name, "sql_mode", 8) == 0) {
            /* The exact mode, whatever the SET looked like and however long the value. */
            sql_mode_flags was = b->mode;
            memset(&b->mode, 0, sizeof(b->mode));
            sqlpolicy_mode_from_string((const char *)value, value_len, &b->mode);
            if (memcmp(&was, &b->mode, sizeof(was)) != 0)
                b->parse_epoch++;
            c->rl_mode_tracked = true;
        }
        if (name_len == 9 && strncasecmp((const char *)name, "profiling", 9) == 0)
            b->no_reset = true; /* SHOW PROFILES lists the statements even after a reset */
        if (name_len >= 14 && strncasecmp((const char *)name, "session_track_", 14) == 0) {
            /* The proxy relies on these (a client's SET of them does not stay, see
             * session_after_tracking; a stored procedure or EXECUTE in a writable
             * environment may still change them): reset before a read-only session or
             * another session uses this connection. */
            b->tainted = true;
            b->resync = true; /* tracking on again before this session's next statement */
            b->dirty = true;
        }
        /* Carried back with a SET of its own, which must fit op_text. */
        bool plain = value_len < sizeof(b->op_text) / 2 && memchr(value, 0, value_len) == NULL;
        char *text = NULL;
        if (plain) {
            text = strndup((const char *)value, value_len);
            if (!text)
                abort();
            plain = plain_value(text);
            free(text);
        }
        if (!is_carried(name, name_len) || name_len >= sizeof(b->vars[0].name) || !plain) {
            /* Not carried (or a value that cannot be written back): it stays with this
             * connection, and so does the session; the connection is reset before anyone
             * else uses it. */
            b->dirty = true;
            forget_var(b->vars, &b->n_vars, (const char *)name, name_len); /* not that any more */
            if (c->job_moves_session) {
                forget_var(c->vars, &c->n_vars, (const char *)name, name_len);
                char why[64];
                snprintf(why, sizeof(why), "session variable %.*s", (int)(name_len > 40 ? 40 : name_len),
                         (const char *)name);
                session_pin(c, why);
            }
            continue;
        }
        backend_var_set(b, (const char *)name, name_len, (const char *)value, value_len);
        if (c->job_moves_session &&
            put_var(c->vars, &c->n_vars, (const char *)name, name_len, (const char *)value,
                    value_len) < 0)
            session_pin(c, "too many session variables");
    }
}

void session_pin(client *c, const char *reason)
{
    if (c->pinned)
        return;
    c->pinned = true;
    snprintf(c->pin_reason, sizeof(c->pin_reason), "%s", reason);
    log_debug("conn %u: session pinned to its backend connection: %s", c->id, reason);
}

/* The reason sql holds state in its backend session when read under mode and character set
 * cs, or NULL. */
/* Whether the name of token t (unquoted, any case) is in the sorted lower-case set. */
static bool stored_has(const sql_name_set *set, const char *sql, sql_token t,
                       sql_token_kind kind)
{
    char name[130];
    size_t n = 0;
    size_t from = t.start, to = t.start + t.len;
    if (kind == SQLTOK_QIDENT && t.len >= 2) {
        from++;
        to--;
    }
    if (!set || to - from >= sizeof(name))
        return false;
    for (size_t i = from; i < to; i++)
        name[n++] = (char)((sql[i] >= 'A' && sql[i] <= 'Z') ? sql[i] + 32 : sql[i]);
    name[n] = 0;
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(set->names[mid], name);
        if (r == 0)
            return true;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static const char *pin_reason_in(const char *sql, size_t len, const sql_mode_flags *mode,
                                 sql_charset cs, const sql_name_set *stored)
{
    /* With their lengths, so that most words are passed over without a comparison. */
#define PIN_WORD(w) {w, sizeof(w) - 1}
    static const struct {
        const char *w;
        size_t n;
    } words[] = {
        PIN_WORD("TEMPORARY"),    PIN_WORD("GET_LOCK"),       PIN_WORD("RELEASE_LOCK"),
        PIN_WORD("RELEASE_ALL_LOCKS"), PIN_WORD("IS_USED_LOCK"), PIN_WORD("IS_FREE_LOCK"),
        PIN_WORD("LOCK"),         PIN_WORD("PREPARE"),        PIN_WORD("EXECUTE"),
        PIN_WORD("DEALLOCATE"),   PIN_WORD("HANDLER"),        PIN_WORD("XA"),
        PIN_WORD("SAVEPOINT"),    PIN_WORD("LAST_INSERT_ID"), PIN_WORD("ROW_COUNT"),
        PIN_WORD("FOUND_ROWS"),   PIN_WORD("SQL_CALC_FOUND_ROWS"), PIN_WORD("CALL"),
        /* A sequence's last value is the session's (LASTVAL, PREVIOUS VALUE FOR): another
         * session on the connection would read it, and this one would lose it. */
        PIN_WORD("NEXTVAL"),      PIN_WORD("LASTVAL"),        PIN_WORD("SETVAL"),
        PIN_WORD("CURRVAL"),
    };
    /* Two words in a row, where the second alone is an ordinary name (a column `role`). */
    static const struct {
        const char *first, *second, *why;
    } pairs[] = {
        /* The other spellings of NEXTVAL and LASTVAL. */
        {"NEXT", "VALUE", "a sequence"},
        {"PREVIOUS", "VALUE", "a sequence"},
        /* Locks without the word LOCK. */
        {"FOR", "EXPORT", "FLUSH TABLES ... FOR EXPORT"},
        {"BACKUP", "STAGE", "BACKUP STAGE"},
        /* The current role, and its privileges, are the backend session's. */
        {"SET", "ROLE", "SET ROLE"},
        /* Without SESSION: the next transaction's isolation level or access mode, kept by
         * the backend session and reported by no session tracking. */
        {"SET", "TRANSACTION", "SET TRANSACTION"},
    };
#undef PIN_WORD
    sql_lexer lx;
    sqllex_init(&lx, sql, len, mode);
    lx.charset = cs;
    sql_token prev = {SQLTOK_END, false, 0, 0, 0};
    for (int i = 0; i < 100000; i++) {
        sql_token t = sqllex_next(&lx);
        /* A stored routine can hold any of it (SET @x, GET_LOCK, CREATE TEMPORARY TABLE)
         * without a word of it in the text: CALL, and a call of a stored function. */
        if ((prev.kind == SQLTOK_WORD || prev.kind == SQLTOK_QIDENT) && t.kind == SQLTOK_PUNCT &&
            sql[t.start] == '(' && stored_has(stored, sql, prev, prev.kind))
            return "a stored function";
        sql_token before = prev;
        prev = t;
        if (t.kind == SQLTOK_END)
            return NULL;
        if (t.kind == SQLTOK_ERROR)
            return "a statement the lexer cannot read";
        if (t.kind == SQLTOK_USERVAR)
            return "user variables";
        if (t.kind != SQLTOK_WORD)
            continue;
        for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++)
            if (sqllex_is_word(sql, t, pairs[k].second) &&
                sqllex_is_word(sql, before, pairs[k].first))
                return pairs[k].why;
        /* SET of carried variables does not pin: those follow the session. A SET of anything
         * else shows up as a non-carried variable change (session_note_changes). */
        for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
            if (words[k].n == t.len && strncasecmp(sql + t.start, words[k].w, t.len) == 0)
                return words[k].w;
    }
    return "a statement too long to read";
}

/* Whether every reading of sql gives the same tokens, whatever the quoting flags and
 * whether the sql_mode is known: the lexer looks at the mode only at '"' (a string or a
 * name), at a backslash inside a string, and at '[' and ']' (refused under an unknown
 * mode). */
static bool mode_blind(const char *sql, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = sql[i];
        if (ch == '"' || ch == '\\' || ch == '[' || ch == ']')
            return false;
    }
    return true;
}

/* Case-insensitive: whether sql holds word anywhere, in any token or none. */
static bool raw_has(const char *sql, size_t len, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(sql + i, word, n) == 0)
            return true;
    return false;
}

bool session_defies_reset(const sql_mode_flags *mode, sql_charset cs, const char *sql,
                          size_t len)
{
    bool raw = raw_has(sql, len, "XA") || raw_has(sql, len, "ROLE");
    if (cs == SQL_CS_UNSUPPORTED || !raw)
        return raw;
    for (int m = -1; m < 4; m++) {
        sql_lexer lx;
        sqllex_init(&lx, sql, len, m < 0 ? mode : &SQL_QUOTING_MODES[m]);
        lx.charset = cs;
        sql_token before = {SQLTOK_END, false, 0, 0, 0};
        for (int i = 0; i < 100000; i++) {
            sql_token t = sqllex_next(&lx);
            if (t.kind == SQLTOK_END)
                break;
            if (t.kind == SQLTOK_ERROR || sqllex_is_word(sql, t, "XA") ||
                (sqllex_is_word(sql, t, "ROLE") && sqllex_is_word(sql, before, "SET")))
                return true;
            before = t;
        }
        if (mode_blind(sql, len))
            break; /* every reading is this one */
    }
    return false;
}

void session_check_pins(client *c, const sql_mode_flags *mode, sql_charset cs,
                        const sql_name_set *stored, const char *sql, size_t len)
{
    /* Read the way the server may read it: in the session's sql_mode, and, since a SET
     * sql_mode earlier in the packet or a mode the proxy could not work out changes where
     * strings end (`'a\', @x := 1 -- '` hides a user variable from a reading without
     * NO_BACKSLASH_ESCAPES), in every combination of the two quoting flags too. Any reading
     * that finds session state pins. */
    if (c->pinned)
        return;
    if (cs == SQL_CS_UNSUPPORTED) {
        /* A multibyte character set can swallow a quote or a backslash: no reading is sure.
         * Pin on the bytes alone. */
        static const char *const raw[] = {"@", "TEMPORARY", "LOCK", "PREPARE", "EXECUTE",
                                          "DEALLOCATE", "HANDLER", "XA", "SAVEPOINT",
                                          "LAST_INSERT_ID", "ROW_COUNT", "FOUND_ROWS",
                                          "CALL", "NEXTVAL", "LASTVAL", "SETVAL",
                                          "CURRVAL", "VALUE", "EXPORT", "BACKUP",
                                          "TRANSACTION", "ROLE", "("};
        for (size_t k = 0; k < sizeof(raw) / sizeof(raw[0]); k++)
            if (raw_has(sql, len, raw[k])) {
                session_pin(c, "a statement in a character set the lexer does not read");
                return;
            }
        return;
    }
    const char *why = pin_reason_in(sql, len, mode, cs, stored);
    /* Where no reading can differ from this one, the four others are not needed. */
    bool differ = !why && !mode_blind(sql, len);
    for (int i = 0; differ && !why && i < 4; i++)
        why = pin_reason_in(sql, len, &SQL_QUOTING_MODES[i], cs, stored);
    if (why)
        session_pin(c, why);
}

/* Whether b holds a transaction of the session (or runs with autocommit off), by its own
 * status: the last statement may have run on another connection (a routing hint sends one
 * elsewhere without moving the session) while this one is inside a transaction. */
static bool holds_transaction(const client *c, const backend *b)
{
    if ((b->status & ST_IN_TRANS) || !(b->status & ST_AUTOCOMMIT) ||
        c->txn_env == b->pool->index)
        return true;
    /* The statement just answered ran here: its status counts too (an ERR carries none). */
    return c->be == b &&
           ((c->last_status & ST_IN_TRANS) || !(c->last_status & ST_AUTOCOMMIT));
}

void session_release(client *c)
{
    if (c->pinned || c->long_data_stmts > 0)
        return;
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        backend *b = c->held[i];
        if (!b || b->op != BOP_NONE || !b->pool->env->pool.multiplex ||
            holds_transaction(c, b))
            continue;
        if (b->diag_hold && b == c->be)
            continue; /* the statement's warnings or error: its SHOW WARNINGS reads them here */
        c->held[i] = NULL;
        c->held_env[i] = -1;
        backend_park(b);
        if (b->dirty || b->diag || b->no_reset)
            backend_recycle(b); /* a change that is not carried, or warnings: reset first */
        else
            pool_release(b->pool, b); /* its variables are set right by whoever takes it next */
    }
}

/* Whether a value is a number as the server reports one ("7", "5.000000", "-1"): numeric
 * variables take it only unquoted. */
static bool numeric_value(const char *v)
{
    bool digits = false;
    if (*v == '-')
        v++;
    for (; *v; v++) {
        if (*v >= '0' && *v <= '9')
            digits = true;
        else if (*v != '.')
            return false;
    }
    return digits;
}

/* Forgets b's record of variable i (the server has its default again, or will have). */
static void drop_var(backend *b, int i)
{
    free(b->vars[i].value);
    b->vars[i] = b->vars[--b->n_vars];
    b->parse_epoch++;
}

bool session_may_set(const char *sql, size_t len)
{
    for (size_t i = 0; i + 3 <= len; i++)
        if ((sql[i] | 0x20) == 's' && (sql[i + 1] | 0x20) == 'e' && (sql[i + 2] | 0x20) == 't')
            return true;
    return false;
}

void session_after_tracking(client *c, backend *b)
{
    b->dirty = true; /* reset before it goes back to the pool */
    if (c->route.read_only) {
        /* What the statement changed is unknown (character sets too): the session starts
         * over on a reset connection before its next statement (prepare_step). */
        b->tainted = true;
        b->taint_user[0] = '\0';
        return;
    }
    /* A writable session keeps its connection, whose settings the proxy can no longer
     * carry elsewhere, with tracking switched on again and sql_mode read anew. */
    b->resync = true;
    b->tainted = true;
    snprintf(b->taint_user, sizeof(b->taint_user), "%s", c->user);
    session_pin(c, "session_track_ variables");
}

void session_note_status(backend *b, uint16_t status)
{
    /* The server's own word on how it reads the next statement; MySQL has no ANSI_QUOTES
     * flag, whose state then comes from the tracked sql_mode. */
    sql_mode_flags was = b->mode;
    b->mode.no_backslash_escapes = (status & ST_NO_BACKSLASH_ESCAPES) != 0;
    if (b->mariadb)
        b->mode.ansi_quotes = (status & ST_ANSI_QUOTES) != 0;
    if (memcmp(&was, &b->mode, sizeof(was)) != 0)
        b->parse_epoch++; /* statements prepared before may read differently now */
}

void session_settle_charset(client *c, backend *b)
{
    for (int i = 0; i < b->n_vars; i++) {
        if (is_charset_var(b->vars[i].name) &&
            !get_var(c->vars, c->n_vars, b->vars[i].name)) {
            b->charset[0] = '\0'; /* not the handshake's any more: SET NAMES again */
            return;
        }
    }
}

void session_forget_charset(backend *b)
{
    for (int i = 0; i < b->n_vars;) {
        if (is_charset_var(b->vars[i].name))
            drop_var(b, i);
        else
            i++;
    }
}

bool session_next_set(client *c, backend *b, char *sql, size_t cap, int *var)
{
    for (int i = 0; i < b->n_vars; i++) {
        /* Left by an earlier session, not wanted by this one: back to the default. */
        const char *name = b->vars[i].name;
        if (get_var(c->vars, c->n_vars, name) || is_charset_var(name))
            continue;
        snprintf(sql, cap, "SET SESSION %s = DEFAULT", name);
        *var = -1 - i;
        return true;
    }
    for (int i = 0; i < c->n_vars; i++) {
        const sess_var *want = &c->vars[i];
        const sess_var *have = get_var(b->vars, b->n_vars, want->name);
        if (have && strcmp(have->value, want->value) == 0)
            continue;
        if (!plain_value(want->value) || strlen(want->value) + strlen(want->name) + 24 > cap) {
            log_debug("conn %u: not carrying %s (value needs quoting)", c->id, want->name);
            continue;
        }
        if (numeric_value(want->value))
            snprintf(sql, cap, "SET SESSION %s = %s", want->name, want->value);
        else
            snprintf(sql, cap, "SET SESSION %s = '%s'", want->name, want->value);
        *var = i;
        return true;
    }
    return false;
}

void session_applied(client *c, backend *b, int var)
{
    if (var < 0) {
        /* Back to the default: as a new session has it, sql_mode included. */
        int i = -1 - var;
        if (strcasecmp(b->vars[i].name, "sql_mode") == 0)
            b->mode = b->default_mode;
        drop_var(b, i);
        return;
    }
    const sess_var *v = &c->vars[var];
    backend_var_set(b, v->name, strlen(v->name), v->value, strlen(v->value));
    if (strcasecmp(v->name, "sql_mode") == 0) {
        memset(&b->mode, 0, sizeof(b->mode));
        sqlpolicy_mode_from_string(v->value, strlen(v->value), &b->mode);
    }
}
