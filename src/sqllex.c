/* sqllex.c: reads MySQL/MariaDB SQL text into tokens the way the server's lexer does. */
#include "sqlpolicy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* How the server reads a byte outside quotes depends on the client character set: its
 * lexer classifies each byte from the character set's ctype table (space, control, letter,
 * digit) and takes the first byte of a multibyte character as a letter. The ASCII half is
 * the same in every supported set; the other half is per set (checked byte by byte against
 * MariaDB 10.11 in tests/integration/test_lexer_server.py):
 *
 * - utf8mb4, utf8mb3: no byte 0x80-0xFF is a space or a control character. A lead byte
 *   followed by a valid continuation is part of an identifier; a stray byte is a one-byte
 *   token the grammar rejects. Four-byte characters (utf8mb4 reads them as an identifier,
 *   utf8mb3 as an error) and UTF-16 surrogates are refused, so both sets read alike.
 * - latin1 (cp1252 on the server): 0xA0 is a space; the letters 0x83 0x8A 0x8C 0x8E 0x9A
 *   0x9C 0x9E 0x9F, 0xC0-0xFF but 0xD7 and 0xF7 are identifier bytes; the rest is
 *   punctuation.
 * - ascii, binary: every byte 0x80-0xFF is punctuation.
 *
 * A byte 0x80-0xFF that is punctuation in the set is a token no statement accepts: the server
 * stops with a syntax error there. The lexer refuses it instead of reading on. */
static bool lex_is_space(const sql_lexer *lx, unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c == 0xA0 && lx->charset == SQL_CS_LATIN1);
}

/* Whether "--" followed by c opens a comment: the server asks its ctype table whether c is a
 * space or a control character. Bytes 0x80-0xFF of an unsupported set are errors instead. */
static bool lex_ends_dashes(const sql_lexer *lx, unsigned char c)
{
    return c <= ' ' || c == 0x7F || (c == 0xA0 && lx->charset == SQL_CS_LATIN1);
}

static bool lex_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool lex_is_xdigit(unsigned char c)
{
    return lex_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool lex_is_ascii_ident(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || lex_is_digit(c) || c == '_' ||
           c == '$';
}

static bool lex_latin1_letter(unsigned char c)
{
    return c == 0x83 || c == 0x8A || c == 0x8C || c == 0x8E || c == 0x9A || c == 0x9C ||
           c == 0x9E || c == 0x9F || (c >= 0xC0 && c != 0xD7 && c != 0xF7);
}

static bool lex_is_cont(const sql_lexer *lx, size_t i, unsigned char lo, unsigned char hi)
{
    if (i >= lx->len)
        return false;
    unsigned char c = (unsigned char)lx->sql[i];
    return c >= lo && c <= hi;
}

/* Length of the identifier character at byte i: 1 for an ASCII letter, digit, '_' or '$';
 * for bytes 0x80-0xFF what the character set makes of them; 0 when byte i cannot be part of
 * an identifier. */
static size_t lex_ident_char(const sql_lexer *lx, size_t i)
{
    if (i >= lx->len)
        return 0;
    unsigned char c = (unsigned char)lx->sql[i];
    if (c < 0x80)
        return lex_is_ascii_ident(c) ? 1 : 0;
    switch (lx->charset) {
    case SQL_CS_LATIN1:
        return lex_latin1_letter(c) ? 1 : 0;
    case SQL_CS_UTF8:
        if (c >= 0xC2 && c <= 0xDF)
            return lex_is_cont(lx, i + 1, 0x80, 0xBF) ? 2 : 0;
        if (c >= 0xE0 && c <= 0xEF) {
            unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
            return lex_is_cont(lx, i + 1, lo, hi) && lex_is_cont(lx, i + 2, 0x80, 0xBF) ? 3 : 0;
        }
        return 0;
    case SQL_CS_ASCII:
    case SQL_CS_BINARY:
    case SQL_CS_UNSUPPORTED:
        break;
    }
    return 0;
}

/* Whether c may start or continue an identifier, looking at one byte only (a multibyte
 * character is checked whole by lex_ident_char when it is read). */
static bool lex_is_ident(const sql_lexer *lx, unsigned char c)
{
    if (c < 0x80)
        return lex_is_ascii_ident(c);
    switch (lx->charset) {
    case SQL_CS_LATIN1:
        return lex_latin1_letter(c);
    case SQL_CS_UTF8:
        return c >= 0xC2 && c <= 0xEF;
    default:
        return false;
    }
}

static unsigned char lex_peek(const sql_lexer *lx, size_t off)
{
    size_t p = lx->pos + off;
    return p < lx->len ? (unsigned char)lx->sql[p] : 0;
}

static bool lex_has(const sql_lexer *lx, size_t off)
{
    return lx->pos + off < lx->len;
}

static sql_token lex_fail(sql_lexer *lx, const char *why)
{
    sql_token t = {SQLTOK_ERROR, false, 0, lx->pos, 0};
    lx->error = why;
    lx->pos = lx->len;
    return t;
}

static sql_token lex_fail_byte(sql_lexer *lx, unsigned char c)
{
    snprintf(lx->error_buf, sizeof lx->error_buf, "byte 0x%02X outside quotes", c);
    return lex_fail(lx, lx->error_buf);
}

/* Inside an executable comment the server reads strings and comments as code when the
 * version matches, and skips to the first star-slash when it does not. A quoted token or
 * line comment that contains star-slash would end in different places: refused. */
static bool lex_hides_exec_end(const sql_lexer *lx, size_t from, size_t to)
{
    if (!lx->in_exec)
        return false;
    for (size_t i = from; i + 1 < to; i++)
        if (lx->sql[i] == '*' && lx->sql[i + 1] == '/')
            return true;
    return false;
}

void sqllex_init(sql_lexer *lx, const char *sql, size_t len, const sql_mode_flags *mode)
{
    memset(lx, 0, sizeof *lx);
    lx->sql = sql;
    lx->len = len;
    if (mode)
        lx->mode = *mode;
    lx->strict_brackets = mode && mode->unknown;
    lx->charset = SQL_CS_UTF8;
}

/* Skips a line comment starting at lx->pos (after '#' or "-- "): up to and including '\n'. */
static bool lex_skip_line_comment(sql_lexer *lx)
{
    size_t start = lx->pos;
    const char *nl = memchr(lx->sql + lx->pos, '\n', lx->len - lx->pos);
    size_t end = nl ? (size_t)(nl - lx->sql) : lx->len;
    if (lex_hides_exec_end(lx, start, end))
        return false;
    lx->pos = nl ? end + 1 : end;
    return true;
}

/* Finds the first star-slash at or after from; returns its offset or len when none. */
static size_t lex_find_comment_end(const sql_lexer *lx, size_t from)
{
    for (size_t i = from; i + 1 < lx->len; i++)
        if (lx->sql[i] == '*' && lx->sql[i + 1] == '/')
            return i;
    return lx->len;
}

/* Optimizer hints: MySQL 8 reads quoted names and strings inside a hint, so a quote could
 * move the hint's end past the first star-slash. Only pairs of single quotes are accepted. */
static const char *lex_check_hint(const sql_lexer *lx, size_t from, size_t to)
{
    int singles = 0;
    for (size_t i = from; i < to; i++) {
        char c = lx->sql[i];
        if (c == '"' || c == '`' || c == '\\')
            return "quote or backslash in an optimizer hint";
        if (c == '\'')
            singles++;
    }
    return singles % 2 ? "unbalanced quote in an optimizer hint" : NULL;
}

/* Skips whitespace and comments; enters and leaves executable comments. Returns NULL, or
 * the reason the text cannot be read. */
static const char *lex_skip_space(sql_lexer *lx, bool *spaced)
{
    while (lx->pos < lx->len) {
        unsigned char c = lex_peek(lx, 0);
        if (lex_is_space(lx, c)) {
            lx->pos++;
            *spaced = true;
        } else if (c == '#') {
            if (!lex_skip_line_comment(lx))
                return "line comment inside an executable comment hides its end";
            *spaced = true;
        } else if (c == '-' && lex_peek(lx, 1) == '-' && lex_has(lx, 2) &&
                   lex_peek(lx, 2) >= 0x80 && lx->charset == SQL_CS_UNSUPPORTED) {
            return "byte 0x80-0xFF after -- in an unsupported character set";
        } else if (c == '-' && lex_peek(lx, 1) == '-' &&
                   (!lex_has(lx, 2) || lex_ends_dashes(lx, lex_peek(lx, 2)))) {
            if (!lex_skip_line_comment(lx))
                return "line comment inside an executable comment hides its end";
            *spaced = true;
        } else if (c == '/' && lex_peek(lx, 1) == '*') {
            unsigned char c2 = lex_peek(lx, 2);
            bool exec = c2 == '!' || (c2 == 'M' && lex_peek(lx, 3) == '!');
            *spaced = true;
            if (exec) {
                if (lx->in_exec)
                    return "nested executable comment";
                bool maria = c2 == 'M';
                lx->pos += maria ? 4 : 3;
                /* A version is five digits (MariaDB: or six); fewer digits are code. MySQL
                 * reads five digits after / *! and MariaDB six, so a sixth is refused. */
                size_t d = 0;
                unsigned long version = 0;
                while (d < 7 && lex_is_digit(lex_peek(lx, d)))
                    d++;
                if (!maria && d >= 6)
                    return "executable comment version of more than five digits";
                if (d >= 5) {
                    size_t take = d > 6 ? 6 : d;
                    for (size_t k = 0; k < take; k++)
                        version = version * 10 + (unsigned long)(lex_peek(lx, k) - '0');
                    lx->pos += take;
                }
                /* Every server of interest (MySQL 5.7+, MariaDB) runs versions below 50700;
                 * MariaDB skips 50700-99999; MySQL skips / *M! entirely. */
                lx->exec_cond = maria || (d >= 5 && version >= 50700);
                if (lx->exec_cond)
                    lx->cond_count++;
                lx->in_exec = true;
                continue;
            }
            size_t end = lex_find_comment_end(lx, lx->pos + 2);
            if (end >= lx->len)
                return "unterminated comment";
            if (c2 == '+') {
                const char *why = lex_check_hint(lx, lx->pos + 3, end);
                if (why)
                    return why;
            }
            lx->pos = end + 2;
        } else if (c == '*' && lx->in_exec && lex_peek(lx, 1) == '/') {
            lx->in_exec = false;
            lx->pos += 2;
            *spaced = true;
        } else {
            return NULL;
        }
    }
    return lx->in_exec ? "unterminated executable comment" : NULL;
}

/* Reads a quoted token whose opening quote is at lx->pos. Doubled quotes stay inside; a
 * backslash escapes the next byte when backslash_escapes. Returns false when unterminated. */
static bool lex_quoted(sql_lexer *lx, char quote, bool backslash_escapes)
{
    size_t i = lx->pos + 1;
    while (i < lx->len) {
        char c = lx->sql[i];
        if (c == '\\' && backslash_escapes) {
            if (i + 1 >= lx->len)
                return false;
            i += 2;
        } else if (c == quote) {
            if (i + 1 < lx->len && lx->sql[i + 1] == quote) {
                i += 2;
            } else {
                lx->pos = i + 1;
                return true;
            }
        } else {
            i++;
        }
    }
    return false;
}

static size_t lex_skip_ident(const sql_lexer *lx, size_t i)
{
    size_t n;
    while ((n = lex_ident_char(lx, i)) > 0)
        i += n;
    return i;
}

static size_t lex_skip_digits(const sql_lexer *lx, size_t i)
{
    while (i < lx->len && lex_is_digit((unsigned char)lx->sql[i]))
        i++;
    return i;
}

/* The fraction and exponent of a number whose '.' is at i. The server rejects an exponent
 * without digits ("1.5e", "1.5e-"), in ways that differ between versions: refused. */
static bool lex_real_tail(const sql_lexer *lx, size_t *ip)
{
    size_t i = lex_skip_digits(lx, *ip + 1);
    if (i < lx->len && (lx->sql[i] == 'e' || lx->sql[i] == 'E')) {
        i++;
        if (i < lx->len && (lx->sql[i] == '+' || lx->sql[i] == '-'))
            i++;
        if (i >= lx->len || !lex_is_digit((unsigned char)lx->sql[i]))
            return false;
        i = lex_skip_digits(lx, i);
    }
    *ip = i;
    return true;
}

/* A token that starts with a digit: a number (12, 1.5, 1e5, 0x1F, 0b01) or an identifier
 * that starts with digits (1abc, 0xZZ, 1e), following the server's rules. */
static sql_token lex_number_or_ident(sql_lexer *lx, sql_token t)
{
    size_t s = lx->pos, i;
    unsigned char c1 = lex_peek(lx, 1);
    if (lex_peek(lx, 0) == '0' && (c1 == 'x' || c1 == 'b')) {
        i = s + 2;
        while (i < lx->len && (c1 == 'x' ? lex_is_xdigit((unsigned char)lx->sql[i])
                                         : (lx->sql[i] == '0' || lx->sql[i] == '1')))
            i++;
        if (i > s + 2 && (i >= lx->len || !lex_is_ident(lx, (unsigned char)lx->sql[i]))) {
            t.kind = SQLTOK_NUMBER;
            t.len = i - s;
            lx->pos = i;
            return t;
        }
    }
    i = lex_skip_digits(lx, s);
    if (i < lx->len && lex_is_ident(lx, (unsigned char)lx->sql[i])) {
        char e = lx->sql[i];
        if (e == 'e' || e == 'E') {
            size_t j = i + 1;
            if (j < lx->len && (lx->sql[j] == '+' || lx->sql[j] == '-') && j + 1 < lx->len &&
                lex_is_digit((unsigned char)lx->sql[j + 1]))
                j++;
            if (j < lx->len && lex_is_digit((unsigned char)lx->sql[j])) {
                t.kind = SQLTOK_NUMBER;
                lx->pos = lex_skip_digits(lx, j);
                t.len = lx->pos - s;
                return t;
            }
        }
        t.kind = SQLTOK_WORD;
        lx->pos = lex_skip_ident(lx, i);
        t.len = lx->pos - s;
        return t;
    }
    if (i < lx->len && lx->sql[i] == '.' && !lex_real_tail(lx, &i))
        return lex_fail(lx, "malformed number");
    t.kind = SQLTOK_NUMBER;
    t.len = i - s;
    lx->pos = i;
    return t;
}

/* After '@': a quoted name, or the bytes the server takes for a name (identifier bytes and
 * '.'). */
static sql_token lex_user_var(sql_lexer *lx, sql_token t)
{
    size_t s = lx->pos;
    lx->pos++;
    char q = (char)lex_peek(lx, 0);
    if (lx->pos < lx->len && (q == '\'' || q == '"' || q == '`')) {
        size_t qs = lx->pos;
        bool esc =
            q != '`' && !lx->mode.no_backslash_escapes && !(q == '"' && lx->mode.ansi_quotes);
        if (!lex_quoted(lx, q, esc))
            return lex_fail(lx,
                            q == '`' ? "unterminated quoted identifier" : "unterminated string");
        if (lex_hides_exec_end(lx, qs, lx->pos))
            return lex_fail(lx, "quoted text inside an executable comment hides its end");
    } else {
        while (lx->pos < lx->len) {
            unsigned char c = lex_peek(lx, 0);
            size_t n = c == '.' ? 1 : lex_ident_char(lx, lx->pos);
            if (n == 0)
                break;
            lx->pos += n;
        }
    }
    t.kind = SQLTOK_USERVAR;
    t.len = lx->pos - s;
    return t;
}

/* Marks an identifier followed right away by '.' and an identifier byte, as the server does
 * before it reads the next part of a qualified name. */
static sql_token lex_ident_done(sql_lexer *lx, sql_token t)
{
    if (lex_peek(lx, 0) == '.' && lex_ident_char(lx, lx->pos + 1) > 0)
        lx->after_dot = 1;
    return t;
}

static sql_token lex_token(sql_lexer *lx);

const sql_mode_flags SQL_QUOTING_MODES[4] = {
    {false, false, false, false},
    {true, false, false, false},
    {false, true, false, false},
    {true, true, false, false},
};

bool sqllex_is_word(const char *sql, sql_token t, const char *w)
{
    size_t n = strlen(w);
    return t.kind == SQLTOK_WORD && t.len == n && strncasecmp(sql + t.start, w, n) == 0;
}

sql_token sqllex_next(sql_lexer *lx)
{
    sql_token t = lex_token(lx);
    if (t.kind == SQLTOK_WORD || t.kind == SQLTOK_QIDENT)
        return lex_ident_done(lx, t);
    return t;
}

static sql_token lex_token(sql_lexer *lx)
{
    sql_token t = {SQLTOK_END, false, 0, lx->pos, 0};
    int after_dot = lx->after_dot;
    lx->after_dot = 0;
    if (lx->error)
        return lex_fail(lx, lx->error);
    const char *why = lex_skip_space(lx, &t.spaced);
    if (why)
        return lex_fail(lx, why);
    t.start = lx->pos;
    if (lx->pos >= lx->len)
        return t;
    if (lx->in_exec && lx->exec_cond)
        t.cond = lx->cond_count;

    unsigned char c = lex_peek(lx, 0);
    if (c == 0)
        return lex_fail(lx, "NUL byte");
    if (c >= 0x80 && lex_ident_char(lx, lx->pos) == 0)
        return lex_fail_byte(lx, c);

    if (c == '.' && after_dot == 1) {
        /* "t.1e5": after an identifier and a '.', the server reads an identifier. */
        lx->pos++;
        lx->after_dot = 2;
        t.kind = SQLTOK_PUNCT;
        t.len = 1;
        return t;
    }
    if (after_dot == 2 && lex_is_ident(lx, c) && !t.spaced) {
        lx->pos = lex_skip_ident(lx, lx->pos);
        t.kind = SQLTOK_WORD;
        t.len = lx->pos - t.start;
        return t;
    }
    if (c == '\'' || c == '"' || c == '`') {
        bool ident = c == '`' || (c == '"' && lx->mode.ansi_quotes);
        bool esc = !ident && !lx->mode.no_backslash_escapes;
        if (!lex_quoted(lx, (char)c, esc))
            return lex_fail(lx, ident ? "unterminated quoted identifier" : "unterminated string");
        if (lex_hides_exec_end(lx, t.start, lx->pos))
            return lex_fail(lx, "quoted text inside an executable comment hides its end");
        t.kind = ident ? SQLTOK_QIDENT : SQLTOK_STRING;
        t.len = lx->pos - t.start;
        return t;
    }
    if (lex_is_digit(c))
        return lex_number_or_ident(lx, t);
    if (c == '.' && lex_is_digit(lex_peek(lx, 1))) {
        size_t i = lx->pos;
        if (!lex_real_tail(lx, &i))
            return lex_fail(lx, "malformed number");
        t.kind = SQLTOK_NUMBER;
        t.len = i - lx->pos;
        lx->pos = i;
        return t;
    }
    if (lex_is_ident(lx, c)) {
        lx->pos = lex_skip_ident(lx, lx->pos);
        t.kind = SQLTOK_WORD;
        t.len = lx->pos - t.start;
        return t;
    }
    if (c == '@') {
        if (lex_peek(lx, 1) == '@') {
            lx->pos += 2;
            t.kind = SQLTOK_SYSVAR;
            t.len = 2;
            return t;
        }
        return lex_user_var(lx, t);
    }
    if (c == ';') {
        if (lx->in_exec)
            return lex_fail(lx, "';' inside an executable comment");
        lx->pos++;
        t.kind = SQLTOK_SEMICOLON;
        t.len = 1;
        return t;
    }
    if ((c == '[' || c == ']') && lx->strict_brackets)
        return lex_fail(lx, "'[' or ']' under an unknown sql_mode");
    t.kind = SQLTOK_PUNCT;
    t.len = c == ':' && lex_peek(lx, 1) == '=' ? 2 : 1;
    lx->pos += t.len;
    return t;
}
