/* test_json.c: the JSON reader and writer: values, escapes, surrogate pairs, malformed input,
 * nesting limits, UTF-8 repair in the writer, round trips, and random inputs. */
#include "json.h"
#include "unit.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[256];

static json *parse(const char *s)
{
    return json_parse(s, strlen(s), 0, err, sizeof(err));
}

/* Parses s, serializes the tree and returns the text (static buffer), or "ERROR". */
static const char *reserialize(const char *s, size_t len)
{
    static char out[4096];
    json *v = json_parse(s, len, 0, err, sizeof(err));
    if (!v)
        return "ERROR";
    size_t n;
    char *t = json_serialize(v, &n);
    snprintf(out, sizeof(out), "%s", t);
    free(t);
    json_free(v);
    return out;
}

static bool valid_utf8(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = json_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

/* ---- well-formed values ----------------------------------------------------------------- */

static void test_values(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"null", "null"},
        {"true", "true"},
        {"false", "false"},
        {" \t\r\n 0 \n", "0"},
        {"-0", "-0"},
        {"12345678901234567890123", "12345678901234567890123"}, /* kept as written */
        {"1.5e10", "1.5e10"},
        {"-1E-2", "-1E-2"},
        {"0.25", "0.25"},
        {"\"\"", "\"\""},
        {"\"abc\"", "\"abc\""},
        {"[]", "[]"},
        {"{}", "{}"},
        {"[1, [2, [3]], {\"a\": {}}]", "[1,[2,[3]],{\"a\":{}}]"},
        {"{\"a\" : 1 , \"b\":[true,false,null]}", "{\"a\":1,\"b\":[true,false,null]}"},
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\\"\\\\/\\b\\f\\n\\r\\t\""},
        {"\"\\u0041\\u00e9\\u20AC\"", "\"A\xc3\xa9\xe2\x82\xac\""},
        {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""}, /* surrogate pair -> U+1F600 */
        {"\"\\uDBFF\\uDFFF\"", "\"\xf4\x8f\xbf\xbf\""}, /* U+10FFFF */
        {"\"\\u0001\\u001f\\u007f\"", "\"\\u0001\\u001f\x7f\""},
        {"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}"}, /* kept; lookups see the last */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = reserialize(cases[i].in, strlen(cases[i].in));
        if (strcmp(got, cases[i].out) != 0)
            fprintf(stderr, "case %zu: %s (%s)\n", i, cases[i].in, err);
        CHECK_STR(got, cases[i].out);
    }

    json *v = parse("\"a\\u0000b\"");
    CHECK(v && v->type == JSON_STRING && v->u.str.len == 3 && memcmp(v->u.str.s, "a\0b", 3) == 0);
    char *t = json_serialize(v, NULL);
    CHECK_STR(t, "\"a\\u0000b\"");
    free(t);
    json_free(v);

    v = parse("{\"id\": 7, \"x\": \"y\", \"id\": \"last\"}");
    CHECK(v != NULL);
    CHECK_STR(json_string_value(json_get(v, "id")), "last");
    CHECK_STR(json_string_value(json_get(v, "x")), "y");
    CHECK(json_get(v, "missing") == NULL);
    CHECK(json_get(json_get(v, "x"), "x") == NULL); /* not an object */
    json_free(v);

    v = parse("-12.5e-1");
    CHECK(v && v->type == JSON_NUMBER && v->u.num.value == -1.25);
    json_free(v);
    v = parse("1e400"); /* valid JSON; the text survives even though the double does not */
    CHECK(v && v->type == JSON_NUMBER && isinf(v->u.num.value));
    t = json_serialize(v, NULL);
    CHECK_STR(t, "1e400");
    free(t);
    json_free(v);
}

/* ---- malformed input -------------------------------------------------------------------- */

static void test_malformed(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\"}",
        "{\"a\":}",
        "{a:1}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\" 1}",
        "{1:2}",
        "01",
        "-01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "1.e5",
        "0x10",
        "tru",
        "nul",
        "falsey",
        "True",
        "NULL",
        "NaN",
        "Infinity",
        "'a'",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"\\ud800\\\"",
        "\"a\tb\"",
        "\"a\nb\"",
        "\"\\\"",
        "[1] x",
        "1 2",
        "[1]]",
        "{}}",
        "\xef\xbb\xbf[]", /* BOM */
        "\"\xff\"",
        "\"\xc0\xaf\"",
        "\"\xc1\xbf\"",
        "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xe2\x82\"",
        "\"\x80\"",
        "\"\xf0\x9f\x98\"",
        "[\"a\" \"b\"]",
        "/* c */ 1",
        "[1,\n]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json *v = parse(bad[i]);
        if (v)
            fprintf(stderr, "accepted malformed input %zu: %s\n", i, bad[i]);
        CHECK(v == NULL);
        CHECK(err[0] != '\0');
        json_free(v);
    }
    /* A NUL byte inside the given length is not white space. */
    json *v = json_parse("[1]\0", 4, 0, err, sizeof(err));
    CHECK(v == NULL);
    v = json_parse("\"a\0b\"", 5, 0, err, sizeof(err));
    CHECK(v == NULL);
    /* The message names the offset. */
    v = parse("[1, 2, x]");
    CHECK(v == NULL);
    CHECK(strstr(err, "offset 7") != NULL);
    /* NULL text, zero length. */
    CHECK(json_parse(NULL, 0, 0, err, sizeof(err)) == NULL);
    /* No error buffer at all is fine. */
    CHECK(json_parse("[", 1, 0, NULL, 0) == NULL);
}

/* ---- nesting ---------------------------------------------------------------------------- */

static char *nested(int depth, char open, char close, const char *inner)
{
    size_t n = strlen(inner) + (size_t)depth * 8 + 1;
    char *s = malloc(n);
    size_t k = 0;
    for (int i = 0; i < depth; i++) {
        if (open == '{') {
            memcpy(s + k, "{\"k\":", 5);
            k += 5;
        } else {
            s[k++] = open;
        }
    }
    memcpy(s + k, inner, strlen(inner));
    k += strlen(inner);
    for (int i = 0; i < depth; i++)
        s[k++] = close;
    s[k] = '\0';
    return s;
}

static void test_depth(void)
{
    char *s = nested(JSON_MAX_DEPTH, '[', ']', "1");
    json *v = parse(s);
    CHECK(v != NULL);
    json_free(v);
    free(s);

    s = nested(JSON_MAX_DEPTH + 1, '[', ']', "1");
    v = parse(s);
    CHECK(v == NULL);
    CHECK(strstr(err, "nesting") != NULL);
    free(s);

    s = nested(JSON_MAX_DEPTH, '{', '}', "1");
    v = parse(s);
    CHECK(v != NULL);
    json_free(v);
    free(s);

    s = nested(JSON_MAX_DEPTH + 1, '{', '}', "1");
    CHECK(parse(s) == NULL);
    free(s);

    /* A custom limit. */
    CHECK((v = json_parse("[[1]]", 5, 2, err, sizeof(err))) != NULL);
    json_free(v);
    CHECK(json_parse("[[[1]]]", 7, 2, err, sizeof(err)) == NULL);

    /* Far deeper than any stack would take: refused at the limit, not by a crash. */
    size_t n = 1000000;
    s = malloc(n);
    memset(s, '[', n);
    CHECK(json_parse(s, n, 0, err, sizeof(err)) == NULL);
    free(s);
}

/* ---- the writer ------------------------------------------------------------------------- */

static const char *write_str(const char *s, size_t len)
{
    static char out[1024];
    json_buf b;
    json_buf_init(&b);
    json_write_string(&b, s, len);
    snprintf(out, sizeof(out), "%s", b.data);
    json_buf_free(&b);
    return out;
}

static void test_writer(void)
{
    CHECK_STR(write_str("plain", 5), "\"plain\"");
    CHECK_STR(write_str("q\"b\\s", 5), "\"q\\\"b\\\\s\"");
    CHECK_STR(write_str("\x01\x1f\n\r\t\b\f", 7), "\"\\u0001\\u001f\\n\\r\\t\\b\\f\"");
    CHECK_STR(write_str("a\0b", 3), "\"a\\u0000b\"");
    CHECK_STR(write_str("/", 1), "\"/\"");
    /* Valid UTF-8 is copied; each bad byte becomes U+FFFD. */
    CHECK_STR(write_str("\xc3\xa9\xf0\x9f\x98\x80", 6), "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    CHECK_STR(write_str("a\xff"
                        "b",
                        3),
              "\"a\\ufffdb\"");
    CHECK_STR(write_str("\xc0\xaf", 2), "\"\\ufffd\\ufffd\"");
    CHECK_STR(write_str("\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\"");
    CHECK_STR(write_str("\xe2\x82", 2), "\"\\ufffd\\ufffd\"");
    CHECK_STR(write_str("x\xe2\x82\xac", 4), "\"x\xe2\x82\xac\"");

    /* Building and replacing. */
    json *o = json_new_object();
    json_object_set(o, "b", json_new_int(-42));
    json_object_set(o, "a", json_new_cstr("x"));
    json_object_set(o, "b", json_new_bool(true)); /* replaces, keeps the place */
    json *a = json_new_array();
    json_array_add(a, json_new_null());
    json_array_add(a, json_new_double(0.1));
    json_array_add(a, json_new_double(NAN));
    json_array_add(a, json_new_double(1e300 * 1e300));
    json_array_add(a, json_new_double(3.0));
    json_array_add(a, json_new_string("n\0l", 3));
    json_object_set(o, "list", a);
    char *t = json_serialize(o, NULL);
    CHECK_STR(t, "{\"b\":true,\"a\":\"x\",\"list\":[null,0.1,null,null,3,\"n\\u0000l\"]}");
    json *c = json_clone(o);
    CHECK(json_equal(o, c));
    json_object_set(c, "a", json_new_cstr("y"));
    CHECK(!json_equal(o, c));
    json_free(c);
    free(t);
    json_free(o);

    /* The json_buf functions. */
    json_buf b;
    json_buf_init(&b);
    json_buf_printf(&b, "%d-%s", 7, "x");
    char big[300];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    json_buf_printf(&b, "%s", big); /* longer than the printf fast path */
    CHECK_INT(b.len, 3 + 299);
    CHECK(b.data[b.len] == '\0');
    size_t len;
    char *taken = json_buf_take(&b, &len);
    CHECK_INT(len, 302);
    CHECK(strncmp(taken, "7-xzzz", 6) == 0);
    free(taken);
    json_buf_puts(&b, "again");
    CHECK_STR(b.data, "again");
    json_buf_reset(&b);
    CHECK_STR(b.data, "");
    json_buf_free(&b);

    CHECK_STR(json_type_name(JSON_OBJECT), "object");
    CHECK_STR(json_type_name(JSON_NUMBER), "number");
}

static void test_number_valid(void)
{
    static const char *const good[] = {"0",
                                       "-0",
                                       "1",
                                       "-12",
                                       "1.5",
                                       "0.001",
                                       "1e5",
                                       "1E+5",
                                       "1e-5",
                                       "-1.25e-10",
                                       "123456789012345678901234567890"};
    static const char *const bad[] = {"",    "-",   "01",  "+1",  "1.", ".1", "1e",  "1e+",
                                      "inf", "nan", "NaN", "0x1", "1 ", " 1", "1,0", "--1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK(json_number_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!json_number_valid(bad[i], strlen(bad[i])));
}

/* ---- round trips and random input ------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void test_round_trips(void)
{
    static const char *const docs[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\","
        "\"arguments\":{\"sql\":\"SELECT 'a\\\\b' \\n\",\"environments\":[\"dev\",\"prod\"]}}}",
        "[[],{},[{}],{\"\":\"\"},\"\\u0000\",-0.5e-3,1E400,true,false,null]",
        "{\"emoji\":\"\\ud83d\\ude00\",\"cjk\":\"\xe6\xbc\xa2\xe5\xad\x97\"}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json *a = parse(docs[i]);
        CHECK(a != NULL);
        size_t n;
        char *t = json_serialize(a, &n);
        json *b = json_parse(t, n, 0, err, sizeof(err));
        CHECK(b != NULL);
        CHECK(json_equal(a, b));
        char *t2 = json_serialize(b, NULL);
        CHECK_STR(t2, t); /* a second trip changes nothing */
        free(t);
        free(t2);
        json_free(a);
        json_free(b);
    }
}

/* Random documents, made of JSON tokens and stray bytes, never crash the reader (ASan is
 * watching); whatever it accepts serializes to valid UTF-8 that parses back to the same
 * tree. Random byte strings written as JSON strings are always valid and read back as
 * their UTF-8-repaired selves. */
static void test_random(void)
{
    static const char *const tokens[] = {
        "{",        "}",    "[",       "]",           ",",
        ":",        "\"",   "\"k\"",   "\"v\\n\"",    "1",
        "-0.5",     "1e3",  "true",    "false",       "null",
        " ",        "\\",   "\\u",     "d83d",        "\\ude00",
        "\xc3\xa9", "\xff", "\x01",    "0",           "\"\\ud83d\\ude00\"",
        "[[[[",     "]]]]", "{\"a\":", "\"\\u0000\"", "e",
        ".",        "-",
    };
    const size_t n_tokens = sizeof(tokens) / sizeof(tokens[0]);
    int accepted = 0, mismatches = 0, invalid_out = 0;
    for (int iter = 0; iter < 20000; iter++) {
        char doc[512];
        size_t len = 0;
        int parts = 1 + (int)(rnd() % 24);
        for (int p = 0; p < parts; p++) {
            if (rnd() % 8 == 0) {
                if (len + 1 < sizeof(doc))
                    doc[len++] = (char)(rnd() & 0xFF);
                continue;
            }
            const char *t = tokens[rnd() % n_tokens];
            size_t tl = strlen(t);
            if (len + tl >= sizeof(doc))
                break;
            memcpy(doc + len, t, tl);
            len += tl;
        }
        json *v = json_parse(doc, len, (int)(1 + rnd() % 70), err, sizeof(err));
        if (v) {
            accepted++;
            size_t n;
            char *t = json_serialize(v, &n);
            if (!valid_utf8(t, n))
                invalid_out++;
            json *w = json_parse(t, n, 0, err, sizeof(err));
            if (!w || !json_equal(v, w))
                mismatches++;
            json_free(w);
            free(t);
            json_free(v);
        }

        /* Random bytes through the string writer. */
        char raw[64];
        size_t rl = rnd() % sizeof(raw);
        for (size_t i = 0; i < rl; i++)
            raw[i] = (char)(rnd() & 0xFF);
        json_buf b;
        json_buf_init(&b);
        json_write_string(&b, raw, rl);
        if (!valid_utf8(b.data, b.len))
            invalid_out++;
        json *s = json_parse(b.data, b.len, 0, err, sizeof(err));
        if (!s || s->type != JSON_STRING) {
            mismatches++;
        } else if (valid_utf8(raw, rl) &&
                   (s->u.str.len != rl || memcmp(s->u.str.s, raw, rl) != 0)) {
            mismatches++;
        }
        json_free(s);
        json_buf_free(&b);
    }
    CHECK(accepted > 100); /* the generator does produce valid documents */
    CHECK_INT(mismatches, 0);
    CHECK_INT(invalid_out, 0);
}

int main(void)
{
    test_values();
    test_malformed();
    test_depth();
    test_writer();
    test_number_valid();
    test_round_trips();
    test_random();
    return unit_report("json");
}
