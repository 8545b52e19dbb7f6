/* test_rewrite.c: transaction statements (txn_classify, txn_words_kind) and `db@env` schema
 * names in SQL text (rewrite_schema_names). */
#include "rewrite.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static const char *const env_names[] = {"dev", "prod", "qa-1"};
static const rewrite_envs envs = {env_names, 3};

static txn_kind kind(const char *s)
{
    sql_mode_flags m = {0};
    return txn_classify(s, strlen(s), &m);
}

static void test_txn_classify(void)
{
    CHECK_INT(kind("BEGIN"), TXN_BEGIN);
    CHECK_INT(kind("begin work;"), TXN_BEGIN);
    CHECK_INT(kind("START TRANSACTION"), TXN_BEGIN);
    CHECK_INT(kind("START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */"), TXN_BEGIN);
    CHECK_INT(kind("start transaction read only"), TXN_BEGIN);
    CHECK_INT(kind("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"), TXN_BEGIN);
    CHECK_INT(kind("START TRANSACTION, READ ONLY"), TXN_DATA);
    CHECK_INT(kind("START TRANSACTION READ ONLY,"), TXN_DATA);
    CHECK_INT(kind("BEGIN NOT ATOMIC SELECT 1; END"), TXN_DATA);
    CHECK_INT(kind("BEGIN; SELECT * FROM t"), TXN_DATA);
    CHECK_INT(kind("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"), TXN_SET_NEXT);
    CHECK_INT(kind("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"), TXN_NO_DATA);
    CHECK_INT(kind("COMMIT"), TXN_END);
    CHECK_INT(kind("rollback work"), TXN_END);
    CHECK_INT(kind("ROLLBACK TO SAVEPOINT sp"), TXN_DATA);
    CHECK_INT(kind("COMMIT AND CHAIN"), TXN_DATA);
    CHECK_INT(kind("SET NAMES utf8mb4"), TXN_NO_DATA);
    CHECK_INT(kind("SET @x = (SELECT COUNT(*) FROM orders)"), TXN_DATA);
    CHECK_INT(kind("UNLOCK TABLES"), TXN_NO_DATA);
    CHECK_INT(kind("SHOW VARIABLES LIKE 'x'"), TXN_NO_DATA);
    /* The binary log position of a consistent snapshot is read inside the transaction. */
    CHECK_INT(kind("SHOW STATUS LIKE 'binlog_snapshot_%'"), TXN_READ);
    CHECK_INT(kind("show global status like 'Binlog_snapshot_position'"), TXN_READ);
    CHECK_INT(kind("SHOW SESSION STATUS"), TXN_READ);
    CHECK_INT(kind("SHOW SLAVE STATUS"), TXN_NO_DATA);
    CHECK_INT(kind("SHOW TABLE STATUS LIKE 't'"), TXN_NO_DATA);
    CHECK_INT(kind("SELECT @@version, DATABASE()"), TXN_NO_DATA);
    CHECK_INT(kind("SELECT 1 FROM DUAL"), TXN_READ);
    CHECK_INT(kind("SELECT (SELECT MAX(id) FROM orders)"), TXN_READ);
    CHECK_INT(kind("WITH t AS (SELECT 1 FROM orders) SELECT * FROM t"), TXN_READ);
    CHECK_INT(kind("SELECT * FROM orders FOR UPDATE"), TXN_DATA);
    CHECK_INT(kind("SELECT * FROM orders LOCK IN SHARE MODE"), TXN_DATA);
    CHECK_INT(kind("SELECT id INTO @x FROM orders"), TXN_DATA);
    CHECK_INT(kind("SAVEPOINT sp"), TXN_DATA);
    CHECK_INT(kind("INSERT INTO t VALUES (1)"), TXN_DATA);
    CHECK_INT(kind("SELECT 'unterminated"), TXN_DATA);
    CHECK_INT(kind(""), TXN_NO_DATA);
}

/* Rewrites s; returns the rc and fills got (cap 1024) with the new text (or ""). */
static int rw_in(sql_mode_flags m, const char *s, char *got, char *env, char *db)
{
    char *out = NULL, err[256];
    size_t n = 0;
    env[0] = db[0] = got[0] = '\0';
    int rc = rewrite_schema_names(s, strlen(s), &m, &envs, &out, &n, env, db, err, sizeof(err));
    if (rc == 1) {
        memcpy(got, out, n);
        got[n] = '\0';
    } else if (rc < 0) {
        snprintf(got, 1024, "ERR %s", err);
    }
    free(out);
    return rc;
}

static int rw(const char *s, char *got, char *env, char *db)
{
    sql_mode_flags m = {0};
    return rw_in(m, s, got, env, db);
}

#define EXPECT_RW(in, want, want_env, want_db)                                                    \
    do {                                                                                          \
        char got_[1024], env_[ROUTE_NAME_MAX + 1], db_[ROUTE_NAME_MAX + 1];                       \
        CHECK_INT(rw(in, got_, env_, db_), 1);                                                    \
        CHECK_STR(got_, want);                                                                    \
        CHECK_STR(env_, want_env);                                                                \
        CHECK_STR(db_, want_db);                                                                  \
    } while (0)

#define EXPECT_SAME(in)                                                                           \
    do {                                                                                          \
        char got_[1024], env_[ROUTE_NAME_MAX + 1], db_[ROUTE_NAME_MAX + 1];                       \
        CHECK_INT(rw(in, got_, env_, db_), 0);                                                    \
    } while (0)

static void test_rewrite(void)
{
    /* Identifiers used as schemas. */
    EXPECT_RW("SHOW TABLES FROM `shop@prod`", "SHOW TABLES FROM `shop`", "prod", "shop");
    EXPECT_RW("SHOW FULL TABLES IN `shop@prod` LIKE 'o%'", "SHOW FULL TABLES IN `shop` LIKE 'o%'",
              "prod", "shop");
    EXPECT_RW("SHOW COLUMNS FROM `shop@prod`.`orders`", "SHOW COLUMNS FROM `shop`.`orders`",
              "prod", "shop");
    EXPECT_RW("SHOW COLUMNS FROM orders FROM `shop@prod`", "SHOW COLUMNS FROM orders FROM `shop`",
              "prod", "shop");
    EXPECT_RW("SELECT * FROM `shop@prod`.orders o JOIN `shop@prod`.`customers` c ON 1",
              "SELECT * FROM `shop`.orders o JOIN `shop`.`customers` c ON 1", "prod", "shop");
    EXPECT_RW("SHOW CREATE DATABASE IF NOT EXISTS `shop@qa-1`",
              "SHOW CREATE DATABASE IF NOT EXISTS `shop`", "qa-1", "shop");
    EXPECT_RW("SELECT `shop@prod`.orders.id FROM `shop@prod`.orders",
              "SELECT `shop`.orders.id FROM `shop`.orders", "prod", "shop");
    /* String literals compared with schema columns. */
    EXPECT_RW("SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop@prod'",
              "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'", "prod",
              "shop");
    EXPECT_RW("select 1 from information_schema.tables t where t.`table_schema`='shop@dev'",
              "select 1 from information_schema.tables t where t.`table_schema`='shop'", "dev",
              "shop");
    EXPECT_RW("SELECT * FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'shop@prod'",
              "SELECT * FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'shop'", "prod",
              "shop");
    EXPECT_RW("SELECT * FROM x WHERE TABLE_SCHEMA IN ('shop@prod', 'billing@prod') AND a = 1",
              "SELECT * FROM x WHERE TABLE_SCHEMA IN ('shop', 'billing') AND a = 1", "prod",
              "shop");
    EXPECT_RW("SELECT * FROM x WHERE TABLE_SCHEMA NOT IN ('shop@prod')",
              "SELECT * FROM x WHERE TABLE_SCHEMA NOT IN ('shop')", "prod", "shop");
    EXPECT_RW("SELECT * FROM x WHERE 'shop@prod' = TABLE_SCHEMA",
              "SELECT * FROM x WHERE 'shop' = TABLE_SCHEMA", "prod", "shop");
    EXPECT_RW("SELECT * FROM x WHERE TABLE_SCHEMA <=> _utf8mb4'shop@prod'",
              "SELECT * FROM x WHERE TABLE_SCHEMA <=> _utf8mb4'shop'", "prod", "shop");
    EXPECT_RW("SELECT * FROM x WHERE TABLE_SCHEMA != 'shop@prod'",
              "SELECT * FROM x WHERE TABLE_SCHEMA != 'shop'", "prod", "shop");
    EXPECT_RW("SHOW FUNCTION STATUS WHERE Db = 'shop@prod'",
              "SHOW FUNCTION STATUS WHERE Db = 'shop'", "prod", "shop");
    /* Left alone: data, strings elsewhere, unknown environments, tables named with '@'. */
    EXPECT_SAME("SELECT * FROM customers WHERE email = 'x@prod'");
    EXPECT_SAME("SELECT * FROM customers WHERE email IN ('a@prod', 'b@dev')");
    EXPECT_SAME("SELECT * FROM x WHERE TABLE_SCHEMA IN (CONCAT('shop@prod'))");
    EXPECT_SAME("SELECT 'shop@prod'");
    EXPECT_SAME("SELECT * FROM x WHERE db = 'shop@prod'");
    EXPECT_SAME("SELECT * FROM x WHERE TABLE_SCHEMA = 'shop@staging'");
    EXPECT_SAME("SELECT * FROM `shop@prod`");
    EXPECT_SAME("SELECT * FROM shop.`orders@prod`");
    EXPECT_SAME("SELECT * FROM x WHERE TABLE_SCHEMA = '@prod'");
    EXPECT_SAME("SELECT @@version");
    EXPECT_SAME("SELECT * FROM t WHERE a = 'it''s' AND TABLE_SCHEMA = 'x");
    /* Two environments in one statement. */
    {
        char got[1024], env[ROUTE_NAME_MAX + 1], db[ROUTE_NAME_MAX + 1];
        CHECK_INT(rw("SELECT * FROM `shop@prod`.a JOIN `shop@dev`.b", got, env, db), -1);
        CHECK(strstr(got, "two environments") != NULL);
    }
    /* ANSI_QUOTES: "x" is an identifier, and a schema name as a backquoted one is. */
    {
        sql_mode_flags ansi = {.ansi_quotes = true};
        char got[1024], env[ROUTE_NAME_MAX + 1], db[ROUTE_NAME_MAX + 1];
        CHECK_INT(rw_in(ansi, "SHOW TABLES FROM \"shop@prod\"", got, env, db), 1);
        CHECK_STR(got, "SHOW TABLES FROM \"shop\"");
        CHECK_STR(env, "prod");
        CHECK_STR(db, "shop");
        CHECK_INT(rw_in(ansi, "SELECT * FROM \"shop@dev\".\"orders\" JOIN `shop@dev`.c", got,
                        env, db),
                  1);
        CHECK_STR(got, "SELECT * FROM \"shop\".\"orders\" JOIN `shop`.c");
        CHECK_STR(env, "dev");
        CHECK_INT(rw_in(ansi, "SHOW COLUMNS FROM orders IN \"shop@prod\"", got, env, db), 1);
        CHECK_STR(got, "SHOW COLUMNS FROM orders IN \"shop\"");
        CHECK_INT(rw_in(ansi, "SELECT 1 FROM information_schema.TABLES WHERE \"TABLE_SCHEMA\" = "
                              "'shop@prod'", got, env, db),
                  1);
        CHECK_STR(got, "SELECT 1 FROM information_schema.TABLES WHERE \"TABLE_SCHEMA\" = 'shop'");
        /* Not a schema: a column, a table. */
        CHECK_INT(rw_in(ansi, "SELECT \"shop@prod\" FROM t", got, env, db), 0);
        CHECK_INT(rw_in(ansi, "SELECT * FROM \"shop@prod\"", got, env, db), 0);
        CHECK_INT(rw_in(ansi, "SELECT * FROM x WHERE TABLE_SCHEMA = \"shop@prod\"", got, env, db),
                  0);
        CHECK_INT(rw_in(ansi, "SELECT * FROM \"shop@prod\".\"orders\" JOIN `shop@dev`.c", got,
                        env, db),
                  -1);
        /* Without ANSI_QUOTES "..." is a string: a schema only where a literal is. */
        CHECK_INT(rw("SELECT * FROM \"shop@prod\".orders", got, env, db), 0);
        CHECK_INT(rw("SELECT * FROM x WHERE TABLE_SCHEMA = \"shop@prod\"", got, env, db), 1);
        CHECK_STR(got, "SELECT * FROM x WHERE TABLE_SCHEMA = \"shop\"");
    }
}

static int schemata(const char *s, char *got)
{
    sql_mode_flags m = {0};
    char *out = NULL;
    size_t n = 0;
    got[0] = '\0';
    int rc = rewrite_schemata_virtual(s, strlen(s), &m, &out, &n);
    if (rc == 1) {
        memcpy(got, out, n);
        got[n] = '\0';
    }
    free(out);
    return rc;
}

#define VS "(SELECT * FROM information_schema.SCHEMATA UNION ALL SELECT 'def', '__compare', " \
           "'utf8mb4', 'utf8mb4_general_ci', NULL, '' UNION ALL SELECT 'def', '__envs', "   \
           "'utf8mb4', 'utf8mb4_general_ci', NULL, '' UNION ALL SELECT 'def', '__queries', " \
           "'utf8mb4', 'utf8mb4_general_ci', NULL, '')"

static void test_schemata_virtual(void)
{
    char got[4096];
    CHECK_INT(schemata("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA", got), 1);
    CHECK_STR(got, "SELECT SCHEMA_NAME FROM " VS " AS SCHEMATA");
    CHECK_INT(schemata("SELECT `SCHEMA_NAME` FROM `INFORMATION_SCHEMA`.`SCHEMATA`, (SELECT x "
                       "FROM INFORMATION_SCHEMA.SCHEMATA WHERE TRUE) t",
                       got),
              1);
    CHECK_STR(got, "SELECT `SCHEMA_NAME` FROM " VS " AS `SCHEMATA`, (SELECT x FROM " VS
                   " AS SCHEMATA WHERE TRUE) t");
    CHECK_INT(schemata("select s.schema_name from information_schema.schemata s", got), 1);
    CHECK_STR(got, "select s.schema_name from " VS " s");
    CHECK_INT(schemata("SELECT 1 FROM information_schema.SCHEMATA AS x JOIN y", got), 1);
    CHECK_STR(got, "SELECT 1 FROM " VS " AS x JOIN y");
    CHECK_INT(schemata("SELECT 1 FROM information_schema.SCHEMATA ORDER BY 1", got), 1);
    CHECK_STR(got, "SELECT 1 FROM " VS " AS SCHEMATA ORDER BY 1");
    /* Left alone. */
    CHECK_INT(schemata("SELECT information_schema.SCHEMATA.SCHEMA_NAME FROM "
                       "information_schema.SCHEMATA", got),
              0);
    CHECK_INT(schemata("SELECT 1 FROM information_schema.SCHEMATA USE INDEX (x)", got), 0);
    CHECK_INT(schemata("SELECT 1 FROM information_schema.TABLES", got), 0);
    CHECK_INT(schemata("SELECT 'information_schema.SCHEMATA'", got), 0);
    CHECK_INT(schemata("DELETE FROM t WHERE a IN (SELECT 1 FROM information_schema.SCHEMATA)",
                       got),
              0);
    CHECK_INT(schemata("SELECT 1 FROM information_schema.SCHEMATA; SELECT 2", got), 0);
    CHECK_INT(schemata("SELECT 1 /*!50700 FROM information_schema.SCHEMATA */", got), 0);
}

static int users(const char *s, char *got)
{
    sql_mode_flags m = {0};
    char *out = NULL;
    size_t n = 0;
    got[0] = '\0';
    int rc = rewrite_user_calls(s, strlen(s), &m, "al@1.2.3.4", "al@%", &out, &n);
    if (rc == 1) {
        memcpy(got, out, n);
        got[n] = '\0';
    }
    free(out);
    return rc;
}

#define EXPECT_USERS(in, want)                                                                    \
    do {                                                                                          \
        char got_[2048];                                                                          \
        CHECK_INT(users(in, got_), 1);                                                            \
        CHECK_STR(got_, want);                                                                    \
    } while (0)

#define EXPECT_NO_USERS(in)                                                                       \
    do {                                                                                          \
        char got_[2048];                                                                          \
        CHECK_INT(users(in, got_), 0);                                                            \
    } while (0)

static void test_user_calls(void)
{
    EXPECT_USERS("SELECT USER(), 1", "SELECT 'al@1.2.3.4' AS `USER()`, 1");
    EXPECT_USERS("select current_user, id from t", "select 'al@%' AS `current_user`, id from t");
    EXPECT_USERS("SELECT CURRENT_USER() AS me", "SELECT 'al@%' AS me");
    EXPECT_USERS("SELECT id FROM t WHERE owner = USER ( )",
                 "SELECT id FROM t WHERE owner = 'al@1.2.3.4'");
    EXPECT_USERS("SELECT SUBSTRING_INDEX(USER(), '@', 1), SESSION_USER(), SYSTEM_USER()",
                 "SELECT SUBSTRING_INDEX('al@1.2.3.4', '@', 1), 'al@1.2.3.4' AS `SESSION_USER()`, "
                 "'al@1.2.3.4' AS `SYSTEM_USER()`");
    EXPECT_USERS("INSERT INTO log (who) VALUES (USER())",
                 "INSERT INTO log (who) VALUES ('al@1.2.3.4')");
    EXPECT_USERS("SET @me = CURRENT_USER; SELECT x FROM (SELECT USER() FROM dual) d",
                 "SET @me = 'al@%'; SELECT x FROM (SELECT 'al@1.2.3.4' AS `USER()` FROM dual) d");
    EXPECT_USERS("SELECT USER() /* USER() */ -- CURRENT_USER\n",
                 "SELECT 'al@1.2.3.4' AS `USER()` /* USER() */ -- CURRENT_USER\n");
    /* Quotes, comments, names and account statements stay. */
    EXPECT_NO_USERS("SELECT 'USER()', `USER()`, \"CURRENT_USER\" FROM t");
    EXPECT_NO_USERS("SELECT user, host FROM mysql.user WHERE user = 'x'");
    EXPECT_NO_USERS("SELECT shop.user() FROM t");
    EXPECT_NO_USERS("INSERT INTO user () VALUES ()");
    EXPECT_NO_USERS("INSERT user () VALUES ()");
    EXPECT_NO_USERS("SELECT session_user (), system_user ()");
    EXPECT_NO_USERS("SELECT current_user.id FROM current_user");
    EXPECT_NO_USERS("SHOW GRANTS FOR CURRENT_USER");
    EXPECT_NO_USERS("SET PASSWORD FOR CURRENT_USER() = PASSWORD('x')");
    EXPECT_NO_USERS("GRANT SELECT ON *.* TO CURRENT_USER");
    EXPECT_NO_USERS("ALTER USER CURRENT_USER() IDENTIFIED BY 'x'");
    EXPECT_NO_USERS("CREATE DEFINER = CURRENT_USER VIEW v AS SELECT USER()");
    EXPECT_NO_USERS("CREATE PROCEDURE p() SELECT USER()");
    EXPECT_NO_USERS("CALL user()");
    EXPECT_NO_USERS("SELECT 'unterminated USER()");
    {
        /* Under ANSI_QUOTES "x" is a name; without it, a string: both stay. */
        sql_mode_flags ansi = {.ansi_quotes = true};
        const char *s = "SELECT \"USER\"() FROM t";
        char *out = NULL;
        size_t n;
        CHECK_INT(rewrite_user_calls(s, strlen(s), &ansi, "a@b", "a@%", &out, &n), 0);
        free(out);
        /* Values that would need quoting are refused. */
        s = "SELECT USER()";
        CHECK_INT(rewrite_user_calls(s, strlen(s), &ansi, "a'b", "a@%", &out, &n), 0);
        free(out);
    }
}

static void test_schemata_list(void)
{
#define SL(s) rewrite_is_schemata_list(s, strlen(s))
    CHECK(SL("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME"));
    CHECK(SL("select `SCHEMA_NAME` from `INFORMATION_SCHEMA`.`SCHEMATA`;"));
    CHECK(SL("SELECT schema_name FROM information_schema.schemata ORDER BY schema_name ASC"));
    CHECK(!SL("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME DESC"));
    CHECK(!SL("SELECT SCHEMA_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA"));
    CHECK(!SL("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'x'"));
    CHECK(!SL("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA; SELECT 1"));
    CHECK(!SL("SELECT SCHEMA_NAME FROM other.SCHEMATA"));
    CHECK(SL("SET STATEMENT max_statement_time=2 FOR SELECT SCHEMA_NAME FROM "
             "information_schema.SCHEMATA ORDER BY SCHEMA_NAME"));
    CHECK(!SL("SET STATEMENT max_statement_time=2 FOR SELECT 1"));
    CHECK(!SL("SET STATEMENT max_statement_time=2"));
#undef SL
}

static void test_load_local(void)
{
#define LL(s) rewrite_has_load_local(s, strlen(s))
    CHECK(LL("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t"));
    CHECK(LL("load data low_priority local infile 'x' into table t"));
    CHECK(LL("LOAD XML CONCURRENT LOCAL INFILE 'x' INTO TABLE t"));
    CHECK(LL("SELECT 1; LOAD DATA LOCAL INFILE 'x' INTO TABLE t"));
    CHECK(LL("/*!LOAD DATA LOCAL INFILE 'x' INTO TABLE t*/"));
    CHECK(!LL("SELECT 'unterminated"));
    CHECK(!LL("LOAD DATA INFILE '/tmp/x.csv' INTO TABLE t"));
    CHECK(!LL("SELECT 'LOAD DATA LOCAL INFILE'"));
    CHECK(!LL("SELECT local FROM t"));
    CHECK(LL("SELECT 1; LoAd DaTa LoCaL INFILE 'x' INTO TABLE t"));
    CHECK(LL(";;load data concurrent local infile 'x' into table t"));
    CHECK(LL("SELECT 1;;LOAD DATA LOCAL"));
    CHECK(LL("LOAD DATA LOCAL INFILE 'x' 'unterminated"));
    CHECK(!LL("LOAD"));
    CHECK(!LL("LOAD DATA"));
    CHECK(!LL("LOAD DATA;LOCAL INFILE 'x' INTO TABLE t"));
    CHECK(!LL("LOAD; DATA LOCAL INFILE 'x' INTO TABLE t"));
    CHECK(!LL("SELECT 1 LOAD DATA LOCAL"));
    CHECK(!LL("LOAD DATA LOW_PRIORITY CONCURRENT LOCAL INFILE 'x' INTO TABLE t"));
#undef LL
    /* Read to the end of a long text with a few tokens kept: a LOAD after a statement of
     * more tokens than the classifying limit is still found. */
    size_t n = 300000;
    char *text = malloc(n * 2 + 64);
    strcpy(text, "SELECT 1");
    for (size_t i = 0; i < n; i++)
        memcpy(text + 8 + i * 2, ",1", 2);
    strcpy(text + 8 + n * 2, "; LOAD DATA LOCAL INFILE 'x' INTO TABLE t");
    CHECK(rewrite_has_load_local(text, strlen(text)));
    text[8 + n * 2] = 0;
    CHECK(!rewrite_has_load_local(text, strlen(text)));
    free(text);
}

/* Statements of more tokens than kept: classified as data, left alone by the rewrites
 * (which never see all of them), never misread from their first tokens only. */
static void test_long_statements(void)
{
    size_t n = (1u << 20) + 10;
    char *text = malloc(n * 2 + 256);
    /* SELECT without FROM reads no data, but one of more than 65536 tokens is not read. */
    strcpy(text, "SELECT 1");
    size_t o = 8;
    for (size_t i = 0; i < 70000; i++, o += 2)
        memcpy(text + o, ",1", 2);
    text[o] = 0;
    CHECK_INT(kind(text), TXN_DATA);
    text[8 + 2 * 1000] = 0;
    CHECK_INT(kind(text), TXN_NO_DATA);
    /* A `db@env` name before more than a million tokens: the text is left as it is. */
    strcpy(text, "SELECT * FROM `shop@dev`.t WHERE 1 IN (1");
    o = strlen(text);
    for (size_t i = 0; i < n / 2; i++, o += 2)
        memcpy(text + o, ",1", 2);
    strcpy(text + o, ")");
    char *out;
    size_t out_len;
    char env[64], db[64], err[128];
    sql_mode_flags m = {0};
    CHECK_INT(rewrite_schema_names(text, strlen(text), &m, &envs, &out, &out_len, env, db, err,
                                   sizeof(err)),
              0);
    CHECK(out == NULL);
    /* The same with fewer tokens is rewritten. */
    strcpy(text + 40 + 2 * 1000, ")");
    CHECK_INT(rewrite_schema_names(text, strlen(text), &m, &envs, &out, &out_len, env, db, err,
                                   sizeof(err)),
              1);
    CHECK(out != NULL && strncmp(out, "SELECT * FROM `shop`.t WHERE", 28) == 0);
    free(out);
    free(text);
}

/* The file name read from the client's own statement, and the check of the backend's
 * request against it: a backend asking for any other file is refused. */
static void test_load_local_file(void)
{
    char name[64];
    size_t n;
#define LF(s) rewrite_load_local_file(s, strlen(s), name, sizeof(name), &n)
    CHECK_INT(LF("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t"), LL_FILE);
    CHECK_STR(name, "/tmp/x.csv");
    CHECK_INT((int)n, 10);
    CHECK_INT(LF("load data low_priority local infile 'a b.csv' into table t;"), LL_FILE);
    CHECK_STR(name, "a b.csv");
    CHECK_INT(LF("LOAD XML CONCURRENT LOCAL /* c */ INFILE 'x.xml' INTO TABLE t"), LL_FILE);
    CHECK_STR(name, "x.xml");
    CHECK_INT(LF("LOAD DATA LOCAL INFILE '\xc3\xa9.csv' INTO TABLE t"), LL_FILE);
    CHECK_STR(name, "\xc3\xa9.csv");
    /* Not such a statement. */
    CHECK_INT(LF("LOAD DATA INFILE '/tmp/x.csv' INTO TABLE t"), LL_NONE);
    CHECK_INT(LF("SELECT 'LOAD DATA LOCAL INFILE'"), LL_NONE);
    CHECK_INT(LF("SELECT 1"), LL_NONE);
    /* Such a statement whose file cannot be read for certain: refused. */
    CHECK_INT(LF("SELECT 1; LOAD DATA LOCAL INFILE 'x' INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE 'x' INTO TABLE t; SELECT 1"), LL_UNREADABLE);
    CHECK_INT(LF("/*!LOAD DATA LOCAL INFILE 'x' INTO TABLE t*/"), LL_FILE); /* every server */
    CHECK_INT(LF("/*!50700 LOAD DATA LOCAL INFILE 'x' INTO TABLE t*/"), LL_UNREADABLE);
    CHECK_INT(LF("/*M!LOAD DATA LOCAL INFILE 'x' INTO TABLE t*/"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE /*!50700 'y' */ 'x' INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE 'x' 'y' INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE _binary 'x' INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE \"x\" INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE 'a\\nb' INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE 'a''b' INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE '' INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE @f INTO TABLE t"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE"), LL_UNREADABLE);
    CHECK_INT(LF("LOAD DATA LOCAL INFILE '"
                 "0123456789012345678901234567890123456789012345678901234567890123' INTO TABLE t"),
              LL_UNREADABLE);
    CHECK_INT((int)n, 0);
    CHECK(rewrite_load_local_file("LOAD DATA LOCAL INFILE 'x\0y' INTO TABLE t", 41, name,
                                  sizeof(name), &n) == LL_UNREADABLE);
#undef LF

    /* The backend's request: 0xFB and exactly the same bytes. */
    static const uint8_t same[] = "\xFB/tmp/x.csv", other[] = "\xFB/etc/passwd",
                         longer[] = "\xFB/tmp/x.csv2", prefix[] = "\xFB/tmp/x.cs",
                         upper[] = "\xFB/TMP/X.CSV", nul[] = "\xFB/tmp/x.csv\0",
                         notreq[] = "\x00/tmp/x.csv";
    const char *want = "/tmp/x.csv";
#define RM(p, len) rewrite_infile_request_matches(want, strlen(want), p, len)
    CHECK(RM(same, sizeof(same) - 1));
    CHECK(!RM(other, sizeof(other) - 1));
    CHECK(!RM(longer, sizeof(longer) - 1));
    CHECK(!RM(prefix, sizeof(prefix) - 1));
    CHECK(!RM(upper, sizeof(upper) - 1));
    CHECK(!RM(nul, sizeof(nul) - 1));
    CHECK(!RM(notreq, sizeof(notreq) - 1));
    CHECK(!RM(same, 1));
    CHECK(!rewrite_infile_request_matches("", 0, same, 1));
#undef RM
}

static int words(const char *s)
{
    return txn_words_kind(s, strlen(s));
}

/* Transaction statements in plain words (stmt_local.c answers them by a short path): only
 * BEGIN / START TRANSACTION / COMMIT / ROLLBACK written in letters, blanks and commas, and
 * each reads the same in every sql_mode. */
static void test_txn_words(void)
{
    CHECK_INT(words("BEGIN"), TXN_BEGIN);
    CHECK_INT(words("begin work"), TXN_BEGIN);
    CHECK_INT(words(" START\tTRANSACTION\r\n"), TXN_BEGIN);
    CHECK_INT(words("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"), TXN_BEGIN);
    CHECK_INT(words("start transaction read write"), TXN_BEGIN);
    CHECK_INT(words("COMMIT"), TXN_END);
    CHECK_INT(words("Rollback Work"), TXN_END);
    /* Transaction statements, but not in plain words: the whole path reads them. */
    CHECK_INT(words("COMMIT;"), -1);
    CHECK_INT(words("/* env=prod */ COMMIT"), -1);
    CHECK_INT(words("BEGIN -- x\n"), -1);
    CHECK_INT(words("BEGIN # x"), -1);
    CHECK_INT(words("START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */"), -1);
    CHECK_INT(words("`COMMIT`"), -1);
    CHECK_INT(words("COMMIT\v"), -1);
    CHECK_INT(words("COMMIT\xC2\xA0"), -1);
    /* Plain words, not BEGIN or an end. */
    CHECK_INT(words("SET TRANSACTION READ ONLY"), -1);
    CHECK_INT(words("COMMIT AND CHAIN"), -1);
    CHECK_INT(words("ROLLBACK TO SAVEPOINT sp"), -1);
    CHECK_INT(words("BEGIN NOT ATOMIC"), -1);
    CHECK_INT(words("SELECT user FROM t"), -1);
    CHECK_INT(words("START TRANSACTION, READ ONLY"), -1);
    CHECK_INT(words(""), -1);
    static const char *const same[] = {"BEGIN", "begin work", "START TRANSACTION READ ONLY",
                                       "start transaction with consistent snapshot,\nread write",
                                       "COMMIT work", "ROLLBACK"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        int k = words(same[i]);
        CHECK(k == TXN_BEGIN || k == TXN_END);
        for (int m = 0; m < 8; m++) {
            sql_mode_flags mode = {m & 1, (m >> 1) & 1, (m >> 2) & 1, false};
            CHECK_INT(txn_classify(same[i], strlen(same[i]), &mode), k);
        }
    }
}

/* txn_may_be_control is false only where txn_classify finds no transaction statement, in
 * every sql_mode: texts that are control statements (any case, spaces, comments, a trailing
 * ';'), near misses, and random texts over an alphabet of their pieces. */
static bool is_control(txn_kind k)
{
    return k == TXN_BEGIN || k == TXN_SET_NEXT || k == TXN_END;
}

static void test_txn_may_be_control(void)
{
    static const char *const texts[] = {
        "BEGIN", "begin", " \t\r\nBEGIN WORK", "START TRANSACTION READ ONLY", "COMMIT;",
        "rollback work", "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "/* x */ COMMIT",
        "/*!BEGIN*/", "(COMMIT)", "`BEGIN`", "BEGIN/**/WORK", "COMMIT-- x\n", "BEGIN#\n",
        "SELECT 1", "SELECT c FROM t WHERE id=?", "BEGINS", "BEGIN1", "BEGIN_", "SETX", "\v BEGIN",
        "\f COMMIT", "\xc2\xa0" "COMMIT", "", " ", "SET @a = 1", "STARTTRANSACTION",
    };
    static const char *const modes[] = {"", "ANSI_QUOTES", "NO_BACKSLASH_ESCAPES"};
    int bad = 0;
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        sql_mode_flags mode = {0};
        mode.ansi_quotes = m == 1;
        mode.no_backslash_escapes = m == 2;
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
            size_t n = strlen(texts[i]);
            if (!txn_may_be_control(texts[i], n) && is_control(txn_classify(texts[i], n, &mode)))
                bad++;
        }
    }
    CHECK(bad == 0);
    CHECK(!txn_may_be_control("SELECT c FROM t WHERE id=?", 26)); /* the look is of use */
    CHECK(txn_may_be_control("COMMIT", 6));
    static const char *const pieces[] = {"BEGIN", "WORK",  "COMMIT", "START", "TRANSACTION",
                                         "SET",   "SELECT", " ",     "\t",    "\n", ";",
                                         "/*x*/", "--\n",   "#\n",    "(",     "`",  "_", "1"};
    enum { P = sizeof pieces / sizeof *pieces };
    unsigned seed = 7;
    char buf[256];
    bad = 0;
    for (int t = 0; t < 100000; t++) {
        size_t n = 0;
        int k = t % 5 + 1;
        for (int j = 0; j < k; j++) {
            seed = seed * 1103515245u + 12345u;
            const char *pc = pieces[(seed >> 16) % P];
            size_t l = strlen(pc);
            memcpy(buf + n, pc, l);
            n += l;
        }
        sql_mode_flags mode = {0};
        if (!txn_may_be_control(buf, n) && is_control(txn_classify(buf, n, &mode)))
            bad++;
    }
    CHECK(bad == 0);
}

int main(void)
{
    test_txn_may_be_control();
    test_txn_words();
    test_load_local();
    test_long_statements();
    test_load_local_file();
    test_schemata_list();
    test_schemata_virtual();
    test_user_calls();
    test_txn_classify();
    test_rewrite();
    return unit_report("test_rewrite");
}
