/* rewrite.c: reads statements for where they run: what a statement means to a transaction
 * that has not begun on a backend yet, and `db@env` schema names inside SQL text. Pure. */
#include "rewrite.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- tokens ------------------------------------------------------------------------------ */

typedef struct {
    const char *sql;
    sql_token *t;
    size_t n, cap;
    bool several;  /* more than one statement */
    bool error;
    bool overflow; /* more tokens than the caller's limit: only the first ones are kept */
} toklist;

/* Token limits: a token takes 32 bytes, so a text of a few bytes a token ("1,1,1,...")
 * would otherwise take some 20 times its size, and a statement of max_packet_size more
 * than a gigabyte. Classifying a statement needs its first tokens only; rewriting one
 * needs them all, and a statement of more is left alone as one over REWRITE_MAX_OUT. */
#define CLASSIFY_MAX_TOKENS ((size_t)1 << 16) /* 2 MiB */
#define REWRITE_MAX_TOKENS ((size_t)1 << 20)  /* 32 MiB */

/* Reads the whole text into tl (tokens of the first statement only; tl->several when
 * another follows), keeping at most max tokens (tl->overflow when there were more; the
 * text is still read to its end, so several and error stay right). Returns false when out
 * of memory. */
static bool tokenize(const char *sql, size_t len, const sql_mode_flags *mode, toklist *tl,
                     bool all_statements, size_t max)
{
    sql_lexer lx;
    sqllex_init(&lx, sql, len, mode);
    tl->sql = sql;
    tl->t = NULL;
    tl->n = tl->cap = 0;
    tl->several = tl->error = tl->overflow = false;
    bool after_semicolon = false;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_END)
            return true;
        if (t.kind == SQLTOK_ERROR) {
            tl->error = true;
            return true;
        }
        if (t.kind == SQLTOK_SEMICOLON) {
            after_semicolon = true;
            if (!all_statements)
                continue;
        } else if (after_semicolon) {
            tl->several = true;
            if (!all_statements)
                return true;
        }
        if (tl->n == max) {
            tl->overflow = true;
            continue;
        }
        if (tl->n == tl->cap) {
            size_t cap = tl->cap ? tl->cap * 2 : 64;
            if (cap > max)
                cap = max;
            sql_token *nt = realloc(tl->t, cap * sizeof(*nt));
            if (!nt)
                return false;
            tl->t = nt;
            tl->cap = cap;
        }
        tl->t[tl->n++] = t;
    }
}

static bool tok_word(const toklist *tl, size_t i, const char *kw)
{
    if (i >= tl->n || tl->t[i].kind != SQLTOK_WORD)
        return false;
    size_t n = strlen(kw);
    return tl->t[i].len == n && strncasecmp(tl->sql + tl->t[i].start, kw, n) == 0;
}

static bool tok_punct(const toklist *tl, size_t i, char ch)
{
    return i < tl->n && tl->t[i].kind == SQLTOK_PUNCT && tl->t[i].len == 1 &&
           tl->sql[tl->t[i].start] == ch;
}

static bool has_word(const toklist *tl, const char *kw)
{
    for (size_t i = 0; i < tl->n; i++)
        if (tok_word(tl, i, kw))
            return true;
    return false;
}

/* ---- transactions ------------------------------------------------------------------------ */

bool txn_may_be_control(const char *sql, size_t len)
{
    size_t i = 0;
    while (i < len && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r'))
        i++;
    size_t start = i;
    while (i < len && ((sql[i] | 0x20) >= 'a' && (sql[i] | 0x20) <= 'z'))
        i++;
    if (i == start)
        return true; /* not a plain word first */
    if (i < len && !(sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r' ||
                     sql[i] == ';'))
        return true; /* a word that goes on (digits, '_', '$', a multi-byte letter, ...) */
    static const char *const words[] = {"BEGIN", "START", "COMMIT", "ROLLBACK", "SET"};
    for (size_t w = 0; w < sizeof words / sizeof *words; w++)
        if (strlen(words[w]) == i - start && strncasecmp(sql + start, words[w], i - start) == 0)
            return true;
    return false;
}

txn_kind txn_classify(const char *sql, size_t len, const sql_mode_flags *mode)
{
    toklist tl;
    if (!tokenize(sql, len, mode, &tl, false, CLASSIFY_MAX_TOKENS))
        return TXN_DATA;
    txn_kind k = TXN_DATA;
    if (tl.error || tl.several || tl.overflow)
        goto out; /* read as data: the statement that needs a backend's snapshot */
    if (tl.n == 0) {
        k = TXN_NO_DATA;
        goto out;
    }
    if (tok_word(&tl, 0, "BEGIN")) {
        if (tl.n == 1 || (tl.n == 2 && tok_word(&tl, 1, "WORK")))
            k = TXN_BEGIN;
    } else if (tok_word(&tl, 0, "START") && tok_word(&tl, 1, "TRANSACTION")) {
        /* [WITH CONSISTENT SNAPSHOT] [, READ ONLY | READ WRITE] in any order. */
        size_t i = 2;
        bool ok = true;
        while (ok && i < tl.n) {
            if (tok_word(&tl, i, "WITH") && tok_word(&tl, i + 1, "CONSISTENT") &&
                tok_word(&tl, i + 2, "SNAPSHOT"))
                i += 3;
            else if (tok_word(&tl, i, "READ") &&
                     (tok_word(&tl, i + 1, "ONLY") || tok_word(&tl, i + 1, "WRITE")))
                i += 2;
            else if (tok_punct(&tl, i, ',') && i > 2 && i + 1 < tl.n)
                i++;
            else
                ok = false;
        }
        if (ok)
            k = TXN_BEGIN;
    } else if (tok_word(&tl, 0, "COMMIT") || tok_word(&tl, 0, "ROLLBACK")) {
        if (tl.n == 1 || (tl.n == 2 && tok_word(&tl, 1, "WORK")))
            k = TXN_END;
    } else if (tok_word(&tl, 0, "SET")) {
        if (tok_word(&tl, 1, "TRANSACTION"))
            k = TXN_SET_NEXT;
        else if (!has_word(&tl, "FROM"))
            k = TXN_NO_DATA; /* SET x = (SELECT ... FROM t) reads a table */
    } else if (tok_word(&tl, 0, "UNLOCK") && tok_word(&tl, 1, "TABLES") && tl.n == 2) {
        k = TXN_NO_DATA;
    } else if (tok_word(&tl, 0, "SHOW") &&
               (tok_word(&tl, 1, "STATUS") ||
                ((tok_word(&tl, 1, "GLOBAL") || tok_word(&tl, 1, "SESSION") ||
                  tok_word(&tl, 1, "LOCAL")) &&
                 tok_word(&tl, 2, "STATUS")))) {
        /* MariaDB's Binlog_snapshot_file / _position are the binary log position of the
         * session's consistent snapshot (mariadb-dump --single-transaction --master-data
         * reads them right after START TRANSACTION WITH CONSISTENT SNAPSHOT): read inside
         * the transaction, so that the snapshot is the one they describe. */
        k = TXN_READ;
    } else if (tok_word(&tl, 0, "SHOW") || tok_word(&tl, 0, "DESCRIBE") ||
               tok_word(&tl, 0, "DESC")) {
        k = TXN_NO_DATA; /* metadata and variables: no snapshot is involved */
    } else if (tok_word(&tl, 0, "SELECT") && !has_word(&tl, "FROM")) {
        k = TXN_NO_DATA; /* SELECT @@x, SELECT DATABASE(), SELECT 1 */
    } else if ((tok_word(&tl, 0, "SELECT") || tok_word(&tl, 0, "WITH")) &&
               !has_word(&tl, "UPDATE") && !has_word(&tl, "SHARE") && !has_word(&tl, "INTO") &&
               !has_word(&tl, "DELETE") && !has_word(&tl, "INSERT") && !has_word(&tl, "REPLACE")) {
        k = TXN_READ; /* a plain read: FOR UPDATE, LOCK IN SHARE MODE, INTO are not */
    }
out:
    free(tl.t);
    return k;
}

int txn_words_kind(const char *sql, size_t len)
{
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char ch = sql[i];
        bool letter = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
        if (!letter && ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != ',')
            return -1;
    }
    sql_mode_flags mode = {0};
    txn_kind k = txn_classify(sql, len, &mode);
    return k == TXN_BEGIN || k == TXN_END ? (int)k : -1;
}

/* ---- schema names ------------------------------------------------------------------------ */

/* information_schema (and SHOW ... WHERE) columns that hold a schema name. */
static const char *const schema_columns[] = {
    "TABLE_SCHEMA",      "SCHEMA_NAME",           "CONSTRAINT_SCHEMA",
    "REFERENCED_TABLE_SCHEMA", "UNIQUE_CONSTRAINT_SCHEMA", "ROUTINE_SCHEMA",
    "EVENT_SCHEMA",      "TRIGGER_SCHEMA",        "EVENT_OBJECT_SCHEMA",
    "INDEX_SCHEMA",      "SPECIFIC_SCHEMA",       "SEQUENCE_SCHEMA",
    "OBJECT_SCHEMA",     "DEFAULT_SCHEMA",
};

/* The text of token i without its quotes when it is quoted (doubled quotes are not undone:
 * a name that holds one is never a schema of ours). */
static void tok_inner(const toklist *tl, size_t i, const char **s, size_t *n)
{
    const sql_token *t = &tl->t[i];
    *s = tl->sql + t->start;
    *n = t->len;
    if ((t->kind == SQLTOK_QIDENT || t->kind == SQLTOK_STRING) && t->len >= 2) {
        (*s)++;
        *n -= 2;
    }
}

static bool is_schema_column(const toklist *tl, size_t i, bool show)
{
    if (i >= tl->n || (tl->t[i].kind != SQLTOK_WORD && tl->t[i].kind != SQLTOK_QIDENT))
        return false;
    const char *s;
    size_t n;
    tok_inner(tl, i, &s, &n);
    for (size_t k = 0; k < sizeof(schema_columns) / sizeof(schema_columns[0]); k++)
        if (strlen(schema_columns[k]) == n && strncasecmp(schema_columns[k], s, n) == 0)
            return true;
    /* SHOW TABLE STATUS / FUNCTION STATUS ... WHERE Db = '...' */
    return show && n == 2 && strncasecmp(s, "DB", 2) == 0;
}

/* A comparison operator ending at token i (inclusive): "=", "<=>", "!=", "<>", LIKE, NOT
 * LIKE. Returns the index of its first token, or SIZE_MAX. */
static size_t operator_before(const toklist *tl, size_t i)
{
    if (i >= tl->n)
        return SIZE_MAX;
    if (tok_word(tl, i, "LIKE"))
        return i > 0 && tok_word(tl, i - 1, "NOT") ? i - 1 : i;
    char op[4];
    size_t n = 0, j = i;
    for (;;) {
        if (j >= tl->n || tl->t[j].kind != SQLTOK_PUNCT || tl->t[j].len != 1 ||
            !strchr("<=>!", tl->sql[tl->t[j].start]))
            break;
        if (n == 3)
            return SIZE_MAX;
        op[n++] = tl->sql[tl->t[j].start];
        if (j == 0 || tl->t[j].spaced)
            break;
        j--;
    }
    if (n == 0)
        return SIZE_MAX;
    /* op holds the operator backwards. */
    char fw[4];
    for (size_t k = 0; k < n; k++)
        fw[k] = op[n - 1 - k];
    fw[n] = '\0';
    if (strcmp(fw, "=") && strcmp(fw, "<=>") && strcmp(fw, "!=") && strcmp(fw, "<>"))
        return SIZE_MAX;
    return i + 1 - n;
}

/* Same, for an operator starting at token i: returns the index just past it, or SIZE_MAX. */
static size_t operator_after(const toklist *tl, size_t i)
{
    if (tok_word(tl, i, "LIKE"))
        return i + 1;
    if (tok_word(tl, i, "NOT") && tok_word(tl, i + 1, "LIKE"))
        return i + 2;
    char op[4];
    size_t n = 0, j = i;
    while (j < tl->n && tl->t[j].kind == SQLTOK_PUNCT && tl->t[j].len == 1 &&
           strchr("<=>!", tl->sql[tl->t[j].start]) && (j == i || !tl->t[j].spaced)) {
        if (n == 3)
            return SIZE_MAX;
        op[n++] = tl->sql[tl->t[j].start];
        j++;
    }
    op[n] = '\0';
    if (n == 0 || (strcmp(op, "=") && strcmp(op, "<=>") && strcmp(op, "!=") && strcmp(op, "<>")))
        return SIZE_MAX;
    return j;
}

/* Skips back over a character set introducer (_utf8mb4'...') or BINARY before literal i. */
static size_t before_literal(const toklist *tl, size_t i)
{
    if (i == 0)
        return SIZE_MAX;
    size_t j = i - 1;
    if (tl->t[j].kind == SQLTOK_WORD && !tl->t[i].spaced && tl->sql[tl->t[j].start] == '_')
        return j == 0 ? SIZE_MAX : j - 1;
    if (tok_word(tl, j, "BINARY"))
        return j == 0 ? SIZE_MAX : j - 1;
    return j;
}

/* Whether string literal i is an operand of a comparison with a schema column. in_list: it
 * sits in a schema column's IN (...) list. */
static bool literal_names_schema(const toklist *tl, size_t i, bool show, bool in_list)
{
    if (in_list)
        return true;
    size_t j = before_literal(tl, i);
    size_t op = j == SIZE_MAX ? SIZE_MAX : operator_before(tl, j);
    if (op != SIZE_MAX && op > 0 && is_schema_column(tl, op - 1, show))
        return true;
    /* 'db@env' = TABLE_SCHEMA */
    size_t after = operator_after(tl, i + 1);
    if (after != SIZE_MAX && !tok_word(tl, i + 1, "LIKE") && !tok_word(tl, i + 1, "NOT"))
        return is_schema_column(tl, after, show);
    return false;
}

/* Whether quoted identifier i is used as a schema name. */
static bool ident_names_schema(const toklist *tl, size_t i, bool show)
{
    if (tok_punct(tl, i + 1, '.') && !(i > 0 && tok_punct(tl, i - 1, '.')))
        return true; /* `db@env`.table */
    if (!show || i == 0)
        return false;
    if (tok_word(tl, i - 1, "FROM") || tok_word(tl, i - 1, "IN"))
        return true; /* SHOW TABLES FROM `db@env`, SHOW COLUMNS FROM t IN `db@env` */
    /* SHOW CREATE DATABASE|SCHEMA [IF NOT EXISTS] `db@env` */
    size_t j = i - 1;
    if (j >= 3 && tok_word(tl, j, "EXISTS") && tok_word(tl, j - 1, "NOT") &&
        tok_word(tl, j - 2, "IF"))
        j -= 3;
    return j >= 2 && (tok_word(tl, j, "DATABASE") || tok_word(tl, j, "SCHEMA")) &&
           tok_word(tl, j - 1, "CREATE");
}

/* Splits name (n bytes) at its last '@' when what follows is one of the environments and
 * what precedes is a database name. Returns the environment's length (without '@'), or 0. */
static size_t env_suffix(const char *s, size_t n, const rewrite_envs *envs)
{
    const char *at = NULL;
    for (size_t k = 0; k < n; k++)
        if (s[k] == '@')
            at = s + k;
    if (!at || at == s || (size_t)(at - s) > ROUTE_NAME_MAX)
        return 0;
    size_t en = n - (size_t)(at - s) - 1;
    for (int k = 0; k < envs->n_envs; k++)
        if (strlen(envs->envs[k]) == en && memcmp(envs->envs[k], at + 1, en) == 0)
            return en;
    return 0;
}

int rewrite_schema_names(const char *sql, size_t len, const sql_mode_flags *mode,
                         const rewrite_envs *envs, char **out, size_t *out_len, char *env,
                         char *db, char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    if (len > REWRITE_MAX_OUT || !memchr(sql, '@', len) || envs->n_envs == 0)
        return 0;
    toklist tl;
    if (!tokenize(sql, len, mode, &tl, true, REWRITE_MAX_TOKENS)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (tl.error || tl.overflow) {
        free(tl.t);
        return 0; /* unreadable or too long: left to the policy check and the server */
    }
    char *buf = NULL;
    size_t o = 0, copied = 0;
    int found = 0;
    bool show = false;
    int list_depth = 0; /* inside a schema column's IN (...): its parenthesis depth */
    int depth = 0;
    for (size_t i = 0; i < tl.n; i++) {
        const sql_token *t = &tl.t[i];
        if (i == 0 || (i > 0 && tl.t[i - 1].kind == SQLTOK_SEMICOLON))
            show = tok_word(&tl, i, "SHOW");
        if (tok_punct(&tl, i, '(')) {
            depth++;
            /* col IN (  /  col NOT IN ( */
            if (!list_depth && i >= 2 && tok_word(&tl, i - 1, "IN")) {
                size_t c = tok_word(&tl, i - 2, "NOT") ? i - 3 : i - 2;
                if (c < i && is_schema_column(&tl, c, show))
                    list_depth = depth;
            }
            continue;
        }
        if (tok_punct(&tl, i, ')')) {
            if (list_depth == depth)
                list_depth = 0;
            depth--;
            continue;
        }
        bool rewrite = false;
        if (t->kind == SQLTOK_QIDENT) /* `x`, or "x" under ANSI_QUOTES */
            rewrite = ident_names_schema(&tl, i, show);
        else if (t->kind == SQLTOK_STRING)
            rewrite = literal_names_schema(&tl, i, show, list_depth && list_depth == depth);
        if (!rewrite)
            continue;
        const char *s;
        size_t n;
        tok_inner(&tl, i, &s, &n);
        size_t en = env_suffix(s, n, envs);
        if (!en)
            continue;
        const char *e = s + n - en;
        if (found && (strlen(env) != en || memcmp(env, e, en) != 0)) {
            snprintf(err, errlen, "the statement names databases in two environments ('%s' and "
                     "'%.*s'); send one statement per environment", env, (int)en, e);
            free(tl.t);
            free(buf);
            return -1;
        }
        if (!found) {
            memcpy(env, e, en);
            env[en] = '\0';
            size_t dn = n - en - 1;
            memcpy(db, s, dn);
            db[dn] = '\0';
            buf = malloc(len);
            if (!buf) {
                snprintf(err, errlen, "out of memory");
                free(tl.t);
                return -1;
            }
        }
        found = 1;
        /* Everything up to the '@', then on after the environment's name. */
        size_t cut = (size_t)(e - 1 - sql);
        memcpy(buf + o, sql + copied, cut - copied);
        o += cut - copied;
        copied = cut + 1 + en;
    }
    free(tl.t);
    if (!found)
        return 0;
    memcpy(buf + o, sql + copied, len - copied);
    o += len - copied;
    *out = buf;
    *out_len = o;
    return 1;
}

/* Token i is the name kw, as a word or a backquoted identifier. */
static bool tok_name(const toklist *tl, size_t i, const char *kw)
{
    if (i >= tl->n)
        return false;
    if (tl->t[i].kind == SQLTOK_WORD)
        return tok_word(tl, i, kw);
    if (tl->t[i].kind != SQLTOK_QIDENT || tl->sql[tl->t[i].start] != '`')
        return false;
    const char *s;
    size_t n;
    tok_inner(tl, i, &s, &n);
    return n == strlen(kw) && strncasecmp(s, kw, n) == 0;
}

bool rewrite_is_schemata_list(const char *sql, size_t len)
{
    sql_mode_flags mode = {0};
    toklist tl;
    if (!tokenize(sql, len, &mode, &tl, false, CLASSIFY_MAX_TOKENS))
        return false;
    /* Adminer sends it as SET STATEMENT max_statement_time=N FOR SELECT ... */
    size_t b = 0;
    if (tok_word(&tl, 0, "SET") && tok_word(&tl, 1, "STATEMENT")) {
        for (b = 2; b < tl.n && !tok_word(&tl, b, "FOR"); b++)
            ;
        b++;
    }
    bool ok = !tl.error && !tl.several && !tl.overflow && tok_word(&tl, b, "SELECT") &&
              tok_name(&tl, b + 1, "SCHEMA_NAME") && tok_word(&tl, b + 2, "FROM") &&
              tok_name(&tl, b + 3, "information_schema") && tok_punct(&tl, b + 4, '.') &&
              tok_name(&tl, b + 5, "SCHEMATA");
    if (ok && tl.n > b + 6) {
        ok = tok_word(&tl, b + 6, "ORDER") && tok_word(&tl, b + 7, "BY") &&
             tok_name(&tl, b + 8, "SCHEMA_NAME") &&
             (tl.n == b + 9 || (tl.n == b + 10 && tok_word(&tl, b + 9, "ASC")));
    }
    free(tl.t);
    return ok;
}

/* Whether the first k tokens of a statement (k at most 4) read LOAD DATA|XML
 * [LOW_PRIORITY|CONCURRENT] LOCAL. */
static bool starts_load_local(const char *sql, const sql_token *t, size_t k)
{
    toklist tl = {.sql = sql, .t = (sql_token *)t, .n = k};
    if (!tok_word(&tl, 0, "LOAD") || !(tok_word(&tl, 1, "DATA") || tok_word(&tl, 1, "XML")))
        return false;
    size_t j = 2;
    if (tok_word(&tl, j, "LOW_PRIORITY") || tok_word(&tl, j, "CONCURRENT"))
        j++;
    return tok_word(&tl, j, "LOCAL");
}

bool rewrite_has_load_local(const char *sql, size_t len)
{
    /* Reads every statement of the text, keeping only the first four tokens of the current
     * one: the memory does not grow with the text. Unreadable text is left to the policy
     * check and the server (what was read before the error still counts). */
    /* Cheap test first: a LOAD token is those four bytes of the text, in any case. */
    bool maybe = false;
    for (size_t i = 0; i + 4 <= len && !maybe; i++)
        maybe = (sql[i] == 'L' || sql[i] == 'l') && strncasecmp(sql + i, "load", 4) == 0;
    if (!maybe)
        return false;
    sql_mode_flags mode = {0};
    sql_lexer lx;
    sqllex_init(&lx, sql, len, &mode);
    sql_token first[4];
    size_t k = 0;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_SEMICOLON || t.kind == SQLTOK_END || t.kind == SQLTOK_ERROR) {
            if (starts_load_local(sql, first, k))
                return true;
            if (t.kind != SQLTOK_SEMICOLON)
                return false;
            k = 0;
            continue;
        }
        if (k < 4) {
            first[k++] = t;
            if (k == 4 && starts_load_local(sql, first, k))
                return true;
        }
    }
}

int rewrite_load_local_file(const char *sql, size_t len, char *name, size_t cap, size_t *name_len)
{
    sql_mode_flags mode = {0};
    toklist tl;
    *name_len = 0;
    if (!rewrite_has_load_local(sql, len))
        return LL_NONE;
    if (!tokenize(sql, len, &mode, &tl, false, CLASSIFY_MAX_TOKENS))
        return LL_UNREADABLE;
    int rc = LL_UNREADABLE;
    size_t j = 2;
    /* One statement, not in an executable comment: LOAD DATA|XML [LOW_PRIORITY|CONCURRENT]
     * LOCAL INFILE '...' followed by anything but another literal (which would be joined
     * to the name). */
    if (tl.error || tl.several || !tok_word(&tl, 0, "LOAD") ||
        !(tok_word(&tl, 1, "DATA") || tok_word(&tl, 1, "XML")))
        goto out;
    if (tok_word(&tl, j, "LOW_PRIORITY") || tok_word(&tl, j, "CONCURRENT"))
        j++;
    if (!tok_word(&tl, j, "LOCAL") || !tok_word(&tl, j + 1, "INFILE") || j + 2 >= tl.n)
        goto out;
    const sql_token *lit = &tl.t[j + 2];
    if (lit->kind != SQLTOK_STRING || lit->len < 2 || sql[lit->start] != '\'' ||
        (j + 3 < tl.n && tl.t[j + 3].kind == SQLTOK_STRING))
        goto out;
    for (size_t i = 0; i <= j + 2; i++) {
        if (tl.t[i].cond != 0)
            goto out;
    }
    /* The name's bytes are the literal's, with no escape and no doubled quote: then every
     * sql_mode reads them the same way, and they are what the server will ask for. */
    const char *body = sql + lit->start + 1;
    size_t n = lit->len - 2;
    if (n == 0 || n >= cap || memchr(body, '\\', n) || memchr(body, '\'', n) ||
        memchr(body, 0, n))
        goto out;
    memcpy(name, body, n);
    name[n] = 0;
    *name_len = n;
    rc = LL_FILE;
out:
    free(tl.t);
    return rc;
}

bool rewrite_infile_request_matches(const char *name, size_t name_len, const uint8_t *payload,
                                    size_t len)
{
    return name_len > 0 && len == name_len + 1 && payload[0] == 0xFB &&
           memcmp(payload + 1, name, name_len) == 0;
}

/* ---- the virtual schemas in information_schema.SCHEMATA ---------------------------------- */

/* What a reference to information_schema.SCHEMATA becomes: the same rows and columns, and a
 * row for each virtual schema. */
static const char schemata_with_virtual[] =
    "(SELECT * FROM information_schema.SCHEMATA UNION ALL "
    "SELECT 'def', '__compare', 'utf8mb4', 'utf8mb4_general_ci', NULL, '' UNION ALL "
    "SELECT 'def', '__envs', 'utf8mb4', 'utf8mb4_general_ci', NULL, '' UNION ALL "
    "SELECT 'def', '__queries', 'utf8mb4', 'utf8mb4_general_ci', NULL, '')";

/* Words that may follow a table reference without being its alias. */
static const char *const after_table[] = {
    "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "JOIN", "INNER", "CROSS", "LEFT", "RIGHT",
    "NATURAL", "STRAIGHT_JOIN", "FULL", "ON", "USING", "UNION", "EXCEPT", "INTERSECT", "FOR",
    "LOCK", "INTO", "WINDOW", "PROCEDURE", "OFFSET", "FETCH", "MINUS",
};

static bool is_after_table_word(const toklist *tl, size_t i)
{
    for (size_t k = 0; k < sizeof(after_table) / sizeof(after_table[0]); k++)
        if (tok_word(tl, i, after_table[k]))
            return true;
    return false;
}

int rewrite_schemata_virtual(const char *sql, size_t len, const sql_mode_flags *mode, char **out,
                             size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len > REWRITE_MAX_OUT)
        return 0;
    toklist tl;
    if (!tokenize(sql, len, mode, &tl, false, REWRITE_MAX_TOKENS))
        return -1;
    int rc = 0;
    if (tl.error || tl.several || tl.overflow || !tok_word(&tl, 0, "SELECT"))
        goto out;
    /* Every reference first: one that cannot be rewritten leaves the whole text alone. */
    size_t n_refs = 0;
    for (size_t i = 0; i + 2 < tl.n; i++) {
        if (!(tok_name(&tl, i, "information_schema") && tok_punct(&tl, i + 1, '.') &&
              tok_name(&tl, i + 2, "SCHEMATA")))
            continue;
        if (tl.t[i].cond != 0 || tl.t[i + 2].cond != 0)
            goto out; /* in a comment that not every server runs */
        if (i > 0 && tok_punct(&tl, i - 1, '.'))
            goto out;
        if (tok_punct(&tl, i + 3, '.'))
            goto out; /* information_schema.SCHEMATA.column: no alias can stand for it */
        if (!(i > 0 && (tok_word(&tl, i - 1, "FROM") || tok_word(&tl, i - 1, "JOIN") ||
                        tok_punct(&tl, i - 1, ','))))
            goto out;
        if (tok_word(&tl, i + 3, "USE") || tok_word(&tl, i + 3, "IGNORE") ||
            tok_word(&tl, i + 3, "FORCE") || tok_word(&tl, i + 3, "PARTITION") ||
            tok_word(&tl, i + 3, "FOR"))
            goto out; /* index hints, PARTITION, FOR SYSTEM_TIME: not on a derived table */
        n_refs++;
    }
    if (n_refs == 0)
        goto out;
    size_t cap = len + n_refs * (sizeof(schemata_with_virtual) + 80) + 1;
    char *buf = malloc(cap);
    if (!buf) {
        rc = -1;
        goto out;
    }
    size_t o = 0, copied = 0;
    for (size_t i = 0; i + 2 < tl.n; i++) {
        if (!(tok_name(&tl, i, "information_schema") && tok_punct(&tl, i + 1, '.') &&
              tok_name(&tl, i + 2, "SCHEMATA")))
            continue;
        const sql_token *a = &tl.t[i], *z = &tl.t[i + 2];
        memcpy(buf + o, sql + copied, a->start - copied);
        o += a->start - copied;
        memcpy(buf + o, schemata_with_virtual, sizeof(schemata_with_virtual) - 1);
        o += sizeof(schemata_with_virtual) - 1;
        bool alias = i + 3 < tl.n && (tok_word(&tl, i + 3, "AS") ||
                                      tl.t[i + 3].kind == SQLTOK_QIDENT ||
                                      (tl.t[i + 3].kind == SQLTOK_WORD &&
                                       !is_after_table_word(&tl, i + 3)));
        if (!alias) {
            /* Named as the table was, so that SCHEMATA.SCHEMA_NAME still means it. */
            memcpy(buf + o, " AS ", 4);
            o += 4;
            memcpy(buf + o, sql + z->start, z->len);
            o += z->len;
        }
        copied = z->start + z->len;
        i += 2;
    }
    memcpy(buf + o, sql + copied, len - copied);
    o += len - copied;
    *out = buf;
    *out_len = o;
    rc = 1;
out:
    free(tl.t);
    return rc;
}

/* ---- USER(), CURRENT_USER(): the envproxy account ---------------------------------------- */

/* Statements that name accounts (CURRENT_USER there is an account, not a value) or store
 * their text for later runs by anyone (a view, a routine, a trigger, an event): left as
 * they are. */
static bool names_accounts_or_stores(const toklist *tl, size_t s)
{
    static const char *const first[] = {"CREATE", "ALTER", "GRANT", "REVOKE", "DROP",
                                        "RENAME", "SHOW", "CALL", "HANDLER"};
    for (size_t k = 0; k < sizeof(first) / sizeof(first[0]); k++)
        if (tok_word(tl, s, first[k]))
            return true;
    return tok_word(tl, s, "SET") && (tok_word(tl, s + 1, "PASSWORD") ||
                                      tok_word(tl, s + 1, "DEFAULT") ||
                                      tok_word(tl, s + 1, "ROLE"));
}

/* Words after which a name is a table (INSERT INTO user () VALUES ()), not a call. */
static bool before_table_name(const toklist *tl, size_t i)
{
    static const char *const words[] = {"INTO", "FROM", "JOIN", "TABLE", "UPDATE", "INSERT",
                                        "REPLACE", "IGNORE", "DELAYED", "LOW_PRIORITY",
                                        "HIGH_PRIORITY", "STRAIGHT_JOIN", "TABLES", "QUICK"};
    for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
        if (tok_word(tl, i, words[k]))
            return true;
    return false;
}

/* The call at token i, if any: its last token in *end and whether it is CURRENT_USER. */
static bool user_call(const toklist *tl, size_t i, size_t *end, bool *current)
{
    bool parens = tok_punct(tl, i + 1, '(') && tok_punct(tl, i + 2, ')');
    *current = false;
    if (tok_word(tl, i, "CURRENT_USER")) {
        *current = true;
        *end = parens ? i + 2 : i;
        return true;
    }
    if (!parens)
        return false;
    *end = i + 2;
    if (tok_word(tl, i, "USER"))
        return true; /* a keyword of the grammar: spaces before '(' change nothing */
    /* Native functions: a name followed by a space is not a call without IGNORE_SPACE. */
    return (tok_word(tl, i, "SESSION_USER") || tok_word(tl, i, "SYSTEM_USER")) &&
           !tl->t[i + 1].spaced;
}

int rewrite_user_calls(const char *sql, size_t len, const sql_mode_flags *mode,
                       const char *user_value, const char *current_value, char **out,
                       size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len > REWRITE_MAX_OUT || strchr(user_value, '\'') || strchr(current_value, '\'') ||
        strchr(user_value, '\\') || strchr(current_value, '\\'))
        return 0;
    /* Cheap test first: most statements name none of them. */
    bool maybe = false;
    for (size_t i = 0; i + 4 <= len && !maybe; i++)
        maybe = strncasecmp(sql + i, "user", 4) == 0;
    if (!maybe)
        return 0;
    toklist tl;
    if (!tokenize(sql, len, mode, &tl, true, REWRITE_MAX_TOKENS))
        return -1;
    if (tl.error || tl.overflow) {
        free(tl.t);
        return 0; /* unreadable or too long: left to the policy check and the server */
    }
    char *buf = NULL;
    size_t o = 0, copied = 0, cap = 0;
    int found = 0;
    size_t s = 0; /* the first token of the current statement */
    bool skip = names_accounts_or_stores(&tl, 0);
    /* Per parenthesis depth: inside a select list (where a call alone gets its name). */
    bool in_list[64] = {false};
    int depth = 0;
    for (size_t i = 0; i < tl.n; i++) {
        if (tl.t[i].kind == SQLTOK_SEMICOLON) {
            s = i + 1;
            skip = names_accounts_or_stores(&tl, s);
            depth = 0;
            memset(in_list, 0, sizeof(in_list));
            continue;
        }
        if (tok_punct(&tl, i, '(')) {
            if (depth + 1 < (int)(sizeof(in_list) / sizeof(in_list[0])))
                depth++;
            in_list[depth] = false;
            continue;
        }
        if (tok_punct(&tl, i, ')')) {
            if (depth > 0)
                depth--;
            continue;
        }
        if (tok_word(&tl, i, "SELECT")) {
            in_list[depth] = true;
            continue;
        }
        if (tok_word(&tl, i, "FROM") || tok_word(&tl, i, "INTO") ||
            is_after_table_word(&tl, i)) {
            in_list[depth] = false;
            continue;
        }
        size_t end;
        bool current;
        if (skip || tl.t[i].kind != SQLTOK_WORD || !user_call(&tl, i, &end, &current))
            continue;
        if (i > s && (tok_punct(&tl, i - 1, '.') || before_table_name(&tl, i - 1)))
            continue; /* db.user(), a table named user */
        if (i >= s + 2 && tok_punct(&tl, i - 1, '=') && tok_word(&tl, i - 2, "DEFINER"))
            continue;
        if (tok_punct(&tl, end + 1, '.'))
            continue; /* current_user.x: a table's column */
        /* A select-list item of its own keeps its column name. */
        bool item = in_list[depth] && i > s &&
                    (tok_punct(&tl, i - 1, ',') || tok_word(&tl, i - 1, "SELECT") ||
                     tok_word(&tl, i - 1, "DISTINCT") || tok_word(&tl, i - 1, "ALL")) &&
                    (end + 1 >= tl.n || tok_punct(&tl, end + 1, ',') ||
                     tok_punct(&tl, end + 1, ')') || tl.t[end + 1].kind == SQLTOK_SEMICOLON ||
                     tok_word(&tl, end + 1, "FROM") || tok_word(&tl, end + 1, "INTO") ||
                     is_after_table_word(&tl, end + 1));
        const char *value = current ? current_value : user_value;
        size_t from = tl.t[i].start, to = tl.t[end].start + tl.t[end].len;
        size_t need = o + (from - copied) + strlen(value) + 2 + (item ? to - from + 6 : 0);
        if (need + (len - to) + 1 > cap) {
            size_t ncap = (need + (len - to) + 1) * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                free(tl.t);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        memcpy(buf + o, sql + copied, from - copied);
        o += from - copied;
        o += (size_t)sprintf(buf + o, "'%s'", value);
        if (item) {
            memcpy(buf + o, " AS `", 5);
            o += 5;
            memcpy(buf + o, sql + from, to - from);
            o += to - from;
            buf[o++] = '`';
        }
        copied = to;
        found = 1;
        i = end;
    }
    free(tl.t);
    if (!found)
        return 0;
    memcpy(buf + o, sql + copied, len - copied);
    o += len - copied;
    *out = buf;
    *out_len = o;
    return 1;
}
