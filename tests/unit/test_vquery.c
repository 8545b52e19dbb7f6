/* test_vquery.c: the virtual-table SQL reader and evaluator: operators, NULLs, LIKE, ORDER BY,
 * LIMIT, COUNT, SHOW and DESCRIBE, __compare parameters, error kinds, and random inputs. */
#include "unit.h"
#include "vquery.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[512];
static int last_rc;
static char text[8192];

/* ---- fixtures --------------------------------------------------------------------------- */

/* A small __envs.environments with NULLs, mixed case, '_' and '%' in names, a backslash. */
static vq_table *make_envs(void)
{
    static const vq_column cols[] = {{"name", VQ_STRING},       {"status", VQ_STRING},
                                     {"latency_ms", VQ_INT},    {"pool_max", VQ_INT},
                                     {"last_error", VQ_STRING}, {"checked_at", VQ_DATETIME},
                                     {"score", VQ_DOUBLE}};
    static const struct {
        const char *name, *status;
        int64_t latency; /* -1: NULL */
        int64_t pool_max;
        const char *last_error, *checked_at;
        double score; /* < 0: NULL */
    } rows[] = {
        {"dev", "up", 3, 10, NULL, "2024-05-01 10:00:00", 0.5},
        {"sit", "up", 12, 5, NULL, "2024-05-01 10:00:05", 1.25},
        {"uat", "down", -1, 5, "timeout", "2024-04-30 23:59:59", -1},
        {"prod", "up", 7, 20, "", "2024-05-01 10:00:00", 2},
        {"Dev_2", "up", 3, 10, "x\\y", "2024-05-01 11:00:00", 0.5},
        {"qa%1", "up", 100, 1, NULL, NULL, 10},
    };
    vq_table *t = vq_table_new("__envs", "environments", cols, 7);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        long r = vq_table_add_row(t);
        size_t row = (size_t)r;
        vq_set_str(t, row, 0, rows[i].name);
        vq_set_str(t, row, 1, rows[i].status);
        if (rows[i].latency >= 0)
            vq_set_int(t, row, 2, rows[i].latency);
        vq_set_int(t, row, 3, rows[i].pool_max);
        vq_set_str(t, row, 4, rows[i].last_error);
        vq_set_str(t, row, 5, rows[i].checked_at);
        if (rows[i].score >= 0)
            vq_set_double(t, row, 6, rows[i].score);
    }
    return t;
}

/* What __compare.query might return for one comparison. */
static vq_table *make_compare(void)
{
    static const vq_column cols[] = {
        {"_diff", VQ_STRING}, {"_env", VQ_STRING}, {"id", VQ_INT}, {"status", VQ_STRING}};
    static const char *const rows[][4] = {{"only_left", "dev", "1", "new"},
                                          {"changed", "dev", "2", "paid"},
                                          {"changed", "prod", "2", "shipped"}};
    vq_table *t = vq_table_new("__compare", "query", cols, 4);
    for (size_t i = 0; i < 3; i++) {
        long r = vq_table_add_row(t);
        for (size_t c = 0; c < 4; c++)
            vq_set_str(t, (size_t)r, c, rows[i][c]);
    }
    return t;
}

static vq_table *envs;

/* Rows of a result as "a|b,c|d" (NULL as NULL). */
static const char *format_rows(const vq_result *r)
{
    size_t n = 0;
    text[0] = '\0';
    for (size_t row = 0; row < r->n_rows; row++) {
        for (size_t c = 0; c < r->n_columns && n < sizeof text; c++) {
            const vq_value *v = vq_result_value(r, row, c);
            const char *sep = c ? "|" : row ? "," : "";
            if (v->is_null)
                n += (size_t)snprintf(text + n, sizeof text - n, "%sNULL", sep);
            else
                n += (size_t)snprintf(text + n, sizeof text - n, "%s%.*s", sep, (int)v->len, v->s);
        }
    }
    return text;
}

static const char *format_headers(const vq_result *r)
{
    size_t n = 0;
    text[0] = '\0';
    for (size_t c = 0; c < r->n_columns && n < sizeof text; c++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s%s", c ? "|" : "", r->columns[c].name);
    return text;
}

/* Parses and runs sql over t: the rows as format_rows gives them, or "ERROR: <message>" with
 * last_rc set to the status. */
static const char *run_on(const vq_table *t, const char *sql)
{
    vq_query q;
    vq_result r;
    last_rc = vq_parse(sql, strlen(sql), &q, err, sizeof err);
    if (last_rc == VQ_OK) {
        last_rc = vq_execute(&q, t, &r, err, sizeof err);
        vq_query_free(&q);
        if (last_rc == VQ_OK) {
            format_rows(&r);
            vq_result_free(&r);
            return text;
        }
    }
    snprintf(text, sizeof text, "ERROR: %s", err);
    return text;
}

static const char *run(const char *sql)
{
    return run_on(envs, sql);
}

static void expect_rows(const char *sql, const char *want, int line)
{
    const char *got = run(sql);
    if (strcmp(got, want) == 0) {
        unit_passed++;
    } else {
        unit_failed++;
        fprintf(stderr, "%s:%d: %s\n    got  \"%s\"\n    want \"%s\"\n", __FILE__, line, sql, got,
                want);
    }
}

/* sql must fail with status want_rc and a message containing want_msg. */
static void expect_error(const char *sql, int want_rc, const char *want_msg, int line)
{
    run(sql);
    if (last_rc == want_rc && strstr(err, want_msg)) {
        unit_passed++;
    } else {
        unit_failed++;
        fprintf(stderr, "%s:%d: %s\n    got  %d \"%s\"\n    want %d \"...%s...\"\n", __FILE__, line,
                sql, last_rc, last_rc ? err : text, want_rc, want_msg);
    }
}

/* ---- table model ------------------------------------------------------------------------ */

static void test_table_model(void)
{
    static const vq_column cols[] = {{"s", VQ_STRING}, {"i", VQ_INT}, {"d", VQ_DOUBLE}};
    vq_table *t = vq_table_new(NULL, "t", cols, 3);
    CHECK(t != NULL);
    CHECK_STR(t->schema, "");
    CHECK_INT(vq_table_add_row(t), 0);
    CHECK_INT(vq_table_add_row(t), 1);
    for (int i = 0; i < 100; i++)
        vq_table_add_row(t);
    CHECK_INT(t->n_rows, 102);
    CHECK(vq_table_value(t, 101, 2)->is_null);
    CHECK(vq_table_value(t, 102, 0) == NULL);
    CHECK(vq_table_value(t, 0, 3) == NULL);
    CHECK_INT(vq_set_str(t, 102, 0, "x"), -1);
    CHECK_INT(vq_set_int(t, 0, 3, 1), -1);

    CHECK_INT(vq_set_str(t, 0, 0, "hello"), 0);
    CHECK_STR(vq_table_value(t, 0, 0)->s, "hello");
    CHECK_INT(vq_table_value(t, 0, 0)->len, 5);
    CHECK_INT(vq_set_strn(t, 0, 0, "abcdef", 3), 0);
    CHECK_STR(vq_table_value(t, 0, 0)->s, "abc");
    CHECK_INT(vq_set_str(t, 0, 1, " 42 "), 0);
    CHECK_INT(vq_table_value(t, 0, 1)->i, 42);
    CHECK_INT(vq_set_int(t, 1, 1, -9223372036854775807LL - 1), 0);
    CHECK_STR(vq_table_value(t, 1, 1)->s, "-9223372036854775808");
    CHECK_INT(vq_set_int(t, 1, 0, 7), 0); /* an int into a string column: its text */
    CHECK_STR(vq_table_value(t, 1, 0)->s, "7");

    static const struct {
        double v;
        const char *want;
    } doubles[] = {{0.1, "0.1"},
                   {2, "2"},
                   {-2.5, "-2.5"},
                   {1e20, "1e20"},
                   {1.5e-7, "1.5e-7"},
                   {123456.789, "123456.789"},
                   {1.0 / 3, "0.3333333333333333"}};
    for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++) {
        CHECK_INT(vq_set_double(t, 2, 2, doubles[i].v), 0);
        CHECK_STR(vq_table_value(t, 2, 2)->s, doubles[i].want);
        CHECK(vq_table_value(t, 2, 2)->d == doubles[i].v);
    }
    CHECK_INT(vq_set_double(t, 2, 2, NAN), 0);
    CHECK(vq_table_value(t, 2, 2)->is_null);
    CHECK_INT(vq_set_double(t, 2, 2, INFINITY), 0);
    CHECK(vq_table_value(t, 2, 2)->is_null);
    CHECK_INT(vq_set_str(t, 2, 0, NULL), 0);
    CHECK(vq_table_value(t, 2, 0)->is_null);
    CHECK_INT(vq_set_int(t, 2, 0, 1), 0);
    CHECK_INT(vq_set_null(t, 2, 0), 0);
    CHECK(vq_table_value(t, 2, 0)->is_null);
    vq_table_free(t);
    vq_table_free(NULL);

    t = vq_table_new("s", "empty", NULL, 0);
    CHECK(t != NULL);
    CHECK_INT(vq_table_add_row(t), 0);
    vq_table_free(t);
}

/* ---- WHERE ------------------------------------------------------------------------------ */

static const struct {
    const char *where;
    const char *want;
} where_cases[] = {
    /* equality and collation */
    {"name = 'dev'", "dev"},
    {"name = 'DEV'", "dev"},
    {"'dev' = name", "dev"},
    {"name = 'dev   '", "dev"},
    {"name <> 'dev'", "sit,uat,prod,Dev_2,qa%1"},
    {"name != 'dev'", "sit,uat,prod,Dev_2,qa%1"},
    {"name > 'q'", "sit,uat,qa%1"},
    {"`name` = 'dev'", "dev"},
    {"environments.name = 'dev'", "dev"},
    {"`__envs`.`environments`.`name` = 'dev'", "dev"},
    {"name = _utf8mb4'dev'", "dev"},
    {"name = _utf8mb4 'dev'", "dev"},
    {"name = N'dev'", "dev"},
    {"name = 'de' 'v'", "dev"},
    {"name = \"dev\"", "dev"},
    {"name = 'it''s'", ""},
    /* numbers */
    {"latency_ms < 7", "dev,Dev_2"},
    {"latency_ms <= 7", "dev,prod,Dev_2"},
    {"latency_ms > 7", "sit,qa%1"},
    {"latency_ms >= 12", "sit,qa%1"},
    {"7 > latency_ms", "dev,Dev_2"},
    {"12 <= latency_ms", "sit,qa%1"},
    {"latency_ms = 7.0", "prod"},
    {"latency_ms = 3.0e0", "dev,Dev_2"},
    {"latency_ms = -3", ""},
    {"-3 < latency_ms", "dev,sit,prod,Dev_2,qa%1"},
    {"latency_ms > - -3", "sit,prod,qa%1"},
    {"score = 0.5", "dev,Dev_2"},
    {"score > 1", "sit,prod,qa%1"},
    {"score < latency_ms", "dev,sit,prod,Dev_2,qa%1"},
    {"pool_max = latency_ms", ""},
    /* strings against numbers, as MySQL converts them */
    {"latency_ms = '3'", "dev,Dev_2"},
    {"latency_ms = ' 3abc'", "dev,Dev_2"},
    {"score = '1.25'", "sit"},
    {"name = 0", "dev,sit,uat,prod,Dev_2,qa%1"},
    {"name = 1", ""},
    {"pool_max IN (1, '5')", "sit,uat,qa%1"},
    {"latency_ms IN ('3', 'x')", "dev,Dev_2"},
    /* datetimes */
    {"checked_at > '2024-05-01'", "dev,sit,prod,Dev_2"},
    {"checked_at = '2024-05-01 10:00:00'", "dev,prod"},
    {"checked_at = '2024-05-01T10:00:00.000'", "dev,prod"},
    {"checked_at >= '2024-5-1 10:00:05'", "sit,Dev_2"},
    {"checked_at < 20240501", "uat"},
    {"checked_at = 20240501100000", "dev,prod"},
    {"checked_at > 20240501100004.5", "sit,Dev_2"},
    {"checked_at LIKE '2024-04%'", "uat"},
    /* IN */
    {"latency_ms IN (3, 12)", "dev,sit,Dev_2"},
    {"name IN ('dev', 'PROD')", "dev,prod"},
    {"name IN ('dev')", "dev"},
    {"name NOT IN ('dev', 'prod')", "sit,uat,Dev_2,qa%1"},
    {"latency_ms IN (3, NULL)", "dev,Dev_2"},
    {"latency_ms NOT IN (3, NULL)", ""},
    {"latency_ms NOT IN (3, 7)", "sit,qa%1"},
    /* NULL */
    {"last_error IS NULL", "dev,sit,qa%1"},
    {"last_error IS NOT NULL", "uat,prod,Dev_2"},
    {"last_error = NULL", ""},
    {"last_error <> NULL", ""},
    {"NOT (last_error = NULL)", ""},
    {"NULL = NULL", ""},
    {"NULL IS NULL", "dev,sit,uat,prod,Dev_2,qa%1"},
    {"last_error <=> NULL", "dev,sit,qa%1"},
    {"NOT last_error <=> NULL", "uat,prod,Dev_2"},
    {"last_error = 'timeout' OR last_error IS NULL", "dev,sit,uat,qa%1"},
    {"latency_ms IS TRUE", "dev,sit,prod,Dev_2,qa%1"},
    {"latency_ms IS NOT TRUE", "uat"},
    {"latency_ms IS UNKNOWN", "uat"},
    {"latency_ms IS FALSE", ""},
    /* LIKE */
    {"name LIKE 'd%'", "dev,Dev_2"},
    {"name LIKE 'D_V'", "dev"},
    {"name LIKE 'dev'", "dev"},
    {"name LIKE 'dev_'", ""},
    {"name LIKE 'dev_2'", "Dev_2"},
    {"name LIKE 'dev\\_2'", "Dev_2"},
    {"name LIKE 'dev\\_%'", "Dev_2"},
    {"name LIKE 'qa\\%1'", "qa%1"},
    {"name LIKE '%\\%%'", "qa%1"},
    {"name LIKE '%%'", "dev,sit,uat,prod,Dev_2,qa%1"},
    {"name LIKE '%v%'", "dev,Dev_2"},
    {"name LIKE '_%_'", "dev,sit,uat,prod,Dev_2,qa%1"},
    {"name LIKE '____'", "prod,qa%1"},
    {"name LIKE 'dev|_2' ESCAPE '|'", "Dev_2"},
    {"name LIKE 'dev\\_2' ESCAPE '|'", ""},
    {"name NOT LIKE '%e%'", "sit,uat,prod,qa%1"},
    {"last_error LIKE '%'", "uat,prod,Dev_2"},
    {"last_error NOT LIKE '%'", ""},
    {"last_error LIKE '%\\\\\\\\%'", "Dev_2"},
    {"last_error = 'x\\\\y'", "Dev_2"},
    {"latency_ms LIKE '1%'", "sit,qa%1"},
    /* BETWEEN */
    {"latency_ms BETWEEN 3 AND 7", "dev,prod,Dev_2"},
    {"latency_ms NOT BETWEEN 3 AND 7", "sit,qa%1"},
    {"latency_ms BETWEEN 3 AND 7 AND name <> 'dev'", "prod,Dev_2"},
    {"name BETWEEN 'a' AND 'e'", "dev,Dev_2"},
    /* precedence: NOT > AND > OR */
    {"name = 'dev' OR name = 'sit' AND status = 'down'", "dev"},
    {"(name = 'dev' OR name = 'sit') AND status = 'up'", "dev,sit"},
    {"NOT name = 'dev' AND status = 'up'", "sit,prod,Dev_2,qa%1"},
    {"NOT (name = 'dev' OR status = 'up')", "uat"},
    {"NOT NOT name = 'dev'", "dev"},
    {"name = 'dev' || name = 'uat'", "dev,uat"},
    {"status = 'up' && latency_ms > 5", "sit,prod,qa%1"},
    {"! (status = 'up')", "uat"},
    {"pool_max = 5 AND NOT status = 'down'", "sit"},
    {"latency_ms = 3 AND name = 'Dev_2'", "Dev_2"},
    {"'up' = status AND 'dev' <> name", "sit,prod,Dev_2,qa%1"},
    {"((((name = 'dev'))))", "dev"},
    {"name = 'dev' OR (status = 'down' AND (latency_ms IS NULL OR latency_ms > 1000))", "dev,uat"},
    {"status = 'up' AND (name = 'sit' OR name = 'prod') AND latency_ms > 10", "sit"},
    /* constants and truth values */
    {"1 = 1", "dev,sit,uat,prod,Dev_2,qa%1"},
    {"1 = 0", ""},
    {"TRUE", "dev,sit,uat,prod,Dev_2,qa%1"},
    {"FALSE", ""},
    {"0", ""},
    {"latency_ms", "dev,sit,prod,Dev_2,qa%1"},
    {"last_error", ""},
    {"NOT latency_ms", ""},
    /* comments and executable comments */
    {"name = 'dev' /* c */ -- x\n OR name = 'sit'", "dev,sit"},
    {"name = 'dev' # x\n OR name = 'sit'", "dev,sit"},
    {"name = /*!40101 'dev' */", "dev"},
    {"name = 'dev' /*M! OR name = 'sit' */", "dev,sit"},
};

static void test_where(void)
{
    char sql[512];
    for (size_t i = 0; i < sizeof where_cases / sizeof where_cases[0]; i++) {
        snprintf(sql, sizeof sql, "SELECT name FROM __envs.environments WHERE %s",
                 where_cases[i].where);
        expect_rows(sql, where_cases[i].want, __LINE__);
    }
    CHECK(vq_like("é", strlen("é"), "_", 1));
    CHECK(!vq_like("é", strlen("é"), "__", 2));
    CHECK(vq_like("aéb", strlen("aéb"), "a_b", 3));
    CHECK(vq_like("ABC", 3, "a%c", 3));
    CHECK(vq_like("a\\", 2, "a\\", 2));
    CHECK(!vq_like("ab", 2, "a", 1));
    CHECK(vq_like("", 0, "%", 1));
    CHECK(!vq_like("", 0, "_", 1));
    /* a pathological pattern stays fast */
    char s[2001], pat[64];
    memset(s, 'a', 2000);
    s[2000] = '\0';
    snprintf(pat, sizeof pat, "%%a%%a%%a%%a%%a%%a%%a%%b");
    CHECK(!vq_like(s, 2000, pat, strlen(pat)));
}

/* ---- select list, ORDER BY, LIMIT, COUNT ------------------------------------------------ */

static const struct {
    const char *sql;
    const char *want;
} select_cases[] = {
    {"SELECT name FROM __envs.environments ORDER BY latency_ms", "uat,dev,Dev_2,prod,sit,qa%1"},
    {"SELECT name FROM __envs.environments ORDER BY latency_ms DESC",
     "qa%1,sit,prod,dev,Dev_2,uat"},
    {"SELECT name FROM __envs.environments ORDER BY latency_ms ASC", "uat,dev,Dev_2,prod,sit,qa%1"},
    {"SELECT name FROM __envs.environments ORDER BY status DESC, name",
     "dev,Dev_2,prod,qa%1,sit,uat"},
    {"SELECT name FROM __envs.environments ORDER BY status, latency_ms DESC",
     "uat,qa%1,sit,prod,dev,Dev_2"},
    {"SELECT name FROM __envs.environments ORDER BY checked_at, name",
     "qa%1,uat,dev,prod,sit,Dev_2"},
    {"SELECT name FROM __envs.environments ORDER BY score DESC, name DESC",
     "qa%1,prod,sit,Dev_2,dev,uat"},
    {"SELECT name FROM __envs.environments ORDER BY `environments`.`name`",
     "dev,Dev_2,prod,qa%1,sit,uat"},
    {"SELECT name, pool_max FROM __envs.environments ORDER BY 2, 1",
     "qa%1|1,sit|5,uat|5,dev|10,Dev_2|10,prod|20"},
    {"SELECT name AS n, latency_ms l FROM __envs.environments ORDER BY l DESC, n LIMIT 3",
     "qa%1|100,sit|12,prod|7"},
    {"SELECT name FROM __envs.environments ORDER BY pool_max DESC LIMIT 1", "prod"},
    {"SELECT * FROM __envs.environments ORDER BY 3 DESC LIMIT 1", "qa%1|up|100|1|NULL|NULL|10"},
    /* LIMIT and OFFSET */
    {"SELECT name FROM __envs.environments LIMIT 2", "dev,sit"},
    {"SELECT name FROM __envs.environments LIMIT 2 OFFSET 1", "sit,uat"},
    {"SELECT name FROM __envs.environments LIMIT 1, 2", "sit,uat"},
    {"SELECT name FROM __envs.environments LIMIT 0", ""},
    {"SELECT name FROM __envs.environments LIMIT 10 OFFSET 5", "qa%1"},
    {"SELECT name FROM __envs.environments LIMIT 100, 5", ""},
    {"SELECT name FROM __envs.environments LIMIT 18446744073709551615",
     "dev,sit,uat,prod,Dev_2,qa%1"},
    {"SELECT name FROM __envs.environments LIMIT 99999999999999999999999 OFFSET 4", "Dev_2,qa%1"},
    {"SELECT name FROM __envs.environments WHERE status = 'up' ORDER BY name LIMIT 2", "dev,Dev_2"},
    /* COUNT */
    {"SELECT COUNT(*) FROM __envs.environments", "6"},
    {"select count(*) from __envs.environments where status = 'up'", "5"},
    {"SELECT COUNT(last_error) FROM __envs.environments", "3"},
    {"SELECT COUNT(1) FROM __envs.environments", "6"},
    {"SELECT COUNT(NULL) FROM __envs.environments", "0"},
    {"SELECT COUNT(*) FROM __envs.environments WHERE name = 'nobody'", "0"},
    {"SELECT COUNT(*) FROM __envs.environments LIMIT 0", ""},
    {"SELECT COUNT(*) FROM __envs.environments LIMIT 1 OFFSET 1", ""},
    {"SELECT COUNT(*) c FROM __envs.environments ORDER BY c LIMIT 5", "6"},
    {"SELECT COUNT(*), COUNT(latency_ms) FROM __envs.environments", "6|5"},
    /* the select list */
    {"SELECT * FROM __envs.environments LIMIT 1", "dev|up|3|10|NULL|2024-05-01 10:00:00|0.5"},
    {"SELECT e.* FROM __envs.environments AS e WHERE e.status = 'down'",
     "uat|down|NULL|5|timeout|2024-04-30 23:59:59|NULL"},
    {"SELECT status, name, status FROM __envs.environments LIMIT 1", "up|dev|up"},
    {"SELECT __envs.environments.name FROM __envs.environments LIMIT 1", "dev"},
    {"SELECT SQL_NO_CACHE name FROM __envs.environments LIMIT 1", "dev"},
    {"  select\n\tname\nfrom `__envs` . `environments` limit 1 ;  ", "dev"},
    {"SELECT name FROM __envs.environments LIMIT 1;;", "dev"},
    {"/* env=prod */ SELECT name FROM __envs.environments LIMIT 1", "dev"},
    {"SELECT name FROM environments LIMIT 1", "dev"},
};

static void test_select(void)
{
    for (size_t i = 0; i < sizeof select_cases / sizeof select_cases[0]; i++)
        expect_rows(select_cases[i].sql, select_cases[i].want, __LINE__);
}

static void test_result_columns(void)
{
    vq_query q;
    vq_result r;
    const char *sql = "SELECT NAME, `Status` AS s, e.pool_max, score 'the score' "
                      "FROM __envs.environments e LIMIT 1";
    CHECK_INT(vq_parse(sql, strlen(sql), &q, err, sizeof err), VQ_OK);
    CHECK_INT(vq_query_kind(&q), VQ_SELECT);
    CHECK_STR(vq_query_schema(&q), "__envs");
    CHECK_STR(vq_query_table(&q), "environments");
    CHECK_INT(vq_execute(&q, envs, &r, err, sizeof err), VQ_OK);
    vq_query_free(&q); /* the result does not need the query */
    CHECK_STR(format_headers(&r), "NAME|s|pool_max|the score");
    CHECK_STR(r.columns[0].org_name, "name");
    CHECK_STR(r.columns[1].org_name, "status");
    CHECK_INT(r.columns[2].type, VQ_INT);
    CHECK_INT(r.columns[3].type, VQ_DOUBLE);
    CHECK_STR(r.schema, "__envs");
    CHECK_STR(r.table, "environments");
    CHECK_STR(format_rows(&r), "dev|up|10|0.5");
    CHECK(vq_result_value(&r, 1, 0) == NULL);
    vq_result_free(&r);

    sql = "SELECT * FROM __envs.environments";
    CHECK_INT(vq_parse(sql, strlen(sql), &q, err, sizeof err), VQ_OK);
    CHECK_INT(vq_execute(&q, envs, &r, err, sizeof err), VQ_OK);
    CHECK_STR(format_headers(&r), "name|status|latency_ms|pool_max|last_error|checked_at|score");
    CHECK_INT(r.columns[5].type, VQ_DATETIME);
    CHECK_INT(r.n_rows, 6);
    vq_result_free(&r);
    vq_query_free(&q);

    sql = "SELECT environments.*, name FROM __envs.environments";
    CHECK_INT(vq_parse(sql, strlen(sql), &q, err, sizeof err), VQ_OK);
    CHECK_INT(vq_execute(&q, envs, &r, err, sizeof err), VQ_OK);
    CHECK_INT(r.n_columns, 8);
    vq_result_free(&r);
    vq_query_free(&q);

    static const struct {
        const char *sql, *header;
    } counts[] = {{"SELECT COUNT(*) FROM __envs.environments", "COUNT(*)"},
                  {"select count( * ) from __envs.environments", "count( * )"},
                  {"SELECT COUNT(*) AS n FROM __envs.environments", "n"},
                  {"SELECT COUNT(last_error) errors FROM __envs.environments", "errors"}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        CHECK_INT(vq_parse(counts[i].sql, strlen(counts[i].sql), &q, err, sizeof err), VQ_OK);
        CHECK_INT(vq_execute(&q, envs, &r, err, sizeof err), VQ_OK);
        CHECK_STR(format_headers(&r), counts[i].header);
        CHECK_INT(r.columns[0].type, VQ_INT);
        CHECK_STR(r.columns[0].org_name, "");
        CHECK_INT(r.n_rows, 1);
        CHECK(vq_result_value(&r, 0, 0)->i > 0);
        vq_result_free(&r);
        vq_query_free(&q);
    }

    /* A table with no rows. */
    static const vq_column one[] = {{"x", VQ_INT}};
    vq_table *empty = vq_table_new("__envs", "e", one, 1);
    CHECK_STR(run_on(empty, "SELECT * FROM __envs.e ORDER BY x LIMIT 3"), "");
    CHECK_STR(run_on(empty, "SELECT COUNT(*) FROM __envs.e"), "0");
    vq_table_free(empty);
}

/* ---- statement forms -------------------------------------------------------------------- */

static void test_parse_forms(void)
{
    static const struct {
        const char *sql;
        vq_kind kind;
        const char *schema, *table, *like;
        bool full;
    } cases[] = {
        {"SHOW TABLES", VQ_SHOW_TABLES, NULL, NULL, NULL, false},
        {"show tables;", VQ_SHOW_TABLES, NULL, NULL, NULL, false},
        {"SHOW TABLES FROM __envs", VQ_SHOW_TABLES, "__envs", NULL, NULL, false},
        {"SHOW TABLES IN `__compare`", VQ_SHOW_TABLES, "__compare", NULL, NULL, false},
        {"show full tables from `__envs` like 'e%'", VQ_SHOW_TABLES, "__envs", NULL, "e%", true},
        {"SHOW FULL TABLES WHERE Table_type = 'VIEW'", VQ_SHOW_TABLES, NULL, NULL, NULL, true},
        {"DESCRIBE __envs.environments", VQ_DESCRIBE, "__envs", "environments", NULL, false},
        {"DESC environments", VQ_DESCRIBE, NULL, "environments", NULL, false},
        {"desc `__envs`.`session` `user`", VQ_DESCRIBE, "__envs", "session", "user", false},
        {"EXPLAIN __envs.databases 'd%'", VQ_DESCRIBE, "__envs", "databases", "d%", false},
        {"SHOW COLUMNS FROM environments FROM __envs", VQ_SHOW_COLUMNS, "__envs", "environments",
         NULL, false},
        {"SHOW COLUMNS IN __envs.environments", VQ_SHOW_COLUMNS, "__envs", "environments", NULL,
         false},
        {"SHOW FULL FIELDS IN environments IN __envs LIKE 'p%'", VQ_SHOW_COLUMNS, "__envs",
         "environments", "p%", true},
        {"SHOW FULL COLUMNS FROM `environments` FROM `__envs`", VQ_SHOW_COLUMNS, "__envs",
         "environments", NULL, true},
        {"SHOW DATABASES", VQ_SHOW_DATABASES, NULL, NULL, NULL, false},
        {"SHOW SCHEMAS LIKE '\\_\\_%'", VQ_SHOW_DATABASES, NULL, NULL, "\\_\\_%", false},
        {"SELECT * FROM `__envs`.`environments`;", VQ_SELECT, "__envs", "environments", NULL,
         false},
        {"SELECT * FROM __ENVS.Environments", VQ_SELECT, "__ENVS", "Environments", NULL, false},
        {"SELECT * FROM session", VQ_SELECT, NULL, "session", NULL, false},
        {"/*!40101 SELECT */ * FROM __envs.session", VQ_SELECT, "__envs", "session", NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vq_query q;
        int rc = vq_parse(cases[i].sql, strlen(cases[i].sql), &q, err, sizeof err);
        if (rc != VQ_OK) {
            unit_failed++;
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, cases[i].sql, err);
            continue;
        }
        bool ok = q.kind == cases[i].kind && q.full == cases[i].full;
        ok &= cases[i].schema ? q.schema && strcmp(q.schema, cases[i].schema) == 0 : !q.schema;
        ok &= cases[i].table ? q.table && strcmp(q.table, cases[i].table) == 0 : !q.table;
        ok &= cases[i].like ? q.like && strcmp(q.like, cases[i].like) == 0 : !q.like;
        if (ok) {
            unit_passed++;
        } else {
            unit_failed++;
            fprintf(stderr, "%s:%d: %s: kind %d schema %s table %s like %s full %d\n", __FILE__,
                    __LINE__, cases[i].sql, q.kind, q.schema ? q.schema : "-",
                    q.table ? q.table : "-", q.like ? q.like : "-", q.full);
        }
        vq_query_free(&q);
    }
    vq_query_free(NULL);
}

/* ---- SHOW and DESCRIBE ------------------------------------------------------------------ */

/* Parses sql and answers it with the matching helper; "ERROR: ..." on failure. Headers of the
 * result are left in *headers (a copy). */
static const char *show(const char *sql, const char *current_db, char *headers, size_t hlen)
{
    static const char *const envs_tables[] = {"environments", "databases", "session"};
    static const char *const dbs[] = {"shop", "analytics", "__envs", "__compare"};
    vq_query q;
    vq_result r;
    headers[0] = '\0';
    last_rc = vq_parse(sql, strlen(sql), &q, err, sizeof err);
    if (last_rc != VQ_OK) {
        snprintf(text, sizeof text, "ERROR: %s", err);
        return text;
    }
    const char *schema = q.schema ? q.schema : current_db;
    switch (q.kind) {
    case VQ_SHOW_TABLES:
        last_rc = vq_show_tables(&q, schema, envs_tables, 3, &r, err, sizeof err);
        break;
    case VQ_SHOW_DATABASES:
        last_rc = vq_show_databases(&q, dbs, 4, &r, err, sizeof err);
        break;
    case VQ_DESCRIBE:
    case VQ_SHOW_COLUMNS:
        last_rc = vq_describe(&q, envs, &r, err, sizeof err);
        break;
    default:
        last_rc = vq_execute(&q, envs, &r, err, sizeof err);
        break;
    }
    vq_query_free(&q);
    if (last_rc != VQ_OK) {
        snprintf(text, sizeof text, "ERROR: %s", err);
        return text;
    }
    snprintf(headers, hlen, "%s", format_headers(&r));
    format_rows(&r);
    vq_result_free(&r);
    return text;
}

static void test_show_describe(void)
{
    char h[512];
    CHECK_STR(show("SHOW TABLES FROM __envs", NULL, h, sizeof h), "environments,databases,session");
    CHECK_STR(h, "Tables_in___envs");
    CHECK_STR(show("SHOW TABLES", "__envs", h, sizeof h), "environments,databases,session");
    CHECK_STR(h, "Tables_in___envs");
    CHECK_STR(show("SHOW FULL TABLES FROM __envs LIKE 'd%'", NULL, h, sizeof h),
              "databases|SYSTEM VIEW");
    CHECK_STR(h, "Tables_in___envs (d%)|Table_type");
    CHECK_STR(show("SHOW FULL TABLES IN __envs WHERE Table_type = 'SYSTEM VIEW' AND "
                   "Tables_in___envs <> 'session'",
                   NULL, h, sizeof h),
              "environments|SYSTEM VIEW,databases|SYSTEM VIEW");
    CHECK_STR(show("SHOW TABLES FROM __envs WHERE Table_type = 'x'", NULL, h, sizeof h),
              "ERROR: Unknown column 'Table_type' in 'where clause'");
    CHECK_INT(last_rc, VQ_ERR_NO_COLUMN);

    CHECK_STR(show("SHOW DATABASES", NULL, h, sizeof h), "shop,analytics,__envs,__compare");
    CHECK_STR(h, "Database");
    CHECK_STR(show("SHOW DATABASES LIKE '\\_\\_%'", NULL, h, sizeof h), "__envs,__compare");
    CHECK_STR(h, "Database (\\_\\_%)");
    CHECK_STR(show("SHOW SCHEMAS WHERE `Database` LIKE 's%'", NULL, h, sizeof h), "shop");

    CHECK_STR(show("DESCRIBE __envs.environments", NULL, h, sizeof h),
              "name|varchar(255)|YES||NULL|,status|varchar(255)|YES||NULL|,"
              "latency_ms|bigint|YES||NULL|,pool_max|bigint|YES||NULL|,"
              "last_error|varchar(255)|YES||NULL|,checked_at|datetime|YES||NULL|,"
              "score|double|YES||NULL|");
    CHECK_STR(h, "Field|Type|Null|Key|Default|Extra");
    CHECK_STR(show("SHOW FULL COLUMNS FROM environments FROM __envs LIKE '%e'", NULL, h, sizeof h),
              "name|varchar(255)|utf8mb4_general_ci|YES||NULL||select|,"
              "score|double|NULL|YES||NULL||select|");
    CHECK_STR(h, "Field|Type|Collation|Null|Key|Default|Extra|Privileges|Comment");
    CHECK_STR(show("SHOW COLUMNS FROM __envs.environments LIKE '%\\_ms'", NULL, h, sizeof h),
              "latency_ms|bigint|YES||NULL|");
    CHECK_STR(show("DESC __envs.environments status", NULL, h, sizeof h),
              "status|varchar(255)|YES||NULL|");
    CHECK_STR(
        show("SHOW COLUMNS FROM __envs.environments WHERE Type = 'bigint'", NULL, h, sizeof h),
        "latency_ms|bigint|YES||NULL|,pool_max|bigint|YES||NULL|");
    CHECK_STR(show("SHOW COLUMNS FROM __envs.environments WHERE Nope = 1", NULL, h, sizeof h),
              "ERROR: Unknown column 'Nope' in 'where clause'");

    /* A plain DESCRIBE without a parsed query. */
    vq_result r;
    CHECK_INT(vq_describe(NULL, envs, &r, err, sizeof err), VQ_OK);
    CHECK_INT(r.n_rows, 7);
    CHECK_INT(r.n_columns, 6);
    CHECK(vq_result_value(&r, 0, 4)->is_null);
    vq_result_free(&r);
    vq_result_free(NULL);

    /* vq_execute only runs SELECT. */
    vq_query q;
    CHECK_INT(vq_parse("SHOW TABLES", 11, &q, err, sizeof err), VQ_OK);
    CHECK_INT(vq_execute(&q, envs, &r, err, sizeof err), VQ_ERR_UNSUPPORTED);
    vq_query_free(&q);
}

/* ---- errors ----------------------------------------------------------------------------- */

#define E_SYN VQ_ERR_SYNTAX
#define E_UNS VQ_ERR_UNSUPPORTED
#define E_RO VQ_ERR_READONLY
#define E_TAB VQ_ERR_NO_TABLE
#define E_COL VQ_ERR_NO_COLUMN

static const struct {
    const char *sql;
    int rc;
    const char *msg;
} error_cases[] = {
    /* syntax */
    {"", E_SYN, "syntax error at the end of the statement: expected a statement"},
    {"SELECT name FROM", E_SYN,
     "envproxy: syntax error at the end of the statement: expected a "
     "table name"},
    {"SELECT name FROM __envs.environments WHERE name = = 'x'", E_SYN,
     "envproxy: syntax error near '= 'x'' at line 1: expected a column name or a value"},
    {"SELECT name\nFROM __envs.environments\nWHERE name ==", E_SYN, "near '=' at line 3"},
    {"SELECT name FROM __envs.environments WHERE", E_SYN, "end of the statement"},
    {"SELECT name FROM __envs.environments WHERE name = 'x", E_SYN, "unterminated string"},
    {"SELECT name FROM __envs.environments LIMIT -1", E_SYN, "a non-negative integer"},
    {"SELECT name FROM __envs.environments LIMIT 1.5", E_SYN, "a non-negative integer"},
    {"SELECT name FROM __envs.environments ORDER name", E_SYN, "BY after ORDER"},
    {"SELECT FROM __envs.environments", E_SYN, "a column name, * or COUNT(*)"},
    {"SELECT name, FROM __envs.environments", E_SYN, "a column name, * or COUNT(*)"},
    {"SELECT name FROM __envs.environments WHERE name IN ()", E_SYN, "a column name or a value"},
    {"SELECT name FROM __envs.environments WHERE name NOT 'x'", E_SYN,
     "near 'NOT 'x'' at line 1: expected the end of the statement"},
    {"SELECT name FROM __envs.environments WHERE name IS 'x'", E_SYN, "NULL, TRUE, FALSE"},
    {"SELECT name FROM __envs.environments WHERE (name = 'x'", E_SYN, "')'"},
    {"SELECT name FROM a.b.c", E_SYN, "fewer parts"},
    {"SELECT name FROM __envs.environments WHERE name LIKE 'x' ESCAPE 'ab'", E_SYN,
     "one-character string"},
    {"SELECT name FROM __envs.environments LIMIT 1 ORDER BY name", E_SYN,
     "near 'ORDER BY name' at line 1: expected the end of the statement"},
    {"SELECT name FROM __envs.environments x y", E_SYN, "the end of the statement"},
    {"SHOW TABLES LIKE", E_SYN, "a string after LIKE"},
    {"SHOW COLUMNS environments", E_SYN, "FROM or IN"},
    {"SELECT name FROM __envs.environments WHERE name < = 'x'", E_SYN, "a column name or a value"},
    /* unsupported */
    {"SELECT name FROM __envs.environments JOIN __envs.databases ON 1 = 1", E_UNS,
     "envproxy: __envs.environments supports SELECT with a column list, * or COUNT(*), WHERE "
     "with =, <>, <, >, <=, >=, IN, LIKE, IS [NOT] NULL, AND/OR/NOT and parentheses, ORDER BY "
     "and LIMIT; JOIN is not supported"},
    {"SELECT a.name FROM __envs.environments a, __envs.databases b", E_UNS, "JOIN is not"},
    {"SELECT * FROM environments LEFT JOIN databases USING (env)", E_UNS,
     "envproxy: environments supports SELECT"},
    {"SELECT NOW() FROM __envs.environments", E_UNS,
     "__envs.environments supports SELECT with a column list"},
    {"SELECT NOW() FROM __envs.environments", E_UNS, "the function NOW() is not supported"},
    {"SELECT name FROM __envs.environments WHERE LOWER(name) = 'dev'", E_UNS,
     "the function LOWER() is not supported"},
    {"SELECT status, COUNT(*) FROM __envs.environments GROUP BY status", E_UNS,
     "GROUP BY is not supported"},
    {"SELECT status, COUNT(*) FROM __envs.environments", E_UNS, "COUNT(*) together with columns"},
    {"SELECT name FROM __envs.environments WHERE name IN (SELECT env FROM __envs.databases)", E_UNS,
     "a subquery is not supported"},
    {"SELECT name FROM __envs.environments WHERE EXISTS (SELECT 1)", E_UNS, "a subquery"},
    {"SELECT name FROM __envs.environments WHERE name = (SELECT 1)", E_UNS, "a subquery"},
    {"SELECT name FROM __envs.environments WHERE latency_ms = ANY (SELECT 1)", E_UNS, "a subquery"},
    {"SELECT name FROM (SELECT 1) t", E_UNS, "a subquery in FROM"},
    {"SELECT name FROM __envs.environments WHERE latency_ms + 1 > 3", E_UNS,
     "arithmetic is not supported"},
    {"SELECT name FROM __envs.environments WHERE -latency_ms > 3", E_UNS, "arithmetic"},
    {"SELECT latency_ms * 2 FROM __envs.environments", E_UNS, "arithmetic"},
    {"SELECT DISTINCT name FROM __envs.environments", E_UNS, "DISTINCT is not supported"},
    {"SELECT COUNT(DISTINCT status) FROM __envs.environments", E_UNS, "COUNT(DISTINCT"},
    {"SELECT name FROM __envs.environments UNION SELECT env FROM __envs.databases", E_UNS,
     "UNION is not supported"},
    {"SELECT name FROM __envs.environments FOR UPDATE", E_UNS, "a locking read"},
    {"SELECT name FROM __envs.environments LOCK IN SHARE MODE", E_UNS, "a locking read"},
    {"SELECT name FROM __envs.environments HAVING name = 'x'", E_UNS, "HAVING"},
    {"SELECT name INTO @x FROM __envs.environments", E_UNS, "SELECT ... INTO"},
    {"SELECT 1 FROM __envs.environments", E_UNS, "a value in the select list"},
    {"SELECT 1", E_UNS, "envproxy: virtual tables support SELECT"},
    {"SELECT name", E_UNS, "a SELECT without FROM is not supported"},
    {"SELECT name FROM __envs.environments WHERE name = ?", E_UNS, "a placeholder (?)"},
    {"SELECT name FROM __envs.environments WHERE name = @x", E_UNS, "a variable"},
    {"SELECT name FROM __envs.environments WHERE name REGEXP 'd'", E_UNS, "REGEXP"},
    {"SELECT name FROM __envs.environments WHERE name = 'a' XOR name = 'b'", E_UNS, "XOR"},
    {"SELECT name FROM __envs.environments WHERE name = 'a' COLLATE utf8mb4_bin", E_UNS, "COLLATE"},
    {"SELECT name FROM __envs.environments WHERE (name, status) = ('a', 'b')", E_UNS,
     "a row constructor"},
    {"SELECT name FROM __envs.environments WHERE (name = 'a') = 1", E_UNS,
     "comparing a condition in parentheses"},
    {"SELECT name FROM __envs.environments WHERE name = 'a' = 1", E_UNS, "a chain of comparisons"},
    {"SELECT name FROM __envs.environments ORDER BY LENGTH(name)", E_UNS, "LENGTH()"},
    {"SELECT name FROM __envs.environments ORDER BY 'x'", E_UNS, "ORDER BY an expression"},
    {"SELECT name FROM __envs.environments USE INDEX (i)", E_UNS, "an index hint"},
    {"SELECT CASE WHEN 1 THEN 2 END FROM __envs.environments", E_UNS, "CASE"},
    {"SELECT name FROM __envs.environments; SELECT 1", E_UNS,
     "more than one statement in a query is not supported"},
    {"SHOW INDEX FROM __envs.environments", E_UNS,
     "envproxy: the virtual schemas __envs and __compare support SELECT, SHOW [FULL] TABLES, "
     "SHOW [FULL] COLUMNS, DESCRIBE and SHOW DATABASES; SHOW INDEX is not supported"},
    {"show create table __envs.environments", E_UNS, "SHOW CREATE is not supported"},
    {"SHOW TABLE STATUS FROM __envs", E_UNS, "SHOW TABLE is not supported"},
    {"EXPLAIN SELECT * FROM __envs.environments", E_UNS, "EXPLAIN of a statement"},
    {"USE __envs", E_UNS, "USE is not supported"},
    {"SET @x = (SELECT 1 FROM __envs.environments)", E_UNS, "SET is not supported"},
    {"WITH x AS (SELECT 1) SELECT * FROM __envs.environments", E_UNS, "WITH"},
    {"(SELECT name FROM __envs.environments)", E_UNS, "a statement in parentheses"},
    {"INSERT INTO shop.t SELECT * FROM __envs.environments", E_UNS,
     "writing to shop.t from a virtual table (INSERT) is not supported"},
    {"CREATE DATABASE shop", E_UNS, "writing to shop"},
    /* read only */
    {"INSERT INTO __envs.environments VALUES (1)", E_RO,
     "Table '__envs.environments' is read only"},
    {"insert into `__compare`.`query` (a) values (1)", E_RO,
     "Table '__compare.query' is read only"},
    {"INSERT IGNORE __envs.session SET user = 'x'", E_RO, "Table '__envs.session' is read only"},
    {"UPDATE __envs.environments SET name = 'x'", E_RO, "Table '__envs.environments' is read only"},
    {"UPDATE LOW_PRIORITY IGNORE __envs.environments SET name = 'x'", E_RO,
     "Table '__envs.environments' is read only"},
    {"DELETE FROM __envs.session", E_RO, "Table '__envs.session' is read only"},
    {"DELETE QUICK FROM __compare.schema WHERE 1", E_RO, "Table '__compare.schema' is read only"},
    {"REPLACE INTO __envs.databases VALUES (1, 2)", E_RO, "Table '__envs.databases' is read only"},
    {"TRUNCATE TABLE __envs.databases", E_RO, "Table '__envs.databases' is read only"},
    {"truncate __envs.databases", E_RO, "Table '__envs.databases' is read only"},
    {"DROP TABLE IF EXISTS __envs.environments", E_RO, "Table '__envs.environments' is read only"},
    {"DROP TEMPORARY TABLE __envs.environments", E_RO, "is read only"},
    {"ALTER TABLE __envs.environments ADD COLUMN c INT", E_RO,
     "Table '__envs.environments' is read only"},
    {"CREATE TABLE __envs.t (a INT)", E_RO, "Table '__envs.t' is read only"},
    {"CREATE OR REPLACE VIEW __envs.v AS SELECT 1", E_RO, "Table '__envs.v' is read only"},
    {"RENAME TABLE __envs.environments TO __envs.e2", E_RO, "Table '__envs.environments'"},
    {"LOAD DATA INFILE '/tmp/x' INTO TABLE __envs.environments", E_RO,
     "Table '__envs.environments' is read only"},
    {"DROP INDEX i ON __envs.environments", E_RO, "Table '__envs.environments' is read only"},
    {"DROP DATABASE __envs", E_RO, "Database '__envs' is read only"},
    {"CREATE DATABASE IF NOT EXISTS __compare", E_RO, "Database '__compare' is read only"},
    {"DROP SCHEMA `__envs`", E_RO, "Database '__envs' is read only"},
    {"DELETE FROM environments", E_RO, "Table 'environments' is read only"},
    {"UPDATE `environments` SET a = 1", E_RO, "Table 'environments' is read only"},
    /* unknown columns and tables, found when the query runs */
    {"SELECT nosuch FROM __envs.environments", E_COL, "Unknown column 'nosuch' in 'field list'"},
    {"SELECT name FROM __envs.environments WHERE nosuch = 1", E_COL,
     "Unknown column 'nosuch' in 'where clause'"},
    {"SELECT name FROM __envs.environments ORDER BY nosuch", E_COL,
     "Unknown column 'nosuch' in 'order clause'"},
    {"SELECT name FROM __envs.environments ORDER BY 9", E_COL,
     "Unknown column '9' in 'order clause'"},
    {"SELECT name FROM __envs.environments ORDER BY 2", E_COL, "Unknown column '2'"},
    {"SELECT name FROM __envs.environments ORDER BY 0", E_COL, "Unknown column '0'"},
    {"SELECT x.name FROM __envs.environments e", E_COL, "Unknown column 'x.name' in 'field list'"},
    {"SELECT environments.name FROM __envs.environments e", E_COL,
     "Unknown column 'environments.name'"},
    {"SELECT name FROM __envs.environments WHERE shop.environments.name = 'x'", E_COL,
     "Unknown column 'shop.environments.name' in 'where clause'"},
    {"SELECT name AS n FROM __envs.environments WHERE n = 'dev'", E_COL,
     "Unknown column 'n' in 'where clause'"},
    {"SELECT COUNT(nosuch) FROM __envs.environments", E_COL, "Unknown column 'nosuch'"},
    {"SELECT COUNT(*) FROM __envs.environments ORDER BY nosuch", E_COL, "'order clause'"},
    {"SELECT x.* FROM __envs.environments", E_TAB, "Unknown table 'x'"},
    {"SELECT environments.* FROM __envs.environments AS e", E_TAB, "Unknown table 'environments'"},
};

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++)
        expect_error(error_cases[i].sql, error_cases[i].rc, error_cases[i].msg, __LINE__);

    /* On error the query is left empty and needs no free; err is always set. */
    vq_query q;
    memset(&q, 0x5A, sizeof q);
    CHECK_INT(vq_parse("SELECT", 6, &q, err, sizeof err), VQ_ERR_SYNTAX);
    CHECK(q.sel == NULL && q.mem == NULL && q.table == NULL);
    CHECK(err[0] != '\0');
    CHECK_INT(vq_parse("SELECT", 6, &q, NULL, 0), VQ_ERR_SYNTAX);
    CHECK_INT(vq_parse(NULL, 0, &q, err, sizeof err), VQ_ERR_SYNTAX);
    char tiny[8];
    CHECK_INT(vq_parse("DELETE FROM __envs.environments", 31, &q, tiny, sizeof tiny),
              VQ_ERR_READONLY);
    CHECK_STR(tiny, "Table '");

    /* The text is read only as far as len. */
    CHECK_INT(vq_parse("SELECT name FROM __envs.environments garbage", 36, &q, err, sizeof err),
              VQ_OK);
    vq_query_free(&q);

    CHECK_INT(vq_error_no_table("__envs", "nope", err, sizeof err), VQ_ERR_NO_TABLE);
    CHECK_STR(err, "Table '__envs.nope' doesn't exist");
    CHECK_INT(vq_error_no_table(NULL, "nope", err, sizeof err), VQ_ERR_NO_TABLE);
    CHECK_STR(err, "Table 'nope' doesn't exist");

    CHECK_INT(vq_error_code(VQ_OK), 0);
    CHECK_INT(vq_error_code(VQ_ERR_SYNTAX), 1064);
    CHECK_INT(vq_error_code(VQ_ERR_UNSUPPORTED), 1235);
    CHECK_INT(vq_error_code(VQ_ERR_READONLY), 1036);
    CHECK_INT(vq_error_code(VQ_ERR_NO_TABLE), 1146);
    CHECK_INT(vq_error_code(VQ_ERR_NO_COLUMN), 1054);
    CHECK_INT(vq_error_code(VQ_ERR_PARAM), 1210);
    CHECK_INT(vq_error_code(VQ_ERR_NOMEM), 1037);
    CHECK_INT(vq_error_code(99), 1105);
    CHECK_STR(vq_error_sqlstate(VQ_ERR_SYNTAX), "42000");
    CHECK_STR(vq_error_sqlstate(VQ_ERR_UNSUPPORTED), "42000");
    CHECK_STR(vq_error_sqlstate(VQ_ERR_READONLY), "HY000");
    CHECK_STR(vq_error_sqlstate(VQ_ERR_NO_TABLE), "42S02");
    CHECK_STR(vq_error_sqlstate(VQ_ERR_NO_COLUMN), "42S22");
    CHECK_STR(vq_error_sqlstate(VQ_ERR_PARAM), "HY000");
}

/* Nesting is bounded: 64 levels read, more is an error, never a deep recursion. */
static void test_depth(void)
{
    static char sql[200000];
    for (int depth = 60; depth <= 70; depth += 10) {
        size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT name FROM __envs.environments WHERE ");
        for (int i = 0; i < depth; i++)
            sql[n++] = '(';
        n += (size_t)snprintf(sql + n, sizeof sql - n, "name = 'dev'");
        for (int i = 0; i < depth; i++)
            sql[n++] = ')';
        sql[n] = '\0';
        const char *got = run(sql);
        if (depth <= 64) {
            CHECK_STR(got, "dev");
        } else {
            CHECK_INT(last_rc, VQ_ERR_UNSUPPORTED);
            CHECK(strstr(err, "nesting more than 64 levels deep is not supported") != NULL);
        }
    }
    size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT name FROM __envs.environments WHERE ");
    for (int i = 0; i < 60000; i++)
        sql[n++] = '(';
    sql[n] = '\0';
    run(sql);
    CHECK_INT(last_rc, VQ_ERR_UNSUPPORTED);
    n = (size_t)snprintf(sql, sizeof sql, "SELECT name FROM __envs.environments WHERE ");
    for (int i = 0; i < 30000; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "NOT ");
    snprintf(sql + n, sizeof sql - n, "name = 'dev'");
    run(sql);
    CHECK_INT(last_rc, VQ_ERR_UNSUPPORTED);
    n = (size_t)snprintf(sql, sizeof sql, "SELECT name FROM __envs.environments WHERE ");
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "NOT ");
    snprintf(sql + n, sizeof sql - n, "name = 'dev'");
    CHECK_STR(run(sql), "dev");

    /* A long flat chain is not nesting. */
    n = (size_t)snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM __envs.environments WHERE ");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%sname <> 'x%d'", i ? " AND " : "", i);
    CHECK_STR(run(sql), "6");
    n = (size_t)snprintf(sql, sizeof sql,
                         "SELECT COUNT(*) FROM __envs.environments WHERE name IN (");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s'x%d'", i ? ", " : "", i);
    snprintf(sql + n, sizeof sql - n, ", 'dev')");
    CHECK_STR(run(sql), "1");
}

/* ---- __compare parameters --------------------------------------------------------------- */

static const char *const query_params[] = {"envs", "sql", "key?"};
static const char *const schema_params[] = {"envs", "db?"};

#define QUERY_HELP "__compare.query takes WHERE envs = '...' AND sql = '...' [AND key = '...']"

/* Parses sql and takes the __compare.query parameters; returns the status. */
static int params(const char *sql, vq_query *q, const char **values)
{
    int rc = vq_parse(sql, strlen(sql), q, err, sizeof err);
    if (rc != VQ_OK)
        return rc;
    rc = vq_where_params(q, query_params, 3, values, err, sizeof err);
    if (rc != VQ_OK)
        vq_query_free(q);
    return rc;
}

static void test_where_params(void)
{
    vq_query q;
    vq_result r;
    const char *v[3];
    vq_table *cmp = make_compare();

    CHECK_INT(params("SELECT * FROM __compare.query WHERE envs='dev,prod' AND "
                     "sql='SELECT id, status FROM shop.orders' AND key='id'",
                     &q, v),
              VQ_OK);
    CHECK_STR(v[0], "dev,prod");
    CHECK_STR(v[1], "SELECT id, status FROM shop.orders");
    CHECK_STR(v[2], "id");
    CHECK_INT(vq_execute(&q, cmp, &r, err, sizeof err), VQ_OK);
    CHECK_STR(format_rows(&r), "only_left|dev|1|new,changed|dev|2|paid,changed|prod|2|shipped");
    vq_result_free(&r);
    vq_query_free(&q);

    /* Other conditions still filter; literal on the left; '' inside a string; key optional. */
    CHECK_INT(params("SELECT _env, status FROM __compare.query WHERE sql = 'SELECT ''a''' AND "
                     "'dev,prod' = envs AND _diff = 'changed' ORDER BY _env DESC",
                     &q, v),
              VQ_OK);
    CHECK_STR(v[0], "dev,prod");
    CHECK_STR(v[1], "SELECT 'a'");
    CHECK(v[2] == NULL);
    CHECK_INT(vq_execute(&q, cmp, &r, err, sizeof err), VQ_OK);
    CHECK_STR(format_rows(&r), "prod|shipped,dev|paid");
    vq_result_free(&r);
    vq_query_free(&q);

    /* Parentheses around the whole condition change nothing. */
    CHECK_INT(params("SELECT * FROM __compare.query WHERE (envs = 'a' AND (sql = 'b'))", &q, v),
              VQ_OK);
    CHECK_STR(v[1], "b");
    vq_query_free(&q);

    /* Case of names, quoting, numbers as values. */
    CHECK_INT(params("SELECT COUNT(*) FROM `__compare`.`query` WHERE `ENVS` = \"a,b\" AND Sql = "
                     "'x' AND key = 5",
                     &q, v),
              VQ_OK);
    CHECK_STR(v[0], "a,b");
    CHECK_STR(v[2], "5");
    CHECK_INT(vq_execute(&q, cmp, &r, err, sizeof err), VQ_OK);
    CHECK_STR(format_rows(&r), "3");
    vq_result_free(&r);
    vq_query_free(&q);

    /* Errors name the parameters the table takes. */
    CHECK_INT(params("SELECT * FROM __compare.query WHERE envs = 'dev,prod'", &q, v), VQ_ERR_PARAM);
    CHECK_STR(err, "envproxy: missing parameter 'sql': " QUERY_HELP);
    CHECK_INT(params("SELECT * FROM __compare.query", &q, v), VQ_ERR_PARAM);
    CHECK_STR(err, "envproxy: missing parameter 'envs': " QUERY_HELP);
    CHECK_INT(params("SELECT * FROM __compare.query WHERE envs = 'a' AND sql = 'b' AND envs = 'c'",
                     &q, v),
              VQ_ERR_PARAM);
    CHECK_STR(err, "envproxy: parameter 'envs' is given twice: " QUERY_HELP);
    static const char *const misuse[] = {
        "SELECT * FROM __compare.query WHERE envs = 'a' OR sql = 'b'",
        "SELECT * FROM __compare.query WHERE envs LIKE 'a%' AND sql = 'b'",
        "SELECT * FROM __compare.query WHERE envs = NULL AND sql = 'b'",
        "SELECT * FROM __compare.query WHERE NOT envs = 'a' AND sql = 'b'",
        "SELECT * FROM __compare.query WHERE envs = 'a' AND sql = 'b' AND (key = 'x' OR 1)",
        "SELECT * FROM __compare.query WHERE envs = sql",
        "SELECT * FROM __compare.query WHERE envs IN ('a') AND sql = 'b'",
    };
    for (size_t i = 0; i < sizeof misuse / sizeof misuse[0]; i++) {
        int rc = params(misuse[i], &q, v);
        if (rc == VQ_ERR_PARAM && strstr(err, "must be an equality test with a value") &&
            strstr(err, QUERY_HELP)) {
            unit_passed++;
        } else {
            unit_failed++;
            fprintf(stderr, "%s:%d: %s: %d %s\n", __FILE__, __LINE__, misuse[i], rc, err);
            if (rc == VQ_OK)
                vq_query_free(&q);
        }
    }

    /* An unknown parameter is an unknown column, reported with the parameters. */
    CHECK_INT(params("SELECT * FROM __compare.query WHERE envs='dev,prod' AND sql='x' AND "
                     "keys='id'",
                     &q, v),
              VQ_OK);
    CHECK_INT(vq_execute(&q, cmp, &r, err, sizeof err), VQ_ERR_NO_COLUMN);
    CHECK_STR(err, "Unknown column 'keys' in 'where clause'; " QUERY_HELP);
    vq_query_free(&q);

    /* __compare.schema, and WHERE made only of parameters. */
    const char *sql = "SELECT * FROM __compare.schema WHERE envs = 'dev,prod'";
    CHECK_INT(vq_parse(sql, strlen(sql), &q, err, sizeof err), VQ_OK);
    CHECK_INT(vq_where_params(&q, schema_params, 2, v, err, sizeof err), VQ_OK);
    CHECK_STR(v[0], "dev,prod");
    CHECK(v[1] == NULL);
    static const vq_column scols[] = {
        {"database", VQ_STRING}, {"table_name", VQ_STRING}, {"_diff", VQ_STRING}};
    vq_table *st = vq_table_new("__compare", "schema", scols, 3);
    vq_table_add_row(st);
    vq_set_str(st, 0, 0, "shop");
    vq_set_str(st, 0, 1, "orders");
    vq_set_str(st, 0, 2, "changed");
    CHECK_INT(vq_execute(&q, st, &r, err, sizeof err), VQ_OK);
    CHECK_STR(format_rows(&r), "shop|orders|changed");
    vq_result_free(&r);
    vq_query_free(&q);

    sql = "SELECT table_name FROM __compare.schema WHERE db = 'shop' AND envs = 'dev,prod' AND "
          "database = 'shop'";
    CHECK_INT(vq_parse(sql, strlen(sql), &q, err, sizeof err), VQ_OK);
    CHECK_INT(vq_where_params(&q, schema_params, 2, v, err, sizeof err), VQ_OK);
    CHECK_STR(v[1], "shop");
    CHECK_INT(vq_execute(&q, st, &r, err, sizeof err), VQ_OK);
    CHECK_STR(format_rows(&r), "orders");
    vq_result_free(&r);
    CHECK_INT(vq_where_params(&q, query_params, 3, v, err, sizeof err), VQ_ERR_PARAM);
    CHECK_STR(err, "envproxy: missing parameter 'sql': __compare.schema takes WHERE envs = '...' "
                   "AND sql = '...' [AND key = '...']");
    vq_query_free(&q);

    sql = "SELECT * FROM __compare.schema WHERE db = 'shop'";
    CHECK_INT(vq_parse(sql, strlen(sql), &q, err, sizeof err), VQ_OK);
    CHECK_INT(vq_where_params(&q, schema_params, 2, v, err, sizeof err), VQ_ERR_PARAM);
    CHECK_STR(err, "envproxy: missing parameter 'envs': __compare.schema takes WHERE envs = "
                   "'...' [AND db = '...']");
    vq_query_free(&q);

    sql = "SHOW TABLES";
    CHECK_INT(vq_parse(sql, strlen(sql), &q, err, sizeof err), VQ_OK);
    CHECK_INT(vq_where_params(&q, schema_params, 2, v, err, sizeof err), VQ_ERR_PARAM);
    vq_query_free(&q);

    vq_table_free(st);
    vq_table_free(cmp);
}

/* ---- vq_mentions_virtual ---------------------------------------------------------------- */

static const struct {
    const char *sql;
    bool want;
} mention_cases[] = {
    {"USE __envs", true},
    {"use `__envs`", true},
    {"USE __compare;", true},
    {"SHOW TABLES FROM __envs", true},
    {"SHOW TABLES IN `__COMPARE`", true},
    {"SELECT * FROM __envs.environments", true},
    {"select * from `__envs`.`environments`", true},
    {"SELECT * FROM __Envs . session", true},
    {"INSERT INTO __compare.query VALUES (1)", true},
    {"DESCRIBE __envs.session", true},
    {"SELECT a FROM shop.t JOIN __envs.databases d ON d.env = t.env", true},
    {"SELECT /*!50000 * FROM __envs.environments */", true},
    {"SELECT 1 FROM /*M! __compare.query */ t", true},
    {"DROP DATABASE __envs", true},
    {"SELECT 1 AS __envs", true},
    {"/* env=prod */ SELECT * FROM __envs.environments", true},
    {"SELECT '__envs'", false},
    {"SELECT \"__envs\"", false},
    {"SELECT 'x' FROM t WHERE a = '__compare.query'", false},
    {"SELECT 1 -- __envs", false},
    {"SELECT 1 # __envs", false},
    {"SELECT /* __envs */ 1", false},
    {"SELECT /*+ __envs */ 1", false},
    {"SELECT __envs_x FROM t", false},
    {"SELECT x__envs FROM t", false},
    {"SELECT * FROM shop.orders", false},
    {"SELECT @__envs", false},
    {"SELECT @@__envs", false},
    {"SELECT `__envs2`", false},
    {"USE shop@prod", false},
    {"", false},
    {"SELECT 'unterminated __envs", false},
    {"SELECT 1 /* unterminated __envs", false},
};

static void test_mentions(void)
{
    for (size_t i = 0; i < sizeof mention_cases / sizeof mention_cases[0]; i++) {
        const char *s = mention_cases[i].sql;
        bool got = vq_mentions_virtual(s, strlen(s));
        if (got == mention_cases[i].want) {
            unit_passed++;
        } else {
            unit_failed++;
            fprintf(stderr, "%s:%d: vq_mentions_virtual(\"%s\") = %d, want %d\n", __FILE__,
                    __LINE__, s, got, mention_cases[i].want);
        }
    }
    CHECK(!vq_mentions_virtual(NULL, 0));
    CHECK(!vq_mentions_virtual("USE __envs", 9)); /* only len bytes are read */
}

/* ---- random inputs ---------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* Parses (and when that works, runs) one input held in an exact-size heap buffer, so that a
 * read past its end is caught by ASan. */
static void fuzz_one(const char *data, size_t len)
{
    char *buf = malloc(len ? len : 1);
    memcpy(buf, data, len);
    vq_query q;
    vq_result r;
    char e[256];
    const char *v[3];
    vq_mentions_virtual(buf, len);
    int rc = vq_parse(buf, len, &q, e, sizeof e);
    if (rc < VQ_OK || rc > VQ_ERR_NOMEM || (rc != VQ_OK && !e[0])) {
        unit_failed++;
        fprintf(stderr, "%s:%d: bad return %d for \"%.*s\"\n", __FILE__, __LINE__, rc, (int)len,
                buf);
    }
    if (rc == VQ_OK) {
        static const char *const names[] = {"a", "b", "c"};
        switch (q.kind) {
        case VQ_SELECT:
            if (vq_execute(&q, envs, &r, e, sizeof e) == VQ_OK)
                vq_result_free(&r);
            if (vq_where_params(&q, query_params, 3, v, e, sizeof e) == VQ_OK &&
                vq_execute(&q, envs, &r, e, sizeof e) == VQ_OK)
                vq_result_free(&r);
            break;
        case VQ_SHOW_TABLES:
            if (vq_show_tables(&q, "s", names, 3, &r, e, sizeof e) == VQ_OK)
                vq_result_free(&r);
            break;
        case VQ_SHOW_DATABASES:
            if (vq_show_databases(&q, names, 3, &r, e, sizeof e) == VQ_OK)
                vq_result_free(&r);
            break;
        default:
            if (vq_describe(&q, envs, &r, e, sizeof e) == VQ_OK)
                vq_result_free(&r);
            break;
        }
        vq_query_free(&q);
    }
    free(buf);
}

static void test_fuzz(void)
{
    static const char *const seeds[] = {
        "SELECT name, status AS s FROM __envs.environments e WHERE (e.status = 'up' OR "
        "latency_ms IS NULL) AND name NOT LIKE 'x\\_%' ORDER BY 2 DESC, name LIMIT 1, 3",
        "SELECT COUNT(*) c FROM __envs.environments WHERE latency_ms BETWEEN 1 AND 10",
        "SELECT * FROM __compare.query WHERE envs='dev,prod' AND sql='SELECT 1' AND key='id'",
        "SHOW FULL TABLES FROM __envs LIKE 'e%'",
        "SHOW FULL COLUMNS FROM environments IN __envs WHERE Type = 'bigint'",
        "DESCRIBE __envs.environments",
        "SHOW DATABASES LIKE '\\_\\_%'",
        "select `name` from `__envs`.`environments` where score <=> NULL or name in ('a', "
        "_utf8mb4'b', -1.5e3, 0x1F) limit 5 offset 1;",
        "INSERT INTO __envs.environments VALUES (1)",
        "SELECT name FROM __envs.environments WHERE NOT NOT !(checked_at > '2024-01-01') /* c */",
    };
    static const char *const pieces[] = {
        " ",          "(",          ")",
        "'",          "\"",         "`",
        ",",          ";",          ".",
        "*",          "=",          "<",
        ">",          "!",          "%",
        "_",          "\\",         "-",
        "--",         "#",          "/*",
        "*/",         "/*!",        "\n",
        "@",          "@@",         "?",
        "0",          "1.5",        "-7",
        "0x",         "e5",         " SELECT ",
        " FROM ",     " WHERE ",    " AND ",
        " OR ",       " NOT ",      " IN ",
        " LIKE ",     " IS ",       " NULL ",
        " ORDER BY ", " LIMIT ",    " OFFSET ",
        " DESC ",     " COUNT(*) ", " BETWEEN ",
        " ESCAPE ",   " AS ",       " JOIN ",
        " SHOW ",     " FULL ",     " TABLES ",
        " COLUMNS ",  " name ",     " __envs.environments ",
        " 'str' ",    " `q` ",      " _utf8mb4",
        "\xC3\xA9",   "\xFF",       "\0",
    };
    size_t n_seeds = sizeof seeds / sizeof seeds[0];
    size_t n_pieces = sizeof pieces / sizeof pieces[0];
    char buf[1024];
    int failed_before = unit_failed;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len;
        if (iter % 5 == 0) {
            /* random bytes, biased to SQL punctuation */
            len = rnd(64);
            static const char alphabet[] = "SELECT*FROMWHERE ()'\"`=<>!%_\\;.,-#/\n0123";
            for (size_t i = 0; i < len; i++)
                buf[i] = rnd(4) ? alphabet[rnd(sizeof alphabet - 1)] : (char)rnd(256);
        } else {
            const char *seed = seeds[rnd((uint32_t)n_seeds)];
            len = strlen(seed);
            memcpy(buf, seed, len);
            int edits = 1 + (int)rnd(4);
            for (int k = 0; k < edits; k++) {
                uint32_t op = rnd(4);
                size_t at = len ? rnd((uint32_t)len + 1) : 0;
                if (op == 0 && len) { /* replace a byte */
                    buf[at < len ? at : len - 1] = (char)rnd(256);
                } else if (op == 1) { /* insert a piece */
                    const char *pc = pieces[rnd((uint32_t)n_pieces)];
                    size_t pl = pc[0] ? strlen(pc) : 1;
                    if (len + pl < sizeof buf) {
                        memmove(buf + at + pl, buf + at, len - at);
                        memcpy(buf + at, pc, pl);
                        len += pl;
                    }
                } else if (op == 2 && len) { /* delete a run */
                    size_t del = 1 + rnd(8);
                    if (at + del > len)
                        del = len - at;
                    memmove(buf + at, buf + at + del, len - at - del);
                    len -= del;
                } else { /* truncate */
                    len = at;
                }
            }
        }
        fuzz_one(buf, len);
    }
    CHECK(unit_failed == failed_before);
}

int main(void)
{
    envs = make_envs();
    test_table_model();
    test_where();
    test_select();
    test_result_columns();
    test_parse_forms();
    test_show_describe();
    test_errors();
    test_depth();
    test_where_params();
    test_mentions();
    test_fuzz();
    vq_table_free(envs);
    return unit_report("vquery");
}
