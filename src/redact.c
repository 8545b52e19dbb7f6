/* redact.c: credentials taken out of statement texts for the audit log.
 *
 * `CREATE USER ... IDENTIFIED BY 'pw'`, `SET PASSWORD = PASSWORD('pw')` and their kind carry
 * a password in clear; MySQL rewrites them in its general and slow logs, MariaDB 10.11 does
 * not. The audit writer passes every statement text through redact_sql first: the rest of
 * the statement after the word that introduces a credential becomes " <secret>". Reading
 * errs on the side of hiding: the text is lexed with backslash escapes on (a string is
 * then never shorter than a session in NO_BACKSLASH_ESCAPES reads it, so its end is never
 * taken for the statement's), executable comments are read as SQL, and a text the lexer
 * cannot read is cut after the first such word.
 */
#include "bytes8.h"
#include "redact.h"
#include "sqlpolicy.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static const char SECRET[] = " <secret>";

static bool at(const char *s, size_t len, size_t i, const char *word, size_t n)
{
    return i + n <= len && strncasecmp(s + i, word, n) == 0;
}

/* Whether IDENTIFIED or PASSWORD (any case) starts at s[i]. */
static bool trigger_at(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i] | 0x20;
    if (i + 1 >= len)
        return false;
    unsigned char next = (unsigned char)s[i + 1] | 0x20;
    return (c == 'i' && next == 'd' && at(s, len, i, "identified", 10)) ||
           (c == 'p' && next == 'a' && at(s, len, i, "password", 8));
}

/* Offset of the first IDENTIFIED or PASSWORD at or after from, or len. Every statement the
 * audit log writes passes here: eight bytes at a time, a word without an i or a p (either
 * case) is skipped whole. */
static size_t find_trigger(const char *s, size_t len, size_t from)
{
    size_t i = from;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = load8(s + i) | 0x20 * BYTES_01; /* 'I' -> 'i', 'P' -> 'p'; no other
                                                        byte becomes either */
        uint64_t m = bytes_equal(w, 'i') | bytes_equal(w, 'p');
        for (; m; m &= m - 1) {
            /* Little-endian load: the lowest set bit is the first byte. */
            size_t k = i + (size_t)__builtin_ctzll(m) / 8;
            if (trigger_at(s, len, k))
                return k;
        }
    }
    for (; i < len; i++)
        if (trigger_at(s, len, i))
            return i;
    return len;
}

int redact_may_hold(const char *sql, size_t len)
{
    return find_trigger(sql, len, 0) < len;
}

/* Whether a token (a word, or a `quoted` name) introduces a credential. */
static bool trigger_token(const char *s, const sql_token *t)
{
    const char *p = s + t->start;
    size_t n = t->len;
    if (t->kind == SQLTOK_QIDENT && n >= 2) {
        p++;
        n -= 2;
    } else if (t->kind != SQLTOK_WORD) {
        return false;
    }
    if (n == 10 && strncasecmp(p, "identified", 10) == 0)
        return true;
    /* PASSWORD, OLD_PASSWORD, MASTER_PASSWORD, SOURCE_PASSWORD, ... */
    return n >= 8 && strncasecmp(p + n - 8, "password", 8) == 0 &&
           (n == 8 || p[n - 9] == '_');
}

/* Copies sql[*copied, upto) and " <secret>" to out at *o when that leaves room for one
 * more " <secret>"; otherwise writes only " <secret>" (hiding everything from *copied on,
 * which is never wrong) and returns false: the text ends there. */
static bool put_hidden(char *out, size_t *o, size_t cap, const char *sql, size_t *copied,
                       size_t upto)
{
    size_t n = upto - *copied;
    if (*o + n + 2 * (sizeof(SECRET) - 1) > cap) {
        memcpy(out + *o, SECRET, sizeof(SECRET) - 1);
        *o += sizeof(SECRET) - 1;
        return false;
    }
    memcpy(out + *o, sql + *copied, n);
    *o += n;
    memcpy(out + *o, SECRET, sizeof(SECRET) - 1);
    *o += sizeof(SECRET) - 1;
    *copied = upto;
    return true;
}

size_t redact_sql(const char *sql, size_t len, char *out, size_t cap)
{
    if (cap < len + REDACT_EXTRA || !redact_may_hold(sql, len))
        return 0;
    sql_mode_flags mode = {0}; /* backslash escapes on, double quotes as strings */
    sql_lexer lx;
    sqllex_init(&lx, sql, len, &mode);
    size_t o = 0, copied = 0;
    bool hiding = false, changed = false;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_ERROR) {
            /* Unreadable from here: cut after the first such word not yet hidden. */
            if (hiding)
                return o; /* the rest of this statement is hidden already */
            size_t k = find_trigger(sql, len, copied);
            if (k == len)
                break;
            size_t w = (sql[k] | 0x20) == 'i' ? 10 : 8;
            put_hidden(out, &o, cap, sql, &copied, k + w);
            return o;
        }
        if (t.kind == SQLTOK_END)
            break;
        if (hiding) {
            if (t.kind == SQLTOK_SEMICOLON) {
                hiding = false;
                copied = t.start; /* the next statement is copied from its ';' */
            }
            continue;
        }
        if (trigger_token(sql, &t)) {
            if (!put_hidden(out, &o, cap, sql, &copied, t.start + t.len))
                return o;
            hiding = changed = true;
        }
    }
    if (!changed)
        return 0;
    if (!hiding) {
        if (o + (len - copied) > cap) {
            put_hidden(out, &o, cap, sql, &copied, len); /* no room: hide the rest too */
            return o;
        }
        memcpy(out + o, sql + copied, len - copied);
        o += len - copied;
    }
    return o;
}
