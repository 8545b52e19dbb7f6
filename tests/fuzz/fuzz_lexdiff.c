/* fuzz_lexdiff.c: libFuzzer target that checks the lexer against a second, independent
 * reading of where strings, quoted names, comments and statements begin and end.
 *
 * The reference below is a plain byte-level state machine written from the servers' rules
 * (quotes with doubling and, unless NO_BACKSLASH_ESCAPES, backslash escapes; ANSI_QUOTES;
 * '#' and "--" comments, "--" ending on the bytes the client character set calls space or
 * control; block comments; executable comments read as code). For every input, in every
 * supported character set and sql_mode, when the lexer reads the text without an error the
 * two must agree: the same ';' separators, no token starting inside a comment or quote, every
 * quoted token starting where the reference opens a quote, and nothing left unterminated.
 * Build and run: make fuzz (FUZZ_SECONDS bounds each target). */
#include "sqlpolicy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { R_CODE, R_QUOTE_START, R_IN_QUOTE, R_COMMENT };

static bool ref_dash_end(sql_charset cs, unsigned char c)
{
    if (c <= 0x20 || c == 0x7F)
        return true;
    return cs == SQL_CS_LATIN1 && c == 0xA0;
}

/* Marks each byte of sql with what the reference reads there; returns false when a quote or
 * comment is left open at the end. */
static bool ref_scan(const unsigned char *s, size_t n, sql_charset cs, const sql_mode_flags *m,
                     unsigned char *mark)
{
    size_t i = 0;
    bool in_exec = false;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '\'' || c == '"' || c == '`') {
            bool escapes = c != '`' && !(c == '"' && m->ansi_quotes) && !m->no_backslash_escapes;
            mark[i++] = R_QUOTE_START;
            for (;;) {
                if (i >= n)
                    return false;
                if (s[i] == '\\' && escapes) {
                    if (i + 1 >= n)
                        return false;
                    mark[i] = mark[i + 1] = R_IN_QUOTE;
                    i += 2;
                } else if (s[i] == c && i + 1 < n && s[i + 1] == c) {
                    mark[i] = mark[i + 1] = R_IN_QUOTE;
                    i += 2;
                } else if (s[i] == c) {
                    mark[i++] = R_IN_QUOTE;
                    break;
                } else {
                    mark[i++] = R_IN_QUOTE;
                }
            }
        } else if (c == '#' || (c == '-' && i + 1 < n && s[i + 1] == '-' &&
                                (i + 2 >= n || ref_dash_end(cs, s[i + 2])))) {
            while (i < n && s[i] != '\n')
                mark[i++] = R_COMMENT;
            if (i < n)
                mark[i++] = R_COMMENT;
        } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            bool exec = (i + 2 < n && s[i + 2] == '!') ||
                        (i + 3 < n && s[i + 2] == 'M' && s[i + 3] == '!');
            if (exec) {
                bool maria = s[i + 2] == 'M';
                size_t j = i + (maria ? 4 : 3), d = 0;
                while (j + d < n && d < 7 && s[j + d] >= '0' && s[j + d] <= '9')
                    d++;
                if (d >= 5)
                    j += d > 6 ? 6 : d;
                while (i < j)
                    mark[i++] = R_COMMENT;
                in_exec = true;
                continue;
            }
            size_t j = i + 2;
            while (j + 1 < n && !(s[j] == '*' && s[j + 1] == '/'))
                j++;
            if (j + 1 >= n)
                return false;
            while (i < j + 2)
                mark[i++] = R_COMMENT;
        } else if (in_exec && c == '*' && i + 1 < n && s[i + 1] == '/') {
            mark[i++] = R_COMMENT;
            mark[i++] = R_COMMENT;
            in_exec = false;
        } else {
            mark[i++] = R_CODE;
        }
    }
    return !in_exec;
}

static void diff_one(const unsigned char *s, size_t n, sql_charset cs, const sql_mode_flags *m,
                     unsigned char *mark)
{
    sql_lexer lx;
    sqllex_init(&lx, (const char *)s, n, m);
    lx.charset = cs;
    size_t semis = 0;
    for (size_t steps = 0;; steps++) {
        sql_token t = sqllex_next(&lx);
        if (steps > n + 1)
            abort();
        if (t.kind == SQLTOK_ERROR)
            return; /* refused: nothing to compare */
        if (t.kind == SQLTOK_END)
            break;
        if (mark[t.start] == R_COMMENT || mark[t.start] == R_IN_QUOTE)
            abort(); /* the lexer reads code where the reference sees a comment or quote */
        bool quoted = t.kind == SQLTOK_STRING || t.kind == SQLTOK_QIDENT ||
                      (t.kind == SQLTOK_USERVAR && t.len > 1 &&
                       (s[t.start + 1] == '\'' || s[t.start + 1] == '"' || s[t.start + 1] == '`'));
        size_t q = t.kind == SQLTOK_USERVAR ? t.start + 1 : t.start;
        if (quoted && mark[q] != R_QUOTE_START)
            abort();
        if (!quoted)
            for (size_t k = t.start; k < t.start + t.len; k++)
                if (mark[k] != R_CODE)
                    abort(); /* an unquoted token runs into a quote or comment */
        if (t.kind == SQLTOK_SEMICOLON)
            semis++;
    }
    size_t ref_semis = 0;
    for (size_t k = 0; k < n; k++)
        if (mark[k] == R_CODE && s[k] == ';')
            ref_semis++;
    if (ref_semis != semis)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const sql_charset sets[] = {SQL_CS_UTF8, SQL_CS_LATIN1, SQL_CS_ASCII, SQL_CS_BINARY,
                                       SQL_CS_UNSUPPORTED};
    if (size > 4096)
        return 0;
    unsigned char *mark = malloc(size + 1);
    if (!mark)
        return 0;
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        for (int combo = 0; combo < 4; combo++) {
            sql_mode_flags m = {(combo & 1) != 0, (combo & 2) != 0, false, false};
            memset(mark, R_CODE, size + 1);
            if (!ref_scan(data, size, sets[k], &m, mark)) {
                /* left open: the lexer must not read it to the end */
                sql_lexer lx;
                sqllex_init(&lx, (const char *)data, size, &m);
                lx.charset = sets[k];
                sql_token t;
                do
                    t = sqllex_next(&lx);
                while (t.kind != SQLTOK_END && t.kind != SQLTOK_ERROR);
                if (t.kind == SQLTOK_END)
                    abort();
                continue;
            }
            diff_one(data, size, sets[k], &m, mark);
        }
    }
    free(mark);
    return 0;
}
