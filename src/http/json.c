/* http/json.c: the HTTP front door's pure parts: SQL values as JSON, binary-protocol values as
 * text, token hashes, path splitting, named parameters. */
#include "http_api.h"
#include "accounts.h"
#include "config.h"
#include "router.h"
#include "sqlpolicy.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types --------------------------------------------------------------------------------- */

static bool is_integer_type(uint8_t t)
{
    return t == HT_TINY || t == HT_SHORT || t == HT_LONG || t == HT_LONGLONG || t == HT_INT24 ||
           t == HT_YEAR;
}

static bool is_text_type(uint8_t t)
{
    return t == HT_VARCHAR || t == HT_VAR_STRING || t == HT_STRING || t == HT_TINY_BLOB ||
           t == HT_MEDIUM_BLOB || t == HT_LONG_BLOB || t == HT_BLOB || t == HT_ENUM ||
           t == HT_SET || t == HT_JSON;
}

const char *hj_type_name(const hj_column *c, char *buf, size_t cap)
{
    bool bin = c->charset == HT_CHARSET_BINARY;
    const char *n;
    switch (c->type) {
    case HT_TINY: n = "tinyint"; break;
    case HT_SHORT: n = "smallint"; break;
    case HT_INT24: n = "mediumint"; break;
    case HT_LONG: n = "int"; break;
    case HT_LONGLONG: n = "bigint"; break;
    case HT_FLOAT: n = "float"; break;
    case HT_DOUBLE: n = "double"; break;
    case HT_DECIMAL:
    case HT_NEWDECIMAL: n = "decimal"; break;
    case HT_NULL: n = "null"; break;
    case HT_TIMESTAMP: n = "timestamp"; break;
    case HT_DATE:
    case HT_NEWDATE: n = "date"; break;
    case HT_TIME: n = "time"; break;
    case HT_DATETIME: n = "datetime"; break;
    case HT_YEAR: n = "year"; break;
    case HT_BIT: n = "bit"; break;
    case HT_JSON: n = "json"; break;
    case HT_ENUM: n = "enum"; break;
    case HT_SET: n = "set"; break;
    case HT_GEOMETRY: n = "geometry"; break;
    case HT_TINY_BLOB:
    case HT_MEDIUM_BLOB:
    case HT_LONG_BLOB:
    case HT_BLOB: n = bin ? "blob" : "text"; break;
    case HT_VARCHAR:
    case HT_VAR_STRING: n = bin ? "varbinary" : "varchar"; break;
    case HT_STRING:
        n = (c->flags & HT_FLAG_ENUM) ? "enum" : (c->flags & HT_FLAG_SET) ? "set"
            : bin ? "binary" : "char";
        break;
    default: n = "unknown"; break;
    }
    bool unsig = (c->flags & HT_FLAG_UNSIGNED) &&
                 (is_integer_type(c->type) || c->type == HT_DECIMAL ||
                  c->type == HT_NEWDECIMAL || c->type == HT_FLOAT || c->type == HT_DOUBLE) &&
                 c->type != HT_YEAR;
    snprintf(buf, cap, "%s%s", n, unsig ? " unsigned" : "");
    return buf;
}

/* ---- values -------------------------------------------------------------------------------- */

static void write_base64(json_buf *b, const char *v, size_t len)
{
    json_buf_puts(b, "{\"base64\":\"");
    unsigned char out[4 * 768 / 3 + 1];
    for (size_t off = 0; off < len; off += 768) {
        size_t n = len - off < 768 ? len - off : 768;
        int m = EVP_EncodeBlock(out, (const unsigned char *)v + off, (int)n);
        json_buf_put(b, out, (size_t)m);
    }
    json_buf_puts(b, "\"}");
}

/* Whether v is an integer whose magnitude is at most 2^53 (exactly representable). */
static bool fits_53_bits(const char *v, size_t len)
{
    size_t i = 0;
    if (i < len && (v[i] == '-' || v[i] == '+'))
        i++;
    if (i == len || len - i > 16)
        return false;
    unsigned long long x = 0;
    for (; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (unsigned long long)(v[i] - '0');
    }
    return x <= 9007199254740992ULL;
}

static bool valid_utf8(const char *v, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = json_utf8_seq_len((const unsigned char *)v + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

void hj_write_value(json_buf *b, const hj_column *c, const char *v, size_t len)
{
    if (!v) {
        json_buf_puts(b, "null");
        return;
    }
    uint8_t t = c->type;
    if (is_integer_type(t)) {
        if (fits_53_bits(v, len) && !(len > 0 && v[0] == '+'))
            json_buf_put(b, v, len);
        else
            json_write_string(b, v, len);
        return;
    }
    if (t == HT_FLOAT || t == HT_DOUBLE) {
        if (json_number_valid(v, len))
            json_buf_put(b, v, len);
        else if (len > 0 && len < 64) {
            /* Forms JSON does not write (1e30 without a fraction is fine; "inf", "nan" are
             * not numbers at all): through strtod, null when not finite. */
            char tmp[64];
            memcpy(tmp, v, len);
            tmp[len] = '\0';
            char *end;
            double d = strtod(tmp, &end);
            if (*end || !isfinite(d))
                json_buf_puts(b, "null");
            else
                json_buf_printf(b, "%.17g", d);
        } else {
            json_buf_puts(b, "null");
        }
        return;
    }
    if (t == HT_BIT || t == HT_GEOMETRY ||
        (is_text_type(t) && c->charset == HT_CHARSET_BINARY && t != HT_JSON)) {
        write_base64(b, v, len);
        return;
    }
    if (is_text_type(t) && !valid_utf8(v, len)) {
        write_base64(b, v, len);
        return;
    }
    /* DECIMAL, dates and times, text. */
    json_write_string(b, v, len);
}

/* Appends ".ffffff" cut to the column's decimals (0-6) to the time printed in out[0, len). */
static void put_fraction(char *out, int len, size_t cap, unsigned decimals, unsigned long us)
{
    if (decimals == 0 || decimals > 6 || len < 0 || (size_t)len >= cap)
        return;
    char frac[8];
    snprintf(frac, sizeof(frac), "%06lu", us % 1000000);
    snprintf(out + len, cap - (size_t)len, ".%.*s", (int)decimals, frac);
}

/* The shortest decimal text that reads back as d (as the server prints floats). */
static void shortest_double(double d, int max_digits, bool as_float, char *out, size_t cap)
{
    for (int prec = 1; prec <= max_digits; prec++) {
        snprintf(out, cap, "%.*g", prec, d);
        double back = strtod(out, NULL);
        if (as_float ? (float)back == (float)d : back == d)
            return;
    }
}

bool hj_binary_value(preader *r, const hj_column *c, char *out, size_t cap, const char **s,
                     size_t *n)
{
    bool unsig = (c->flags & HT_FLAG_UNSIGNED) != 0;
    *s = out;
    switch (c->type) {
    case HT_TINY: {
        uint8_t v;
        if (!pr_u8(r, &v))
            return false;
        snprintf(out, cap, "%d", unsig ? (int)v : (int)(int8_t)v);
        break;
    }
    case HT_SHORT:
    case HT_YEAR: {
        uint16_t v;
        if (!pr_u16(r, &v))
            return false;
        snprintf(out, cap, "%d", unsig || c->type == HT_YEAR ? (int)v : (int)(int16_t)v);
        break;
    }
    case HT_INT24:
    case HT_LONG: {
        uint32_t v;
        if (!pr_u32(r, &v))
            return false;
        if (unsig)
            snprintf(out, cap, "%u", v);
        else
            snprintf(out, cap, "%d", (int32_t)v);
        break;
    }
    case HT_LONGLONG: {
        const uint8_t *p;
        if (!pr_bytes(r, 8, &p))
            return false;
        uint64_t v = (uint64_t)pkt_u32(p) | ((uint64_t)pkt_u32(p + 4) << 32);
        if (unsig)
            snprintf(out, cap, "%llu", (unsigned long long)v);
        else
            snprintf(out, cap, "%lld", (long long)(int64_t)v);
        break;
    }
    case HT_FLOAT: {
        uint32_t v;
        if (!pr_u32(r, &v))
            return false;
        float f;
        memcpy(&f, &v, 4);
        shortest_double(f, 9, true, out, cap);
        break;
    }
    case HT_DOUBLE: {
        const uint8_t *p;
        if (!pr_bytes(r, 8, &p))
            return false;
        uint64_t v = (uint64_t)pkt_u32(p) | ((uint64_t)pkt_u32(p + 4) << 32);
        double d;
        memcpy(&d, &v, 8);
        shortest_double(d, 17, false, out, cap);
        break;
    }
    case HT_DATE:
    case HT_NEWDATE:
    case HT_DATETIME:
    case HT_TIMESTAMP: {
        uint8_t l;
        const uint8_t *p;
        if (!pr_u8(r, &l) || (l != 0 && l != 4 && l != 7 && l != 11) || !pr_bytes(r, l, &p))
            return false;
        unsigned y = l >= 4 ? pkt_u16(p) : 0, mo = l >= 4 ? p[2] : 0, d = l >= 4 ? p[3] : 0;
        unsigned h = l >= 7 ? p[4] : 0, mi = l >= 7 ? p[5] : 0, se = l >= 7 ? p[6] : 0;
        unsigned long us = l >= 11 ? pkt_u32(p + 7) : 0;
        if (c->type == HT_DATE || c->type == HT_NEWDATE) {
            snprintf(out, cap, "%04u-%02u-%02u", y, mo, d);
        } else {
            int len = snprintf(out, cap, "%04u-%02u-%02u %02u:%02u:%02u", y, mo, d, h, mi, se);
            put_fraction(out, len, cap, c->decimals, us);
        }
        break;
    }
    case HT_TIME: {
        uint8_t l;
        const uint8_t *p;
        if (!pr_u8(r, &l) || (l != 0 && l != 8 && l != 12) || !pr_bytes(r, l, &p))
            return false;
        bool neg = l >= 8 && p[0];
        unsigned long days = l >= 8 ? pkt_u32(p + 1) : 0;
        unsigned long hours = days * 24 + (l >= 8 ? p[5] : 0);
        unsigned mi = l >= 8 ? p[6] : 0, se = l >= 8 ? p[7] : 0;
        unsigned long us = l >= 12 ? pkt_u32(p + 8) : 0;
        int len = snprintf(out, cap, "%s%02lu:%02u:%02u", neg ? "-" : "", hours, mi, se);
        put_fraction(out, len, cap, c->decimals, us);
        break;
    }
    default: {
        const uint8_t *p;
        size_t len;
        if (!pr_lenenc_str(r, &p, &len))
            return false;
        *s = (const char *)p;
        *n = len;
        return true;
    }
    }
    *n = strlen(out);
    return true;
}

/* ---- tokens and paths ------------------------------------------------------------------------ */

void hj_token_hash(const char *token, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        memset(md, 0xff, sizeof(md));
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int hj_split_path(const char *path, char seg[][HJ_SEG_MAX + 1], int max)
{
    if (!path || path[0] != '/')
        return -1;
    int n = 0;
    const char *p = path + 1;
    if (*p == '\0')
        return 0;
    for (;;) {
        if (n == max)
            return -1;
        size_t len = 0;
        while (*p && *p != '/') {
            int ch = (unsigned char)*p;
            if (ch == '%') {
                int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
                if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                    return -1;
                ch = hi * 16 + lo;
                p += 3;
            } else {
                p++;
            }
            if (len == HJ_SEG_MAX)
                return -1;
            seg[n][len++] = (char)ch;
        }
        if (len == 0)
            return -1;
        seg[n][len] = '\0';
        n++;
        if (*p == '\0')
            return n;
        p++; /* '/' */
        if (*p == '\0')
            return n; /* one trailing slash is allowed */
    }
}

/* ---- named parameters ------------------------------------------------------------------------ */

int hj_named_params(const char *sql, size_t len, char **out, const char **names,
                    size_t *name_lens, int max, char *err, size_t errlen)
{
    /* Where a named query runs is its environments, its database and the caller's choice
     * among them: a routing comment of its own would send it elsewhere (and its answer would
     * still name the environment it was asked to run in). */
    route_hint h;
    char herr[160];
    if (route_parse_hint(sql, len, &h, herr, sizeof(herr)) != 0 || h.present) {
        snprintf(err, errlen, "a routing comment (env=, db=, compare=) cannot start a named "
                              "query: its environments and database say where it runs");
        return -1;
    }
    sql_lexer lx;
    sqllex_init(&lx, sql, len, NULL);
    json_buf b;
    json_buf_init(&b);
    size_t copied = 0;
    int n = 0;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_END)
            break;
        if (t.kind == SQLTOK_ERROR) {
            snprintf(err, errlen, "the SQL cannot be read: %s", lx.error ? lx.error : "?");
            json_buf_free(&b);
            return -1;
        }
        if (t.kind == SQLTOK_PUNCT && t.len == 1 && sql[t.start] == '?') {
            snprintf(err, errlen, "use :name parameters, not '?'");
            json_buf_free(&b);
            return -1;
        }
        if (t.kind != SQLTOK_PUNCT || t.len != 1 || sql[t.start] != ':')
            continue;
        /* ':' directly followed by a word: a parameter. */
        size_t save = lx.pos;
        sql_token w = sqllex_next(&lx);
        if (w.kind != SQLTOK_WORD || w.spaced || w.start != t.start + 1) {
            lx.pos = save;
            continue;
        }
        if (t.cond || w.cond) {
            snprintf(err, errlen, "a parameter inside a version-dependent comment");
            json_buf_free(&b);
            return -1;
        }
        if (n == max) {
            snprintf(err, errlen, "more than %d parameters", max);
            json_buf_free(&b);
            return -1;
        }
        names[n] = sql + w.start;
        name_lens[n] = w.len;
        n++;
        json_buf_put(&b, sql + copied, t.start - copied);
        json_buf_putc(&b, '?');
        copied = w.start + w.len;
    }
    json_buf_put(&b, sql + copied, len - copied);
    size_t olen;
    *out = json_buf_take(&b, &olen);
    if (!*out)
        *out = strdup("");
    json_buf_free(&b);
    return n;
}

bool hj_param_type_valid(const char *type)
{
    static const char *const types[] = {"int", "decimal", "string", "date", "datetime", "bool"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* "YYYY-MM-DD" with a plausible month and day. */
static bool valid_date(const char *s, size_t n)
{
    if (n != 10 || s[4] != '-' || s[7] != '-' || !all_digits(s, 4) || !all_digits(s + 5, 2) ||
        !all_digits(s + 8, 2))
        return false;
    int mo = atoi(s + 5), d = atoi(s + 8);
    return mo >= 1 && mo <= 12 && d >= 1 && d <= 31;
}

bool hj_check_param(const char *type, const json *v, char *out, size_t cap, char *err,
                    size_t errlen)
{
    out[0] = '\0';
    if (strcmp(type, "int") == 0) {
        const char *s = v->type == JSON_NUMBER ? v->u.num.text
                        : v->type == JSON_STRING ? v->u.str.s : NULL;
        size_t n = s ? strlen(s) : 0;
        const char *d = s && n > 0 && s[0] == '-' ? s + 1 : s;
        if (!s || !all_digits(d, n - (size_t)(d - s)) || n > 20) {
            snprintf(err, errlen, "an integer is needed");
            return false;
        }
        errno = 0;
        long long x = strtoll(s, NULL, 10);
        if (errno) {
            snprintf(err, errlen, "the integer is out of range");
            return false;
        }
        snprintf(out, cap, "%lld", x);
        return true;
    }
    if (strcmp(type, "decimal") == 0) {
        const char *s = v->type == JSON_NUMBER ? v->u.num.text
                        : v->type == JSON_STRING ? v->u.str.s : NULL;
        size_t n = s ? strlen(s) : 0;
        size_t i = 0, digits = 0;
        if (s && i < n && s[i] == '-')
            i++;
        while (s && i < n && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
        if (s && i < n && s[i] == '.') {
            i++;
            while (i < n && s[i] >= '0' && s[i] <= '9')
                i++, digits++;
        }
        if (!s || i != n || digits == 0 || n >= cap || n > 80) {
            snprintf(err, errlen, "a decimal number is needed, such as \"12.50\"");
            return false;
        }
        snprintf(out, cap, "%s", s);
        return true;
    }
    if (strcmp(type, "bool") == 0) {
        if (v->type != JSON_BOOL) {
            snprintf(err, errlen, "true or false is needed");
            return false;
        }
        snprintf(out, cap, "%d", v->u.b ? 1 : 0);
        return true;
    }
    if (strcmp(type, "date") == 0 || strcmp(type, "datetime") == 0) {
        bool dt = type[4] == 't';
        const char *s = v->type == JSON_STRING ? v->u.str.s : NULL;
        size_t n = s ? v->u.str.len : 0;
        bool ok = s && n >= 10 && valid_date(s, 10);
        if (ok && !dt)
            ok = n == 10;
        if (ok && dt && n > 10) {
            /* " HH:MM:SS" or "THH:MM:SS", then an optional fraction of 1 to 6 digits. */
            ok = n >= 19 && (s[10] == ' ' || s[10] == 'T') && all_digits(s + 11, 2) &&
                 s[13] == ':' && all_digits(s + 14, 2) && s[16] == ':' &&
                 all_digits(s + 17, 2) && atoi(s + 11) < 24 && atoi(s + 14) < 60 &&
                 atoi(s + 17) < 60;
            if (ok && n > 19)
                ok = s[19] == '.' && n - 20 >= 1 && n - 20 <= 6 && all_digits(s + 20, n - 20);
        }
        if (!ok) {
            snprintf(err, errlen, dt ? "a datetime such as \"2026-01-31 12:00:00\" is needed"
                                     : "a date such as \"2026-01-31\" is needed");
            return false;
        }
        snprintf(out, cap, "%.*s", (int)n, s);
        if (dt && n > 10)
            out[10] = ' ';
        return true;
    }
    /* string */
    if (v->type != JSON_STRING) {
        snprintf(err, errlen, "a string is needed");
        return false;
    }
    return true;
}

/* ---- named query definitions -------------------------------------------------------------- */

static bool ident_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

json *hj_query_check(const json *def, const char *owner, const account *by, const config *cfg,
                     char *err, size_t errlen)
{
    if (!def || def->type != JSON_OBJECT) {
        snprintf(err, errlen, "a named query is a JSON object");
        return NULL;
    }
    static const char *const known[] = {"name",         "description", "sql",   "params",
                                        "environments", "database",    "owner"};
    for (size_t i = 0; i < def->u.obj.n; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            ok |= strcmp(def->u.obj.items[i].key, known[k]) == 0;
        if (!ok) {
            snprintf(err, errlen, "unknown field '%.64s'", def->u.obj.items[i].key);
            return NULL;
        }
    }
    const json *name = json_get(def, "name"), *sql = json_get(def, "sql");
    const json *desc = json_get(def, "description"), *params = json_get(def, "params");
    const json *envs = json_get(def, "environments"), *db = json_get(def, "database");
    if (!name || name->type != JSON_STRING || !ident_ok(name->u.str.s, name->u.str.len, 64)) {
        snprintf(err, errlen, "name: 1 to 64 of A-Z a-z 0-9 _");
        return NULL;
    }
    if (!sql || sql->type != JSON_STRING || sql->u.str.len == 0 || sql->u.str.len > 65536 ||
        strlen(sql->u.str.s) != sql->u.str.len) {
        snprintf(err, errlen, "sql: a statement of at most 64 KiB is needed");
        return NULL;
    }
    if (desc && ((desc->type != JSON_STRING && desc->type != JSON_NULL) ||
                 (desc->type == JSON_STRING && desc->u.str.len > HJ_QUERY_DESC_MAX))) {
        snprintf(err, errlen, "description: a string of at most %d bytes is needed",
                 HJ_QUERY_DESC_MAX);
        return NULL;
    }
    if (params && params->type != JSON_ARRAY) {
        snprintf(err, errlen, "params: an array is needed");
        return NULL;
    }
    if (envs && envs->type != JSON_ARRAY) {
        snprintf(err, errlen, "environments: an array of environment names is needed");
        return NULL;
    }
    if (db && db->type != JSON_NULL &&
        (db->type != JSON_STRING || !acct_valid_env_name(db->u.str.s))) {
        snprintf(err, errlen, "database: 1 to 64 of A-Z a-z 0-9 _ -");
        return NULL;
    }
    json *out = json_new_object();
    json_object_set(out, "name", json_clone(name));
    json_object_set(out, "description",
                    desc && desc->type == JSON_STRING ? json_clone(desc) : json_new_cstr(""));
    json_object_set(out, "sql", json_clone(sql));
    json *oparams = json_new_array();
    json_object_set(out, "params", oparams);
    size_t np = params ? params->u.arr.n : 0;
    for (size_t i = 0; i < np; i++) {
        const json *pd = params->u.arr.items[i];
        const json *pn = json_get(pd, "name"), *pt = json_get(pd, "type");
        const json *pr = json_get(pd, "required"), *pdef = json_get(pd, "default");
        if (!pn || pn->type != JSON_STRING || !ident_ok(pn->u.str.s, pn->u.str.len, 64)) {
            snprintf(err, errlen, "params[%zu].name: 1 to 64 of A-Z a-z 0-9 _", i);
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(json_get(params->u.arr.items[j], "name")),
                       pn->u.str.s) == 0) {
                snprintf(err, errlen, "parameter '%s' is declared twice", pn->u.str.s);
                goto fail;
            }
        if (!pt || pt->type != JSON_STRING || !hj_param_type_valid(pt->u.str.s)) {
            snprintf(err, errlen,
                     "parameter '%s': type must be int, decimal, string, date, datetime or bool",
                     pn->u.str.s);
            goto fail;
        }
        if (pr && pr->type != JSON_BOOL) {
            snprintf(err, errlen, "parameter '%s': required is true or false", pn->u.str.s);
            goto fail;
        }
        json *o = json_new_object();
        json_object_set(o, "name", json_clone(pn));
        json_object_set(o, "type", json_clone(pt));
        if (pdef && pdef->type != JSON_NULL) {
            char canon[96], perr[128];
            if (!hj_check_param(pt->u.str.s, pdef, canon, sizeof(canon), perr, sizeof(perr))) {
                json_free(o);
                snprintf(err, errlen, "parameter '%s': default: %s", pn->u.str.s, perr);
                goto fail;
            }
        }
        bool required = pr ? pr->u.b : !(pdef && pdef->type != JSON_NULL);
        json_object_set(o, "required", json_new_bool(required));
        json_object_set(o, "default", pdef ? json_clone(pdef) : json_new_null());
        json_array_add(oparams, o);
    }
    /* Every :name is declared, every declared name used. */
    const char *names[64];
    size_t lens[64];
    char *rewritten = NULL, perr[160];
    int n = hj_named_params(sql->u.str.s, sql->u.str.len, &rewritten, names, lens, 64, perr,
                            sizeof(perr));
    if (n < 0) {
        snprintf(err, errlen, "sql: %s", perr);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < np && !found; j++)
            found = strlen(json_string_value(json_get(oparams->u.arr.items[j], "name"))) ==
                        lens[i] &&
                    strncmp(json_string_value(json_get(oparams->u.arr.items[j], "name")),
                            names[i], lens[i]) == 0;
        if (!found) {
            snprintf(err, errlen, "sql uses :%.*s, which is not declared in params",
                     (int)lens[i], names[i]);
            free(rewritten);
            goto fail;
        }
    }
    for (size_t j = 0; j < np; j++) {
        const char *pn = json_string_value(json_get(oparams->u.arr.items[j], "name"));
        bool used = false;
        for (int i = 0; i < n && !used; i++)
            used = strlen(pn) == lens[i] && strncmp(pn, names[i], lens[i]) == 0;
        if (!used) {
            snprintf(err, errlen, "parameter '%s' is declared but the SQL does not use it", pn);
            free(rewritten);
            goto fail;
        }
    }
    policy_verdict v;
    bool read_only = sqlpolicy_check_readonly(rewritten, strlen(rewritten), NULL, &v);
    free(rewritten);
    if (!read_only && strstr(v.what, "unterminated") != NULL) {
        snprintf(err, errlen, "sql: %s", v.what);
        goto fail;
    }
    json *oenvs = json_new_array();
    json_object_set(out, "environments", oenvs);
    for (size_t i = 0; envs && i < envs->u.arr.n; i++) {
        const json *e = envs->u.arr.items[i];
        const cfg_env *ce = e->type == JSON_STRING ? config_find_env(cfg, e->u.str.s) : NULL;
        if (ce && by && acct_grant_for(by, ce->name) == GRANT_NONE)
            ce = NULL;
        if (!ce) {
            snprintf(err, errlen, "environments: '%.64s' is not a configured environment",
                     e->type == JSON_STRING ? e->u.str.s : "?");
            goto fail;
        }
        if (!read_only && ce->access != ACCESS_READ_WRITE) {
            snprintf(err, errlen,
                     "sql is refused in read-only environment '%s': %s is not allowed",
                     ce->name, v.what);
            goto fail;
        }
        if (!read_only && by && acct_grant_for(by, ce->name) != GRANT_WRITE) {
            snprintf(err, errlen,
                     "sql is not read-only (%s) and this account may only read in '%s'", v.what,
                     ce->name);
            goto fail;
        }
        json_array_add(oenvs, json_clone(e));
    }
    if (!read_only && oenvs->u.arr.n == 0) {
        snprintf(err, errlen,
                 "sql is not read-only (%s is not allowed): list the read_write environments "
                 "it may run in",
                 v.what);
        goto fail;
    }
    json_object_set(out, "database",
                    db && db->type == JSON_STRING ? json_clone(db) : json_new_null());
    json_object_set(out, "owner", json_new_cstr(owner ? owner : ""));
    size_t text_len = 0;
    free(json_serialize(out, &text_len));
    if (text_len > HJ_QUERY_DEF_MAX) { /* parameter defaults are the rest that could grow */
        snprintf(err, errlen, "the definition is larger than %d bytes", HJ_QUERY_DEF_MAX);
        goto fail;
    }
    return out;
fail:
    json_free(out);
    return NULL;
}
