/* sqlpolicy.c: decides, statement by statement, whether SQL text is safe for a read-only
 * environment; follows sql_mode; knows the character sets that break quoting. */
#include "sqlpolicy.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POL_STACK_TOKENS 256
#define POL_MAX_TOKENS (1u << 20) /* tokens kept of one statement: bounds the memory of a
                                     check (40 MiB); checks run one at a time per thread */
#define POL_MAX_FORKS 2 /* unknown sql_mode values followed in one packet */
#define POL_MAX_DEPTH 8 /* EXPLAIN / ANALYZE / SET STATEMENT nesting */
#define POL_NAME_MAX 64 /* longest function or variable name looked up */
#define POL_MAX_COND 4  /* version-dependent comments in one statement: 2^4 readings */
#define POL_NONE SIZE_MAX

typedef struct {
    sql_token t;
    bool not_call; /* a CTE's name before its column list: WITH x (a, b) AS (...) */
} pol_tok;

/* One statement's tokens (no ';'). */
typedef struct {
    const char *sql;
    pol_tok *tok;
    size_t n;
    const policy_session *ps;
} pol_stmt;

/* ---- tokens, names, messages ---- */

static char pol_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static char pol_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* True when the len bytes at a spell kw (upper case, NUL-terminated), ignoring case. */
static bool pol_eq(const char *a, size_t len, const char *kw)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (!kw[i] || pol_upper(a[i]) != kw[i])
            return false;
    return kw[i] == 0;
}

/* Compares ignoring case, ordering as the upper-case forms do (the function table's order). */
static int pol_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = pol_upper(*a), y = pol_upper(*b);
        if (x != y || !x)
            return (unsigned char)x - (unsigned char)y;
    }
}

/* Compares ignoring case, ordering as the lower-case forms do (the variable table's order). */
static int pol_lcasecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = pol_lower(*a), y = pol_lower(*b);
        if (x != y || !x)
            return (unsigned char)x - (unsigned char)y;
    }
}

static sql_token_kind pol_kind(const pol_stmt *s, size_t i)
{
    return i < s->n ? s->tok[i].t.kind : SQLTOK_END;
}

static const char *pol_text(const pol_stmt *s, size_t i)
{
    return s->sql + s->tok[i].t.start;
}

static bool pol_word(const pol_stmt *s, size_t i, const char *kw)
{
    return pol_kind(s, i) == SQLTOK_WORD && pol_eq(pol_text(s, i), s->tok[i].t.len, kw);
}

static bool pol_word_in(const pol_stmt *s, size_t i, const char *const *list)
{
    for (; *list; list++)
        if (pol_word(s, i, *list))
            return true;
    return false;
}

static bool pol_punct(const pol_stmt *s, size_t i, const char *p)
{
    return pol_kind(s, i) == SQLTOK_PUNCT && s->tok[i].t.len == strlen(p) &&
           memcmp(pol_text(s, i), p, s->tok[i].t.len) == 0;
}

static bool pol_is_name(const pol_stmt *s, size_t i)
{
    return pol_kind(s, i) == SQLTOK_WORD || pol_kind(s, i) == SQLTOK_QIDENT;
}

/* The text of a WORD, or the contents of a QIDENT or STRING with doubled quotes undone,
 * into out. Returns false when it does not fit or holds a backslash (the classifier does
 * not know which backslash rule applies, so it treats such a value as unknown). */
static bool pol_unquote(const pol_stmt *s, size_t i, char *out, size_t outlen)
{
    sql_token_kind k = pol_kind(s, i);
    if (k != SQLTOK_QIDENT && k != SQLTOK_STRING && k != SQLTOK_WORD)
        return false;
    const char *p = pol_text(s, i);
    size_t len = s->tok[i].t.len, o = 0;
    if (k == SQLTOK_QIDENT || k == SQLTOK_STRING) {
        char q = p[0];
        p++;
        len -= 2;
        for (size_t j = 0; j < len; j++) {
            if (p[j] == '\\' && k == SQLTOK_STRING)
                return false;
            if (p[j] == q)
                j++; /* the second of a doubled quote */
            if (o + 1 >= outlen)
                return false;
            out[o++] = p[j];
        }
    } else {
        if (len >= outlen)
            return false;
        memcpy(out, p, len);
        o = len;
    }
    out[o] = 0;
    return true;
}

/* Copies a name for use in a message: letters, digits, '_', '$', '.', '@' kept (upper-cased
 * when upper), anything else shown as '?', long names cut. */
static void pol_sanitize(char *out, size_t outlen, const char *src, size_t len, bool upper)
{
    size_t o = 0, max = outlen > 4 ? outlen - 4 : 0;
    for (size_t i = 0; i < len && o < max; i++) {
        char c = src[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '$' || c == '.' || c == '@';
        out[o++] = ok ? (upper ? pol_upper(c) : pol_lower(c)) : '?';
    }
    if (len > max && outlen > 4) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    if (outlen)
        out[o] = 0;
}

/* A token's name for a message: a QIDENT or STRING without its quotes. */
static void pol_tok_name(const pol_stmt *s, size_t i, char *out, size_t outlen, bool upper)
{
    const char *p = pol_text(s, i);
    size_t len = s->tok[i].t.len;
    if ((pol_kind(s, i) == SQLTOK_QIDENT || pol_kind(s, i) == SQLTOK_STRING) && len >= 2) {
        p++;
        len -= 2;
    }
    pol_sanitize(out, outlen, p, len, upper);
}

static bool pol_refuse(policy_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool pol_refuse(policy_verdict *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->what, sizeof v->what, fmt, ap);
    va_end(ap);
    v->allowed = false;
    return false;
}

/* Index after the parenthesis group opening at i, or POL_NONE when it is not closed. */
static size_t pol_skip_parens(const pol_stmt *s, size_t i)
{
    int depth = 0;
    for (; i < s->n; i++) {
        if (pol_punct(s, i, "("))
            depth++;
        else if (pol_punct(s, i, ")") && --depth == 0)
            return i + 1;
    }
    return POL_NONE;
}

/* The first top-level ',' at or after i (or the end, or a top-level FOR when stop_for). */
static size_t pol_value_end(const pol_stmt *s, size_t i, bool stop_for)
{
    int depth = 0;
    for (; i < s->n; i++) {
        if (pol_punct(s, i, "("))
            depth++;
        else if (pol_punct(s, i, ")"))
            depth--;
        else if (depth <= 0 && (pol_punct(s, i, ",") || (stop_for && pol_word(s, i, "FOR"))))
            return i;
    }
    return s->n;
}

/* ---- character sets ---- */

/* The allowlist of client character sets (see sqllex.c for how each is read). A collation
 * name is its character set's name, '_' and more. */
static const struct {
    const char *name;
    sql_charset cs;
} pol_charsets[] = {
    {"utf8mb4", SQL_CS_UTF8}, {"utf8mb3", SQL_CS_UTF8},   {"utf8", SQL_CS_UTF8},
    {"latin1", SQL_CS_LATIN1}, {"ascii", SQL_CS_ASCII}, {"binary", SQL_CS_BINARY},
};

sql_charset sqlpolicy_charset(const char *name)
{
    if (!name)
        return SQL_CS_UNSUPPORTED;
    for (size_t k = 0; k < sizeof pol_charsets / sizeof pol_charsets[0]; k++) {
        const char *cs = pol_charsets[k].name;
        size_t n = strlen(cs), i;
        for (i = 0; i < n && name[i] && pol_lower(name[i]) == cs[i]; i++)
            ;
        if (i < n)
            continue;
        if (name[n] == 0)
            return pol_charsets[k].cs;
        if (name[n] == '_' && pol_charsets[k].cs != SQL_CS_BINARY) {
            /* a collation: letters, digits and '_' only */
            for (i = n + 1; name[i]; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                      (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
                    return SQL_CS_UNSUPPORTED;
            return i > n + 1 ? pol_charsets[k].cs : SQL_CS_UNSUPPORTED;
        }
    }
    return SQL_CS_UNSUPPORTED;
}

sql_flavor sqlpolicy_flavor(const char *version)
{
    if (!version || !version[0])
        return SQL_FLAVOR_UNKNOWN;
    for (const char *p = version; *p; p++)
        if (pol_eq(p, 7, "MARIADB"))
            return SQL_FLAVOR_MARIADB;
    /* MySQL: a version that starts with 5, 8 or 9 and says nothing else (Percona Server and
     * MySQL-compatible builds read functions as MySQL does). */
    if ((version[0] == '5' || version[0] == '8' || version[0] == '9') && version[1] == '.')
        return SQL_FLAVOR_MYSQL;
    return SQL_FLAVOR_UNKNOWN;
}

/* ---- sql_mode ---- */

typedef enum {
    MODE_NAME_UNKNOWN,
    MODE_NAME_OTHER,
    MODE_NAME_ANSI, /* implies ANSI_QUOTES */
    MODE_NAME_NBE,  /* NO_BACKSLASH_ESCAPES */
    MODE_NAME_ALIEN /* MSSQL, ORACLE: read SQL in ways this lexer does not */
} mode_name_class;

/* Every sql_mode name of MySQL 5.7-8.x and MariaDB 10-11, and what it means for reading. */
static mode_name_class pol_mode_name(const char *name, size_t len)
{
    static const char *const ansi[] = {"ANSI_QUOTES", "ANSI", "DB2", "MAXDB", "POSTGRESQL", NULL};
    static const char *const alien[] = {"MSSQL", "ORACLE", NULL};
    /* clang-format off */
    static const char *const other[] = {
        "REAL_AS_FLOAT", "PIPES_AS_CONCAT", "IGNORE_SPACE", "IGNORE_BAD_TABLE_OPTIONS",
        "ONLY_FULL_GROUP_BY", "NO_UNSIGNED_SUBTRACTION", "NO_DIR_IN_CREATE", "NO_KEY_OPTIONS",
        "NO_TABLE_OPTIONS", "NO_FIELD_OPTIONS", "MYSQL323", "MYSQL40", "NO_AUTO_VALUE_ON_ZERO",
        "STRICT_TRANS_TABLES", "STRICT_ALL_TABLES", "NO_ZERO_IN_DATE", "NO_ZERO_DATE",
        "ALLOW_INVALID_DATES", "ERROR_FOR_DIVISION_BY_ZERO", "TRADITIONAL",
        "NO_AUTO_CREATE_USER", "HIGH_NOT_PRECEDENCE", "NO_ENGINE_SUBSTITUTION",
        "PAD_CHAR_TO_FULL_LENGTH", "EMPTY_STRING_IS_NULL", "SIMULTANEOUS_ASSIGNMENT",
        "TIME_ROUND_FRACTIONAL", "TIME_TRUNCATE_FRACTIONAL", NULL};
    /* clang-format on */
    for (const char *const *p = ansi; *p; p++)
        if (pol_eq(name, len, *p))
            return MODE_NAME_ANSI;
    for (const char *const *p = alien; *p; p++)
        if (pol_eq(name, len, *p))
            return MODE_NAME_ALIEN;
    if (pol_eq(name, len, "NO_BACKSLASH_ESCAPES"))
        return MODE_NAME_NBE;
    for (const char *const *p = other; *p; p++)
        if (pol_eq(name, len, *p))
            return MODE_NAME_OTHER;
    return MODE_NAME_UNKNOWN;
}

/* Parses a comma list of mode names into flags (OR-ed into *m). Returns false when a name is
 * unknown (the server would reject the value, or it is a mode this code does not know). */
static bool pol_mode_list(const char *p, size_t len, sql_mode_flags *m, bool lenient)
{
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && p[j] != ',')
            j++;
        if (j > i) {
            switch (pol_mode_name(p + i, j - i)) {
            case MODE_NAME_UNKNOWN:
                if (!lenient)
                    return false;
                break;
            case MODE_NAME_OTHER:
                break;
            case MODE_NAME_ANSI:
                m->ansi_quotes = true;
                break;
            case MODE_NAME_NBE:
                m->no_backslash_escapes = true;
                break;
            case MODE_NAME_ALIEN:
                m->ansi_quotes = true;
                m->unreadable = true;
                break;
            }
        }
        i = j + 1;
    }
    return true;
}

void sqlpolicy_mode_from_string(const char *modes, size_t len, sql_mode_flags *mode)
{
    sql_mode_flags m = {false, false, false, false};
    if (modes)
        pol_mode_list(modes, len, &m, true);
    *mode = m;
}

static sql_mode_flags pol_mode_unknown(const sql_mode_flags *cur)
{
    sql_mode_flags m = *cur;
    m.unknown = true;
    m.unreadable = false;
    return m;
}

/* True when tokens [i, end) are @@sql_mode, @@session.sql_mode or @@local.sql_mode. */
static bool pol_is_session_sql_mode(const pol_stmt *s, size_t i, size_t end)
{
    char name[POL_NAME_MAX];
    if (pol_kind(s, i) != SQLTOK_SYSVAR)
        return false;
    i++;
    if (pol_punct(s, i + 1, ".")) {
        if (!pol_word(s, i, "SESSION") && !pol_word(s, i, "LOCAL"))
            return false;
        i += 2;
    }
    return i + 1 == end && pol_is_name(s, i) && pol_unquote(s, i, name, sizeof name) &&
           pol_casecmp(name, "SQL_MODE") == 0;
}

/* Works out the session sql_mode after "sql_mode = <tokens [i, end)>" from cur. */
static sql_mode_flags pol_eval_sql_mode(const pol_stmt *s, size_t i, size_t end,
                                        const sql_mode_flags *cur)
{
    char buf[512];
    sql_mode_flags m = {false, false, false, false};
    if (end == i + 1) {
        sql_token_kind k = pol_kind(s, i);
        if (k == SQLTOK_WORD && pol_word(s, i, "DEFAULT"))
            return pol_mode_unknown(cur);
        if ((k == SQLTOK_STRING || k == SQLTOK_WORD || k == SQLTOK_QIDENT) &&
            pol_unquote(s, i, buf, sizeof buf) && pol_mode_list(buf, strlen(buf), &m, false))
            return m;
        return pol_mode_unknown(cur);
    }
    /* CONCAT(@@sql_mode, ',X', ...) as drivers send it: the parts must meet at commas. */
    if (!pol_word(s, i, "CONCAT") || !pol_punct(s, i + 1, "(") || !pol_punct(s, end - 1, ")") ||
        pol_skip_parens(s, i + 1) != end)
        return pol_mode_unknown(cur);
    bool prev_open = false; /* the previous part may end without a comma */
    bool first = true;
    for (size_t a = i + 2; a < end - 1;) {
        size_t e = pol_value_end(s, a, false);
        if (e > end - 1)
            e = end - 1;
        if (e == a + 1 && pol_kind(s, a) == SQLTOK_STRING && pol_unquote(s, a, buf, sizeof buf)) {
            size_t bl = strlen(buf);
            if (bl > 0) {
                if (!first && prev_open && buf[0] != ',')
                    return pol_mode_unknown(cur);
                if (!pol_mode_list(buf, bl, &m, false))
                    return pol_mode_unknown(cur);
                prev_open = buf[bl - 1] != ',';
                first = false;
            }
        } else if (pol_is_session_sql_mode(s, a, e)) {
            if (cur->unknown || cur->unreadable)
                return pol_mode_unknown(cur);
            if (!first && prev_open)
                return pol_mode_unknown(cur);
            m.ansi_quotes |= cur->ansi_quotes;
            m.no_backslash_escapes |= cur->no_backslash_escapes;
            prev_open = true;
            first = false;
        } else {
            return pol_mode_unknown(cur);
        }
        a = e < end - 1 ? e + 1 : e;
    }
    return m;
}

/* ---- SET ---- */

typedef enum {
    ASG_SYSVAR,
    ASG_USERVAR,
    ASG_NAMES,
    ASG_CHARSET,
    ASG_TRANSACTION,
    ASG_PASSWORD,
    ASG_ROLE,
    ASG_DEFAULT_ROLE,
    ASG_BAD
} asg_kind;

typedef enum { SCOPE_SESSION, SCOPE_GLOBAL, SCOPE_PERSIST, SCOPE_PERSIST_ONLY } asg_scope;

typedef struct {
    asg_kind kind;
    asg_scope scope;
    size_t name;         /* ASG_SYSVAR (and some ASG_BAD): the name's token */
    bool structured;     /* name.component (key cache variables) */
    size_t val, val_end; /* the value's tokens */
} pol_asg;

static bool pol_scope_word(const pol_stmt *s, size_t i, asg_scope *scope)
{
    if (pol_word(s, i, "GLOBAL"))
        *scope = SCOPE_GLOBAL;
    else if (pol_word(s, i, "PERSIST"))
        *scope = SCOPE_PERSIST;
    else if (pol_word(s, i, "PERSIST_ONLY"))
        *scope = SCOPE_PERSIST_ONLY;
    else if (pol_word(s, i, "SESSION") || pol_word(s, i, "LOCAL"))
        *scope = SCOPE_SESSION;
    else
        return false;
    return true;
}

/* Parses one assignment of a SET statement at *ip; leaves *ip at the ',' (or FOR, or end)
 * after it. *sticky holds the last scope keyword, which carries over to later assignments. */
static void pol_parse_asg(const pol_stmt *s, size_t *ip, bool stop_for, asg_scope *sticky,
                          pol_asg *a)
{
    size_t i = *ip;
    memset(a, 0, sizeof *a);
    a->kind = ASG_BAD;
    a->name = POL_NONE;
    asg_scope sc;
    if (pol_scope_word(s, i, &sc) && !pol_punct(s, i + 1, "=") && !pol_punct(s, i + 1, ":=")) {
        *sticky = sc;
        i++;
    }
    a->scope = *sticky;
    if (pol_word(s, i, "TRANSACTION")) {
        a->kind = ASG_TRANSACTION;
        a->val = i + 1;
        a->val_end = *ip = s->n;
        return;
    }
    if (pol_word(s, i, "PASSWORD") && !pol_punct(s, i + 1, ".")) {
        a->kind = ASG_PASSWORD;
    } else if (pol_word(s, i, "ROLE")) {
        a->kind = ASG_ROLE;
    } else if (pol_word(s, i, "DEFAULT") && pol_word(s, i + 1, "ROLE")) {
        a->kind = ASG_DEFAULT_ROLE;
    } else if (pol_word(s, i, "NAMES")) {
        a->kind = ASG_NAMES;
        i++;
    } else if (pol_word(s, i, "CHARSET") && !pol_punct(s, i + 1, "=")) {
        a->kind = ASG_CHARSET;
        i++;
    } else if (pol_word(s, i, "CHARACTER") && pol_word(s, i + 1, "SET")) {
        a->kind = ASG_CHARSET;
        i += 2;
    } else {
        if (pol_kind(s, i) == SQLTOK_SYSVAR) {
            i++;
            if (pol_punct(s, i + 1, ".")) {
                if (pol_scope_word(s, i, &sc)) {
                    a->scope = sc;
                    i += 2;
                }
            }
            if (pol_is_name(s, i)) {
                a->kind = ASG_SYSVAR;
                a->name = i++;
            }
        } else if (pol_kind(s, i) == SQLTOK_USERVAR) {
            a->kind = ASG_USERVAR;
            i++;
        } else if (pol_is_name(s, i)) {
            a->kind = ASG_SYSVAR;
            a->name = i++;
        }
        if (a->kind == ASG_SYSVAR && pol_punct(s, i, ".")) {
            a->structured = true;
            while (pol_punct(s, i, ".") && pol_is_name(s, i + 1))
                i += 2;
        }
        if (a->kind != ASG_BAD) {
            if (pol_punct(s, i, "=") || pol_punct(s, i, ":="))
                i++;
            else
                a->kind = ASG_BAD;
        }
    }
    a->val = i;
    a->val_end = *ip = pol_value_end(s, i, stop_for);
}

typedef enum {
    VAL_ANY,
    VAL_READ_ONLY,
    VAL_CHARSET,        /* a supported character set or collation, or DEFAULT */
    VAL_CLIENT_CHARSET, /* a supported character set: the one the server reads SQL in */
    VAL_RESULTS_CHARSET, /* any name, NULL or DEFAULT: results only */
    VAL_ISOLATION,      /* not SERIALIZABLE */
    VAL_SQL_MODE
} var_check;

typedef struct {
    const char *name; /* lower case */
    var_check check;
} pol_var;

/* Session variables a read-only session may set: names drivers, GUIs and BI tools send, and
 * harmless per-session limits and formats. Sorted for bsearch. */
static const pol_var pol_vars[] = {
    {"auto_increment_increment", VAL_ANY},
    {"auto_increment_offset", VAL_ANY},
    {"autocommit", VAL_ANY},
    {"big_tables", VAL_ANY},
    {"block_encryption_mode", VAL_ANY},
    {"character_set_client", VAL_CLIENT_CHARSET},
    {"character_set_connection", VAL_CHARSET},
    {"character_set_results", VAL_RESULTS_CHARSET},
    {"character_set_server", VAL_CHARSET}, /* DBD::MariaDB on connect: new databases only */
    {"collation_connection", VAL_CHARSET},
    {"collation_server", VAL_CHARSET},
    {"cte_max_recursion_depth", VAL_ANY},
    {"default_week_format", VAL_ANY},
    {"div_precision_increment", VAL_ANY},
    {"end_markers_in_json", VAL_ANY},
    {"eq_range_index_dive_limit", VAL_ANY},
    {"foreign_key_checks", VAL_ANY},
    {"group_concat_max_len", VAL_ANY},
    {"in_predicate_conversion_threshold", VAL_ANY},
    {"information_schema_stats_expiry", VAL_ANY},
    {"innodb_lock_wait_timeout", VAL_ANY},
    {"interactive_timeout", VAL_ANY},
    {"join_cache_level", VAL_ANY},
    {"lc_messages", VAL_ANY},
    {"lc_time_names", VAL_ANY},
    {"lock_wait_timeout", VAL_ANY},
    {"long_query_time", VAL_ANY},
    {"max_error_count", VAL_ANY},
    {"max_execution_time", VAL_ANY},
    {"max_join_size", VAL_ANY},
    {"max_recursive_iterations", VAL_ANY},
    {"max_sort_length", VAL_ANY},
    {"max_statement_time", VAL_ANY},
    {"net_read_timeout", VAL_ANY},
    {"net_write_timeout", VAL_ANY},
    {"optimizer_prune_level", VAL_ANY},
    {"optimizer_search_depth", VAL_ANY},
    {"optimizer_switch", VAL_ANY},
    {"optimizer_trace", VAL_ANY},
    {"optimizer_trace_max_mem_size", VAL_ANY},
    {"optimizer_use_condition_selectivity", VAL_ANY},
    {"profiling", VAL_ANY},
    {"profiling_history_size", VAL_ANY},
    {"session_track_gtids", VAL_ANY},
    {"session_track_schema", VAL_ANY},
    {"session_track_state_change", VAL_ANY},
    {"session_track_system_variables", VAL_ANY},
    {"session_track_transaction_info", VAL_ANY},
    {"sql_auto_is_null", VAL_ANY},
    {"sql_big_selects", VAL_ANY},
    {"sql_buffer_result", VAL_ANY},
    {"sql_max_join_size", VAL_ANY},
    {"sql_mode", VAL_SQL_MODE},
    {"sql_notes", VAL_ANY},
    {"sql_quote_show_create", VAL_ANY},
    {"sql_safe_updates", VAL_ANY},
    {"sql_select_limit", VAL_ANY},
    {"sql_warnings", VAL_ANY},
    {"time_zone", VAL_ANY},
    {"transaction_isolation", VAL_ISOLATION},
    {"transaction_read_only", VAL_READ_ONLY},
    {"tx_isolation", VAL_ISOLATION},
    {"tx_read_only", VAL_READ_ONLY},
    {"unique_checks", VAL_ANY},
    {"wait_timeout", VAL_ANY},
    {"windowing_use_high_precision", VAL_ANY},
};

static int pol_var_cmp(const void *key, const void *elem)
{
    return pol_lcasecmp(key, ((const pol_var *)elem)->name);
}

static const pol_var *pol_find_var(const char *name)
{
    return bsearch(name, pol_vars, sizeof pol_vars / sizeof pol_vars[0], sizeof pol_vars[0],
                   pol_var_cmp);
}

/* A character set or collation value: one name token (or DEFAULT, or NULL for results).
 * check says which names are allowed. */
static bool pol_check_charset_value(const pol_stmt *s, size_t i, size_t end, var_check check,
                                    const char *what, policy_verdict *v)
{
    char buf[POL_NAME_MAX], shown[40];
    if (end != i + 1)
        return pol_refuse(v, "SET %s to an expression", what);
    if (pol_word(s, i, "DEFAULT")) {
        /* the server's default client character set is not known here */
        if (check == VAL_CLIENT_CHARSET)
            return pol_refuse(v, "SET %s DEFAULT", what);
        return true;
    }
    if (pol_word(s, i, "NULL") && check == VAL_RESULTS_CHARSET)
        return true;
    if (!pol_unquote(s, i, buf, sizeof buf))
        return pol_refuse(v, "SET %s to an expression", what);
    if (check != VAL_RESULTS_CHARSET && sqlpolicy_charset(buf) == SQL_CS_UNSUPPORTED) {
        pol_sanitize(shown, sizeof shown, buf, strlen(buf), false);
        return pol_refuse(v, "character set %s", shown);
    }
    return true;
}

/* An isolation level value: anything but SERIALIZABLE, under which every read takes shared
 * locks that writers wait for. */
static bool pol_check_isolation(const pol_stmt *s, size_t i, size_t end, policy_verdict *v)
{
    char buf[32];
    for (size_t k = i; k < end; k++) {
        if (pol_word(s, k, "SERIALIZABLE") ||
            ((pol_kind(s, k) == SQLTOK_STRING || pol_kind(s, k) == SQLTOK_QIDENT) &&
             pol_unquote(s, k, buf, sizeof buf) && pol_casecmp(buf, "SERIALIZABLE") == 0))
            return pol_refuse(v, "isolation level SERIALIZABLE");
    }
    /* A number picks a level by its index (3 is SERIALIZABLE); an expression could be
     * anything. Only names and strings of the other levels are allowed. */
    if (end != i + 1)
        return pol_refuse(v, "SET isolation level to an expression");
    if (pol_kind(s, i) == SQLTOK_NUMBER || !pol_unquote(s, i, buf, sizeof buf))
        return pol_refuse(v, "SET isolation level to an expression");
    if (pol_casecmp(buf, "DEFAULT") == 0)
        return pol_refuse(v, "SET isolation level DEFAULT");
    return true;
}

static bool pol_is_on(const pol_stmt *s, size_t i, size_t end)
{
    char buf[16];
    if (end != i + 1)
        return false;
    if (pol_kind(s, i) == SQLTOK_NUMBER)
        return s->tok[i].t.len == 1 && pol_text(s, i)[0] == '1';
    if (!pol_unquote(s, i, buf, sizeof buf))
        return false;
    return pol_casecmp(buf, "ON") == 0 || pol_casecmp(buf, "TRUE") == 0 ||
           pol_casecmp(buf, "1") == 0;
}

/* SET [SESSION] TRANSACTION characteristics: any isolation level, READ ONLY; not READ WRITE. */
static bool pol_check_transaction(const pol_stmt *s, size_t i, size_t end, policy_verdict *v)
{
    static const char *const ok[] = {"ISOLATION",  "LEVEL",     "READ", "UNCOMMITTED",
                                     "COMMITTED",  "REPEATABLE", "ONLY", NULL};
    if (i >= end)
        return pol_refuse(v, "SET TRANSACTION");
    for (; i < end; i++) {
        if (pol_word(s, i, "READ") && pol_word(s, i + 1, "WRITE"))
            return pol_refuse(v, "SET TRANSACTION READ WRITE");
        if (pol_word(s, i, "SERIALIZABLE"))
            return pol_refuse(v, "isolation level SERIALIZABLE");
        if (!pol_word_in(s, i, ok) && !pol_punct(s, i, ","))
            return pol_refuse(v, "SET TRANSACTION");
    }
    return true;
}

static bool pol_check_asg(const pol_stmt *s, const pol_asg *a, bool in_statement, policy_verdict *v)
{
    char name[POL_NAME_MAX], shown[48];
    switch (a->scope) {
    case SCOPE_GLOBAL:
        return pol_refuse(v, "SET GLOBAL");
    case SCOPE_PERSIST:
        return pol_refuse(v, "SET PERSIST");
    case SCOPE_PERSIST_ONLY:
        return pol_refuse(v, "SET PERSIST_ONLY");
    case SCOPE_SESSION:
        break;
    }
    switch (a->kind) {
    case ASG_TRANSACTION:
        return pol_check_transaction(s, a->val, a->val_end, v);
    case ASG_PASSWORD:
        return pol_refuse(v, "SET PASSWORD");
    case ASG_ROLE:
        return pol_refuse(v, "SET ROLE");
    case ASG_DEFAULT_ROLE:
        return pol_refuse(v, "SET DEFAULT ROLE");
    case ASG_USERVAR:
        if (in_statement)
            return pol_refuse(v, "SET STATEMENT with a user variable");
        return true;
    case ASG_NAMES:
    case ASG_CHARSET: {
        const char *what = a->kind == ASG_NAMES ? "NAMES" : "CHARACTER SET";
        size_t end = a->val_end;
        if (a->kind == ASG_NAMES && end >= a->val + 3 && pol_word(s, a->val + 1, "COLLATE")) {
            if (!pol_check_charset_value(s, a->val + 2, end, VAL_CHARSET, "COLLATE", v))
                return false;
            end = a->val + 1;
        }
        return pol_check_charset_value(s, a->val, end, VAL_CLIENT_CHARSET, what, v);
    }
    case ASG_BAD:
        if (a->name != POL_NONE) {
            pol_tok_name(s, a->name, shown, sizeof shown, false);
            return pol_refuse(v, "SET %s", shown);
        }
        return pol_refuse(v, "SET");
    case ASG_SYSVAR:
        break;
    }
    pol_tok_name(s, a->name, shown, sizeof shown, false);
    const pol_var *var = NULL;
    if (!a->structured && pol_unquote(s, a->name, name, sizeof name))
        var = pol_find_var(name);
    if (!var)
        return pol_refuse(v, "SET %s", shown);
    if (a->val >= a->val_end)
        return pol_refuse(v, "SET %s", shown);
    switch (var->check) {
    case VAL_ANY:
        return true;
    case VAL_READ_ONLY:
        if (!pol_is_on(s, a->val, a->val_end))
            return pol_refuse(v, "SET %s other than ON", var->name);
        return true;
    case VAL_CHARSET:
    case VAL_CLIENT_CHARSET:
    case VAL_RESULTS_CHARSET:
        return pol_check_charset_value(s, a->val, a->val_end, var->check, var->name, v);
    case VAL_ISOLATION:
        return pol_check_isolation(s, a->val, a->val_end, v);
    case VAL_SQL_MODE: {
        sql_mode_flags none = {false, false, false, false};
        if (pol_eval_sql_mode(s, a->val, a->val_end, &none).unreadable)
            return pol_refuse(v, "SET sql_mode ORACLE or MSSQL");
        return true;
    }
    }
    return true;
}

static bool pol_mode_eq(const sql_mode_flags *a, const sql_mode_flags *b)
{
    return a->ansi_quotes == b->ansi_quotes && a->no_backslash_escapes == b->no_backslash_escapes &&
           a->unknown == b->unknown && a->unreadable == b->unreadable;
}

/* The client character set after "SET NAMES <tokens [i, end)>" and the like: a supported
 * one only when the value is one name. */
static sql_charset pol_eval_charset(const pol_stmt *s, size_t i, size_t end)
{
    char buf[POL_NAME_MAX];
    if (end >= i + 3 && pol_word(s, i + 1, "COLLATE"))
        end = i + 1;
    if (end != i + 1 || pol_kind(s, i) == SQLTOK_NUMBER || pol_word(s, i, "DEFAULT") ||
        !pol_unquote(s, i, buf, sizeof buf))
        return SQL_CS_UNSUPPORTED;
    return sqlpolicy_charset(buf);
}

/* Applies the sql_mode and client character set assignments of the SET statement at token
 * from to *mode and *cs. Returns whether it assigns the client character set.
 *
 * MariaDB's SET STATEMENT var = value, ... FOR stmt puts back only the variables it lists
 * once stmt ended: `SET STATEMENT max_statement_time = 10 FOR SET sql_mode = 'X'` leaves the
 * session in X. So the statement after FOR is followed like any other; when the list names
 * the same variable too, what the session is left in depends on the order of the two, and
 * the mode becomes unknown (the character set unsupported). The list's own values apply to
 * stmt only, after it was read: they change nothing here. */
static bool pol_track_set_at(const pol_stmt *s, size_t from, sql_mode_flags *mode,
                             sql_charset *cs, int depth)
{
    if (!pol_word(s, from, "SET") || depth > POL_MAX_DEPTH)
        return false;
    bool statement = pol_word(s, from + 1, "STATEMENT");
    asg_scope sticky = SCOPE_SESSION;
    size_t i = from + (statement ? 2 : 1);
    bool lists_mode = false, lists_cs = false, touched = false;
    while (i < s->n) {
        pol_asg a;
        pol_parse_asg(s, &i, statement, &sticky, &a);
        if ((a.kind == ASG_NAMES || a.kind == ASG_CHARSET) && a.scope == SCOPE_SESSION) {
            if (statement) {
                lists_cs = true;
            } else {
                *cs = pol_eval_charset(s, a.val, a.val_end);
                touched = true;
            }
        }
        if (a.kind == ASG_SYSVAR && a.scope == SCOPE_SESSION && !a.structured) {
            char name[POL_NAME_MAX];
            bool named = pol_unquote(s, a.name, name, sizeof name);
            if (named && pol_casecmp(name, "sql_mode") == 0) {
                if (statement)
                    lists_mode = true;
                else
                    *mode = pol_eval_sql_mode(s, a.val, a.val_end, mode);
            } else if (named && pol_casecmp(name, "character_set_client") == 0) {
                if (statement) {
                    lists_cs = true;
                } else {
                    *cs = pol_eval_charset(s, a.val, a.val_end);
                    touched = true;
                }
            }
        }
        if (a.kind == ASG_BAD || a.kind == ASG_TRANSACTION)
            return touched;
        if (pol_punct(s, i, ",")) {
            i++;
            continue;
        }
        if (statement)
            break;
    }
    if (!statement || !pol_word(s, i, "FOR"))
        return touched;
    sql_mode_flags after = *mode;
    sql_charset cs_after = *cs;
    bool inner = pol_track_set_at(s, i + 1, &after, &cs_after, depth + 1);
    if (!pol_mode_eq(&after, mode))
        *mode = lists_mode ? pol_mode_unknown(mode) : after;
    if (inner) {
        *cs = lists_cs ? SQL_CS_UNSUPPORTED : cs_after;
        touched = true;
    }
    return touched;
}

static bool pol_track_set(const pol_stmt *s, sql_mode_flags *mode, sql_charset *cs)
{
    return pol_track_set_at(s, 0, mode, cs, 0);
}

/* ---- functions ---- */

enum {
    FN_ADJACENT = 1,     /* a keyword only when '(' follows at once; with a space between, the
                            server looks for a stored function of that name */
    FN_NO_ARGS = 2,      /* allowed only without arguments (LAST_INSERT_ID) */
    FN_NOT_MARIADB = 4,  /* not a built-in of MariaDB 10.11: a call runs the stored function
                            of that name in the current database (checked on the server) */
    FN_NOT_MYSQL = 8,    /* not a built-in of MySQL 8 (from its documentation) */
    FN_SOME_ARGS = 16,   /* a built-in only with arguments: LINESTRING() calls a stored
                            function on MariaDB */
    FN_TWO_ARGS = 32,    /* a built-in only with two arguments (POINT) */
    FN_TABLE = 64,       /* a table function: built-in only after FROM or JOIN (JSON_TABLE) */
};

typedef struct {
    const char *name;
    unsigned flags;
} pol_func;

/* Built-in functions of MySQL 8 and MariaDB 10.11 that neither write, wait, lock nor read
 * files, with the flavor that lacks each (FN_NOT_*). Sorted by upper-case form for bsearch.
 * Anything else followed by '(' is a stored function or UDF, which may write: refused. A name
 * that is built-in on one flavor only is allowed only when the backend is known to be of that
 * flavor: on the other it calls a stored function of that name. */
/* clang-format off */
static const pol_func pol_funcs[] = {
    {"ABS", 0}, {"ACOS", 0}, {"ADDDATE", FN_ADJACENT}, {"ADDTIME", 0}, {"ADD_MONTHS", FN_NOT_MYSQL},
    {"AES_DECRYPT", 0}, {"AES_ENCRYPT", 0}, {"ANY_VALUE", FN_NOT_MARIADB}, {"AREA", FN_NOT_MYSQL},
    {"ASBINARY", FN_NOT_MYSQL}, {"ASCII", 0}, {"ASIN", 0}, {"ASTEXT", FN_NOT_MYSQL},
    {"ASWKB", FN_NOT_MYSQL}, {"ASWKT", FN_NOT_MYSQL}, {"ATAN", 0}, {"ATAN2", 0}, {"AVG", 0},
    {"BIN", 0}, {"BINLOG_GTID_POS", FN_NOT_MYSQL}, {"BIN_TO_UUID", FN_NOT_MARIADB},
    {"BIT_AND", FN_ADJACENT}, {"BIT_COUNT", 0}, {"BIT_LENGTH", 0}, {"BIT_OR", FN_ADJACENT},
    {"BIT_XOR", FN_ADJACENT}, {"CAST", FN_ADJACENT}, {"CEIL", 0}, {"CEILING", 0}, {"CHAR", 0},
    {"CHARACTER_LENGTH", 0}, {"CHARSET", 0}, {"CHAR_LENGTH", 0}, {"CHR", FN_NOT_MYSQL},
    {"COALESCE", 0}, {"COERCIBILITY", 0}, {"COLLATION", 0}, {"COLUMN_ADD", FN_NOT_MYSQL},
    {"COLUMN_CHECK", FN_NOT_MYSQL}, {"COLUMN_CREATE", FN_NOT_MYSQL},
    {"COLUMN_DELETE", FN_NOT_MYSQL}, {"COLUMN_EXISTS", FN_NOT_MYSQL}, {"COLUMN_GET", FN_NOT_MYSQL},
    {"COLUMN_JSON", FN_NOT_MYSQL}, {"COLUMN_LIST", FN_NOT_MYSQL}, {"COMPRESS", 0}, {"CONCAT", 0},
    {"CONCAT_WS", 0}, {"CONNECTION_ID", 0}, {"CONV", 0}, {"CONVERT", 0}, {"CONVERT_TZ", 0},
    {"COS", 0}, {"COT", 0}, {"COUNT", FN_ADJACENT}, {"CRC32", 0}, {"CRC32C", FN_NOT_MYSQL},
    {"CUME_DIST", FN_ADJACENT}, {"CURDATE", FN_ADJACENT}, {"CURRENT_DATE", 0}, {"CURRENT_ROLE", 0},
    {"CURRENT_TIME", 0}, {"CURRENT_TIMESTAMP", 0}, {"CURRENT_USER", 0}, {"CURTIME", FN_ADJACENT},
    {"DATABASE", 0}, {"DATE", 0}, {"DATEDIFF", 0}, {"DATE_ADD", FN_ADJACENT}, {"DATE_FORMAT", 0},
    {"DATE_SUB", FN_ADJACENT}, {"DAY", 0}, {"DAYNAME", 0}, {"DAYOFMONTH", 0}, {"DAYOFWEEK", 0},
    {"DAYOFYEAR", 0}, {"DECODE", FN_NOT_MYSQL}, {"DECODE_ORACLE", FN_NOT_MYSQL}, {"DEFAULT", 0},
    {"DEGREES", 0}, {"DENSE_RANK", FN_ADJACENT}, {"DES_DECRYPT", FN_NOT_MYSQL},
    {"DES_ENCRYPT", FN_NOT_MYSQL}, {"DIMENSION", FN_NOT_MYSQL}, {"ELT", 0},
    {"ENCODE", FN_NOT_MYSQL}, {"ENCRYPT", FN_NOT_MYSQL}, {"ENDPOINT", FN_NOT_MYSQL},
    {"ENVELOPE", FN_NOT_MYSQL}, {"EXP", 0}, {"EXPORT_SET", 0}, {"EXTRACT", FN_ADJACENT},
    {"EXTRACTVALUE", 0}, {"FIELD", 0}, {"FIND_IN_SET", 0}, {"FIRST_VALUE", FN_ADJACENT},
    {"FLOOR", 0}, {"FORMAT", 0}, {"FORMAT_BYTES", FN_NOT_MARIADB},
    {"FORMAT_PICO_TIME", FN_NOT_MARIADB}, {"FOUND_ROWS", 0}, {"FROM_BASE64", 0}, {"FROM_DAYS", 0},
    {"FROM_UNIXTIME", 0}, {"GEOMETRYCOLLECTION", FN_SOME_ARGS}, {"GEOMETRYFROMTEXT", FN_NOT_MYSQL},
    {"GEOMETRYTYPE", FN_NOT_MYSQL}, {"GEOMFROMTEXT", FN_NOT_MYSQL}, {"GET_FORMAT", 0},
    {"GLENGTH", FN_NOT_MYSQL}, {"GREATEST", 0}, {"GROUPING", FN_NOT_MARIADB},
    {"GROUP_CONCAT", FN_ADJACENT}, {"GTID_SUBSET", FN_NOT_MARIADB},
    {"GTID_SUBTRACT", FN_NOT_MARIADB}, {"HEX", 0}, {"HOUR", 0}, {"ICU_VERSION", FN_NOT_MARIADB},
    {"IF", 0}, {"IFNULL", 0}, {"INET6_ATON", 0}, {"INET6_NTOA", 0}, {"INET_ATON", 0},
    {"INET_NTOA", 0}, {"INSERT", 0}, {"INSTR", 0}, {"INTERVAL", 0}, {"ISNULL", 0},
    {"IS_FREE_LOCK", 0}, {"IS_IPV4", 0}, {"IS_IPV4_COMPAT", 0}, {"IS_IPV4_MAPPED", 0},
    {"IS_IPV6", 0}, {"IS_USED_LOCK", 0}, {"IS_UUID", FN_NOT_MARIADB}, {"JSON_ARRAY", 0},
    {"JSON_ARRAYAGG", FN_ADJACENT}, {"JSON_ARRAY_APPEND", 0}, {"JSON_ARRAY_INSERT", 0},
    {"JSON_COMPACT", FN_NOT_MYSQL}, {"JSON_CONTAINS", 0}, {"JSON_CONTAINS_PATH", 0},
    {"JSON_DEPTH", 0}, {"JSON_DETAILED", FN_NOT_MYSQL}, {"JSON_EQUALS", FN_NOT_MYSQL},
    {"JSON_EXISTS", FN_NOT_MYSQL}, {"JSON_EXTRACT", 0}, {"JSON_INSERT", 0}, {"JSON_KEYS", 0},
    {"JSON_LENGTH", 0}, {"JSON_LOOSE", FN_NOT_MYSQL}, {"JSON_MERGE", 0}, {"JSON_MERGE_PATCH", 0},
    {"JSON_MERGE_PRESERVE", 0}, {"JSON_NORMALIZE", FN_NOT_MYSQL}, {"JSON_OBJECT", 0},
    {"JSON_OBJECTAGG", FN_ADJACENT}, {"JSON_OVERLAPS", 0}, {"JSON_PRETTY", 0},
    {"JSON_QUERY", FN_NOT_MYSQL}, {"JSON_QUOTE", 0}, {"JSON_REMOVE", 0}, {"JSON_REPLACE", 0},
    {"JSON_SCHEMA_VALID", FN_NOT_MARIADB}, {"JSON_SCHEMA_VALIDATION_REPORT", FN_NOT_MARIADB},
    {"JSON_SEARCH", 0}, {"JSON_SET", 0}, {"JSON_STORAGE_FREE", FN_NOT_MARIADB},
    {"JSON_STORAGE_SIZE", FN_NOT_MARIADB}, {"JSON_TABLE", FN_TABLE}, {"JSON_TYPE", 0},
    {"JSON_UNQUOTE", 0}, {"JSON_VALID", 0}, {"JSON_VALUE", 0}, {"LAG", FN_ADJACENT},
    {"LASTVAL", FN_NOT_MYSQL}, {"LAST_DAY", 0}, {"LAST_INSERT_ID", FN_NO_ARGS}, {"LAST_VALUE", 0},
    {"LCASE", 0}, {"LEAD", FN_ADJACENT}, {"LEAST", 0}, {"LEFT", 0}, {"LENGTH", 0},
    {"LENGTHB", FN_NOT_MYSQL}, {"LINESTRING", FN_SOME_ARGS}, {"LN", 0}, {"LOCALTIME", 0},
    {"LOCALTIMESTAMP", 0}, {"LOCATE", 0}, {"LOG", 0}, {"LOG10", 0}, {"LOG2", 0}, {"LOWER", 0},
    {"LPAD", 0}, {"LTRIM", 0}, {"MAKEDATE", 0}, {"MAKETIME", 0}, {"MAKE_SET", 0},
    {"MAX", FN_ADJACENT}, {"MBRCONTAINS", 0}, {"MBRCOVEREDBY", FN_NOT_MARIADB},
    {"MBRCOVERS", FN_NOT_MARIADB}, {"MBRDISJOINT", 0}, {"MBREQUALS", 0}, {"MBRINTERSECTS", 0},
    {"MBROVERLAPS", 0}, {"MBRTOUCHES", 0}, {"MBRWITHIN", 0}, {"MD5", 0},
    {"MEDIAN", FN_ADJACENT|FN_NOT_MYSQL}, {"MICROSECOND", 0}, {"MID", FN_ADJACENT},
    {"MIN", FN_ADJACENT}, {"MINUTE", 0}, {"MOD", 0}, {"MONTH", 0}, {"MONTHNAME", 0},
    {"MULTILINESTRING", FN_SOME_ARGS}, {"MULTIPOINT", FN_SOME_ARGS}, {"MULTIPOLYGON", FN_SOME_ARGS},
    {"NAME_CONST", 0}, {"NATURAL_SORT_KEY", FN_NOT_MYSQL}, {"NOW", FN_ADJACENT},
    {"NTH_VALUE", FN_ADJACENT}, {"NTILE", FN_ADJACENT}, {"NULLIF", 0}, {"NUMPOINTS", FN_NOT_MYSQL},
    {"NVL", FN_NOT_MYSQL}, {"NVL2", FN_NOT_MYSQL}, {"OCT", 0}, {"OCTET_LENGTH", 0},
    {"OLD_PASSWORD", FN_NOT_MYSQL}, {"ORD", 0}, {"PASSWORD", FN_NOT_MYSQL},
    {"PERCENTILE_CONT", FN_ADJACENT|FN_NOT_MYSQL}, {"PERCENTILE_DISC", FN_ADJACENT|FN_NOT_MYSQL},
    {"PERCENT_RANK", FN_ADJACENT}, {"PERIOD_ADD", 0}, {"PERIOD_DIFF", 0}, {"PI", 0},
    {"POINT", FN_TWO_ARGS}, {"POINTFROMTEXT", FN_NOT_MYSQL}, {"POLYGON", FN_SOME_ARGS},
    {"POSITION", FN_ADJACENT}, {"POW", 0}, {"POWER", 0}, {"PS_CURRENT_THREAD_ID", FN_NOT_MARIADB},
    {"PS_THREAD_ID", FN_NOT_MARIADB}, {"QUARTER", 0}, {"QUOTE", 0}, {"RADIANS", 0}, {"RAND", 0},
    {"RANDOM_BYTES", 0}, {"RANK", FN_ADJACENT}, {"REGEXP_INSTR", 0},
    {"REGEXP_LIKE", FN_NOT_MARIADB}, {"REGEXP_REPLACE", 0}, {"REGEXP_SUBSTR", 0}, {"REPEAT", 0},
    {"REPLACE", 0}, {"REVERSE", 0}, {"RIGHT", 0}, {"ROLES_GRAPHML", FN_NOT_MARIADB}, {"ROUND", 0},
    {"ROWNUM", FN_NOT_MYSQL}, {"ROW_COUNT", 0}, {"ROW_NUMBER", 0}, {"RPAD", 0}, {"RTRIM", 0},
    {"SCHEMA", 0}, {"SECOND", 0}, {"SEC_TO_TIME", 0}, {"SESSION_USER", FN_ADJACENT},
    {"SFORMAT", FN_NOT_MYSQL}, {"SHA", 0}, {"SHA1", 0}, {"SHA2", 0}, {"SIGN", 0}, {"SIN", 0},
    {"SOUNDEX", 0}, {"SPACE", 0}, {"SQRT", 0}, {"SRID", FN_NOT_MYSQL}, {"STARTPOINT", FN_NOT_MYSQL},
    {"STATEMENT_DIGEST", FN_NOT_MARIADB}, {"STATEMENT_DIGEST_TEXT", FN_NOT_MARIADB},
    {"STD", FN_ADJACENT}, {"STDDEV", FN_ADJACENT}, {"STDDEV_POP", FN_ADJACENT},
    {"STDDEV_SAMP", FN_ADJACENT}, {"STRCMP", 0}, {"STR_TO_DATE", 0}, {"ST_AREA", 0},
    {"ST_ASBINARY", 0}, {"ST_ASGEOJSON", 0}, {"ST_ASTEXT", 0}, {"ST_ASWKB", 0}, {"ST_ASWKT", 0},
    {"ST_BUFFER", 0}, {"ST_CENTROID", 0}, {"ST_COLLECT", FN_ADJACENT|FN_NOT_MARIADB},
    {"ST_CONTAINS", 0}, {"ST_CONVEXHULL", 0}, {"ST_CROSSES", 0}, {"ST_DIFFERENCE", 0},
    {"ST_DIMENSION", 0}, {"ST_DISJOINT", 0}, {"ST_DISTANCE", 0}, {"ST_DISTANCE_SPHERE", 0},
    {"ST_ENDPOINT", 0}, {"ST_ENVELOPE", 0}, {"ST_EQUALS", 0}, {"ST_EXTERIORRING", 0},
    {"ST_GEOHASH", FN_NOT_MARIADB}, {"ST_GEOMCOLLFROMTEXT", 0}, {"ST_GEOMCOLLFROMWKB", 0},
    {"ST_GEOMETRYCOLLECTIONFROMTEXT", 0}, {"ST_GEOMETRYFROMTEXT", 0}, {"ST_GEOMETRYFROMWKB", 0},
    {"ST_GEOMETRYN", 0}, {"ST_GEOMETRYTYPE", 0}, {"ST_GEOMFROMGEOJSON", 0}, {"ST_GEOMFROMTEXT", 0},
    {"ST_GEOMFROMWKB", 0}, {"ST_INTERIORRINGN", 0}, {"ST_INTERSECTION", 0}, {"ST_INTERSECTS", 0},
    {"ST_ISCLOSED", 0}, {"ST_ISEMPTY", 0}, {"ST_ISRING", FN_NOT_MYSQL}, {"ST_ISSIMPLE", 0},
    {"ST_ISVALID", FN_NOT_MARIADB}, {"ST_LATFROMGEOHASH", FN_NOT_MARIADB},
    {"ST_LATITUDE", FN_NOT_MARIADB}, {"ST_LENGTH", 0}, {"ST_LINEFROMTEXT", 0},
    {"ST_LINEFROMWKB", 0}, {"ST_LINESTRINGFROMTEXT", 0}, {"ST_LONGFROMGEOHASH", FN_NOT_MARIADB},
    {"ST_LONGITUDE", FN_NOT_MARIADB}, {"ST_MAKEENVELOPE", FN_NOT_MARIADB}, {"ST_MLINEFROMTEXT", 0},
    {"ST_MPOINTFROMTEXT", 0}, {"ST_MPOLYFROMTEXT", 0}, {"ST_NUMGEOMETRIES", 0},
    {"ST_NUMINTERIORRINGS", 0}, {"ST_NUMPOINTS", 0}, {"ST_OVERLAPS", 0},
    {"ST_POINTFROMGEOHASH", FN_NOT_MARIADB}, {"ST_POINTFROMTEXT", 0}, {"ST_POINTFROMWKB", 0},
    {"ST_POINTN", 0}, {"ST_POINTONSURFACE", FN_NOT_MYSQL}, {"ST_POLYFROMTEXT", 0},
    {"ST_POLYFROMWKB", 0}, {"ST_POLYGONFROMTEXT", 0}, {"ST_RELATE", FN_NOT_MYSQL},
    {"ST_SIMPLIFY", FN_NOT_MARIADB}, {"ST_SRID", 0}, {"ST_STARTPOINT", 0},
    {"ST_SWAPXY", FN_NOT_MARIADB}, {"ST_SYMDIFFERENCE", 0}, {"ST_TOUCHES", 0},
    {"ST_TRANSFORM", FN_NOT_MARIADB}, {"ST_UNION", 0}, {"ST_VALIDATE", FN_NOT_MARIADB},
    {"ST_WITHIN", 0}, {"ST_X", 0}, {"ST_Y", 0}, {"SUBDATE", FN_ADJACENT}, {"SUBSTR", FN_ADJACENT},
    {"SUBSTRING", FN_ADJACENT}, {"SUBSTRING_INDEX", 0}, {"SUBTIME", 0}, {"SUM", FN_ADJACENT},
    {"SYSDATE", FN_ADJACENT}, {"SYSTEM_USER", FN_ADJACENT}, {"SYS_GUID", FN_NOT_MYSQL}, {"TAN", 0},
    {"TIME", 0}, {"TIMEDIFF", 0}, {"TIMESTAMP", 0}, {"TIMESTAMPADD", 0}, {"TIMESTAMPDIFF", 0},
    {"TIME_FORMAT", 0}, {"TIME_TO_SEC", 0}, {"TO_BASE64", 0}, {"TO_CHAR", FN_NOT_MYSQL},
    {"TO_DAYS", 0}, {"TO_SECONDS", 0}, {"TRIM", FN_ADJACENT}, {"TRUNCATE", 0}, {"UCASE", 0},
    {"UNCOMPRESS", 0}, {"UNCOMPRESSED_LENGTH", 0}, {"UNHEX", 0}, {"UNIX_TIMESTAMP", 0},
    {"UPDATEXML", 0}, {"UPPER", 0}, {"USER", 0}, {"UTC_DATE", 0}, {"UTC_TIME", 0},
    {"UTC_TIMESTAMP", 0}, {"UUID", 0}, {"UUID_SHORT", 0}, {"UUID_TO_BIN", FN_NOT_MARIADB},
    {"VALIDATE_PASSWORD_STRENGTH", FN_NOT_MARIADB}, {"VALUES", 0}, {"VARIANCE", FN_ADJACENT},
    {"VAR_POP", FN_ADJACENT}, {"VAR_SAMP", FN_ADJACENT}, {"VERSION", 0}, {"WEEK", 0},
    {"WEEKDAY", 0}, {"WEEKOFYEAR", 0}, {"WEIGHT_STRING", FN_NOT_MYSQL}, {"X", FN_NOT_MYSQL},
    {"Y", FN_NOT_MYSQL}, {"YEAR", 0}, {"YEARWEEK", 0},
};
/* clang-format on */

static int pol_func_cmp(const void *key, const void *elem)
{
    return pol_casecmp(key, ((const pol_func *)elem)->name);
}

static const pol_func *pol_find_func(const char *name)
{
    return bsearch(name, pol_funcs, sizeof pol_funcs / sizeof pol_funcs[0], sizeof pol_funcs[0],
                   pol_func_cmp);
}

/* Keywords of both servers that may be followed by '(' without being a call, and that the
 * server never takes for a function name (checked on MariaDB 10.11: SQL_NO_CACHE( and
 * SQL_BUFFER_RESULT( call stored functions, so they are not here; AGAINST is checked on its
 * own). */
/* clang-format off */
static const char *const pol_paren_keywords[] = {
    "ALL", "AND", "ANY", "AS", "BETWEEN", "BIGINT", "BINARY", "BIT", "BY", "CASE",
    "DATETIME", "DEC", "DECIMAL", "DISTINCT", "DISTINCTROW", "DIV", "DOUBLE", "ELSE", "ENUM",
    "EXISTS", "FIXED", "FLOAT", "FROM", "GROUP", "HAVING", "HIGH_PRIORITY", "IN", "INDEX", "INT",
    "INTEGER", "JOIN", "JSON", "KEY", "LIKE", "MATCH", "MEDIUMINT", "NCHAR", "NOT", "NUMERIC",
    "NVARCHAR", "ON", "OR", "PARTITION", "REAL", "REGEXP", "RLIKE", "ROW", "SELECT", "SIGNED",
    "SMALLINT", "SOME", "SQL_BIG_RESULT", "SQL_CALC_FOUND_ROWS",
    "SQL_SMALL_RESULT", "STRAIGHT_JOIN", "TEXT", "THEN", "TINYINT", "UNION",
    "UNSIGNED", "USING", "VARBINARY", "VARCHAR", "WHEN", "WHERE", "XOR", NULL};
/* clang-format on */

/* Number of arguments of the call whose '(' is token open: top-level commas plus one, or 0
 * for "()". */
static size_t pol_count_args(const pol_stmt *s, size_t open)
{
    if (pol_punct(s, open + 1, ")"))
        return 0;
    size_t args = 1;
    int depth = 0;
    for (size_t i = open; i < s->n; i++) {
        if (pol_punct(s, i, "("))
            depth++;
        else if (pol_punct(s, i, ")") && --depth == 0)
            break;
        else if (depth == 1 && pol_punct(s, i, ","))
            args++;
    }
    return args;
}

/* True when token i follows "MATCH (...)". */
static bool pol_after_match(const pol_stmt *s, size_t i)
{
    if (i < 3 || !pol_punct(s, i - 1, ")"))
        return false;
    int depth = 0;
    for (size_t k = i - 1;; k--) {
        if (pol_punct(s, k, ")"))
            depth++;
        else if (pol_punct(s, k, "(") && --depth == 0)
            return k > 0 && pol_word(s, k - 1, "MATCH");
        if (k == 0)
            return false;
    }
}

/* Whether name (any case) is in a sorted set of lower-case names. */
static bool pol_name_in_set(const sql_name_set *set, const char *name)
{
    if (!set)
        return false;
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = pol_lcasecmp(name, set->names[mid]);
        if (c == 0)
            return true;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* Checks a name (token i) followed by '('. */
static bool pol_check_call(const pol_stmt *s, size_t i, policy_verdict *v)
{
    char name[POL_NAME_MAX], shown[48];
    if (s->tok[i].not_call)
        return true;
    bool has_prev = i > 0;
    if (has_prev && pol_punct(s, i - 1, ".")) {
        char q[48] = "";
        if (i >= 2 && pol_is_name(s, i - 2))
            pol_tok_name(s, i - 2, q, sizeof q, true);
        pol_tok_name(s, i, shown, sizeof shown, true);
        return pol_refuse(v, "function %s.%s()", q, shown);
    }
    if (has_prev && pol_word(s, i - 1, "AS"))
        return true; /* an alias's column list, or a type: CAST(x AS DECIMAL(10,2)) */
    if (pol_word(s, i + 2, "SELECT") || pol_word(s, i + 2, "WITH"))
        return true; /* a subquery: no function takes SELECT as an argument */
    pol_tok_name(s, i, shown, sizeof shown, true);
    if (pol_kind(s, i) == SQLTOK_QIDENT)
        return pol_refuse(v, "function `%s`()", shown);
    if (pol_word_in(s, i, pol_paren_keywords))
        return true;
    if (pol_word(s, i, "OVER") && has_prev && pol_punct(s, i - 1, ")"))
        return true;
    if (pol_word(s, i, "COLUMNS") && has_prev && pol_kind(s, i - 1) == SQLTOK_STRING)
        return true; /* JSON_TABLE(doc, '$' COLUMNS (...)) */
    if (pol_word(s, i, "OF") && has_prev && pol_word(s, i - 1, "MEMBER"))
        return true;
    if (pol_word(s, i, "AGAINST") && pol_after_match(s, i))
        return true; /* MATCH (cols) AGAINST (...) */
    const pol_func *f = NULL;
    if (pol_unquote(s, i, name, sizeof name))
        f = pol_find_func(name);
    if (!f)
        return pol_refuse(v, "function %s()", shown);
    sql_flavor flavor = s->ps ? s->ps->flavor : SQL_FLAVOR_UNKNOWN;
    if ((f->flags & FN_NOT_MARIADB) && flavor != SQL_FLAVOR_MYSQL)
        return pol_refuse(v, "function %s() (not a MariaDB built-in)", shown);
    if ((f->flags & FN_NOT_MYSQL) && flavor != SQL_FLAVOR_MARIADB)
        return pol_refuse(v, "function %s() (not a MySQL built-in)", shown);
    if ((f->flags & FN_ADJACENT) && s->tok[i + 1].t.spaced)
        return pol_refuse(v, "function %s() with a space before '('", shown);
    size_t args = pol_count_args(s, i + 1);
    if ((f->flags & FN_NO_ARGS) && args != 0)
        return pol_refuse(v, "function %s() with an argument", shown);
    if ((f->flags & FN_SOME_ARGS) && args == 0)
        return pol_refuse(v, "function %s() without arguments", shown);
    if ((f->flags & FN_TWO_ARGS) && args != 2)
        return pol_refuse(v, "function %s() without two arguments", shown);
    if ((f->flags & FN_TABLE) && !(has_prev && (pol_word(s, i - 1, "FROM") ||
                                                pol_word(s, i - 1, "JOIN"))))
        return pol_refuse(v, "function %s() outside FROM", shown);
    if (s->ps && pol_name_in_set(s->ps->stored, name))
        return pol_refuse(v, "function %s() (a stored function of that name exists)", shown);
    return true;
}

/* Walks the CTE list of the WITH at token w and returns the index of the statement after
 * it, or POL_NONE when the list is not of the form name [(columns)] AS (query), ....
 * When mark, flags each CTE name that has a column list as not a call. */
static size_t pol_cte_list(pol_stmt *s, size_t w, bool mark)
{
    size_t i = w + 1;
    if (pol_word(s, i, "RECURSIVE"))
        i++;
    for (;;) {
        if (!pol_is_name(s, i))
            return POL_NONE;
        size_t name = i++;
        if (pol_punct(s, i, "(")) {
            i = pol_skip_parens(s, i);
            if (i == POL_NONE)
                return POL_NONE;
            if (mark && pol_word(s, i, "AS"))
                s->tok[name].not_call = true;
        }
        if (!pol_word(s, i, "AS") || !pol_punct(s, i + 1, "("))
            return POL_NONE;
        i = pol_skip_parens(s, i + 1);
        if (i == POL_NONE)
            return POL_NONE;
        if (pol_word(s, i, "CYCLE")) { /* MariaDB: CYCLE columns RESTRICT */
            while (i < s->n && !pol_word(s, i, "RESTRICT"))
                i++;
            if (i >= s->n)
                return POL_NONE;
            i++;
        }
        if (!pol_punct(s, i, ","))
            return i;
        i++;
    }
}

/* What may hide inside any allowed statement, at any depth: INTO, locking reads, sequence
 * changes, and calls of anything but harmless built-in functions. */
static bool pol_check_hazards(pol_stmt *s, size_t from, policy_verdict *v)
{
    for (size_t i = from; i < s->n; i++) {
        if (pol_kind(s, i) == SQLTOK_WORD) {
            if (pol_word(s, i, "WITH"))
                pol_cte_list(s, i, true);
            if (pol_word(s, i, "INTO")) {
                if (pol_word(s, i + 1, "OUTFILE"))
                    return pol_refuse(v, "SELECT ... INTO OUTFILE");
                if (pol_word(s, i + 1, "DUMPFILE"))
                    return pol_refuse(v, "SELECT ... INTO DUMPFILE");
                return pol_refuse(v, "SELECT ... INTO");
            }
            if (pol_word(s, i, "FOR") && pol_word(s, i + 1, "UPDATE"))
                return pol_refuse(v, "SELECT ... FOR UPDATE");
            if (pol_word(s, i, "FOR") && pol_word(s, i + 1, "SHARE"))
                return pol_refuse(v, "SELECT ... FOR SHARE");
            if (pol_word(s, i, "LOCK"))
                return pol_refuse(v, "SELECT ... LOCK IN SHARE MODE");
            if (pol_word(s, i, "NEXT") && pol_word(s, i + 1, "VALUE") && pol_word(s, i + 2, "FOR"))
                return pol_refuse(v, "NEXT VALUE FOR");
            if ((pol_word(s, i, "NEXTVAL") || pol_word(s, i, "SETVAL")) && i > 0 &&
                pol_punct(s, i - 1, "."))
                return pol_refuse(v, "%s", pol_word(s, i, "NEXTVAL") ? "NEXTVAL" : "SETVAL");
        }
        if (pol_is_name(s, i) && pol_punct(s, i + 1, "(") && !pol_check_call(s, i, v))
            return false;
    }
    return true;
}

/* ---- statements ---- */

/* The refused statement's keywords for a message: "DELETE", "CREATE TABLE", "LOAD DATA". */
static void pol_statement_words(const pol_stmt *s, size_t i, char *out, size_t outlen)
{
    /* clang-format off */
    static const char *const objects[] = {
        "TABLE", "TABLES", "DATA", "XML", "INDEX", "DATABASE", "SCHEMA", "VIEW", "USER",
        "ROLE", "FUNCTION", "PROCEDURE", "TRIGGER", "EVENT", "SERVER", "SEQUENCE",
        "TABLESPACE", "TEMPORARY", "UNIQUE", "FULLTEXT", "SPATIAL", "OR", "REPLACE", "SLAVE",
        "REPLICA", "MASTER", "PLUGIN", "SONAME", "COMPONENT", "PREPARE", "DIAGNOSTICS",
        "LOGFILE", "INSTANCE", "LOGS", "BINARY", "AGGREGATE", "PACKAGE", "BODY", "STAGE",
        NULL};
    /* clang-format on */
    char word[40];
    size_t o = 0;
    out[0] = 0;
    if (!pol_is_name(s, i) || pol_kind(s, i) == SQLTOK_QIDENT) {
        snprintf(out, outlen, "unrecognised statement");
        return;
    }
    for (int n = 0; n < 4 && pol_kind(s, i) == SQLTOK_WORD; n++, i++) {
        if (n > 0 && !pol_word_in(s, i, objects))
            break;
        pol_tok_name(s, i, word, sizeof word, true);
        int w = snprintf(out + o, outlen - o, "%s%s", n ? " " : "", word);
        if (w < 0 || (size_t)w >= outlen - o)
            break;
        o += (size_t)w;
    }
}

static bool pol_classify(pol_stmt *s, size_t from, stmt_kind *kind, policy_verdict *v, int depth);

static bool pol_is_query_start(const pol_stmt *s, size_t i)
{
    return pol_punct(s, i, "(") || pol_word(s, i, "SELECT") || pol_word(s, i, "WITH") ||
           pol_word(s, i, "VALUES") || pol_word(s, i, "TABLE");
}

/* A statement explained or analyzed at token i must itself be an allowed query. */
static bool pol_sub_query(pol_stmt *s, size_t i, const char *prefix, policy_verdict *v, int depth)
{
    char words[64];
    stmt_kind k;
    if (!pol_is_query_start(s, i)) {
        pol_statement_words(s, i, words, sizeof words);
        return pol_refuse(v, "%s %s", prefix, words);
    }
    if (!pol_classify(s, i, &k, v, depth + 1))
        return false;
    if (k != STMT_SELECT)
        return pol_refuse(v, "%s", prefix);
    return true;
}

static bool pol_explain(pol_stmt *s, size_t from, stmt_kind *kind, policy_verdict *v, int depth)
{
    static const char *const writes[] = {"INSERT", "UPDATE", "DELETE", "REPLACE", NULL};
    size_t i = from + 1;
    bool analyze = false;
    for (;;) {
        if (pol_word(s, i, "EXTENDED") || pol_word(s, i, "PARTITIONS")) {
            i++;
        } else if (pol_word(s, i, "ANALYZE")) {
            analyze = true;
            i++;
        } else if (pol_word(s, i, "FORMAT") && pol_punct(s, i + 1, "=") &&
                   (pol_is_name(s, i + 2) || pol_kind(s, i + 2) == SQLTOK_STRING)) {
            i += 3;
        } else {
            break;
        }
    }
    const char *prefix = analyze ? "EXPLAIN ANALYZE" : "EXPLAIN";
    *kind = STMT_EXPLAIN;
    if (pol_word(s, i, "FOR") && pol_word(s, i + 1, "CONNECTION") && i + 3 == s->n)
        return true;
    if (i > from + 1 || pol_is_query_start(s, i) || pol_word_in(s, i, writes))
        return pol_sub_query(s, i, prefix, v, depth);
    /* DESCRIBE table [column | 'pattern'] */
    *kind = STMT_DESCRIBE;
    if (!pol_is_name(s, i))
        return pol_refuse(v, "%s", prefix);
    i++;
    if (pol_punct(s, i, ".") && pol_is_name(s, i + 1))
        i += 2;
    if (pol_is_name(s, i) || pol_kind(s, i) == SQLTOK_STRING)
        i++;
    if (i != s->n)
        return pol_refuse(v, "%s", prefix);
    return true;
}

static bool pol_set(pol_stmt *s, size_t from, stmt_kind *kind, policy_verdict *v, int depth)
{
    asg_scope sticky = SCOPE_SESSION;
    bool statement = pol_word(s, from + 1, "STATEMENT");
    size_t i = from + (statement ? 2 : 1);
    *kind = STMT_SET;
    if (i >= s->n)
        return pol_refuse(v, "SET");
    for (;;) {
        pol_asg a;
        pol_parse_asg(s, &i, statement, &sticky, &a);
        if (!pol_check_asg(s, &a, statement, v))
            return false;
        if (pol_punct(s, i, ",")) {
            i++;
            continue;
        }
        break;
    }
    if (!statement)
        return i >= s->n || pol_refuse(v, "SET");
    /* MariaDB: SET STATEMENT var = value, ... FOR statement */
    if (!pol_word(s, i, "FOR"))
        return pol_refuse(v, "SET STATEMENT");
    char words[64];
    policy_verdict sub = *v;
    if (!pol_classify(s, i + 1, kind, &sub, depth + 1)) {
        memcpy(words, sub.what, sizeof words - 1);
        words[sizeof words - 1] = 0;
        return pol_refuse(v, "SET STATEMENT ... FOR %s", words);
    }
    return true;
}

/* BEGIN, START TRANSACTION, COMMIT, ROLLBACK and friends. */
static bool pol_transaction(const pol_stmt *s, size_t from, stmt_kind *kind, policy_verdict *v)
{
    size_t i = from + 1;
    if (pol_word(s, from, "BEGIN")) {
        *kind = STMT_BEGIN;
        if (pol_word(s, i, "WORK"))
            i++;
        if (i == s->n)
            return true;
        return pol_refuse(v, "%s", pol_word(s, i, "NOT") ? "BEGIN NOT ATOMIC" : "BEGIN ... END");
    }
    if (pol_word(s, from, "START")) {
        static const char *const ok[] = {"READ", "ONLY", "WITH", "CONSISTENT", "SNAPSHOT", NULL};
        *kind = STMT_BEGIN;
        for (i++; i < s->n; i++) {
            if (pol_word(s, i, "READ") && pol_word(s, i + 1, "WRITE"))
                return pol_refuse(v, "START TRANSACTION READ WRITE");
            if (!pol_word_in(s, i, ok) && !pol_punct(s, i, ","))
                return pol_refuse(v, "START TRANSACTION");
        }
        return true;
    }
    static const char *const ok[] = {"WORK",    "AND", "NO",        "CHAIN",
                                     "RELEASE", "TO",  "SAVEPOINT", NULL};
    bool commit = pol_word(s, from, "COMMIT");
    *kind = commit ? STMT_COMMIT : STMT_ROLLBACK;
    for (; i < s->n; i++) {
        /* ROLLBACK TO [SAVEPOINT] name */
        bool name = !commit && i > from + 1 &&
                    (pol_word(s, i - 1, "TO") || pol_word(s, i - 1, "SAVEPOINT"));
        if (!pol_word_in(s, i, ok) && !(name && pol_is_name(s, i)))
            return pol_refuse(v, "%s", commit ? "COMMIT" : "ROLLBACK");
    }
    return true;
}

/* CHECKSUM TABLE t [, t2 ...] [QUICK | EXTENDED]: reads the tables, like a SELECT. */
static bool pol_checksum(const pol_stmt *s, size_t i, policy_verdict *v)
{
    for (;;) {
        if (!pol_is_name(s, i))
            return pol_refuse(v, "CHECKSUM TABLE");
        i++;
        if (pol_punct(s, i, ".") && pol_is_name(s, i + 1))
            i += 2;
        if (!pol_punct(s, i, ","))
            break;
        i++;
    }
    if (pol_word(s, i, "QUICK") || pol_word(s, i, "EXTENDED"))
        i++;
    return i == s->n || pol_refuse(v, "CHECKSUM TABLE");
}

/* XA RECOVER [FORMAT = 'SQL' | 'RAW'] (MariaDB) or [CONVERT XID] (MySQL): lists prepared
 * transactions. */
static bool pol_xa_recover(const pol_stmt *s, size_t i, policy_verdict *v)
{
    if (pol_word(s, i, "FORMAT") && pol_punct(s, i + 1, "=") &&
        pol_kind(s, i + 2) == SQLTOK_STRING)
        i += 3;
    else if (pol_word(s, i, "CONVERT") && pol_word(s, i + 1, "XID"))
        i += 2;
    return i == s->n || pol_refuse(v, "XA RECOVER");
}

/* Classifies the statement that starts at token from (the tokens up to s->n). */
static bool pol_classify(pol_stmt *s, size_t from, stmt_kind *kind, policy_verdict *v, int depth)
{
    char words[64];
    *kind = STMT_OTHER;
    if (depth > POL_MAX_DEPTH)
        return pol_refuse(v, "statement nested too deeply");
    if (from >= s->n)
        return pol_refuse(v, "incomplete statement");
    if (pol_punct(s, from, "(")) {
        /* Only a query may stand in parentheses; "(UPDATE ...)" is a syntax error on today's
         * servers, and what a server might make of it is no reason to let it through. */
        size_t j = from;
        while (j < s->n && pol_punct(s, j, "("))
            j++;
        if (pol_word(s, j, "SELECT") || pol_word(s, j, "VALUES") || pol_word(s, j, "TABLE") ||
            pol_word(s, j, "WITH"))
            return pol_classify(s, j, kind, v, depth + 1);
        pol_statement_words(s, j, words, sizeof words);
        return pol_refuse(v, "(%s", words);
    }
    if (pol_word(s, from, "SELECT") || pol_word(s, from, "VALUES") || pol_word(s, from, "TABLE")) {
        *kind = STMT_SELECT;
        return true;
    }
    if (pol_word(s, from, "WITH")) {
        size_t m = pol_cte_list(s, from, false);
        *kind = STMT_SELECT;
        if (m == POL_NONE)
            return pol_refuse(v, "WITH");
        if (pol_punct(s, m, "("))
            return pol_classify(s, m, kind, v, depth + 1);
        if (pol_word(s, m, "SELECT") || pol_word(s, m, "VALUES") || pol_word(s, m, "TABLE"))
            return true;
        pol_statement_words(s, m, words, sizeof words);
        return pol_refuse(v, "WITH ... %s", words);
    }
    if (pol_word(s, from, "SHOW")) {
        *kind = STMT_SHOW;
        return true;
    }
    if (pol_word(s, from, "EXPLAIN") || pol_word(s, from, "DESCRIBE") || pol_word(s, from, "DESC"))
        return pol_explain(s, from, kind, v, depth);
    if (pol_word(s, from, "ANALYZE")) {
        size_t i = from + 1;
        if (pol_word(s, i, "FORMAT") && pol_punct(s, i + 1, "="))
            i += 3;
        *kind = STMT_EXPLAIN;
        if (pol_word(s, i, "TABLE"))
            return pol_refuse(v, "ANALYZE TABLE");
        return pol_sub_query(s, i, "ANALYZE", v, depth);
    }
    if (pol_word(s, from, "USE")) {
        *kind = STMT_USE;
        return from + 1 < s->n || pol_refuse(v, "USE");
    }
    if (pol_word(s, from, "SET"))
        return pol_set(s, from, kind, v, depth);
    if (pol_word(s, from, "BEGIN") || pol_word(s, from, "COMMIT") ||
        pol_word(s, from, "ROLLBACK") ||
        (pol_word(s, from, "START") && pol_word(s, from + 1, "TRANSACTION")))
        return pol_transaction(s, from, kind, v);
    if ((pol_word(s, from, "SAVEPOINT") && from + 2 == s->n && pol_is_name(s, from + 1)) ||
        (pol_word(s, from, "RELEASE") && pol_word(s, from + 1, "SAVEPOINT") && from + 3 == s->n &&
         pol_is_name(s, from + 2)) ||
        (pol_word(s, from, "UNLOCK") && pol_word(s, from + 1, "TABLES") && from + 2 == s->n) ||
        (pol_word(s, from, "HELP") && from + 2 == s->n && pol_kind(s, from + 1) == SQLTOK_STRING))
        return true;
    if (pol_word(s, from, "CHECKSUM") && pol_word(s, from + 1, "TABLE"))
        return pol_checksum(s, from + 2, v);
    if (pol_word(s, from, "XA") && pol_word(s, from + 1, "RECOVER"))
        return pol_xa_recover(s, from + 2, v);
    pol_statement_words(s, from, words, sizeof words);
    return pol_refuse(v, "%s", words);
}

/* ---- credential stores ---- */

/* Tables of the mysql schema that hold password hashes or other servers' passwords:
 * accounts (user is a view over global_priv in MariaDB), password history (MySQL, and
 * MariaDB's password_reuse_check plugin), FEDERATED/CONNECT server definitions, replication
 * source credentials, and the statement logs (with log_output=TABLE, general_log and
 * slow_log keep the text of CREATE USER / ALTER USER / SET PASSWORD with the password in
 * clear: MariaDB does not mask it). */
static const char *const pol_secret_tables[] = {
    "general_log", "global_priv", "password_history", "password_reuse_check_history",
    "servers", "slave_master_info", "slow_log", "user", NULL};

/* The name of token i for comparing with a table or schema name: unquoted, and with the two
 * non-ASCII letters whose lower case is ASCII (U+0130 -> i, U+212A Kelvin -> k) folded, as a
 * server with lower_case_table_names folds them. False when it is not a name. */
static bool pol_object_name(const pol_stmt *s, size_t i, char *out, size_t outlen)
{
    char raw[POL_NAME_MAX * 2];
    if (!pol_is_name(s, i) || !pol_unquote(s, i, raw, sizeof raw))
        return false;
    size_t o = 0;
    for (size_t k = 0; raw[k]; k++) {
        unsigned char c = (unsigned char)raw[k];
        char folded = 0;
        if (c == 0xC4 && (unsigned char)raw[k + 1] == 0xB0) {
            folded = 'i';
            k += 1;
        } else if (c == 0xE2 && (unsigned char)raw[k + 1] == 0x84 &&
                   (unsigned char)raw[k + 2] == 0xAA) {
            folded = 'k';
            k += 2;
        } else {
            folded = pol_lower((char)c);
        }
        if (o + 1 >= outlen)
            return false;
        out[o++] = folded;
    }
    out[o] = 0;
    return true;
}

static bool pol_is_secret_table(const char *name)
{
    for (const char *const *t = pol_secret_tables; *t; t++)
        if (strcmp(name, *t) == 0)
            return true;
    return false;
}

static bool pol_is_mysql_schema(const char *name)
{
    return name && pol_casecmp(name, "mysql") == 0;
}

/* SHOW GRANTS shows password hashes on MariaDB (IDENTIFIED BY PASSWORD '*...'), even for the
 * current account; MySQL shows them for no account but SHOW CREATE USER does. */
static bool pol_show_grants_ok(const pol_stmt *s, size_t i)
{
    if (!s->ps || s->ps->flavor != SQL_FLAVOR_MYSQL)
        return false;
    i += 2;
    if (i == s->n)
        return true;
    if (!pol_word(s, i, "FOR") || !pol_word(s, i + 1, "CURRENT_USER"))
        return false;
    i += 2;
    if (pol_punct(s, i, "(") && pol_punct(s, i + 1, ")"))
        i += 2;
    return i == s->n;
}

/* Tables and views that show what other sessions run, their statements with the literals in
 * them: every envproxy account shares the environment's backend account, which sees its own
 * threads even without the PROCESS privilege, so these would show one account another's
 * statements (and envproxy's own). As schema.name, lower case. */
static const char *const pol_monitor_tables[] = {
    "information_schema.processlist", "information_schema.innodb_trx",
    "performance_schema.processlist", "performance_schema.threads",
    "performance_schema.events_statements_current",
    "performance_schema.events_statements_history",
    "performance_schema.events_statements_history_long",
    "performance_schema.events_statements_summary_by_digest",
    "performance_schema.prepared_statements_instances",
    "sys.processlist", "sys.x$processlist", "sys.session", "sys.x$session",
    "mysql.general_log", "mysql.slow_log", /* every statement, with log_output = TABLE */
    NULL};

/* Whether name (lower case) in schema (any case; NULL when not known) is one of
 * pol_monitor_tables. */
static bool pol_is_monitor_table(const char *schema, const char *name)
{
    if (!schema)
        return false;
    for (const char *const *t = pol_monitor_tables; *t; t++) {
        const char *dot = strchr(*t, '.');
        size_t n = (size_t)(dot - *t);
        if (strlen(schema) == n && strncasecmp(schema, *t, n) == 0 && strcmp(dot + 1, name) == 0)
            return true;
    }
    return false;
}

/* Refuses a statement that shows other sessions' statements: SHOW [FULL] PROCESSLIST, SHOW
 * ENGINE ... STATUS (InnoDB lists the running transactions with their statements), SHOW
 * EXPLAIN / SHOW ANALYZE FOR a thread, EXPLAIN FOR CONNECTION, and the tables of
 * pol_monitor_tables (qualified, or unqualified while the current database is theirs). */
static bool pol_check_monitors(const pol_stmt *s, policy_verdict *v)
{
    char name[POL_NAME_MAX], schema[POL_NAME_MAX];
    const char *db = s->ps ? s->ps->db : NULL;
    for (size_t i = 0; i < s->n; i++) {
        if (pol_word(s, i, "SHOW")) {
            size_t k = pol_word(s, i + 1, "FULL") ? i + 2 : i + 1;
            if (pol_word(s, k, "PROCESSLIST"))
                return pol_refuse(v, "SHOW PROCESSLIST (it shows other sessions' statements)");
            if (pol_word(s, i + 1, "ENGINE") || pol_word(s, i + 1, "EXPLAIN") ||
                pol_word(s, i + 1, "ANALYZE"))
                return pol_refuse(v, "SHOW %s (it shows other sessions' statements)",
                                  pol_word(s, i + 1, "ENGINE")    ? "ENGINE"
                                  : pol_word(s, i + 1, "EXPLAIN") ? "EXPLAIN"
                                                                   : "ANALYZE");
        }
        if (pol_word(s, i, "FOR") && pol_word(s, i + 1, "CONNECTION"))
            return pol_refuse(v, "EXPLAIN FOR CONNECTION (it shows other sessions' statements)");
        /* A USE the proxy did not take as its own (in a multi-statement packet): the names
         * after it would be read in a database the check does not know. */
        if (pol_word(s, i, "USE") && pol_object_name(s, i + 1, name, sizeof name)) {
            for (const char *const *t = pol_monitor_tables; *t; t++) {
                size_t n = (size_t)(strchr(*t, '.') - *t);
                if (strlen(name) == n && strncmp(name, *t, n) == 0)
                    return pol_refuse(v, "USE %s (it shows other sessions' statements)", name);
            }
        }
        if (!pol_object_name(s, i, name, sizeof name))
            continue;
        bool qualified = i > 0 && pol_punct(s, i - 1, ".");
        const char *in = !qualified ? db
                         : i >= 2 && pol_object_name(s, i - 2, schema, sizeof schema) ? schema
                                                                                      : NULL;
        if (pol_is_monitor_table(in, name))
            return pol_refuse(v, "reading %s.%s (it shows other sessions' statements)", in,
                              name);
    }
    return true;
}

/* Refuses a statement that reads a credential store: a table of pol_secret_tables in the
 * mysql schema (qualified, or unqualified while the current database is mysql), USE mysql
 * (after which unqualified names would reach it unseen), SHOW GRANTS (see above), SHOW
 * CREATE USER, SHOW CREATE SERVER. Views or routines elsewhere that read these tables are
 * beyond a lexer: the backend account's own privileges are the wall there. */
static bool pol_check_secrets(const pol_stmt *s, policy_verdict *v)
{
    char name[POL_NAME_MAX], schema[POL_NAME_MAX];
    const char *db = s->ps ? s->ps->db : NULL;
    for (size_t i = 0; i < s->n; i++) {
        if (pol_word(s, i, "SHOW")) {
            if (pol_word(s, i + 1, "GRANTS") && !pol_show_grants_ok(s, i))
                return pol_refuse(v, "SHOW GRANTS (it shows password hashes)");
            /* The binary and relay logs hold account statements as they ran (a password
             * in clear or its hash). SHOW RELAYLOG ['connection'] EVENTS is all there is of
             * SHOW RELAYLOG; SHOW BINLOG STATUS is a position, not the log. */
            if (pol_word(s, i + 1, "RELAYLOG") ||
                (pol_word(s, i + 1, "BINLOG") && pol_word(s, i + 2, "EVENTS")))
                return pol_refuse(v, "SHOW %s EVENTS (the log holds account statements)",
                                  pol_word(s, i + 1, "BINLOG") ? "BINLOG" : "RELAYLOG");
            if (pol_word(s, i + 1, "CREATE") &&
                (pol_word(s, i + 2, "USER") || pol_word(s, i + 2, "SERVER")))
                return pol_refuse(v, "SHOW CREATE %s", pol_word(s, i + 2, "USER") ? "USER"
                                                                                   : "SERVER");
        }
        if (pol_word(s, i, "USE") && pol_object_name(s, i + 1, name, sizeof name) &&
            pol_is_mysql_schema(name))
            return pol_refuse(v, "USE mysql");
        if (!pol_object_name(s, i, name, sizeof name) || !pol_is_secret_table(name))
            continue;
        bool qualified = i > 0 && pol_punct(s, i - 1, ".");
        if (qualified && i >= 2 && pol_object_name(s, i - 2, schema, sizeof schema) &&
            pol_is_mysql_schema(schema))
            return pol_refuse(v, "reading mysql.%s (it holds credentials)", name);
        if (!qualified && pol_is_mysql_schema(db))
            return pol_refuse(v, "reading mysql.%s (it holds credentials)", name);
    }
    return pol_check_monitors(s, v);
}

/* ---- the packet ---- */

/* Whether text the lexer could not read to the end names a credential store anywhere, in
 * any case, quoted or not: "show" with "grants" or with "create" and "user" or "server",
 * "mysql" with the name of a credential table (USE mysql included: "user"). */
static bool pol_raw_secrets(const char *sql, size_t len)
{
    char *low = malloc(len + 1);
    if (!low)
        return true;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)sql[i];
        if (c == 0xC4 && i + 1 < len && (unsigned char)sql[i + 1] == 0xB0) {
            low[o++] = 'i';
            i++;
        } else if (c == 0xE2 && i + 2 < len && (unsigned char)sql[i + 1] == 0x84 &&
                   (unsigned char)sql[i + 2] == 0xAA) {
            low[o++] = 'k';
            i += 2;
        } else if (c != 0) {
            low[o++] = pol_lower((char)c);
        }
    }
    low[o] = 0;
    bool hit = strstr(low, "show") &&
               (strstr(low, "grants") || strstr(low, "engine") || strstr(low, "explain") ||
                strstr(low, "analyze") || strstr(low, "events") ||
                (strstr(low, "create") && (strstr(low, "user") || strstr(low, "server"))));
    /* Other sessions' statements (pol_check_monitors). */
    static const char *const monitors[] = {"processlist", "innodb_trx", "events_statements",
                                           "prepared_statements_instances", "x$session",
                                           "general_log", "slow_log", NULL};
    for (const char *const *t = monitors; !hit && *t; t++)
        hit = strstr(low, *t) != NULL;
    hit = hit || (strstr(low, "sys") && strstr(low, "session")) ||
          (strstr(low, "performance_schema") && strstr(low, "threads")) ||
          (strstr(low, "explain") && strstr(low, "connection"));
    for (const char *const *t = pol_secret_tables; !hit && *t; t++)
        hit = strstr(low, "mysql") && strstr(low, *t);
    free(low);
    return hit;
}


typedef struct {
    const char *sql;
    size_t len;
    pol_tok *tok; /* current buffer: the caller's stack array or heap */
    size_t cap;
    pol_tok *heap; /* owned, or NULL */
    pol_tok *alt;  /* one reading of a statement with version-dependent comments (heap) */
    size_t alt_cap;
    bool classify; /* false: only follow sql_mode (and check secrets when secrets) */
    bool secrets;  /* refuse reads of credential stores */
    bool lex_error; /* some reading stopped at text the lexer cannot read */
    bool charset_set; /* some statement sets the client character set */
    const policy_session *ps;
} pol_ctx;

typedef struct {
    policy_verdict v;
    bool have_first;
    sql_mode_flags mode; /* the session's mode after the text */
    sql_charset cs;      /* the session's client character set after the text */
} pol_result;

/* Reads one statement's tokens into ctx->tok. Returns the token kind that ended it:
 * SQLTOK_SEMICOLON, SQLTOK_END or SQLTOK_ERROR (lx->error says why; "out of memory" when
 * the buffer could not grow). A statement of more than POL_MAX_TOKENS tokens keeps only the
 * first ones and sets *overflow; the lexer still reads it to its end. */
static sql_token_kind pol_collect(pol_ctx *ctx, sql_lexer *lx, size_t *n, bool *overflow)
{
    *n = 0;
    *overflow = false;
    for (;;) {
        sql_token t = sqllex_next(lx);
        if (t.kind == SQLTOK_SEMICOLON || t.kind == SQLTOK_END || t.kind == SQLTOK_ERROR)
            return t.kind;
        if (*n == POL_MAX_TOKENS) {
            *overflow = true;
            continue;
        }
        if (*n == ctx->cap) {
            size_t cap = ctx->cap * 2;
            pol_tok *nt = malloc(cap * sizeof *nt);
            if (!nt) {
                lx->error = "statement too long (out of memory)";
                return SQLTOK_ERROR;
            }
            memcpy(nt, ctx->tok, *n * sizeof *nt);
            free(ctx->heap);
            ctx->heap = ctx->tok = nt;
            ctx->cap = cap;
        }
        ctx->tok[*n].t = t;
        ctx->tok[*n].not_call = false;
        (*n)++;
    }
}

/* Classifies one reading of a statement (when ctx->classify), checks it for credential
 * stores (when ctx->secrets), and works out the sql_mode and character set after it into
 * *next and *next_cs. Returns false when refused. */
static bool pol_reading(pol_ctx *ctx, pol_tok *tok, size_t n, const sql_mode_flags *mode,
                        sql_charset cs, pol_result *r, bool first_reading, sql_mode_flags *next,
                        sql_charset *next_cs)
{
    pol_stmt s = {ctx->sql, tok, n, ctx->ps};
    stmt_kind kind = STMT_OTHER;
    if (ctx->classify) {
        if (mode->unreadable)
            return pol_refuse(&r->v, "statement under sql_mode ORACLE or MSSQL");
        if (!pol_classify(&s, 0, &kind, &r->v, 0) || !pol_check_hazards(&s, 0, &r->v))
            return false;
        if (first_reading && !r->have_first) {
            r->v.first_kind = kind;
            r->have_first = true;
        }
    }
    if (ctx->secrets && !pol_check_secrets(&s, &r->v))
        return false;
    *next = *mode;
    *next_cs = cs;
    if (pol_track_set(&s, next, next_cs))
        ctx->charset_set = true;
    return true;
}

/* A statement whose executable comments some servers run and others skip is read every
 * way: each such comment on or off. All readings must be allowed; when they leave
 * different sql_modes (character sets) behind, the mode becomes unknown (the character set
 * unsupported). */
static bool pol_statement(pol_ctx *ctx, size_t n, const sql_mode_flags *mode, sql_charset cs,
                          pol_result *r, sql_mode_flags *next, sql_charset *next_cs)
{
    unsigned ids[POL_MAX_COND];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = ctx->tok[i].t.cond;
        size_t j = 0;
        while (j < k && ids[j] != c)
            j++;
        if (c == 0 || j < k)
            continue;
        if (k == POL_MAX_COND)
            return pol_refuse(&r->v, "more than %d version-dependent comments in a statement",
                              POL_MAX_COND);
        ids[k++] = c;
    }
    if (k == 0)
        return pol_reading(ctx, ctx->tok, n, mode, cs, r, true, next, next_cs);
    if (ctx->alt_cap < n) {
        pol_tok *alt = malloc(n * sizeof *alt);
        if (!alt)
            return pol_refuse(&r->v, "statement too long (out of memory)");
        free(ctx->alt);
        ctx->alt = alt;
        ctx->alt_cap = n;
    }
    bool first = true;
    for (unsigned mask = (1u << k) - 1;; mask--) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned c = ctx->tok[i].t.cond;
            size_t j = 0;
            while (c && ids[j] != c)
                j++;
            if (c == 0 || (mask & (1u << j))) {
                ctx->alt[m] = ctx->tok[i];
                ctx->alt[m].not_call = false;
                m++;
            }
        }
        if (m > 0) { /* an empty reading is an error on the server: nothing runs */
            sql_mode_flags after;
            sql_charset after_cs;
            if (!pol_reading(ctx, ctx->alt, m, mode, cs, r, first, &after, &after_cs))
                return false;
            if (first) {
                *next = after;
                *next_cs = after_cs;
            } else {
                if (!pol_mode_eq(next, &after))
                    *next = pol_mode_unknown(mode);
                if (*next_cs != after_cs)
                    *next_cs = SQL_CS_UNSUPPORTED;
            }
            first = false;
        }
        if (mask == 0)
            break;
    }
    return true;
}

static void pol_run(pol_ctx *ctx, size_t pos, sql_mode_flags mode, sql_charset cs, int forks,
                    pol_result *r);

/* True when only whitespace, comments and ';' remain from pos (read the same in every
 * sql_mode). */
static bool pol_rest_empty(const pol_ctx *ctx, size_t pos, sql_charset cs)
{
    sql_lexer lx;
    sqllex_init(&lx, ctx->sql, ctx->len, NULL);
    lx.charset = cs;
    lx.pos = pos;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_END)
            return true;
        if (t.kind != SQLTOK_SEMICOLON)
            return false;
    }
}

/* Reads the text from pos under every combination of the two flags; the result allows
 * only what all readings allow, and knows the resulting mode only if all agree. */
static void pol_fork(pol_ctx *ctx, size_t pos, sql_mode_flags mode, sql_charset cs, int forks,
                     pol_result *r)
{
    if (pol_rest_empty(ctx, pos, cs)) {
        r->mode = mode;
        r->cs = cs;
        return;
    }
    if (forks >= POL_MAX_FORKS) {
        if ((ctx->classify || ctx->secrets) && r->v.allowed)
            pol_refuse(&r->v, "statement after an unknown sql_mode");
        r->mode = mode;
        r->cs = cs;
        return;
    }
    pol_result merged = *r;
    for (int combo = 0; combo < 4; combo++) {
        pol_result sub = *r;
        sql_mode_flags m = {(combo & 1) != 0, (combo & 2) != 0, false, false};
        pol_run(ctx, pos, m, cs, forks + 1, &sub);
        if (combo == 0) {
            merged = sub;
            continue;
        }
        if (merged.v.allowed && !sub.v.allowed) {
            merged.v.allowed = false;
            memcpy(merged.v.what, sub.v.what, sizeof merged.v.what);
        }
        if (sub.v.n_statements > merged.v.n_statements)
            merged.v.n_statements = sub.v.n_statements;
        if (!pol_mode_eq(&merged.mode, &sub.mode))
            merged.mode = pol_mode_unknown(&mode);
        if (merged.cs != sub.cs)
            merged.cs = SQL_CS_UNSUPPORTED;
    }
    *r = merged;
}

/* Reads statements from pos under mode and character set cs, classifying (when
 * ctx->classify) and following sql_mode and character set changes; stops at the first
 * refusal. */
static void pol_run(pol_ctx *ctx, size_t pos, sql_mode_flags mode, sql_charset cs, int forks,
                    pol_result *r)
{
    if (mode.unknown) {
        pol_fork(ctx, pos, mode, cs, forks, r);
        return;
    }
    sql_lexer lx;
    sqllex_init(&lx, ctx->sql, ctx->len, &mode);
    lx.charset = cs;
    lx.pos = pos;
    lx.strict_brackets = forks > 0;
    r->mode = mode;
    r->cs = cs;
    for (;;) {
        size_t n;
        bool overflow;
        sql_token_kind end = pol_collect(ctx, &lx, &n, &overflow);
        if (end == SQLTOK_ERROR) {
            ctx->lex_error = true;
            if (ctx->classify)
                pol_refuse(&r->v, "%s", lx.error);
            return;
        }
        if (overflow) {
            /* A statement too long to keep (a bulk INSERT of a writer): the credential rule
             * looks at its bytes, and a SET that long leaves the sql_mode unknown. */
            r->v.n_statements++;
            if (ctx->classify) {
                pol_refuse(&r->v, "statement of more than %u tokens", POL_MAX_TOKENS);
                return;
            }
            size_t from = ctx->tok[0].t.start;
            if (ctx->secrets && pol_raw_secrets(ctx->sql + from, lx.pos - from)) {
                pol_refuse(&r->v, "text the proxy cannot read that names a credential store");
                return;
            }
            if (pol_word(&(pol_stmt){ctx->sql, ctx->tok, n, ctx->ps}, 0, "SET")) {
                pol_fork(ctx, lx.pos, pol_mode_unknown(&mode), cs, forks, r);
                return;
            }
        } else if (n > 0) {
            sql_mode_flags next = mode;
            sql_charset next_cs = cs;
            r->v.n_statements++;
            if (!pol_statement(ctx, n, &mode, cs, r, &next, &next_cs))
                return;
            if (next_cs != cs) {
                cs = next_cs;
                r->cs = cs;
                lx.charset = cs;
            }
            if (!pol_mode_eq(&next, &mode)) {
                mode = next;
                r->mode = mode;
                lx.mode = mode;
                if (mode.unknown) {
                    /* The new mode may be ORACLE, whose grammar reads the same tokens as
                     * other statements (`s`.`nextval` takes a sequence value, BEGIN opens a
                     * block): four quote readings do not cover that, so a read-only check
                     * refuses what follows in this packet. The server reports the mode it
                     * set, and the next packet is read in it. */
                    if (ctx->classify && !pol_rest_empty(ctx, lx.pos, cs)) {
                        pol_refuse(&r->v, "statement after SET sql_mode to a value the proxy "
                                          "cannot work out, in the same packet");
                        return;
                    }
                    pol_fork(ctx, lx.pos, mode, cs, forks, r);
                    return;
                }
                if (mode.unreadable && !ctx->classify)
                    return; /* the rest cannot be read */
            }
        }
        if (end == SQLTOK_END)
            return;
    }
}

/* The transaction statements clients send as plain words (BEGIN, COMMIT, ...) and that the
 * proxy sends itself, with the kind the classifier gives them; all are allowed read-only.
 * Text of ASCII letters and single spaces reads the same in every quoting mode (no quote,
 * backslash or comment to misplace) and in every supported character set (each is ASCII
 * for these bytes), so such a text equal to one of these needs no lexing. test_sqlpolicy.c
 * checks that the lexing check agrees for each, in every mode and character set. */
#define POL_FIXED(t, k) {t, sizeof(t) - 1, k}
static const struct {
    const char *text;
    size_t len;
    stmt_kind kind;
} pol_fixed[] = {
    POL_FIXED("BEGIN", STMT_BEGIN),
    POL_FIXED("BEGIN WORK", STMT_BEGIN),
    POL_FIXED("START TRANSACTION", STMT_BEGIN),
    POL_FIXED("START TRANSACTION READ ONLY", STMT_BEGIN),
    POL_FIXED("COMMIT", STMT_COMMIT),
    POL_FIXED("COMMIT WORK", STMT_COMMIT),
    POL_FIXED("ROLLBACK", STMT_ROLLBACK),
    POL_FIXED("ROLLBACK WORK", STMT_ROLLBACK),
};
#undef POL_FIXED

stmt_kind sqlpolicy_fixed_text(const char *sql, size_t len)
{
    if (!sql)
        return STMT_OTHER;
    for (size_t i = 0; i < sizeof(pol_fixed) / sizeof(pol_fixed[0]); i++) {
        const char *t = pol_fixed[i].text;
        if (pol_fixed[i].len != len || (sql[0] & ~0x20) != t[0])
            continue;
        /* Byte for byte, letters in either case; a space only where the text has one. */
        size_t k = 1;
        while (k < len && (sql[k] == t[k] || (t[k] != ' ' && (sql[k] ^ 0x20) == t[k])))
            k++;
        if (k == len)
            return pol_fixed[i].kind;
    }
    return STMT_OTHER;
}

stmt_kind sqlpolicy_fixed_text_in(const char *sql, size_t len, const sql_mode_flags *mode)
{
    /* ORACLE and MSSQL modes read BEGIN as a block, and an unknown mode may be one of them:
     * only a known mode of the other kind reads these texts as transaction statements. */
    if (mode->unknown || mode->unreadable)
        return STMT_OTHER;
    return sqlpolicy_fixed_text(sql, len);
}

static const policy_session pol_default_session = {SQL_CS_UTF8, SQL_FLAVOR_UNKNOWN, NULL, NULL};

/* Runs the classifier (classify) or the credential-store rule alone over a packet. For the
 * latter, text the lexer cannot read exactly (an unsupported character set, where a
 * multibyte character can swallow a backslash, is read in every sql_mode; a reading that
 * stops at an error; ORACLE or MSSQL mode) is refused when it names a credential store
 * anywhere. */
static bool pol_check_text(const char *sql, size_t len, const sql_mode_flags *mode,
                           const policy_session *ps, bool classify, bool shortcut,
                           policy_verdict *v)
{
    sql_mode_flags m = {false, false, false, false};
    if (mode)
        m = *mode;
    if (!ps)
        ps = &pol_default_session;
    stmt_kind fixed = STMT_OTHER;
    if (shortcut && ps->charset != SQL_CS_UNSUPPORTED)
        fixed = sqlpolicy_fixed_text_in(sql, len, &m);
    if (fixed != STMT_OTHER) {
        v->allowed = true;
        v->what[0] = 0;
        v->n_statements = 1;
        v->first_kind = fixed;
        v->charset_set = false;
        v->charset_after = ps->charset;
        return true;
    }
    pol_tok stack[POL_STACK_TOKENS];
    pol_ctx ctx = {sql ? sql : "", sql ? len : 0, stack, POL_STACK_TOKENS, NULL, NULL, 0,
                   classify, true, false, false, ps};
    pol_result r;
    memset(&r, 0, sizeof r);
    r.v.allowed = true;
    r.v.first_kind = STMT_EMPTY;
    if (classify && ctx.ps->charset == SQL_CS_UNSUPPORTED) {
        pol_refuse(&r.v, "a client character set other than utf8mb4, utf8mb3, latin1, ascii "
                         "or binary");
    } else if (classify && memchr(ctx.sql, 0, ctx.len)) {
        pol_refuse(&r.v, "NUL byte");
    } else if (classify) {
        pol_run(&ctx, 0, m, ctx.ps->charset, 0, &r);
    } else {
        bool raw = m.unreadable || ctx.ps->charset == SQL_CS_UNSUPPORTED;
        if (ctx.ps->charset == SQL_CS_UNSUPPORTED)
            m.unknown = true;
        if (!m.unreadable)
            pol_run(&ctx, 0, m, ctx.ps->charset, 0, &r);
        if (r.v.allowed && (raw || ctx.lex_error) && pol_raw_secrets(ctx.sql, ctx.len))
            pol_refuse(&r.v, "text the proxy cannot read that names a credential store");
    }
    free(ctx.heap);
    free(ctx.alt);
    *v = r.v;
    v->charset_after = r.cs;
    v->charset_set = r.cs != ctx.ps->charset || ctx.charset_set;
    if (v->allowed)
        v->what[0] = 0;
    return v->allowed;
}

bool sqlpolicy_check(const char *sql, size_t len, const sql_mode_flags *mode,
                     const policy_session *ps, policy_verdict *v)
{
    return pol_check_text(sql, len, mode, ps, true, true, v);
}

bool sqlpolicy_check_lexed(const char *sql, size_t len, const sql_mode_flags *mode,
                           const policy_session *ps, bool classify, policy_verdict *v)
{
    return pol_check_text(sql, len, mode, ps, classify, false, v);
}

bool sqlpolicy_check_readonly(const char *sql, size_t len, const sql_mode_flags *mode,
                              policy_verdict *v)
{
    return pol_check_text(sql, len, mode, NULL, true, true, v);
}

bool sqlpolicy_check_secrets(const char *sql, size_t len, const sql_mode_flags *mode,
                             const policy_session *ps, policy_verdict *v)
{
    return pol_check_text(sql, len, mode, ps, false, true, v);
}

void sqlpolicy_track_sql_mode(const char *sql, size_t len, sql_mode_flags *mode)
{
    pol_tok stack[POL_STACK_TOKENS];
    pol_ctx ctx = {sql ? sql : "", sql ? len : 0, stack, POL_STACK_TOKENS, NULL, NULL, 0,
                   false, false, false, false, &pol_default_session};
    pol_result r;
    memset(&r, 0, sizeof r);
    r.v.allowed = true;
    if (mode->unreadable)
        return;
    pol_run(&ctx, 0, *mode, SQL_CS_UTF8, 0, &r);
    free(ctx.heap);
    free(ctx.alt);
    *mode = r.mode;
}
