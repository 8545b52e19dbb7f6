/* test_http_json.c: the HTTP front door's pure parts: SQL values as JSON, binary-protocol
 * values as text, token hashes, path splitting, named parameters, parameter checks. */
#include "http_api.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static const char *value(uint8_t type, uint16_t flags, uint16_t charset, const char *v,
                         size_t len)
{
    static char out[512];
    hj_column c = {.type = type, .flags = flags, .charset = charset};
    json_buf b;
    json_buf_init(&b);
    hj_write_value(&b, &c, v, len);
    snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
    json_buf_free(&b);
    return out;
}

#define V(type, v) value(type, 0, 45, v, v ? strlen(v) : 0)

static void test_values(void)
{
    CHECK_STR(value(HT_LONG, 0, 45, NULL, 0), "null");
    CHECK_STR(V(HT_LONG, "42"), "42");
    CHECK_STR(V(HT_LONG, "-7"), "-7");
    CHECK_STR(V(HT_LONGLONG, "9007199254740992"), "9007199254740992");
    CHECK_STR(V(HT_LONGLONG, "9007199254740993"), "\"9007199254740993\"");
    CHECK_STR(V(HT_LONGLONG, "-9007199254740993"), "\"-9007199254740993\"");
    CHECK_STR(V(HT_LONGLONG, "18446744073709551615"), "\"18446744073709551615\"");
    CHECK_STR(V(HT_NEWDECIMAL, "12.50"), "\"12.50\"");
    CHECK_STR(V(HT_DOUBLE, "0.5"), "0.5");
    CHECK_STR(V(HT_DOUBLE, "1e30"), "1e30");
    CHECK_STR(V(HT_DOUBLE, "-1.5e-7"), "-1.5e-7");
    CHECK_STR(V(HT_DOUBLE, "inf"), "null");
    CHECK_STR(V(HT_DOUBLE, "nan"), "null");
    CHECK_STR(V(HT_DATETIME, "2024-02-29 12:00:00.123"), "\"2024-02-29 12:00:00.123\"");
    CHECK_STR(V(HT_TIME, "-838:59:59"), "\"-838:59:59\"");
    CHECK_STR(V(HT_VAR_STRING, "Zoë \"q\""), "\"Zoë \\\"q\\\"\"");
    CHECK_STR(V(HT_YEAR, "2024"), "2024");
    /* Binary character set, BIT, GEOMETRY: base64; invalid UTF-8 in a text column too. */
    CHECK_STR(value(HT_VAR_STRING, 0, 63, "\x00\xff", 2), "{\"base64\":\"AP8=\"}");
    CHECK_STR(value(HT_BLOB, 0, 63, "abc", 3), "{\"base64\":\"YWJj\"}");
    CHECK_STR(value(HT_BIT, 0, 63, "\x01", 1), "{\"base64\":\"AQ==\"}");
    CHECK_STR(value(HT_VAR_STRING, 0, 45, "a\xc3", 2), "{\"base64\":\"YcM=\"}");
    CHECK_STR(value(HT_BLOB, 0, 45, "text", 4), "\"text\"");
    /* A numeric column with a value that is not a number stays a string. */
    CHECK_STR(V(HT_LONG, "12abc"), "\"12abc\"");
}

static void test_type_names(void)
{
    char buf[48];
    hj_column c = {.type = HT_LONGLONG, .flags = HT_FLAG_UNSIGNED, .charset = 63};
    CHECK_STR(hj_type_name(&c, buf, sizeof(buf)), "bigint unsigned");
    c = (hj_column){.type = HT_VAR_STRING, .charset = 63};
    CHECK_STR(hj_type_name(&c, buf, sizeof(buf)), "varbinary");
    c = (hj_column){.type = HT_VAR_STRING, .charset = 45};
    CHECK_STR(hj_type_name(&c, buf, sizeof(buf)), "varchar");
    c = (hj_column){.type = HT_NEWDECIMAL, .charset = 63};
    CHECK_STR(hj_type_name(&c, buf, sizeof(buf)), "decimal");
}

static const char *binary(uint8_t type, uint16_t flags, uint8_t decimals, const uint8_t *p,
                          size_t n)
{
    static char out[128];
    char buf[64];
    hj_column c = {.type = type, .flags = flags, .decimals = decimals, .charset = 63};
    preader r;
    pr_init(&r, p, n);
    const char *s;
    size_t len;
    if (!hj_binary_value(&r, &c, buf, sizeof(buf), &s, &len))
        return "MALFORMED";
    snprintf(out, sizeof(out), "%.*s", (int)len, s);
    return out;
}

static void test_binary(void)
{
    static const uint8_t tiny[] = {0xff};
    CHECK_STR(binary(HT_TINY, 0, 0, tiny, 1), "-1");
    CHECK_STR(binary(HT_TINY, HT_FLAG_UNSIGNED, 0, tiny, 1), "255");
    static const uint8_t ll[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_STR(binary(HT_LONGLONG, 0, 0, ll, 8), "-1");
    CHECK_STR(binary(HT_LONGLONG, HT_FLAG_UNSIGNED, 0, ll, 8), "18446744073709551615");
    static const uint8_t dbl[] = {0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f}; /* 0.1 */
    CHECK_STR(binary(HT_DOUBLE, 0, 0, dbl, 8), "0.1");
    static const uint8_t flt[] = {0xcd, 0xcc, 0x8c, 0x3f}; /* 1.1f */
    CHECK_STR(binary(HT_FLOAT, 0, 0, flt, 4), "1.1");
    static const uint8_t date[] = {4, 0xe8, 0x07, 2, 29};
    CHECK_STR(binary(HT_DATE, 0, 0, date, sizeof(date)), "2024-02-29");
    static const uint8_t dt[] = {11, 0xe8, 0x07, 2, 29, 13, 5, 9, 0x40, 0xe2, 0x01, 0};
    CHECK_STR(binary(HT_DATETIME, 0, 3, dt, sizeof(dt)), "2024-02-29 13:05:09.123");
    CHECK_STR(binary(HT_DATETIME, 0, 0, dt, sizeof(dt)), "2024-02-29 13:05:09");
    static const uint8_t zero[] = {0};
    CHECK_STR(binary(HT_DATETIME, 0, 0, zero, 1), "0000-00-00 00:00:00");
    static const uint8_t tm[] = {8, 1, 1, 0, 0, 0, 2, 3, 4};
    CHECK_STR(binary(HT_TIME, 0, 0, tm, sizeof(tm)), "-26:03:04");
    static const uint8_t str[] = {3, 'a', 'b', 'c'};
    CHECK_STR(binary(HT_VAR_STRING, 0, 0, str, sizeof(str)), "abc");
    /* Truncated values and impossible lengths are malformed, never read past the end. */
    CHECK_STR(binary(HT_LONGLONG, 0, 0, ll, 7), "MALFORMED");
    static const uint8_t badlen[] = {5, 1, 2, 3, 4, 5};
    CHECK_STR(binary(HT_DATETIME, 0, 0, badlen, sizeof(badlen)), "MALFORMED");
    static const uint8_t shortstr[] = {9, 'a'};
    CHECK_STR(binary(HT_VAR_STRING, 0, 0, shortstr, sizeof(shortstr)), "MALFORMED");
}

static void test_token_hash(void)
{
    char h[65];
    hj_token_hash("", h);
    CHECK_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hj_token_hash("ept_abc", h);
    CHECK_INT(strlen(h), 64);
    char h2[65];
    hj_token_hash("ept_abd", h2);
    CHECK(strcmp(h, h2) != 0);
}

static void test_paths(void)
{
    char seg[8][HJ_SEG_MAX + 1];
    CHECK_INT(hj_split_path("/api/v1/queries/x%20y/run", seg, 8), 5);
    CHECK_STR(seg[3], "x y");
    CHECK_INT(hj_split_path("/api/v1/", seg, 8), 2);
    CHECK_INT(hj_split_path("/", seg, 8), 0);
    CHECK_INT(hj_split_path("api/v1", seg, 8), -1);
    CHECK_INT(hj_split_path("/api//v1", seg, 8), -1);
    CHECK_INT(hj_split_path("/a%00b", seg, 8), -1);
    CHECK_INT(hj_split_path("/a%zz", seg, 8), -1);
    CHECK_INT(hj_split_path("/a%2", seg, 8), -1);
    CHECK_INT(hj_split_path("/1/2/3/4/5/6/7/8/9", seg, 8), -1);
    char longp[400] = "/";
    memset(longp + 1, 'x', 200);
    CHECK_INT(hj_split_path(longp, seg, 8), -1);
    /* %2F is a byte of a segment, not a separator. */
    CHECK_INT(hj_split_path("/a%2Fb", seg, 8), 1);
    CHECK_STR(seg[0], "a/b");
}

static const char *rewrite(const char *sql, int *n)
{
    static char out[512];
    const char *names[8];
    size_t lens[8];
    char *o = NULL, e[160];
    *n = hj_named_params(sql, strlen(sql), &o, names, lens, 8, e, sizeof(e));
    if (*n < 0) {
        snprintf(out, sizeof(out), "ERR: %s", e);
        return out;
    }
    snprintf(out, sizeof(out), "%s", o);
    for (int i = 0; i < *n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, sizeof(out) - l, " |%.*s", (int)lens[i], names[i]);
    }
    free(o);
    return out;
}

static void test_named_params(void)
{
    int n;
    CHECK_STR(rewrite("SELECT * FROM t WHERE a = :a AND b = :b_2", &n),
              "SELECT * FROM t WHERE a = ? AND b = ? |a |b_2");
    CHECK_INT(n, 2);
    /* Never inside strings, identifiers or comments; := is not a parameter. */
    CHECK_STR(rewrite("SELECT ':x', `:y`, \":z\" /* :c */ -- :d\n, @v := 1, :e", &n),
              "SELECT ':x', `:y`, \":z\" /* :c */ -- :d\n, @v := 1, ? |e");
    CHECK_STR(rewrite("SELECT a FROM t WHERE x = : y", &n), "SELECT a FROM t WHERE x = : y");
    CHECK_INT(n, 0);
    CHECK(strncmp(rewrite("SELECT ?", &n), "ERR:", 4) == 0);
    CHECK(strncmp(rewrite("SELECT 'unterminated", &n), "ERR:", 4) == 0);
    CHECK(strncmp(rewrite("SELECT :a,:a,:a,:a,:a,:a,:a,:a,:a", &n), "ERR:", 4) == 0);
    /* A routing comment of its own would run the query outside its environments. */
    CHECK(strncmp(rewrite("/* env=dev */ SELECT :a", &n), "ERR:", 4) == 0);
    CHECK(strncmp(rewrite("  /* db=shop */ SELECT 1", &n), "ERR:", 4) == 0);
    CHECK(strncmp(rewrite("/* compare=dev,prod */ SELECT 1", &n), "ERR:", 4) == 0);
    CHECK(strncmp(rewrite("/* env= */ SELECT 1", &n), "ERR:", 4) == 0);
    CHECK_STR(rewrite("/* the orders of one day */ SELECT :d", &n),
              "/* the orders of one day */ SELECT ? |d");
}

static const char *param(const char *type, const char *jsontext)
{
    static char out[200];
    char e[128], canon[96];
    json *v = json_parse(jsontext, strlen(jsontext), 0, e, sizeof(e));
    if (!hj_check_param(type, v, canon, sizeof(canon), e, sizeof(e)))
        snprintf(out, sizeof(out), "ERR");
    else
        snprintf(out, sizeof(out), "%s", canon);
    json_free(v);
    return out;
}

static void test_params(void)
{
    CHECK_STR(param("int", "42"), "42");
    CHECK_STR(param("int", "\"-7\""), "-7");
    CHECK_STR(param("int", "1.5"), "ERR");
    CHECK_STR(param("int", "\"1 OR 1=1\""), "ERR");
    CHECK_STR(param("int", "99999999999999999999"), "ERR");
    CHECK_STR(param("decimal", "\"12.50\""), "12.50");
    CHECK_STR(param("decimal", "\"1e5\""), "ERR");
    CHECK_STR(param("bool", "true"), "1");
    CHECK_STR(param("bool", "1"), "ERR");
    CHECK_STR(param("date", "\"2024-02-29\""), "2024-02-29");
    CHECK_STR(param("date", "\"2024-13-01\""), "ERR");
    CHECK_STR(param("datetime", "\"2024-02-29T10:11:12.5\""), "2024-02-29 10:11:12.5");
    CHECK_STR(param("datetime", "\"2024-02-29 25:00:00\""), "ERR");
    CHECK_STR(param("string", "\"x' OR '1'='1\""), "");
    CHECK_STR(param("string", "5"), "ERR");
    CHECK(hj_param_type_valid("datetime") && !hj_param_type_valid("float"));
}

int main(void)
{
    test_values();
    test_type_names();
    test_binary();
    test_token_hash();
    test_paths();
    test_named_params();
    test_params();
    return unit_report("http_json");
}
