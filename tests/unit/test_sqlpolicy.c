/* test_sqlpolicy.c: the read-only classifier against the case tables, plus sql_mode tracking,
 * character sets and the lexer. Run from the repository root. */
#include "sqlpolicy.h"
#include "unit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASES_FILE "tests/unit/sqlpolicy_cases.tsv"
#define CORPUS_FILE "../shared/corpus/readonly.tsv"

/* Undoes the table escapes in place: \n \r \t \0 \\ and \xHH. Returns the new length, or -1
 * on a bad escape. */
static long unescape(char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'n') {
            s[o++] = '\n';
        } else if (c == 'r') {
            s[o++] = '\r';
        } else if (c == 't') {
            s[o++] = '\t';
        } else if (c == '0') {
            s[o++] = '\0';
        } else if (c == '\\') {
            s[o++] = '\\';
        } else if (c == 'x' && s[i + 1] && s[i + 2]) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end;
            long b = strtol(hex, &end, 16);
            if (*end)
                return -1;
            s[o++] = (char)b;
            i += 2;
        } else {
            return -1;
        }
    }
    return (long)o;
}

/* Flags of a table row: sql_mode flags, and the backend flavor (mariadb, mysql; unknown when
 * neither is given). */
static bool parse_flags(const char *f, sql_mode_flags *m, sql_flavor *flavor)
{
    memset(m, 0, sizeof *m);
    *flavor = SQL_FLAVOR_UNKNOWN;
    while (*f) {
        size_t n = strcspn(f, ",");
        if (n == 11 && strncmp(f, "ansi_quotes", n) == 0)
            m->ansi_quotes = true;
        else if (n == 20 && strncmp(f, "no_backslash_escapes", n) == 0)
            m->no_backslash_escapes = true;
        else if (n == 7 && strncmp(f, "unknown", n) == 0)
            m->unknown = true;
        else if (n == 10 && strncmp(f, "unreadable", n) == 0)
            m->unreadable = true;
        else if (n == 7 && strncmp(f, "mariadb", n) == 0)
            *flavor = SQL_FLAVOR_MARIADB;
        else if (n == 5 && strncmp(f, "mysql", n) == 0)
            *flavor = SQL_FLAVOR_MYSQL;
        else if (n != 0 && !(n == 1 && f[0] == '-'))
            return false;
        f += n;
        if (*f == ',')
            f++;
    }
    return true;
}

/* Runs every row of a table: verdict<TAB>statement[<TAB>sql_mode flags[<TAB>expected what]].
 * Returns the number of rows, or -1 when the file cannot be opened. */
static int run_table(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rows = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (got == 0 || line[0] == '#')
            continue;
        char *fields[4] = {line, NULL, NULL, NULL};
        for (int k = 1; k < 4; k++) {
            char *tab = strchr(fields[k - 1], '\t');
            if (!tab)
                break;
            *tab = 0;
            fields[k] = tab + 1;
        }
        bool want_allow = strcmp(fields[0], "allow") == 0;
        sql_mode_flags mode;
        policy_session ps = {SQL_CS_UTF8, SQL_FLAVOR_UNKNOWN, NULL, NULL};
        long len = fields[1] ? unescape(fields[1]) : -1;
        if ((!want_allow && strcmp(fields[0], "refuse") != 0) || len < 0 ||
            !parse_flags(fields[2] ? fields[2] : "", &mode, &ps.flavor)) {
            unit_failed++;
            fprintf(stderr, "%s:%d: malformed row\n", path, lineno);
            continue;
        }
        rows++;
        policy_verdict v;
        bool allowed = sqlpolicy_check(fields[1], (size_t)len, &mode, &ps, &v);
        bool what_ok = !fields[3] || !*fields[3] || strcmp(fields[3], v.what) == 0;
        if (allowed == want_allow && what_ok) {
            unit_passed++;
        } else {
            unit_failed++;
            fprintf(stderr, "%s:%d: row %d: expected %s%s%s%s, got %s: what=\"%s\"\n", path, lineno,
                    rows, want_allow ? "allow" : "refuse", fields[3] && *fields[3] ? " (\"" : "",
                    fields[3] ? fields[3] : "", fields[3] && *fields[3] ? "\")" : "",
                    allowed ? "allow" : "refuse", v.what);
        }
    }
    free(line);
    fclose(f);
    return rows;
}

static bool check(const char *sql, const sql_mode_flags *m, policy_verdict *v)
{
    return sqlpolicy_check_readonly(sql, strlen(sql), m, v);
}

static void test_verdict_fields(void)
{
    policy_verdict v;
    CHECK(check("SELECT 1; SHOW TABLES;; USE x", NULL, &v));
    CHECK_INT(v.n_statements, 3);
    CHECK_INT(v.first_kind, STMT_SELECT);
    CHECK_STR(v.what, "");
    CHECK(check("", NULL, &v));
    CHECK_INT(v.n_statements, 0);
    CHECK_INT(v.first_kind, STMT_EMPTY);
    CHECK(check(" ; /* only a comment */ ;", NULL, &v));
    CHECK_INT(v.n_statements, 0);
    CHECK(check("DESCRIBE t", NULL, &v));
    CHECK_INT(v.first_kind, STMT_DESCRIBE);
    CHECK(check("EXPLAIN SELECT 1", NULL, &v));
    CHECK_INT(v.first_kind, STMT_EXPLAIN);
    CHECK(check("SHOW TABLES", NULL, &v));
    CHECK_INT(v.first_kind, STMT_SHOW);
    CHECK(check("use db", NULL, &v));
    CHECK_INT(v.first_kind, STMT_USE);
    CHECK(check("SET NAMES utf8mb4", NULL, &v));
    CHECK_INT(v.first_kind, STMT_SET);
    CHECK(check("START TRANSACTION", NULL, &v));
    CHECK_INT(v.first_kind, STMT_BEGIN);
    CHECK(check("commit", NULL, &v));
    CHECK_INT(v.first_kind, STMT_COMMIT);
    CHECK(check("rollback work", NULL, &v));
    CHECK_INT(v.first_kind, STMT_ROLLBACK);
    CHECK(check("SET STATEMENT max_statement_time=5 FOR SELECT 1", NULL, &v));
    CHECK_INT(v.first_kind, STMT_SELECT);
    CHECK(!check("SELECT 1; DELETE FROM t", NULL, &v));
    CHECK_STR(v.what, "DELETE");
    CHECK_INT(v.n_statements, 2);
    CHECK(!check("DROP TABLE t; SELECT 1", NULL, &v));
    CHECK_STR(v.what, "DROP TABLE");
    CHECK(sqlpolicy_check_readonly(NULL, 0, NULL, &v));
    /* A NUL byte is refused wherever it is, and the length is what counts. */
    CHECK(!sqlpolicy_check_readonly("SELECT 1\0", 9, NULL, &v));
    CHECK_STR(v.what, "NUL byte");
    CHECK(sqlpolicy_check_readonly("SELECT 1\0junk", 8, NULL, &v));
}

/* Statements longer than the stack buffer take the heap path. */
static void test_long_statements(void)
{
    size_t n = 20000, cap = n * 3 + 64, o;
    char *sql = malloc(cap);
    policy_verdict v;
    o = (size_t)sprintf(sql, "SELECT 1");
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(sql + o, ",a ");
    CHECK(sqlpolicy_check_readonly(sql, o, NULL, &v));
    o += (size_t)sprintf(sql + o, ", SLEEP(1)");
    CHECK(!sqlpolicy_check_readonly(sql, o, NULL, &v));
    CHECK_STR(v.what, "function SLEEP()");
    free(sql);
}

static void track(const char *sql, sql_mode_flags *m)
{
    sqlpolicy_track_sql_mode(sql, strlen(sql), m);
}

static void test_track_sql_mode(void)
{
    sql_mode_flags m = {false, false, false, false};
    track("SET sql_mode = 'ANSI_QUOTES'", &m);
    CHECK(m.ansi_quotes && !m.no_backslash_escapes && !m.unknown);
    track("SET sql_mode = ''", &m);
    CHECK(!m.ansi_quotes && !m.no_backslash_escapes && !m.unknown);
    track("SET SESSION sql_mode='STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES'", &m);
    CHECK(!m.ansi_quotes && m.no_backslash_escapes && !m.unknown);
    track("SET @@session.sql_mode = 'ANSI'", &m);
    CHECK(m.ansi_quotes && !m.no_backslash_escapes && !m.unknown);
    track("set @@sql_mode := 'traditional'", &m);
    CHECK(!m.ansi_quotes && !m.unknown);
    track("SET LOCAL sql_mode = 'postgresql'", &m);
    CHECK(m.ansi_quotes && !m.unknown);
    track("SET @@local.sql_mode = DB2", &m);
    CHECK(m.ansi_quotes && !m.unknown);
    track("SET sql_mode = MAXDB", &m);
    CHECK(m.ansi_quotes && !m.unknown);
    track("SET sql_mode = ''", &m);

    /* Connector/J: CONCAT of the current mode and literals keeps the mode known. */
    track("SET autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES')", &m);
    CHECK(!m.ansi_quotes && !m.no_backslash_escapes && !m.unknown);
    track("SET sql_mode = CONCAT(@@session.sql_mode, ',ANSI_QUOTES')", &m);
    CHECK(m.ansi_quotes && !m.unknown);
    track("SET sql_mode = CONCAT('NO_BACKSLASH_ESCAPES,', @@sql_mode)", &m);
    CHECK(m.ansi_quotes && m.no_backslash_escapes && !m.unknown);
    track("SET sql_mode = CONCAT(@@sql_mode, 'ANSI_QUOTES')", &m); /* names run together */
    CHECK(m.unknown);
    m = (sql_mode_flags){false, false, false, false};

    /* Values that cannot be worked out make the mode unknown. */
    track("SET sql_mode = @saved", &m);
    CHECK(m.unknown);
    m.unknown = false;
    track("SET sql_mode = DEFAULT", &m);
    CHECK(m.unknown);
    m.unknown = false;
    track("SET sql_mode = 4", &m);
    CHECK(m.unknown);
    m.unknown = false;
    track("SET sql_mode = REPLACE(@@sql_mode, 'ANSI_QUOTES', '')", &m);
    CHECK(m.unknown);
    m.unknown = false;
    track("SET sql_mode = 'ANSI_QUOTES, STRICT_TRANS_TABLES'", &m); /* the server refuses it */
    CHECK(m.unknown);
    m.unknown = false;
    track("SET sql_mode = CONCAT(@@global.sql_mode, ',ANSI')", &m);
    CHECK(m.unknown);

    /* An unknown mode becomes known again when a literal is set, whatever the reading. */
    track("SET sql_mode = 'NO_BACKSLASH_ESCAPES'", &m);
    CHECK(!m.unknown && m.no_backslash_escapes && !m.ansi_quotes);
    m = (sql_mode_flags){false, false, true, false};
    track("SET sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')", &m);
    CHECK(m.unknown);

    /* Not the session's mode: ignored. */
    m = (sql_mode_flags){false, false, false, false};
    track("SET GLOBAL sql_mode = 'ANSI_QUOTES'", &m);
    CHECK(!m.ansi_quotes && !m.unknown);
    track("SET @@global.sql_mode = 'ANSI_QUOTES'", &m);
    CHECK(!m.ansi_quotes && !m.unknown);
    track("SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SELECT 1", &m);
    CHECK(!m.ansi_quotes && !m.unknown);
    track("SET @sql_mode = 'ANSI_QUOTES'", &m);
    CHECK(!m.ansi_quotes && !m.unknown);
    track("SELECT 'SET sql_mode = ''ANSI_QUOTES'''", &m);
    CHECK(!m.ansi_quotes && !m.unknown);
    track("/* SET sql_mode = 'ANSI_QUOTES' */ SELECT 1", &m);
    CHECK(!m.ansi_quotes && !m.unknown);

    /* Executable comments and several statements in one packet. */
    track("/*!40101 SET SQL_MODE='NO_BACKSLASH_ESCAPES' */", &m);
    CHECK(m.no_backslash_escapes && !m.unknown);
    track("SET sql_mode=''; SELECT 1; SET sql_mode='ANSI_QUOTES'; SELECT \"a\"", &m);
    CHECK(m.ansi_quotes && !m.no_backslash_escapes && !m.unknown);
    /* Under ANSI_QUOTES the second SET is inside a quoted identifier. */
    track("SELECT \"x; SET sql_mode=''; \"", &m);
    CHECK(m.ansi_quotes);
    track("SET sql_mode=''", &m);

    /* ORACLE and MSSQL read SQL differently. */
    track("SET sql_mode = 'ORACLE'", &m);
    CHECK(m.unreadable && m.ansi_quotes);
    m = (sql_mode_flags){false, false, false, false};
    track("SET sql_mode = 'MSSQL,STRICT_TRANS_TABLES'", &m);
    CHECK(m.unreadable);

    sqlpolicy_mode_from_string("STRICT_TRANS_TABLES,ANSI_QUOTES,FUTURE_MODE", 43, &m);
    CHECK(m.ansi_quotes && !m.no_backslash_escapes && !m.unknown && !m.unreadable);
    sqlpolicy_mode_from_string("NO_BACKSLASH_ESCAPES", 20, &m);
    CHECK(!m.ansi_quotes && m.no_backslash_escapes);
    sqlpolicy_mode_from_string("", 0, &m);
    CHECK(!m.ansi_quotes && !m.no_backslash_escapes && !m.unknown);
    sqlpolicy_mode_from_string("PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ORACLE", 47, &m);
    CHECK(m.unreadable);
}

/* The tracked mode changes how the next check reads a statement. */
static void test_mode_changes_reading(void)
{
    const char *q = "SELECT \"a\\\" ; DELETE FROM t; -- \"";
    sql_mode_flags m = {false, false, false, false};
    policy_verdict v;
    CHECK(check(q, &m, &v));
    track("SET sql_mode = 'ANSI_QUOTES'", &m);
    CHECK(!check(q, &m, &v));
    CHECK_STR(v.what, "DELETE");
    track("SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')", &m);
    CHECK(!m.unknown);
    CHECK(!check(q, &m, &v));
    track("SET sql_mode = @x", &m);
    CHECK(!check(q, &m, &v));
    CHECK(check("SELECT 1", &m, &v));
    m = (sql_mode_flags){false, false, false, true};
    CHECK(!check("SELECT 1", &m, &v));
    CHECK_STR(v.what, "statement under sql_mode ORACLE or MSSQL");
}

static void test_charsets(void)
{
    static const struct {
        const char *name;
        sql_charset cs;
    } names[] = {
        {"utf8mb4", SQL_CS_UTF8},
        {"UTF8MB4", SQL_CS_UTF8},
        {"utf8", SQL_CS_UTF8},
        {"utf8mb3", SQL_CS_UTF8},
        {"utf8mb4_general_ci", SQL_CS_UTF8},
        {"utf8mb4_0900_ai_ci", SQL_CS_UTF8},
        {"utf8_general_ci", SQL_CS_UTF8},
        {"utf8mb3_unicode_520_nopad_ci", SQL_CS_UTF8},
        {"latin1", SQL_CS_LATIN1},
        {"latin1_swedish_ci", SQL_CS_LATIN1},
        {"Latin1_Bin", SQL_CS_LATIN1},
        {"ascii", SQL_CS_ASCII},
        {"ascii_general_ci", SQL_CS_ASCII},
        {"binary", SQL_CS_BINARY},
        {"binary_ci", SQL_CS_UNSUPPORTED},
        {"cp1250", SQL_CS_UNSUPPORTED},
        {"cp1250_general_ci", SQL_CS_UNSUPPORTED},
        {"hp8", SQL_CS_UNSUPPORTED},
        {"latin7", SQL_CS_UNSUPPORTED},
        {"latin2", SQL_CS_UNSUPPORTED},
        {"macroman", SQL_CS_UNSUPPORTED},
        {"hebrew", SQL_CS_UNSUPPORTED},
        {"gbk", SQL_CS_UNSUPPORTED},
        {"gbk_chinese_ci", SQL_CS_UNSUPPORTED},
        {"sjis", SQL_CS_UNSUPPORTED},
        {"big5", SQL_CS_UNSUPPORTED},
        {"cp932", SQL_CS_UNSUPPORTED},
        {"gb18030", SQL_CS_UNSUPPORTED},
        {"ucs2", SQL_CS_UNSUPPORTED},
        {"utf16", SQL_CS_UNSUPPORTED},
        {"utf32", SQL_CS_UNSUPPORTED},
        {"utf8mb5", SQL_CS_UNSUPPORTED},
        {"latin1x", SQL_CS_UNSUPPORTED},
        {"latin1_", SQL_CS_UNSUPPORTED},
        {"latin1_a b", SQL_CS_UNSUPPORTED},
        {"", SQL_CS_UNSUPPORTED},
        {NULL, SQL_CS_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (sqlpolicy_charset(names[i].name) != names[i].cs) {
            unit_failed++;
            fprintf(stderr, "sqlpolicy_charset(%s) = %d, want %d\n",
                    names[i].name ? names[i].name : "NULL", sqlpolicy_charset(names[i].name),
                    names[i].cs);
        } else {
            unit_passed++;
        }
    }
    CHECK_INT(sqlpolicy_flavor("10.11.6-MariaDB-0+deb12u1"), SQL_FLAVOR_MARIADB);
    CHECK_INT(sqlpolicy_flavor("5.5.5-10.6.12-MariaDB-log"), SQL_FLAVOR_MARIADB);
    CHECK_INT(sqlpolicy_flavor("8.0.36"), SQL_FLAVOR_MYSQL);
    CHECK_INT(sqlpolicy_flavor("5.7.44-log"), SQL_FLAVOR_MYSQL);
    CHECK_INT(sqlpolicy_flavor("11.4.2-MariaDB"), SQL_FLAVOR_MARIADB);
    CHECK_INT(sqlpolicy_flavor("2.1.0-TiDB"), SQL_FLAVOR_UNKNOWN);
    CHECK_INT(sqlpolicy_flavor(""), SQL_FLAVOR_UNKNOWN);
    CHECK_INT(sqlpolicy_flavor(NULL), SQL_FLAVOR_UNKNOWN);
}

/* The byte classes each supported character set has on the server (MariaDB 10.11's ctype
 * tables; tests/integration/test_lexer_server.py checks the lexer against a live server). */
static bool expect_dash_end(sql_charset cs, unsigned b)
{
    return (b >= 0x01 && b <= 0x20) || b == 0x7F || (cs == SQL_CS_LATIN1 && b == 0xA0);
}

static bool expect_space(sql_charset cs, unsigned b)
{
    return b == ' ' || (b >= 0x09 && b <= 0x0D) || (cs == SQL_CS_LATIN1 && b == 0xA0);
}

static bool expect_ident(sql_charset cs, unsigned b)
{
    static const unsigned char latin1_high[] = {0x83, 0x8A, 0x8C, 0x8E, 0x9A, 0x9C, 0x9E, 0x9F};
    if ((b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') ||
        b == '_' || b == '$')
        return true;
    if (cs != SQL_CS_LATIN1)
        return false;
    for (size_t i = 0; i < sizeof latin1_high; i++)
        if (b == latin1_high[i])
            return true;
    return b >= 0xC0 && b != 0xD7 && b != 0xF7;
}

/* Lexes text under cs into kinds (at most max; the last is END or ERROR); returns the count. */
static int lex_kinds(const char *sql, size_t len, sql_charset cs, sql_token *toks, int max)
{
    sql_lexer lx;
    sqllex_init(&lx, sql, len, NULL);
    lx.charset = cs;
    int n = 0;
    while (n < max) {
        toks[n] = sqllex_next(&lx);
        if (toks[n].kind == SQLTOK_END || toks[n].kind == SQLTOK_ERROR)
            return n + 1;
        n++;
    }
    return n;
}

/* Every byte 0x00-0xFF after "--" and after an identifier, in every supported set. */
static void test_charset_bytes(void)
{
    static const sql_charset sets[] = {SQL_CS_UTF8, SQL_CS_LATIN1, SQL_CS_ASCII, SQL_CS_BINARY,
                                       SQL_CS_UNSUPPORTED};
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        sql_charset cs = sets[k];
        for (unsigned b = 1; b < 256; b++) {
            sql_token t[12];
            /* SELECT 'x' --<b>\n, 2: a comment makes it four tokens and END. */
            char dash[] = "SELECT 'x' --?\n, 2";
            dash[13] = (char)b;
            int n = lex_kinds(dash, sizeof dash - 1, cs, t, 12);
            bool comment = n == 5 && t[4].kind == SQLTOK_END;
            bool want = expect_dash_end(cs, b);
            if (cs == SQL_CS_UNSUPPORTED && b >= 0x80) {
                want = false; /* refused: some unsupported set ends the comment there */
                comment = t[n - 1].kind != SQLTOK_ERROR;
            }
            if (comment != want) {
                unit_failed++;
                fprintf(stderr, "charset %d: \"--\" + 0x%02X read as %s\n", cs, b,
                        comment ? "a comment" : "code");
            } else {
                unit_passed++;
            }
            /* SELECT 1 AS a<b> */
            char sep[] = "SELECT 1 AS a?";
            sep[13] = (char)b;
            n = lex_kinds(sep, sizeof sep - 1, cs, t, 12);
            const char *got;
            if (t[n - 1].kind == SQLTOK_ERROR)
                got = "error";
            else if (n >= 5 && t[3].kind == SQLTOK_WORD && t[3].len == 2)
                got = "ident";
            else if (n == 5 || (n == 6 && t[4].kind == SQLTOK_SEMICOLON))
                got = "space";
            else
                got = "token";
            const char *exp = expect_space(cs, b) || b == '#' || b == ';' ? "space"
                              : expect_ident(cs, b)                        ? "ident"
                              : b >= 0x80 || b == '"' || b == '\'' || b == '`' ||
                                      (b < 0x20 && !expect_space(cs, b)) || b == 0x7F
                                  ? "error"
                                  : "token";
            if (b == '"' || b == '\'' || b == '`') /* an unterminated quote */
                exp = "error";
            if (b < 0x20 && !expect_space(cs, b))
                exp = "token";
            if (b == 0x7F)
                exp = "token";
            if (strcmp(got, exp) != 0) {
                unit_failed++;
                fprintf(stderr, "charset %d: byte 0x%02X after a name read as %s, want %s\n", cs,
                        b, got, exp);
            } else {
                unit_passed++;
            }
        }
    }
    /* utf8: a whole two- or three-byte character continues a name; four-byte characters,
     * surrogates, overlong forms and stray bytes are refused. */
    static const struct {
        const char *seq;
        bool ident;
    } utf8[] = {
        {"\xc3\xa9", true},     {"\xdf\xbf", true},     {"\xe0\xa0\x80", true},
        {"\xef\xbf\xbd", true}, {"\xed\x9f\xbf", true}, {"\xed\xa0\x80", false},
        {"\xe0\x80\x80", false}, {"\xc0\x80", false},    {"\xc1\xbf", false},
        {"\xf0\x9f\x98\x80", false}, {"\xc3", false},   {"\xc3\x41", false},
        {"\x80", false},        {"\xbf", false},        {"\xf5\x80\x80\x80", false},
        {"\xff", false},
    };
    for (size_t i = 0; i < sizeof utf8 / sizeof utf8[0]; i++) {
        char sql[32];
        sql_token t[8];
        int len = snprintf(sql, sizeof sql, "SELECT a%s", utf8[i].seq);
        int n = lex_kinds(sql, (size_t)len, SQL_CS_UTF8, t, 8);
        bool ident = n == 3 && t[1].len == (size_t)len - 7;
        if (ident != utf8[i].ident) {
            unit_failed++;
            fprintf(stderr, "utf8 sequence %zu read as %s\n", i, ident ? "a name" : "not a name");
        } else {
            unit_passed++;
        }
        if (!utf8[i].ident)
            CHECK(t[n - 1].kind == SQLTOK_ERROR);
    }
    /* 0x00: the server ends the text at a NUL byte; the check refuses it in every set. */
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        policy_session ps = {sets[k], SQL_FLAVOR_MARIADB, NULL, NULL};
        policy_verdict v;
        static const char dash[] = "SELECT 'x' --\0\n, 2", sep[] = "SELECT 1 AS a\0";
        CHECK(!sqlpolicy_check(dash, sizeof dash - 1, NULL, &ps, &v));
        CHECK(!sqlpolicy_check(sep, sizeof sep - 1, NULL, &ps, &v));
        if (sets[k] != SQL_CS_UNSUPPORTED)
            CHECK_STR(v.what, "NUL byte");
    }
    /* Strings and comments hold any byte in every set. */
    static const sql_charset all[] = {SQL_CS_UTF8, SQL_CS_LATIN1, SQL_CS_ASCII, SQL_CS_BINARY,
                                      SQL_CS_UNSUPPORTED};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        sql_token t[8];
        const char *q = "SELECT '\x80\xa0\xff' /* \x80\xff */ # \xa0\n";
        int n = lex_kinds(q, strlen(q), all[k], t, 8);
        CHECK(n == 3 && t[2].kind == SQLTOK_END);
    }
}

/* The character set follows SET NAMES inside a packet; a session in another set is refused. */
static void test_charset_policy(void)
{
    policy_verdict v;
    policy_session latin1 = {SQL_CS_LATIN1, SQL_FLAVOR_MARIADB, NULL, NULL};
    policy_session utf8 = {SQL_CS_UTF8, SQL_FLAVOR_MARIADB, NULL, NULL};
    policy_session other = {SQL_CS_UNSUPPORTED, SQL_FLAVOR_MARIADB, NULL, NULL};
    const char *a0 = "SELECT 1\xa0INTO @x";
    CHECK(!sqlpolicy_check(a0, strlen(a0), NULL, &latin1, &v));
    CHECK_STR(v.what, "SELECT ... INTO");
    CHECK(!sqlpolicy_check(a0, strlen(a0), NULL, &utf8, &v));
    CHECK_STR(v.what, "byte 0xA0 outside quotes");
    const char *e9 = "SELECT caf\xe9 FROM t";
    CHECK(sqlpolicy_check(e9, strlen(e9), NULL, &latin1, &v));
    CHECK(!sqlpolicy_check(e9, strlen(e9), NULL, &utf8, &v));
    const char *u = "SELECT caf\xc3\xa9 FROM t";
    CHECK(sqlpolicy_check(u, strlen(u), NULL, &utf8, &v));
    /* The issue's example: "--" and 0xA0 end a comment in latin1 only. */
    const char *dash = "SET @x = 1 --\xa0'\n, GLOBAL net_read_timeout = 31 -- '";
    CHECK(!sqlpolicy_check(dash, strlen(dash), NULL, &latin1, &v));
    CHECK_STR(v.what, "SET GLOBAL");
    CHECK(!sqlpolicy_check(dash, strlen(dash), NULL, &utf8, &v));
    CHECK(!sqlpolicy_check("SELECT 1", 8, NULL, &other, &v));
    const char *sw = "SET NAMES latin1; SELECT 1\xa0INTO @x";
    CHECK(!sqlpolicy_check(sw, strlen(sw), NULL, &utf8, &v));
    CHECK_STR(v.what, "SELECT ... INTO");
    const char *sw2 = "SET character_set_client = 'latin1'; SELECT caf\xe9";
    CHECK(sqlpolicy_check(sw2, strlen(sw2), NULL, &utf8, &v));
    const char *sw3 = "SET NAMES utf8mb4; SELECT caf\xe9";
    CHECK(!sqlpolicy_check(sw3, strlen(sw3), NULL, &latin1, &v));
    static const char *const refused[] = {
        "SET NAMES cp1250", "SET NAMES 'hp8'", "SET CHARACTER SET latin7", "SET CHARSET macroman",
        "SET character_set_client = hebrew", "SET @@session.character_set_client = 'gbk'",
        "SET collation_connection = cp1250_general_ci", "SET NAMES utf8mb4 COLLATE gbk_bin",
        "SET character_set_connection = sjis", "SET NAMES DEFAULT",
        "SET character_set_client = 95", "SET character_set_client = @cs",
        "SET STATEMENT character_set_client = cp1250 FOR SELECT 1",
        "/*!40101 SET NAMES cp1250 */"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (sqlpolicy_check(refused[i], strlen(refused[i]), NULL, &utf8, &v)) {
            unit_failed++;
            fprintf(stderr, "allowed: %s\n", refused[i]);
        } else {
            unit_passed++;
        }
    }
    CHECK(!sqlpolicy_check("SET NAMES cp1250", 16, NULL, &utf8, &v));
    CHECK_STR(v.what, "character set cp1250");
    static const char *const allowed[] = {
        "SET NAMES utf8mb4", "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_ci'",
        "SET NAMES latin1", "SET CHARACTER SET utf8", "SET character_set_results = NULL",
        "SET character_set_results = cp1250", "SET collation_connection = utf8mb4_bin",
        "SET NAMES binary", "SET NAMES ascii", "SET character_set_connection = DEFAULT"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (!sqlpolicy_check(allowed[i], strlen(allowed[i]), NULL, &utf8, &v)) {
            unit_failed++;
            fprintf(stderr, "refused: %s: %s\n", allowed[i], v.what);
        } else {
            unit_passed++;
        }
    }
}

/* Every listed built-in must be found (the table is searched with bsearch). */
static void test_function_table(void)
{
    /* clang-format off */
    static const char *const names[] = {
        "ABS", "ACOS", "ADDDATE", "ADD_MONTHS", "AES_ENCRYPT", "ANY_VALUE", "AREA", "ASCII",
        "AVG", "BIN", "BIN_TO_UUID", "BIT_AND", "CAST", "CEIL", "CHAR", "CHARSET", "COALESCE",
        "COLUMN_GET", "CONCAT", "CONCAT_WS", "CONNECTION_ID", "CONVERT", "CONVERT_TZ", "COUNT",
        "CRC32", "CUME_DIST", "CURDATE", "CURRENT_TIMESTAMP", "CURRENT_USER", "DATABASE",
        "DATEDIFF", "DATE_ADD", "DATE_FORMAT", "DAYNAME", "DEFAULT", "DENSE_RANK", "ELT",
        "EXTRACT", "FIELD", "FIND_IN_SET", "FIRST_VALUE", "FLOOR", "FORMAT", "FOUND_ROWS",
        "FROM_UNIXTIME", "GREATEST", "GROUP_CONCAT", "HEX", "IF", "IFNULL", "INET_ATON",
        "INSERT", "INSTR", "INTERVAL", "ISNULL", "IS_FREE_LOCK", "JSON_ARRAY", "JSON_ARRAYAGG",
        "JSON_CONTAINS", "JSON_EXTRACT", "JSON_OBJECT", "JSON_TABLE", "JSON_UNQUOTE",
        "JSON_VALUE", "LAG", "LAST_DAY", "LAST_INSERT_ID", "LCASE", "LEAD", "LEFT", "LENGTH",
        "LOCATE", "LOWER", "LPAD", "LTRIM", "MAX", "MD5", "MID", "MIN", "MOD", "MONTH", "NOW",
        "NTILE", "NULLIF", "NVL", "OCT", "PASSWORD", "POINT", "POSITION", "QUARTER", "RAND",
        "RANK", "REGEXP_REPLACE", "REPLACE", "REVERSE", "RIGHT", "ROUND", "ROW_COUNT",
        "ROW_NUMBER", "RPAD", "SCHEMA", "SHA2", "SIGN", "STR_TO_DATE", "ST_ASTEXT", "ST_X",
        "ST_Y", "SUBSTR", "SUBSTRING", "SUBSTRING_INDEX", "SUM", "SYSDATE", "TIMESTAMPDIFF",
        "TO_BASE64", "TRIM", "TRUNCATE", "UCASE", "UNHEX", "UNIX_TIMESTAMP", "UPPER", "USER",
        "UTC_TIMESTAMP", "UUID", "VALUES", "VERSION", "WEEK", "X", "Y", "YEAR",
        "YEARWEEK"};
    /* clang-format on */
    policy_verdict v;
    char sql[96];
    policy_session maria = {SQL_CS_UTF8, SQL_FLAVOR_MARIADB, NULL, NULL};
    policy_session mysql = {SQL_CS_UTF8, SQL_FLAVOR_MYSQL, NULL, NULL};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        /* POINT takes two arguments, JSON_TABLE sits in FROM */
        snprintf(sql, sizeof sql,
                 strcmp(names[i], "JSON_TABLE") == 0 ? "SELECT * FROM %s()"
                 : strcmp(names[i], "POINT") == 0    ? "SELECT %s(1, 2)"
                                                     : "SELECT %s()",
                 names[i]);
        if (!sqlpolicy_check(sql, strlen(sql), NULL, &maria, &v) &&
            !sqlpolicy_check(sql, strlen(sql), NULL, &mysql, &v)) {
            unit_failed++;
            fprintf(stderr, "built-in %s refused: %s\n", names[i], v.what);
        } else {
            unit_passed++;
        }
    }
    /* clang-format off */
    static const char *const refused[] = {
        "SLEEP", "BENCHMARK", "GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS", "LOAD_FILE",
        "MASTER_POS_WAIT", "MASTER_GTID_WAIT", "SOURCE_POS_WAIT", "WAIT_FOR_EXECUTED_GTID_SET",
        "WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS", "NEXTVAL", "SETVAL", "SYS_EXEC", "SYS_EVAL",
        "MY_FUNC", "AAA", "ZZZ", "WSREP_SYNC_WAIT_UPTO_GTID"};
    /* clang-format on */
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(sql, sizeof sql, "SELECT %s(1)", refused[i]);
        char want[64];
        snprintf(want, sizeof want, "function %s()", refused[i]);
        CHECK(!check(sql, NULL, &v));
        CHECK_STR(v.what, want);
    }
}

/* Names that are not MariaDB 10.11 built-ins (a stored function of the name ran when
 * called, checked on the server) are allowed only on MySQL; MariaDB-only names only on
 * MariaDB; an unknown flavor gets neither. Geometry constructors need arguments, JSON_TABLE
 * is a table function, and a name the backend has as a stored function is refused. */
static void test_function_flavors(void)
{
    /* clang-format off */
    static const char *const mysql_only[] = {
        "ANY_VALUE", "BIN_TO_UUID", "FORMAT_BYTES", "FORMAT_PICO_TIME", "GROUPING", "GTID_SUBSET",
        "GTID_SUBTRACT", "ICU_VERSION", "IS_UUID", "JSON_SCHEMA_VALID",
        "JSON_SCHEMA_VALIDATION_REPORT", "JSON_STORAGE_FREE", "JSON_STORAGE_SIZE", "MBRCOVEREDBY",
        "MBRCOVERS", "PS_CURRENT_THREAD_ID", "PS_THREAD_ID", "REGEXP_LIKE", "ROLES_GRAPHML",
        "STATEMENT_DIGEST", "STATEMENT_DIGEST_TEXT", "ST_COLLECT", "ST_GEOHASH", "ST_ISVALID",
        "ST_LATFROMGEOHASH", "ST_LATITUDE", "ST_LONGFROMGEOHASH", "ST_LONGITUDE",
        "ST_MAKEENVELOPE", "ST_POINTFROMGEOHASH", "ST_SIMPLIFY", "ST_SWAPXY", "ST_TRANSFORM",
        "ST_VALIDATE", "UUID_TO_BIN", "VALIDATE_PASSWORD_STRENGTH"};
    static const char *const maria_only[] = {
        "ADD_MONTHS", "COLUMN_GET", "NVL", "NVL2", "PASSWORD", "SFORMAT", "X", "GLENGTH",
        "ROWNUM", "LASTVAL", "JSON_DETAILED", "DECODE_ORACLE"};
    static const char *const never[] = {
        "VEC_DISTANCE", "VEC_FROMTEXT", "JSON_KEY_VALUE", "JSON_ARRAY_INTERSECT",
        "SQL_NO_CACHE", "SQL_BUFFER_RESULT", "AGAINST"};
    /* clang-format on */
    policy_session maria = {SQL_CS_UTF8, SQL_FLAVOR_MARIADB, NULL, NULL};
    policy_session mysql = {SQL_CS_UTF8, SQL_FLAVOR_MYSQL, NULL, NULL};
    policy_session unknown = {SQL_CS_UTF8, SQL_FLAVOR_UNKNOWN, NULL, NULL};
    policy_verdict v;
    char sql[96];
    for (size_t i = 0; i < sizeof mysql_only / sizeof mysql_only[0]; i++) {
        snprintf(sql, sizeof sql, "SELECT a FROM t WHERE %s(a, 1)", mysql_only[i]);
        CHECK(!sqlpolicy_check(sql, strlen(sql), NULL, &maria, &v));
        CHECK(!sqlpolicy_check(sql, strlen(sql), NULL, &unknown, &v));
        CHECK(sqlpolicy_check(sql, strlen(sql), NULL, &mysql, &v));
    }
    for (size_t i = 0; i < sizeof maria_only / sizeof maria_only[0]; i++) {
        snprintf(sql, sizeof sql, "SELECT %s(a) FROM t", maria_only[i]);
        CHECK(sqlpolicy_check(sql, strlen(sql), NULL, &maria, &v));
        CHECK(!sqlpolicy_check(sql, strlen(sql), NULL, &unknown, &v));
        CHECK(!sqlpolicy_check(sql, strlen(sql), NULL, &mysql, &v));
    }
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        snprintf(sql, sizeof sql, "SELECT 1 FROM t WHERE %s(1)", never[i]);
        CHECK(!sqlpolicy_check(sql, strlen(sql), NULL, &maria, &v));
        CHECK(!sqlpolicy_check(sql, strlen(sql), NULL, &mysql, &v));
    }
    static const char *const ok[] = {
        "SELECT * FROM t WHERE MATCH (a, b) AGAINST ('x' IN BOOLEAN MODE)",
        "SELECT POINT(1, 2), LINESTRING(POINT(1, 2), POINT(3, 4))",
        "SELECT * FROM JSON_TABLE('[1]', '$[*]' COLUMNS (a INT PATH '$')) j",
        "SELECT * FROM t JOIN JSON_TABLE(t.doc, '$[*]' COLUMNS (a INT PATH '$')) j"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!sqlpolicy_check(ok[i], strlen(ok[i]), NULL, &maria, &v)) {
            unit_failed++;
            fprintf(stderr, "refused: %s: %s\n", ok[i], v.what);
        } else {
            unit_passed++;
        }
    }
    static const char *const bad[] = {
        "SELECT POINT()", "SELECT POINT(1)", "SELECT POINT(1, 2, 3)", "SELECT LINESTRING()",
        "SELECT POLYGON()", "SELECT MULTIPOINT()", "SELECT GEOMETRYCOLLECTION()",
        "SELECT JSON_TABLE(1)", "SELECT 1 FROM t WHERE AGAINST(1)",
        "SELECT (a) AGAINST(1) FROM t", "SELECT SQL_NO_CACHE (a) FROM t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (sqlpolicy_check(bad[i], strlen(bad[i]), NULL, &maria, &v)) {
            unit_failed++;
            fprintf(stderr, "allowed: %s\n", bad[i]);
        } else {
            unit_passed++;
        }
    }
    /* The backend's stored functions and UDFs. */
    static const char *const names[] = {"concat", "my_udf", "regexp_like"};
    sql_name_set set = {names, 3};
    policy_session stored = {SQL_CS_UTF8, SQL_FLAVOR_MYSQL, NULL, &set};
    CHECK(!sqlpolicy_check("SELECT CONCAT('a', 'b')", 23, NULL, &stored, &v));
    CHECK_STR(v.what, "function CONCAT() (a stored function of that name exists)");
    CHECK(!sqlpolicy_check("SELECT regexp_like(a, 'x') FROM t", 33, NULL, &stored, &v));
    CHECK(sqlpolicy_check("SELECT LOWER('a')", 17, NULL, &stored, &v));
}

/* The credential-store rule of writable sessions. */
static void test_secrets_for_writers(void)
{
    policy_verdict v;
    policy_session utf8 = {SQL_CS_UTF8, SQL_FLAVOR_MARIADB, "shop", NULL};
    policy_session gbk = {SQL_CS_UNSUPPORTED, SQL_FLAVOR_MARIADB, "shop", NULL};
    policy_session in_mysql = {SQL_CS_UTF8, SQL_FLAVOR_MARIADB, "mysql", NULL};
    static const char *const writes[] = {
        "DELETE FROM t", "UPDATE users SET a = 1", "CREATE TABLE users (id INT)",
        "INSERT INTO t VALUES ('mysql.user')", "SELECT 'a", "SELECT * FROM user",
        "CALL p()", "SET GLOBAL x = 1"};
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        if (!sqlpolicy_check_secrets(writes[i], strlen(writes[i]), NULL, &utf8, &v)) {
            unit_failed++;
            fprintf(stderr, "writer refused: %s: %s\n", writes[i], v.what);
        } else {
            unit_passed++;
        }
    }
    CHECK(sqlpolicy_check_secrets("CREATE TABLE users (id INT)", 27, NULL, &gbk, &v));
    static const char *const reads[] = {
        "SELECT * FROM mysql.user", "SHOW GRANTS", "SHOW CREATE USER root",
        "INSERT INTO t SELECT * FROM mysql.global_priv", "SELECT 1; USE mysql",
        /* the lexer stops at the ';' in the comment: MariaDB skips the comment and runs on */
        "/*!99999 ; */ SELECT * FROM mysql.user",
        "SELECT 'a; SELECT * FROM mysql.user"};
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        if (sqlpolicy_check_secrets(reads[i], strlen(reads[i]), NULL, &utf8, &v)) {
            unit_failed++;
            fprintf(stderr, "writer allowed: %s\n", reads[i]);
        } else {
            unit_passed++;
        }
    }
    /* gbk: 0xBF 0x5C is one character, so the backslash does not escape the quote. */
    const char *hidden = "SELECT '\xbf\\' , 1 FROM mysql.user -- '";
    CHECK(!sqlpolicy_check_secrets(hidden, strlen(hidden), NULL, &gbk, &v));
    sql_mode_flags oracle = {true, false, false, true};
    CHECK(!sqlpolicy_check_secrets("SELECT * FROM mysql.user", 24, &oracle, &utf8, &v));
    CHECK(sqlpolicy_check_secrets("SELECT 1", 8, &oracle, &utf8, &v));
    CHECK(!sqlpolicy_check_secrets("SELECT * FROM user", 18, NULL, &in_mysql, &v));
    CHECK(sqlpolicy_check_secrets("SELECT * FROM db", 16, NULL, &in_mysql, &v));

    /* A statement of more than 2^20 tokens (a writer's bulk INSERT): the check's memory stays
     * bounded; a reader's is refused, a writer's bytes are looked at. */
    size_t rows = 600000, cap = 64 + rows * 4 + 64;
    char *bulk = malloc(cap);
    CHECK(bulk != NULL);
    if (!bulk)
        return;
    size_t o = (size_t)snprintf(bulk, cap, "INSERT INTO t VALUES ");
    for (size_t i = 0; i < rows; i++) {
        memcpy(bulk + o, i ? ",(1)" : "(1)", i ? 4 : 3);
        o += i ? 4 : 3;
    }
    CHECK(sqlpolicy_check_secrets(bulk, o, NULL, &utf8, &v));
    CHECK(!sqlpolicy_check(bulk, o, NULL, &utf8, &v));
    CHECK_STR(v.what, "statement of more than 1048576 tokens");
    o += (size_t)snprintf(bulk + o, cap - o, ",((SELECT 1 FROM mysql.user))");
    CHECK(!sqlpolicy_check_secrets(bulk, o, NULL, &utf8, &v));
    free(bulk);
}

static void test_lexer(void)
{
    struct {
        const char *sql;
        sql_token_kind kinds[8];
    } cases[] = {
        {"SELECT `a``b`, 'x''y', \"z\"",
         {SQLTOK_WORD, SQLTOK_QIDENT, SQLTOK_PUNCT, SQLTOK_STRING, SQLTOK_PUNCT, SQLTOK_STRING,
          SQLTOK_END}},
        {"x'4F' N'a' _utf8mb4'b'",
         {SQLTOK_WORD, SQLTOK_STRING, SQLTOK_WORD, SQLTOK_STRING, SQLTOK_WORD, SQLTOK_STRING,
          SQLTOK_END}},
        {"1e5 .5 0x1F 1abc 1e",
         {SQLTOK_NUMBER, SQLTOK_NUMBER, SQLTOK_NUMBER, SQLTOK_WORD, SQLTOK_WORD, SQLTOK_END}},
        {"@a @@b @'c' @",
         {SQLTOK_USERVAR, SQLTOK_SYSVAR, SQLTOK_WORD, SQLTOK_USERVAR, SQLTOK_USERVAR, SQLTOK_END}},
        {"a := 1; #c\n--\tc\n/* c */ -- ",
         {SQLTOK_WORD, SQLTOK_PUNCT, SQLTOK_NUMBER, SQLTOK_SEMICOLON, SQLTOK_END}},
        {"1--1", {SQLTOK_NUMBER, SQLTOK_PUNCT, SQLTOK_PUNCT, SQLTOK_NUMBER, SQLTOK_END}},
        {"/*!50000 a */ b /*M!100100 c*/", {SQLTOK_WORD, SQLTOK_WORD, SQLTOK_WORD, SQLTOK_END}},
        {"t.1e5 t . 5",
         {SQLTOK_WORD, SQLTOK_PUNCT, SQLTOK_WORD, SQLTOK_WORD, SQLTOK_PUNCT, SQLTOK_NUMBER,
          SQLTOK_END}},
        {"'abc", {SQLTOK_ERROR}},
        {"/* abc", {SQLTOK_ERROR}},
        {"/*!50000 abc", {SQLTOK_WORD, SQLTOK_ERROR}},
        {"1.5e-", {SQLTOK_ERROR}},
        {"a\xa0"
         "b",
         {SQLTOK_WORD, SQLTOK_ERROR}},
        {"a\xff", {SQLTOK_WORD, SQLTOK_ERROR}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sql_lexer lx;
        sqllex_init(&lx, cases[c].sql, strlen(cases[c].sql), NULL);
        for (int k = 0; k < 8; k++) {
            sql_token t = sqllex_next(&lx);
            if (t.kind != cases[c].kinds[k]) {
                unit_failed++;
                fprintf(stderr, "lexer case %zu token %d: kind %d, want %d\n", c, k, t.kind,
                        cases[c].kinds[k]);
                break;
            }
            unit_passed++;
            if (t.kind == SQLTOK_END || t.kind == SQLTOK_ERROR) {
                CHECK(sqllex_next(&lx).kind == t.kind);
                break;
            }
        }
    }
    sql_lexer lx;
    /* Comments some servers skip mark their tokens; versions below 50700 run everywhere. */
    const char *conds = "/*!40101 a */ /*!50700 b */ /*M! c d */ e /*!f*/ /*M!100100 g*/";
    unsigned want[] = {0, 1, 2, 2, 0, 0, 3};
    sqllex_init(&lx, conds, strlen(conds), NULL);
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        CHECK_INT(sqllex_next(&lx).cond, want[k]);
    CHECK(sqllex_next(&lx).kind == SQLTOK_END);
    sql_mode_flags ansi = {true, false, false, false};
    sqllex_init(&lx, "\"a\"", 3, &ansi);
    CHECK(sqllex_next(&lx).kind == SQLTOK_QIDENT);
    sqllex_init(&lx, "'abc", 4, NULL);
    sql_token t = sqllex_next(&lx);
    CHECK(t.kind == SQLTOK_ERROR);
    CHECK_STR(lx.error, "unterminated string");
}

/* The fixed transaction texts the checks allow without lexing: the lexing check gives the
 * same verdict for each, in every case, every sql_mode flag combination (both quoting flags
 * and unknown / unreadable, where the shortcut must not apply: ORACLE reads BEGIN as a
 * block) and every character set, supported or not; and texts that only look like them
 * are not taken for them. */
static void test_fixed_texts(void)
{
    static const char *const texts[] = {
        "BEGIN", "begin", "Begin Work", "START TRANSACTION", "start transaction read only",
        "COMMIT", "commit work", "ROLLBACK", "RollBack WORK",
        /* near misses: lexed as before */
        "BEGIN ", " BEGIN", "BEGIN  WORK", "BEGIN\tWORK", "BEGINWORK", "COMMIT;",
        "START TRANSACTION READ WRITE", "COMMIT AND CHAIN", "ROLLBACK TO x", "BEGI", "COMMITS",
        "START TRANSACTION READ ONLY ", "START TRANSACTION, READ ONLY", "BEGIN -- x",
    };
    static const sql_charset css[] = {SQL_CS_UNSUPPORTED, SQL_CS_UTF8, SQL_CS_LATIN1,
                                      SQL_CS_ASCII, SQL_CS_BINARY};
    CHECK(sqlpolicy_fixed_text("BEGIN", 5) == STMT_BEGIN);
    CHECK(sqlpolicy_fixed_text("start transaction read only", 27) == STMT_BEGIN);
    CHECK(sqlpolicy_fixed_text("Commit Work", 11) == STMT_COMMIT);
    CHECK(sqlpolicy_fixed_text("rollback", 8) == STMT_ROLLBACK);
    CHECK(sqlpolicy_fixed_text("BEGIN\0", 6) == STMT_OTHER);
    CHECK(sqlpolicy_fixed_text("BEGIN ", 6) == STMT_OTHER);
    CHECK(sqlpolicy_fixed_text("BEG\x09N", 5) == STMT_OTHER);
    CHECK(sqlpolicy_fixed_text("START TRANSACTION READ WRITE", 28) == STMT_OTHER);
    CHECK(sqlpolicy_fixed_text("COMMIT\x0b", 7) == STMT_OTHER);
    CHECK(sqlpolicy_fixed_text(NULL, 0) == STMT_OTHER);
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        size_t len = strlen(texts[t]);
        for (int m = 0; m < 16; m++) {
            sql_mode_flags mode = {(m & 1) != 0, (m & 2) != 0, (m & 4) != 0, (m & 8) != 0};
            for (size_t k = 0; k < sizeof css / sizeof css[0]; k++) {
                policy_session ps = {css[k], SQL_FLAVOR_UNKNOWN, NULL, NULL};
                for (int classify = 0; classify < 2; classify++) {
                    policy_verdict fast, slow;
                    bool a = classify ? sqlpolicy_check(texts[t], len, &mode, &ps, &fast)
                                      : sqlpolicy_check_secrets(texts[t], len, &mode, &ps, &fast);
                    bool b = sqlpolicy_check_lexed(texts[t], len, &mode, &ps, classify, &slow);
                    CHECK(a == b);
                    CHECK(fast.allowed == slow.allowed);
                    CHECK_INT(fast.n_statements, slow.n_statements);
                    if (classify)
                        CHECK_INT(fast.first_kind, slow.first_kind);
                    CHECK(fast.charset_set == slow.charset_set);
                    CHECK_INT(fast.charset_after, slow.charset_after);
                    CHECK_STR(fast.what, slow.what);
                    if (a != b)
                        fprintf(stderr, "fixed text '%s' mode %d cs %d classify %d\n",
                                texts[t], m, (int)css[k], classify);
                }
            }
        }
    }
    /* The rules that refuse them still do. */
    sql_mode_flags oracle = {false, false, false, true};
    policy_verdict v;
    CHECK(!sqlpolicy_check_readonly("BEGIN", 5, &oracle, &v));
    policy_session gbk = {SQL_CS_UNSUPPORTED, SQL_FLAVOR_UNKNOWN, NULL, NULL};
    CHECK(!sqlpolicy_check("COMMIT", 6, NULL, &gbk, &v));
    CHECK(!sqlpolicy_check_readonly("START TRANSACTION READ WRITE", 28, NULL, &v));
}

int main(void)
{
    int cases = run_table(CASES_FILE);
    if (cases < 0) {
        fprintf(stderr, "cannot open %s (run from the repository root)\n", CASES_FILE);
        unit_failed++;
    }
    int corpus = run_table(CORPUS_FILE);
    if (corpus < 0) {
        fprintf(stderr, "cannot open %s: the shared corpus must sit beside the repository\n",
                CORPUS_FILE);
        unit_failed++;
    }
    fprintf(stderr, "sqlpolicy: %d case rows, %d corpus rows\n", cases, corpus);
    test_verdict_fields();
    test_long_statements();
    test_track_sql_mode();
    test_mode_changes_reading();
    test_charsets();
    test_charset_bytes();
    test_charset_policy();
    test_function_table();
    test_function_flavors();
    test_secrets_for_writers();
    test_lexer();
    test_fixed_texts();
    return unit_report("sqlpolicy");
}
