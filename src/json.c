/* json.c: a strict JSON reader (recursive descent, depth-limited) and a UTF-8-safe writer. */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory ----------------------------------------------------------------------------- */

static void *oom(void)
{
    fprintf(stderr, "envproxy: out of memory\n");
    abort();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom();
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom();
}

/* A NUL-terminated copy of s[0..n). */
static char *xmemdup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static json *new_value(json_type t)
{
    json *v = xmalloc(sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->type = t;
    return v;
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

size_t json_utf8_seq_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return need;
}

/* Writes code point cp (valid, not a surrogate) as UTF-8 into out; returns its length. */
static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- the buffer ------------------------------------------------------------------------- */

void json_buf_init(json_buf *b)
{
    b->cap = 256;
    b->data = xmalloc(b->cap);
    b->data[0] = '\0';
    b->len = 0;
}

void json_buf_free(json_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void json_buf_reset(json_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void buf_reserve(json_buf *b, size_t extra)
{
    if (!b->data)
        json_buf_init(b);
    if (extra >= SIZE_MAX / 2 - b->len)
        oom();
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void json_buf_put(json_buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void json_buf_putc(json_buf *b, char c)
{
    json_buf_put(b, &c, 1);
}

void json_buf_puts(json_buf *b, const char *s)
{
    json_buf_put(b, s, strlen(s));
}

void json_buf_printf(json_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[128];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        json_buf_put(b, small, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *json_buf_take(json_buf *b, size_t *len)
{
    if (!b->data)
        json_buf_init(b);
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- the reader ------------------------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t len, pos;
    int max_depth;
    char *err;
    size_t errlen;
    bool failed;
} reader;

static void fail(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(reader *r, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = true;
    if (!r->err || r->errlen == 0)
        return;
    int n = snprintf(r->err, r->errlen, "offset %zu: ", r->pos);
    if (n < 0 || (size_t)n >= r->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Describes the byte at the reader's position for an error message. */
static const char *here(reader *r, char *tmp, size_t n)
{
    if (r->pos >= r->len)
        return "end of input";
    unsigned char c = (unsigned char)r->s[r->pos];
    if (c >= 0x20 && c < 0x7F)
        snprintf(tmp, n, "'%c'", c);
    else
        snprintf(tmp, n, "byte 0x%02X", c);
    return tmp;
}

static void skip_ws(reader *r)
{
    while (r->pos < r->len) {
        char c = r->s[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        r->pos++;
    }
}

static json *parse_value(reader *r, int depth);

static bool literal(reader *r, const char *word)
{
    size_t n = strlen(word);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0) {
        fail(r, "invalid literal (expected %s)", word);
        return false;
    }
    r->pos += n;
    return true;
}

static json *parse_number(reader *r)
{
    size_t start = r->pos;
    const char *s = r->s;
    size_t i = r->pos;
    if (i < r->len && s[i] == '-')
        i++;
    if (i >= r->len || s[i] < '0' || s[i] > '9') {
        r->pos = i;
        fail(r, "invalid number: a digit must follow '-'");
        return NULL;
    }
    if (s[i] == '0') {
        i++;
        if (i < r->len && s[i] >= '0' && s[i] <= '9') {
            r->pos = i;
            fail(r, "invalid number: leading zero");
            return NULL;
        }
    } else {
        while (i < r->len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < r->len && s[i] == '.') {
        i++;
        if (i >= r->len || s[i] < '0' || s[i] > '9') {
            r->pos = i;
            fail(r, "invalid number: a digit must follow '.'");
            return NULL;
        }
        while (i < r->len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < r->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < r->len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= r->len || s[i] < '0' || s[i] > '9') {
            r->pos = i;
            fail(r, "invalid number: a digit must follow the exponent");
            return NULL;
        }
        while (i < r->len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    json *v = new_value(JSON_NUMBER);
    v->u.num.text = xmemdup(s + start, i - start);
    v->u.num.value = strtod(v->u.num.text, NULL);
    r->pos = i;
    return v;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits of a \u escape at r->pos (just past the 'u'). -1 on error. */
static long read_hex4(reader *r)
{
    if (r->len - r->pos < 4) {
        fail(r, "\\u needs 4 hex digits");
        return -1;
    }
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(r->s[r->pos + (size_t)i]);
        if (d < 0) {
            r->pos += (size_t)i;
            fail(r, "\\u needs 4 hex digits");
            return -1;
        }
        v = v * 16 + d;
    }
    r->pos += 4;
    return v;
}

/* Reads a string starting at the opening quote into out (reset first). */
static bool parse_string_into(reader *r, json_buf *out)
{
    json_buf_reset(out);
    r->pos++; /* the opening quote */
    for (;;) {
        /* Copy a run of plain characters at once. */
        size_t run = r->pos;
        while (run < r->len) {
            unsigned char c = (unsigned char)r->s[run];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
                break;
            run++;
        }
        if (run > r->pos) {
            json_buf_put(out, r->s + r->pos, run - r->pos);
            r->pos = run;
        }
        if (r->pos >= r->len) {
            fail(r, "unterminated string");
            return false;
        }
        unsigned char c = (unsigned char)r->s[r->pos];
        if (c == '"') {
            r->pos++;
            return true;
        }
        if (c < 0x20) {
            fail(r, "control character 0x%02X in a string must be escaped", c);
            return false;
        }
        if (c >= 0x80) {
            size_t n = json_utf8_seq_len((const unsigned char *)r->s + r->pos, r->len - r->pos);
            if (n == 0) {
                fail(r, "invalid UTF-8 in a string");
                return false;
            }
            json_buf_put(out, r->s + r->pos, n);
            r->pos += n;
            continue;
        }
        /* A backslash. */
        r->pos++;
        if (r->pos >= r->len) {
            fail(r, "unterminated string");
            return false;
        }
        char e = r->s[r->pos++];
        char ch;
        switch (e) {
        case '"':
            ch = '"';
            break;
        case '\\':
            ch = '\\';
            break;
        case '/':
            ch = '/';
            break;
        case 'b':
            ch = '\b';
            break;
        case 'f':
            ch = '\f';
            break;
        case 'n':
            ch = '\n';
            break;
        case 'r':
            ch = '\r';
            break;
        case 't':
            ch = '\t';
            break;
        case 'u': {
            long hi = read_hex4(r);
            if (hi < 0)
                return false;
            uint32_t cp = (uint32_t)hi;
            if (hi >= 0xDC00 && hi <= 0xDFFF) {
                r->pos -= 6;
                fail(r, "lone low surrogate \\u%04lX", hi);
                return false;
            }
            if (hi >= 0xD800 && hi <= 0xDBFF) {
                if (r->len - r->pos < 2 || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u') {
                    fail(r, "high surrogate \\u%04lX not followed by a low surrogate", hi);
                    return false;
                }
                r->pos += 2;
                long lo = read_hex4(r);
                if (lo < 0)
                    return false;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    r->pos -= 6;
                    fail(r, "high surrogate \\u%04lX not followed by a low surrogate", hi);
                    return false;
                }
                cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            }
            char enc[4];
            json_buf_put(out, enc, utf8_encode(cp, enc));
            continue;
        }
        default:
            r->pos--;
            if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7F)
                fail(r, "invalid escape '\\%c'", e);
            else
                fail(r, "invalid escape");
            return false;
        }
        json_buf_putc(out, ch);
    }
}

static json *parse_string(reader *r)
{
    json_buf tmp;
    json_buf_init(&tmp);
    if (!parse_string_into(r, &tmp)) {
        json_buf_free(&tmp);
        return NULL;
    }
    json *v = new_value(JSON_STRING);
    v->u.str.s = json_buf_take(&tmp, &v->u.str.len);
    json_buf_free(&tmp);
    return v;
}

static json *parse_array(reader *r, int depth)
{
    if (depth >= r->max_depth) {
        fail(r, "nesting deeper than %d levels", r->max_depth);
        return NULL;
    }
    r->pos++; /* '[' */
    json *a = new_value(JSON_ARRAY);
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == ']') {
        r->pos++;
        return a;
    }
    for (;;) {
        json *item = parse_value(r, depth + 1);
        if (!item) {
            json_free(a);
            return NULL;
        }
        json_array_add(a, item);
        skip_ws(r);
        char tmp[16];
        if (r->pos < r->len && r->s[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->pos < r->len && r->s[r->pos] == ']') {
            r->pos++;
            return a;
        }
        fail(r, "expected ',' or ']' in an array, found %s", here(r, tmp, sizeof(tmp)));
        json_free(a);
        return NULL;
    }
}

static void object_append(json *o, char *key, size_t key_len, json *v)
{
    if (o->u.obj.n == o->u.obj.cap) {
        o->u.obj.cap = o->u.obj.cap ? o->u.obj.cap * 2 : 4;
        o->u.obj.items = xrealloc(o->u.obj.items, o->u.obj.cap * sizeof(json_member));
    }
    json_member *m = &o->u.obj.items[o->u.obj.n++];
    m->key = key;
    m->key_len = key_len;
    m->val = v;
}

static json *parse_object(reader *r, int depth)
{
    if (depth >= r->max_depth) {
        fail(r, "nesting deeper than %d levels", r->max_depth);
        return NULL;
    }
    r->pos++; /* '{' */
    json *o = new_value(JSON_OBJECT);
    skip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == '}') {
        r->pos++;
        return o;
    }
    json_buf key;
    json_buf_init(&key);
    for (;;) {
        char tmp[16];
        skip_ws(r);
        if (r->pos >= r->len || r->s[r->pos] != '"') {
            fail(r, "expected a string key in an object, found %s", here(r, tmp, sizeof(tmp)));
            break;
        }
        if (!parse_string_into(r, &key))
            break;
        skip_ws(r);
        if (r->pos >= r->len || r->s[r->pos] != ':') {
            fail(r, "expected ':' after an object key, found %s", here(r, tmp, sizeof(tmp)));
            break;
        }
        r->pos++;
        json *v = parse_value(r, depth + 1);
        if (!v)
            break;
        size_t klen;
        char *k = json_buf_take(&key, &klen);
        object_append(o, k, klen, v);
        skip_ws(r);
        if (r->pos < r->len && r->s[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->pos < r->len && r->s[r->pos] == '}') {
            r->pos++;
            json_buf_free(&key);
            return o;
        }
        fail(r, "expected ',' or '}' in an object, found %s", here(r, tmp, sizeof(tmp)));
        break;
    }
    json_buf_free(&key);
    json_free(o);
    return NULL;
}

static json *parse_value(reader *r, int depth)
{
    skip_ws(r);
    if (r->pos >= r->len) {
        fail(r, "unexpected end of input (expected a value)");
        return NULL;
    }
    char c = r->s[r->pos];
    switch (c) {
    case '{':
        return parse_object(r, depth);
    case '[':
        return parse_array(r, depth);
    case '"':
        return parse_string(r);
    case 't':
        return literal(r, "true") ? json_new_bool(true) : NULL;
    case 'f':
        return literal(r, "false") ? json_new_bool(false) : NULL;
    case 'n':
        return literal(r, "null") ? json_new_null() : NULL;
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(r);
        char tmp[16];
        fail(r, "unexpected %s (expected a value)", here(r, tmp, sizeof(tmp)));
        return NULL;
    }
}

json *json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen)
{
    reader r = {.s = text,
                .len = text ? len : 0,
                .max_depth = max_depth > 0 ? max_depth : JSON_MAX_DEPTH,
                .err = err,
                .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    json *v = parse_value(&r, 0);
    if (!v)
        return NULL;
    skip_ws(&r);
    if (r.pos < r.len) {
        char tmp[16];
        fail(&r, "unexpected %s after the value", here(&r, tmp, sizeof(tmp)));
        json_free(v);
        return NULL;
    }
    return v;
}

/* ---- the tree --------------------------------------------------------------------------- */

void json_free(json *v)
{
    if (!v)
        return;
    switch (v->type) {
    case JSON_NUMBER:
        free(v->u.num.text);
        break;
    case JSON_STRING:
        free(v->u.str.s);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            json_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < v->u.obj.n; i++) {
            free(v->u.obj.items[i].key);
            json_free(v->u.obj.items[i].val);
        }
        free(v->u.obj.items);
        break;
    default:
        break;
    }
    free(v);
}

json *json_get(const json *v, const char *key)
{
    if (!v || v->type != JSON_OBJECT)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = v->u.obj.n; i-- > 0;) {
        const json_member *m = &v->u.obj.items[i];
        if (m->key_len == klen && memcmp(m->key, key, klen) == 0)
            return m->val;
    }
    return NULL;
}

const char *json_string_value(const json *v)
{
    return v && v->type == JSON_STRING ? v->u.str.s : NULL;
}

const char *json_type_name(json_type t)
{
    switch (t) {
    case JSON_NULL:
        return "null";
    case JSON_BOOL:
        return "boolean";
    case JSON_NUMBER:
        return "number";
    case JSON_STRING:
        return "string";
    case JSON_ARRAY:
        return "array";
    case JSON_OBJECT:
        return "object";
    }
    return "?";
}

bool json_equal(const json *a, const json *b)
{
    if (!a || !b)
        return a == b;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case JSON_NULL:
        return true;
    case JSON_BOOL:
        return a->u.b == b->u.b;
    case JSON_NUMBER:
        return a->u.num.value == b->u.num.value;
    case JSON_STRING:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case JSON_ARRAY:
        if (a->u.arr.n != b->u.arr.n)
            return false;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!json_equal(a->u.arr.items[i], b->u.arr.items[i]))
                return false;
        return true;
    case JSON_OBJECT:
        if (a->u.obj.n != b->u.obj.n)
            return false;
        for (size_t i = 0; i < a->u.obj.n; i++) {
            const json_member *x = &a->u.obj.items[i], *y = &b->u.obj.items[i];
            if (x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len) != 0 ||
                !json_equal(x->val, y->val))
                return false;
        }
        return true;
    }
    return false;
}

json *json_new_null(void)
{
    return new_value(JSON_NULL);
}

json *json_new_bool(bool b)
{
    json *v = new_value(JSON_BOOL);
    v->u.b = b;
    return v;
}

json *json_new_int(long long i)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%lld", i);
    json *v = new_value(JSON_NUMBER);
    v->u.num.text = xmemdup(tmp, (size_t)n);
    v->u.num.value = (double)i;
    return v;
}

json *json_new_double(double d)
{
    if (!isfinite(d))
        return json_new_null();
    char tmp[40];
    /* The shortest of %.15g .. %.17g that reads back as the same double. */
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    json *v = new_value(JSON_NUMBER);
    v->u.num.text = xmemdup(tmp, (size_t)n);
    v->u.num.value = d;
    return v;
}

json *json_new_string(const char *s, size_t len)
{
    json *v = new_value(JSON_STRING);
    v->u.str.s = xmemdup(s ? s : "", s ? len : 0);
    v->u.str.len = s ? len : 0;
    return v;
}

json *json_new_cstr(const char *s)
{
    return json_new_string(s, s ? strlen(s) : 0);
}

json *json_new_array(void)
{
    return new_value(JSON_ARRAY);
}

json *json_new_object(void)
{
    return new_value(JSON_OBJECT);
}

json *json_clone(const json *v)
{
    if (!v)
        return NULL;
    json *c;
    switch (v->type) {
    case JSON_NULL:
        return json_new_null();
    case JSON_BOOL:
        return json_new_bool(v->u.b);
    case JSON_NUMBER:
        c = new_value(JSON_NUMBER);
        c->u.num.value = v->u.num.value;
        c->u.num.text = xmemdup(v->u.num.text, strlen(v->u.num.text));
        return c;
    case JSON_STRING:
        return json_new_string(v->u.str.s, v->u.str.len);
    case JSON_ARRAY:
        c = json_new_array();
        for (size_t i = 0; i < v->u.arr.n; i++)
            json_array_add(c, json_clone(v->u.arr.items[i]));
        return c;
    case JSON_OBJECT:
        c = json_new_object();
        for (size_t i = 0; i < v->u.obj.n; i++) {
            const json_member *m = &v->u.obj.items[i];
            object_append(c, xmemdup(m->key, m->key_len), m->key_len, json_clone(m->val));
        }
        return c;
    }
    return NULL;
}

void json_array_add(json *a, json *v)
{
    if (a->u.arr.n == a->u.arr.cap) {
        a->u.arr.cap = a->u.arr.cap ? a->u.arr.cap * 2 : 4;
        a->u.arr.items = xrealloc(a->u.arr.items, a->u.arr.cap * sizeof(json *));
    }
    a->u.arr.items[a->u.arr.n++] = v;
}

void json_object_set(json *o, const char *key, json *v)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < o->u.obj.n; i++) {
        json_member *m = &o->u.obj.items[i];
        if (m->key_len == klen && memcmp(m->key, key, klen) == 0) {
            json_free(m->val);
            m->val = v;
            return;
        }
    }
    object_append(o, xmemdup(key, klen), klen, v);
}

/* ---- the writer ------------------------------------------------------------------------- */

void json_write_string(json_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(b, len + 2);
    json_buf_putc(b, '"');
    size_t i = 0;
    while (i < len) {
        /* Copy a run of characters that need nothing. */
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            json_buf_put(b, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t n = json_utf8_seq_len(p + i, len - i);
            if (n) {
                json_buf_put(b, p + i, n);
                i += n;
            } else {
                json_buf_puts(b, "\\ufffd");
                i++;
            }
            continue;
        }
        switch (c) {
        case '"':
            json_buf_puts(b, "\\\"");
            break;
        case '\\':
            json_buf_puts(b, "\\\\");
            break;
        case '\b':
            json_buf_puts(b, "\\b");
            break;
        case '\f':
            json_buf_puts(b, "\\f");
            break;
        case '\n':
            json_buf_puts(b, "\\n");
            break;
        case '\r':
            json_buf_puts(b, "\\r");
            break;
        case '\t':
            json_buf_puts(b, "\\t");
            break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            json_buf_put(b, esc, 6);
        }
        }
        i++;
    }
    json_buf_putc(b, '"');
}

bool json_number_valid(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && s[i] == '-')
        i++;
    if (i >= len || s[i] < '0' || s[i] > '9')
        return false;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || s[i] < '0' || s[i] > '9')
            return false;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || s[i] < '0' || s[i] > '9')
            return false;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i == len;
}

static void write_value(json_buf *b, const json *v)
{
    if (!v) {
        json_buf_puts(b, "null");
        return;
    }
    switch (v->type) {
    case JSON_NULL:
        json_buf_puts(b, "null");
        break;
    case JSON_BOOL:
        json_buf_puts(b, v->u.b ? "true" : "false");
        break;
    case JSON_NUMBER: {
        const char *t = v->u.num.text;
        if (t && json_number_valid(t, strlen(t)))
            json_buf_puts(b, t);
        else
            json_buf_puts(b, "null");
        break;
    }
    case JSON_STRING:
        json_write_string(b, v->u.str.s, v->u.str.len);
        break;
    case JSON_ARRAY:
        json_buf_putc(b, '[');
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i)
                json_buf_putc(b, ',');
            write_value(b, v->u.arr.items[i]);
        }
        json_buf_putc(b, ']');
        break;
    case JSON_OBJECT:
        json_buf_putc(b, '{');
        for (size_t i = 0; i < v->u.obj.n; i++) {
            const json_member *m = &v->u.obj.items[i];
            if (i)
                json_buf_putc(b, ',');
            json_write_string(b, m->key, m->key_len);
            json_buf_putc(b, ':');
            write_value(b, m->val);
        }
        json_buf_putc(b, '}');
        break;
    }
}

void json_write(json_buf *b, const json *v)
{
    write_value(b, v);
}

char *json_serialize(const json *v, size_t *len)
{
    json_buf b;
    json_buf_init(&b);
    write_value(&b, v);
    if (len)
        *len = b.len;
    return b.data;
}
