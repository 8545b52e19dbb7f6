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

static bool parse_flags(const char *f, sql_mode_flags *m)
{
    memset(m, 0, sizeof *m);
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
        long len = fields[1] ? unescape(fields[1]) : -1;
        if ((!want_allow && strcmp(fields[0], "refuse") != 0) || len < 0 ||
            !parse_flags(fields[2] ? fields[2] : "", &mode)) {
            unit_failed++;
            fprintf(stderr, "%s:%d: malformed row\n", path, lineno);
            continue;
        }
        rows++;
        policy_verdict v;
        bool allowed = sqlpolicy_check_readonly(fields[1], (size_t)len, &mode, &v);
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
    const char *unsafe[] = {"gbk",
                            "GBK",
                            "big5",
                            "sjis",
                            "cp932",
                            "gb18030",
                            "gbk_chinese_ci",
                            "big5_bin",
                            "sjis_japanese_ci",
                            "cp932_bin",
                            "gb18030_unicode_520_ci",
                            "GBK_BIN",
                            NULL,
                            "gbk_chinese_nopad_ci"};
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++)
        CHECK(sqlpolicy_charset_unsafe(unsafe[i]));
    const char *safe[] = {"utf8mb4",
                          "utf8",
                          "utf8mb3",
                          "latin1",
                          "binary",
                          "ascii",
                          "gb2312",
                          "euckr",
                          "ujis",
                          "eucjpms",
                          "utf8mb4_general_ci",
                          "gbkx",
                          "big",
                          "sjisx_ci",
                          "cp1251",
                          ""};
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        CHECK(!sqlpolicy_charset_unsafe(safe[i]));

    unsigned bad_ids[] = {1, 13, 28, 84, 87, 88, 95, 96, 248, 249, 250, 1025, 1052, 1111};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++)
        CHECK(sqlpolicy_collation_unsafe(bad_ids[i]));
    unsigned good_ids[] = {0, 8, 33, 45, 46, 63, 83, 192, 224, 255, 2048, 24, 86};
    for (size_t i = 0; i < sizeof good_ids / sizeof good_ids[0]; i++)
        CHECK(!sqlpolicy_collation_unsafe(good_ids[i]));
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
        "UTC_TIMESTAMP", "UUID", "VALUES", "VERSION", "VEC_TOTEXT", "WEEK", "X", "Y", "YEAR",
        "YEARWEEK"};
    /* clang-format on */
    policy_verdict v;
    char sql[96];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(sql, sizeof sql, "SELECT %s()", names[i]);
        if (!check(sql, NULL, &v)) {
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
    test_function_table();
    test_lexer();
    return unit_report("sqlpolicy");
}
