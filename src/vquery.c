/* vquery.c: reads and evaluates the small SQL envproxy answers itself over in-memory tables. */
#include "vquery.h"

#include "sqlpolicy.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VQ_MAX_DEPTH 64   /* parentheses and NOTs nested in one WHERE */
#define VQ_NEAR_MAX 40    /* bytes of the statement quoted by a syntax error */
#define VQ_CHUNK 4096     /* arena block size */
#define VQ_BIG_ALLOC 1024 /* larger arena requests get a block of their own */

/* ---- Arena: allocations of a table, query or result, freed all at once ------------------ */

struct vq_chunk {
    struct vq_chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

/* Returns n zeroed bytes aligned for any type, or NULL when out of memory. */
static void *mem_alloc(struct vq_chunk **mem, size_t n)
{
    const size_t align = _Alignof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = n ? (n + align - 1) / align * align : align;
    struct vq_chunk *c = *mem;
    if (n > VQ_BIG_ALLOC) {
        struct vq_chunk *big = malloc(sizeof *big + n);
        if (!big)
            return NULL;
        big->used = big->cap = n;
        if (c) {
            big->next = c->next;
            c->next = big;
        } else {
            big->next = NULL;
            *mem = big;
        }
        memset(big->data, 0, n);
        return big->data;
    }
    if (!c || c->cap - c->used < n) {
        c = malloc(sizeof *c + VQ_CHUNK);
        if (!c)
            return NULL;
        c->next = *mem;
        c->used = 0;
        c->cap = VQ_CHUNK;
        *mem = c;
    }
    void *p = (unsigned char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static void mem_free(struct vq_chunk *mem)
{
    while (mem) {
        struct vq_chunk *next = mem->next;
        free(mem);
        mem = next;
    }
}

static char *mem_strndup(struct vq_chunk **mem, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *c = mem_alloc(mem, len + 1);
    if (c && len)
        memcpy(c, s, len);
    return c;
}

static char *mem_strdup(struct vq_chunk **mem, const char *s)
{
    return mem_strndup(mem, s, strlen(s));
}

/* A formatted string in the arena; NULL when out of memory. */
static char *mem_printf(struct vq_chunk **mem, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *mem_printf(struct vq_chunk **mem, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = mem_alloc(mem, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Returns arr with room for element number n (each sz bytes), moved to a block twice as big
 * when *cap is reached; NULL when out of memory. Elements past n are zero. */
static void *mem_grow(struct vq_chunk **mem, void *arr, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 8;
    if (ncap > SIZE_MAX / 4 / sz)
        return NULL;
    void *na = mem_alloc(mem, ncap * sz);
    if (!na)
        return NULL;
    if (n)
        memcpy(na, arr, n * sz);
    *cap = ncap;
    return na;
}

/* ---- Errors ----------------------------------------------------------------------------- */

static int set_err(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_err(char *err, size_t errlen, int status, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

unsigned vq_error_code(int status)
{
    switch (status) {
    case VQ_OK:
        return 0;
    case VQ_ERR_SYNTAX:
        return 1064;
    case VQ_ERR_UNSUPPORTED:
        return 1235;
    case VQ_ERR_READONLY:
        return 1036;
    case VQ_ERR_NO_TABLE:
        return 1146;
    case VQ_ERR_NO_COLUMN:
        return 1054;
    case VQ_ERR_PARAM:
        return 1210;
    case VQ_ERR_NOMEM:
        return 1037;
    default:
        return 1105;
    }
}

const char *vq_error_sqlstate(int status)
{
    switch (status) {
    case VQ_OK:
        return "00000";
    case VQ_ERR_SYNTAX:
    case VQ_ERR_UNSUPPORTED:
        return "42000";
    case VQ_ERR_NO_TABLE:
        return "42S02";
    case VQ_ERR_NO_COLUMN:
        return "42S22";
    case VQ_ERR_NOMEM:
        return "HY001";
    default:
        return "HY000";
    }
}

int vq_error_no_table(const char *schema, const char *table, char *err, size_t errlen)
{
    if (schema && *schema)
        return set_err(err, errlen, VQ_ERR_NO_TABLE, "Table '%s.%s' doesn't exist", schema,
                       table ? table : "");
    return set_err(err, errlen, VQ_ERR_NO_TABLE, "Table '%s' doesn't exist", table ? table : "");
}

/* ---- Values: conversions and comparisons as MySQL does them ----------------------------- */

static int fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Upper-cases ASCII letters in place, for statement words quoted in messages. */
static char *upper(char *s)
{
    for (char *c = s; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 32);
    return s;
}

static bool ci_eq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* Compares ASCII case-insensitively, the shorter string padded with spaces (PAD SPACE, as
 * MySQL's utf8mb4_general_ci and MariaDB's default collations). */
static int ci_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    for (size_t i = 0; i < n; i++) {
        int ca = fold((unsigned char)a[i]), cb = fold((unsigned char)b[i]);
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    const char *rest = al > bl ? a : b;
    size_t rl = al > bl ? al : bl;
    int sign = al > bl ? 1 : -1;
    for (size_t i = n; i < rl; i++) {
        unsigned char c = (unsigned char)rest[i];
        if (c != ' ')
            return c < ' ' ? -sign : sign;
    }
    return 0;
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int r = memcmp(a, b, al < bl ? al : bl);
    if (r)
        return r < 0 ? -1 : 1;
    return al < bl ? -1 : al > bl;
}

/* MySQL's reading of a string as a number: the longest prefix of spaces, sign, digits,
 * fraction and exponent; no digits read as 0 ("abc" = 0, "12abc" = 12, "0x1A" = 0).
 * s must be NUL-terminated at or after len. */
static double str_to_double(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    size_t j = i;
    if (j < len && (s[j] == '+' || s[j] == '-'))
        j++;
    bool digit = j < len && is_digit((unsigned char)s[j]);
    bool dot_digit = j + 1 < len && s[j] == '.' && is_digit((unsigned char)s[j + 1]);
    if (!digit && !dot_digit)
        return 0;
    if (s[j] == '0' && j + 1 < len && (s[j + 1] == 'x' || s[j + 1] == 'X'))
        return 0;
    /* Copy the prefix so that strtod reads no further than len. */
    size_t k = j;
    while (k < len && is_digit((unsigned char)s[k]))
        k++;
    if (k < len && s[k] == '.') {
        k++;
        while (k < len && is_digit((unsigned char)s[k]))
            k++;
    }
    if (k < len && (s[k] == 'e' || s[k] == 'E')) {
        size_t e = k + 1;
        if (e < len && (s[e] == '+' || s[e] == '-'))
            e++;
        if (e < len && is_digit((unsigned char)s[e])) {
            while (e < len && is_digit((unsigned char)s[e]))
                e++;
            k = e;
        }
    }
    char buf[400];
    size_t n = k - i;
    if (n >= sizeof buf)
        n = sizeof buf - 1; /* a longer number keeps its first 399 bytes */
    memcpy(buf, s + i, n);
    buf[n] = '\0';
    return strtod(buf, NULL);
}

/* True if s is a whole integer (spaces around allowed) that fits int64. */
static bool str_to_int_exact(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    while (i < len && s[i] == ' ')
        i++;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i >= len || !is_digit((unsigned char)s[i]))
        return false;
    uint64_t v = 0;
    while (i < len && is_digit((unsigned char)s[i])) {
        unsigned d = (unsigned)(s[i++] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    while (i < len && s[i] == ' ')
        i++;
    if (i != len)
        return false;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

static int64_t double_to_int(double d)
{
    if (d != d)
        return 0;
    if (d >= 9223372036854775807.0)
        return INT64_MAX;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)d;
}

/* The shortest text that reads back as d: plain digits for exponents from -4 to 14 ("10",
 * "0.0001"), else an exponent without '+' or leading zeros ("1e20", "1.5e-7"). */
static void format_double(double d, char *buf, size_t size)
{
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(buf, size, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    const char *x = strchr(buf, 'e');
    int exp10 = x ? atoi(x + 1) : 0;
    if (exp10 >= -4 && exp10 < 15 && prec < exp10 + 1)
        prec = exp10 + 1;
    snprintf(buf, size, "%.*g", prec, d);
    char *e = strchr(buf, 'e');
    if (!e)
        return;
    char *src = e + 1, *dst = e + 1;
    if (*src == '+')
        src++;
    else if (*src == '-')
        *dst++ = *src++;
    while (*src == '0' && src[1])
        src++;
    memmove(dst, src, strlen(src) + 1);
}

static int read_digits(const char *s, size_t len, size_t *i, size_t min, size_t max, int *out)
{
    size_t n = 0;
    int v = 0;
    while (*i < len && n < max && is_digit((unsigned char)s[*i])) {
        v = v * 10 + (s[*i] - '0');
        (*i)++;
        n++;
    }
    *out = v;
    return n >= min;
}

/* Reads a date or datetime the way MySQL accepts one in a comparison ('2024-05-01',
 * '2024-5-1 9:00:00', '2024-05-01T10:00:00.5', '20240501', '20240501100000') into
 * "YYYY-MM-DD HH:MM:SS" (fractions dropped). False when s is not one. */
static bool to_datetime(const char *s, size_t len, char out[20])
{
    while (len && s[len - 1] == ' ')
        len--;
    size_t i = 0;
    while (i < len && s[i] == ' ')
        i++;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    size_t digits = 0;
    while (i + digits < len && is_digit((unsigned char)s[i + digits]))
        digits++;
    if (i + digits == len && (digits == 8 || digits == 14)) {
        size_t k = i;
        read_digits(s, len, &k, 4, 4, &y);
        read_digits(s, len, &k, 2, 2, &mo);
        read_digits(s, len, &k, 2, 2, &d);
        if (digits == 14) {
            read_digits(s, len, &k, 2, 2, &h);
            read_digits(s, len, &k, 2, 2, &mi);
            read_digits(s, len, &k, 2, 2, &sec);
        }
    } else {
        if (!read_digits(s, len, &i, 4, 4, &y) || i >= len || s[i] != '-')
            return false;
        i++;
        if (!read_digits(s, len, &i, 1, 2, &mo) || i >= len || s[i] != '-')
            return false;
        i++;
        if (!read_digits(s, len, &i, 1, 2, &d))
            return false;
        if (i < len) {
            if (s[i] != ' ' && s[i] != 'T')
                return false;
            i++;
            if (!read_digits(s, len, &i, 1, 2, &h))
                return false;
            if (i < len && s[i] == ':') {
                i++;
                if (!read_digits(s, len, &i, 1, 2, &mi))
                    return false;
                if (i < len && s[i] == ':') {
                    i++;
                    if (!read_digits(s, len, &i, 1, 2, &sec))
                        return false;
                    if (i < len && s[i] == '.') {
                        i++;
                        while (i < len && is_digit((unsigned char)s[i]))
                            i++;
                    }
                }
            }
            if (i != len)
                return false;
        }
    }
    if (mo > 12 || d > 31 || h > 23 || mi > 59 || sec > 59)
        return false;
    const int parts[6] = {y, mo, d, h, mi, sec};
    static const char seps[6] = {'-', '-', ' ', ':', ':', '\0'};
    char *o = out;
    for (int k = 0; k < 6; k++) {
        int v = parts[k], width = k ? 2 : 4;
        for (int w = width - 1; w >= 0; w--) {
            o[w] = (char)('0' + v % 10);
            v /= 10;
        }
        o += width;
        *o++ = seps[k];
    }
    return true;
}

static bool is_text(vq_type t)
{
    return t == VQ_STRING || t == VQ_DATETIME;
}

static int num_cmp_d(double a, double b)
{
    return a < b ? -1 : a > b;
}

static int num_cmp_i(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

/* Compares a DATETIME value with a string: both as datetimes when the string reads as one,
 * else as text. */
static int datetime_str_cmp(const vq_value *dt, const vq_value *str)
{
    char a[20], b[20];
    if (to_datetime(str->s, str->len, b)) {
        if (to_datetime(dt->s, dt->len, a))
            return bytes_cmp(a, 19, b, 19);
        return bytes_cmp(dt->s, dt->len, b, 19);
    }
    return ci_cmp(dt->s, dt->len, str->s, str->len);
}

/* Compares two non-NULL values by MySQL's rules: two strings case-insensitively, a DATETIME
 * and a string as datetimes, two numbers numerically, a string and a number as numbers (a
 * DATETIME and an 8- or 14-digit integer as datetimes). */
static int value_cmp(const vq_value *a, vq_type ta, const vq_value *b, vq_type tb)
{
    if (is_text(ta) && is_text(tb)) {
        if (ta == VQ_DATETIME && tb == VQ_DATETIME)
            return bytes_cmp(a->s, a->len, b->s, b->len);
        if (ta == VQ_DATETIME)
            return datetime_str_cmp(a, b);
        if (tb == VQ_DATETIME)
            return -datetime_str_cmp(b, a);
        return ci_cmp(a->s, a->len, b->s, b->len);
    }
    if (!is_text(ta) && !is_text(tb)) {
        if (ta == VQ_INT && tb == VQ_INT)
            return num_cmp_i(a->i, b->i);
        return num_cmp_d(a->d, b->d);
    }
    bool swap = !is_text(ta);
    const vq_value *x = swap ? b : a, *y = swap ? a : b;
    vq_type tx = swap ? tb : ta, ty = swap ? ta : tb;
    int r;
    char dx[20], dy[20];
    int64_t xi;
    if (tx == VQ_DATETIME && to_datetime(x->s, x->len, dx)) {
        if (ty == VQ_INT && to_datetime(y->s, y->len, dy)) {
            r = bytes_cmp(dx, 19, dy, 19);
        } else {
            /* As a number: YYYYMMDDHHMMSS. */
            char digits[15];
            size_t n = 0;
            for (size_t k = 0; k < 19; k++)
                if (is_digit((unsigned char)dx[k]))
                    digits[n++] = dx[k];
            digits[n] = '\0';
            r = num_cmp_d(strtod(digits, NULL), y->d);
        }
    } else if (ty == VQ_INT && str_to_int_exact(x->s, x->len, &xi))
        r = num_cmp_i(xi, y->i);
    else
        r = num_cmp_d(str_to_double(x->s, x->len), y->d);
    return swap ? -r : r;
}

/* A value as a condition: 1 true, 0 false, -1 NULL. */
static int value_truth(const vq_value *v, vq_type t)
{
    if (v->is_null)
        return -1;
    switch (t) {
    case VQ_INT:
        return v->i != 0;
    case VQ_DOUBLE:
        return v->d != 0;
    case VQ_DATETIME:
        return 1;
    default:
        return str_to_double(v->s, v->len) != 0;
    }
}

static size_t utf8_step(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    size_t n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return i + n > len ? len : i + n;
}

/* LIKE with % (any run), _ (one UTF-8 character) and an escape byte (esc < 0: none); ASCII
 * case-insensitive. Backtracks only to the last %, so it runs in O(len(s) * len(pat)). */
static bool like_match(const char *s, size_t sl, const char *p, size_t pl, int esc)
{
    size_t si = 0, pi = 0, star_p = SIZE_MAX, star_s = 0;
    while (si < sl) {
        if (pi < pl) {
            unsigned char c = (unsigned char)p[pi];
            if (esc >= 0 && c == (unsigned)esc && pi + 1 < pl) {
                if (fold((unsigned char)p[pi + 1]) == fold((unsigned char)s[si])) {
                    pi += 2;
                    si++;
                    continue;
                }
            } else if (c == '%') {
                star_p = ++pi;
                star_s = si;
                continue;
            } else if (c == '_') {
                si = utf8_step(s, sl, si);
                pi++;
                continue;
            } else if (fold(c) == fold((unsigned char)s[si])) {
                pi++;
                si++;
                continue;
            }
        }
        if (star_p == SIZE_MAX)
            return false;
        star_s = utf8_step(s, sl, star_s);
        si = star_s;
        pi = star_p;
    }
    while (pi < pl && p[pi] == '%')
        pi++;
    return pi == pl;
}

bool vq_like(const char *s, size_t slen, const char *pat, size_t plen)
{
    return like_match(s, slen, pat, plen, '\\');
}

/* ---- Tables ----------------------------------------------------------------------------- */

vq_table *vq_table_new(const char *schema, const char *name, const vq_column *cols, size_t n)
{
    vq_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->schema = mem_strdup(&t->mem, schema ? schema : "");
    t->name = mem_strdup(&t->mem, name ? name : "");
    if (!t->schema || !t->name || n > SIZE_MAX / 4 / sizeof *t->columns)
        goto fail;
    if (n) {
        t->columns = mem_alloc(&t->mem, n * sizeof *t->columns);
        t->binary = mem_alloc(&t->mem, n * sizeof *t->binary);
        if (!t->columns || !t->binary)
            goto fail;
        memset(t->binary, 0, n * sizeof *t->binary);
    }
    for (size_t i = 0; i < n; i++) {
        t->columns[i].name = mem_strdup(&t->mem, cols[i].name ? cols[i].name : "");
        t->columns[i].type = cols[i].type;
        if (!t->columns[i].name)
            goto fail;
    }
    t->n_columns = n;
    return t;
fail:
    vq_table_free(t);
    return NULL;
}

long vq_table_add_row(vq_table *t)
{
    if (t->n_rows == t->cap_rows) {
        size_t ncap = t->cap_rows ? t->cap_rows * 2 : 16;
        size_t w = t->n_columns ? t->n_columns : 1;
        if (ncap > SIZE_MAX / 4 / w / sizeof(vq_value) || ncap > (size_t)LONG_MAX)
            return -1;
        vq_value *nr = realloc(t->rows, ncap * w * sizeof *nr);
        if (!nr)
            return -1;
        t->rows = nr;
        t->cap_rows = ncap;
    }
    vq_value *r = t->rows + t->n_rows * t->n_columns;
    for (size_t c = 0; c < t->n_columns; c++)
        r[c] = (vq_value){.is_null = true};
    return (long)t->n_rows++;
}

static vq_value *table_cell(vq_table *t, size_t row, size_t col)
{
    if (!t || row >= t->n_rows || col >= t->n_columns)
        return NULL;
    return &t->rows[row * t->n_columns + col];
}

const vq_value *vq_table_value(const vq_table *t, size_t row, size_t col)
{
    if (!t || row >= t->n_rows || col >= t->n_columns)
        return NULL;
    return &t->rows[row * t->n_columns + col];
}

int vq_set_null(vq_table *t, size_t row, size_t col)
{
    vq_value *v = table_cell(t, row, col);
    if (!v)
        return -1;
    *v = (vq_value){.is_null = true};
    return 0;
}

int vq_set_strn(vq_table *t, size_t row, size_t col, const char *s, size_t len)
{
    vq_value *v = table_cell(t, row, col);
    if (!v)
        return -1;
    if (!s)
        return vq_set_null(t, row, col);
    char *c = mem_strndup(&t->mem, s, len);
    if (!c)
        return -1;
    int64_t i;
    v->is_null = false;
    v->s = c;
    v->len = len;
    v->d = str_to_double(c, len);
    v->i = str_to_int_exact(c, len, &i) ? i : double_to_int(v->d);
    return 0;
}

int vq_set_str(vq_table *t, size_t row, size_t col, const char *s)
{
    return vq_set_strn(t, row, col, s, s ? strlen(s) : 0);
}

int vq_set_int(vq_table *t, size_t row, size_t col, int64_t x)
{
    vq_value *v = table_cell(t, row, col);
    if (!v)
        return -1;
    char *c = mem_printf(&t->mem, "%" PRId64, x);
    if (!c)
        return -1;
    *v = (vq_value){.i = x, .d = (double)x, .s = c, .len = strlen(c)};
    return 0;
}

int vq_set_double(vq_table *t, size_t row, size_t col, double x)
{
    vq_value *v = table_cell(t, row, col);
    if (!v)
        return -1;
    if (!isfinite(x))
        return vq_set_null(t, row, col);
    char buf[40];
    format_double(x, buf, sizeof buf);
    char *c = mem_strdup(&t->mem, buf);
    if (!c)
        return -1;
    *v = (vq_value){.i = double_to_int(x), .d = x, .s = c, .len = strlen(c)};
    return 0;
}

void vq_table_free(vq_table *t)
{
    if (!t)
        return;
    free(t->rows);
    mem_free(t->mem);
    free(t);
}

/* ---- Parsed form ------------------------------------------------------------------------ */

typedef enum { CL_FIELDS, CL_WHERE, CL_ORDER } vq_clause;

static const char *const clause_names[] = {"field list", "where clause", "order clause"};

/* A column named in the select list or WHERE; bound to a table column by vq_execute. */
typedef struct {
    const char *qschema; /* qualifiers as written, or NULL */
    const char *qtable;
    const char *name;
    const char *shown; /* "e.name" for messages */
    vq_clause clause;
    bool param; /* taken as a parameter by vq_where_params: not bound */
} vq_slot;

typedef struct {
    bool is_col;
    int slot;     /* is_col */
    vq_type type; /* a literal's type */
    vq_value lit;
} vq_operand;

typedef enum {
    EX_AND,
    EX_OR,
    EX_NOT,
    EX_CMP,
    EX_IN,
    EX_LIKE,
    EX_NULLTEST,
    EX_BOOLTEST,
    EX_BETWEEN,
    EX_TRUTH
} vq_expr_kind;

typedef enum { OP_EQ, OP_NSEQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } vq_cmp;

typedef struct vq_expr vq_expr;
struct vq_expr {
    vq_expr_kind kind;
    bool negated; /* NOT IN, NOT LIKE, NOT BETWEEN, IS NOT */
    bool param;   /* a parameter test taken by vq_where_params: true */
    vq_cmp cmp;   /* EX_CMP */
    int truth;    /* EX_BOOLTEST: 1 TRUE, 0 FALSE, -1 UNKNOWN */
    int escape;   /* EX_LIKE: escape byte, or -1 */
    vq_operand a, b, c;
    vq_operand *list; /* EX_IN */
    size_t n_list;
    vq_expr **kids; /* EX_AND, EX_OR; EX_NOT: kids[0] */
    size_t n_kids;
};

typedef enum { IT_STAR, IT_COLUMN, IT_COUNT } vq_item_kind;

typedef struct {
    vq_item_kind kind;
    const char *qschema; /* IT_STAR: t.* qualifiers */
    const char *qtable;
    const char *name; /* IT_COLUMN: as written */
    const char *alias;
    const char *text; /* IT_COUNT: the source text, MySQL's column name */
    int slot;         /* IT_COLUMN, IT_COUNT of a column; else -1 */
    bool count_none;  /* COUNT(NULL) */
} vq_item;

typedef struct {
    long position; /* > 0: ORDER BY position */
    const char *qschema;
    const char *qtable;
    const char *name;
    const char *shown;
    bool desc;
} vq_order;

struct vq_select {
    vq_item *items;
    size_t n_items, cap_items;
    const char *alias; /* the table's alias */
    vq_expr *where;
    vq_order *order;
    size_t n_order, cap_order;
    bool has_limit;
    uint64_t limit, offset;
    vq_slot *slots;
    size_t n_slots, cap_slots;
    const char *param_help; /* set by vq_where_params, added to unknown-column errors */
};

vq_kind vq_query_kind(const vq_query *q)
{
    return q->kind;
}

const char *vq_query_schema(const vq_query *q)
{
    return q->schema;
}

const char *vq_query_table(const vq_query *q)
{
    return q->table;
}

void vq_query_free(vq_query *q)
{
    if (!q)
        return;
    mem_free(q->mem);
    memset(q, 0, sizeof *q);
}

/* ---- Tokens ----------------------------------------------------------------------------- */

typedef enum { TK_END, TK_IDENT, TK_STRING, TK_NUMBER, TK_OP, TK_SEMI, TK_VAR } vq_tok_kind;

/* A token of the statement. Adjacent operator bytes are joined ("<=", "<>", "!=", "<=>",
 * "&&", "||"), adjacent strings concatenated, and a character set introducer dropped. */
typedef struct {
    vq_tok_kind kind;
    bool quoted;  /* TK_IDENT written `quoted`: never a keyword */
    size_t start; /* source span */
    size_t end;
    const char *val; /* identifier unquoted, string unescaped, number or operator text */
    size_t vlen;
} vq_tok;

typedef struct {
    const char *sql;
    size_t len;
    struct vq_chunk **mem;
    vq_tok *toks;
    size_t n_toks, cap_toks, pos;
    int status;
    char *err;
    size_t errlen;
    const char *shown; /* the table as written, for messages; NULL when not known */
    int depth;
    struct vq_select *sel;
} vq_parser;

static bool fail(vq_parser *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(vq_parser *p, int status, const char *fmt, ...)
{
    if (p->status != VQ_OK)
        return false;
    p->status = status;
    if (p->err && p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool fail_nomem(vq_parser *p)
{
    return fail(p, VQ_ERR_NOMEM, "envproxy: out of memory");
}

static const vq_tok *cur(const vq_parser *p)
{
    return &p->toks[p->pos];
}

static const vq_tok *peek(const vq_parser *p, size_t k)
{
    size_t i = p->pos + k;
    return &p->toks[i < p->n_toks ? i : p->n_toks - 1];
}

static void advance(vq_parser *p)
{
    if (p->toks[p->pos].kind != TK_END)
        p->pos++;
}

static bool tok_is_kw(const vq_tok *t, const char *kw)
{
    return t->kind == TK_IDENT && !t->quoted && ci_eq(t->val, kw);
}

static bool tok_is_op(const vq_tok *t, const char *op)
{
    return t->kind == TK_OP && strcmp(t->val, op) == 0;
}

static bool is_kw(const vq_parser *p, const char *kw)
{
    return tok_is_kw(cur(p), kw);
}

static bool is_op(const vq_parser *p, const char *op)
{
    return tok_is_op(cur(p), op);
}

static bool accept_kw(vq_parser *p, const char *kw)
{
    if (!is_kw(p, kw))
        return false;
    advance(p);
    return true;
}

static bool accept_op(vq_parser *p, const char *op)
{
    if (!is_op(p, op))
        return false;
    advance(p);
    return true;
}

static bool tok_in(const vq_tok *t, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (tok_is_kw(t, words[i]))
            return true;
    return false;
}

/* Words that end an item, a name or an operand: never an implicit alias or a column. */
static const char *const reserved[] = {
    "FROM",      "WHERE",     "ORDER",         "GROUP", "HAVING", "LIMIT",    "UNION",  "EXCEPT",
    "INTERSECT", "INTO",      "FOR",           "LOCK",  "JOIN",   "INNER",    "LEFT",   "RIGHT",
    "CROSS",     "NATURAL",   "STRAIGHT_JOIN", "ON",    "USING",  "AS",       "AND",    "OR",
    "XOR",       "NOT",       "SELECT",        "BY",    "IN",     "IS",       "LIKE",   "BETWEEN",
    "CASE",      "WHEN",      "THEN",          "ELSE",  "EXISTS", "DISTINCT", "WINDOW", "PROCEDURE",
    "REGEXP",    "RLIKE",     "NULL",          "TRUE",  "FALSE",  "INTERVAL", "USE",    "FORCE",
    "IGNORE",    "PARTITION", "ESCAPE",        "DIV",   "MOD",    "COLLATE",  "SOUNDS", "ASC",
    "DESC",      "OFFSET",    "WITH",          "ALL",   "ANY",    "SOME",     "BINARY", NULL};

static bool tok_reserved(const vq_tok *t)
{
    return !t->quoted && tok_in(t, reserved);
}

static const char *const introducers[] = {"_utf8mb4", "_utf8mb3", "_utf8", "_latin1",
                                          "_binary",  "_ascii",   NULL};

/* The value of a quoted string as MySQL reads it with backslash escapes on: \0 \b \n \r \t \Z
 * and \x -> x, except that \% and \_ keep their backslash (for LIKE); a doubled quote is one. */
static char *unescape_string(vq_parser *p, const char *s, size_t len, size_t *out_len)
{
    char q = s[0];
    char *o = mem_alloc(p->mem, len);
    if (!o)
        return NULL;
    size_t n = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        char c = s[i];
        if (c == '\\' && i + 2 < len) {
            char e = s[++i];
            switch (e) {
            case '0':
                o[n++] = '\0';
                break;
            case 'b':
                o[n++] = '\b';
                break;
            case 'n':
                o[n++] = '\n';
                break;
            case 'r':
                o[n++] = '\r';
                break;
            case 't':
                o[n++] = '\t';
                break;
            case 'Z':
                o[n++] = 0x1A;
                break;
            case '%':
            case '_':
                o[n++] = '\\';
                o[n++] = e;
                break;
            default:
                o[n++] = e;
                break;
            }
        } else if (c == q && i + 2 < len && s[i + 1] == q) {
            o[n++] = q;
            i++;
        } else {
            o[n++] = c;
        }
    }
    o[n] = '\0';
    *out_len = n;
    return o;
}

/* The name inside `quotes`, a doubled backquote read as one. */
static char *unquote_ident(vq_parser *p, const char *s, size_t len, size_t *out_len)
{
    char *o = mem_alloc(p->mem, len);
    if (!o)
        return NULL;
    size_t n = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        o[n++] = s[i];
        if (s[i] == s[0] && i + 2 < len && s[i + 1] == s[0])
            i++;
    }
    o[n] = '\0';
    *out_len = n;
    return o;
}

static bool joinable(const char *prev, char next)
{
    static const char *const pairs[] = {"<=", "<>",  ">=", "!=", "&&",
                                        "||", "<=>", "<<", ">>", NULL};
    char joined[4];
    size_t n = strlen(prev);
    if (n > 2)
        return false;
    memcpy(joined, prev, n);
    joined[n] = next;
    joined[n + 1] = '\0';
    for (size_t i = 0; pairs[i]; i++)
        if (strcmp(pairs[i], joined) == 0)
            return true;
    return false;
}

/* Reads the whole statement into p->toks, ending with TK_END. */
static bool tokenize(vq_parser *p)
{
    sql_lexer lx;
    sqllex_init(&lx, p->sql, p->len, NULL);
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_ERROR)
            return fail(p, VQ_ERR_SYNTAX, "envproxy: syntax error: %s", lx.error);
        vq_tok *prev = p->n_toks ? &p->toks[p->n_toks - 1] : NULL;
        const char *text = p->sql + t.start;
        if (t.kind == SQLTOK_STRING && prev &&
            (prev->kind == TK_STRING ||
             (prev->kind == TK_IDENT && !prev->quoted &&
              (tok_in(prev, introducers) || (ci_eq(prev->val, "N") && !t.spaced))))) {
            size_t n;
            char *v = unescape_string(p, text, t.len, &n);
            if (!v)
                return fail_nomem(p);
            if (prev->kind == TK_STRING) {
                char *both = mem_alloc(p->mem, prev->vlen + n + 1);
                if (!both)
                    return fail_nomem(p);
                memcpy(both, prev->val, prev->vlen);
                memcpy(both + prev->vlen, v, n);
                prev->val = both;
                prev->vlen += n;
            } else {
                prev->kind = TK_STRING;
                prev->val = v;
                prev->vlen = n;
            }
            prev->end = t.start + t.len;
            continue;
        }
        if (t.kind == SQLTOK_PUNCT && t.len == 1 && prev && prev->kind == TK_OP && !t.spaced &&
            prev->end == t.start && joinable(prev->val, text[0])) {
            char *v = mem_strndup(p->mem, p->sql + prev->start, t.start + 1 - prev->start);
            if (!v)
                return fail_nomem(p);
            prev->val = v;
            prev->vlen++;
            prev->end = t.start + 1;
            continue;
        }
        vq_tok *toks = mem_grow(p->mem, p->toks, p->n_toks, &p->cap_toks, sizeof *toks);
        if (!toks)
            return fail_nomem(p);
        p->toks = toks;
        vq_tok *k = &toks[p->n_toks++];
        k->start = t.start;
        k->end = t.start + t.len;
        size_t n = t.len;
        char *v = NULL;
        switch (t.kind) {
        case SQLTOK_END:
            k->kind = TK_END;
            v = mem_strdup(p->mem, "");
            n = 0;
            break;
        case SQLTOK_WORD:
            k->kind = TK_IDENT;
            v = mem_strndup(p->mem, text, t.len);
            break;
        case SQLTOK_QIDENT:
            k->kind = TK_IDENT;
            k->quoted = true;
            v = unquote_ident(p, text, t.len, &n);
            break;
        case SQLTOK_STRING:
            k->kind = TK_STRING;
            v = unescape_string(p, text, t.len, &n);
            break;
        case SQLTOK_NUMBER:
            k->kind = TK_NUMBER;
            v = mem_strndup(p->mem, text, t.len);
            break;
        case SQLTOK_SEMICOLON:
            k->kind = TK_SEMI;
            v = mem_strndup(p->mem, text, t.len);
            break;
        case SQLTOK_USERVAR:
        case SQLTOK_SYSVAR:
            k->kind = TK_VAR;
            v = mem_strndup(p->mem, text, t.len);
            break;
        default:
            k->kind = TK_OP;
            v = mem_strndup(p->mem, text, t.len);
            break;
        }
        if (!v)
            return fail_nomem(p);
        k->val = v;
        k->vlen = n;
        if (t.kind == SQLTOK_END)
            return true;
    }
}

/* ---- Parser: errors --------------------------------------------------------------------- */

static bool fail_syntax(vq_parser *p, const char *expected)
{
    const vq_tok *t = cur(p);
    if (t->kind == TK_END)
        return fail(p, VQ_ERR_SYNTAX,
                    "envproxy: syntax error at the end of the statement: expected %s", expected);
    size_t n = p->len - t->start;
    if (n > VQ_NEAR_MAX)
        n = VQ_NEAR_MAX;
    const char *nl = memchr(p->sql + t->start, '\n', n);
    if (nl)
        n = (size_t)(nl - (p->sql + t->start));
    int line = 1;
    for (size_t i = 0; i < t->start; i++)
        line += p->sql[i] == '\n';
    return fail(p, VQ_ERR_SYNTAX, "envproxy: syntax error near '%.*s' at line %d: expected %s",
                (int)n, p->sql + t->start, line, expected);
}

/* Valid SQL that a SELECT on a virtual table does not answer. */
static bool fail_unsupported(vq_parser *p, const char *what)
{
    return fail(p, VQ_ERR_UNSUPPORTED,
                "envproxy: %s%s SELECT with a column list, * or COUNT(*), WHERE with =, <>, <, "
                ">, <=, >=, IN, LIKE, IS [NOT] NULL, AND/OR/NOT and parentheses, ORDER BY and "
                "LIMIT; %s is not supported",
                p->shown ? p->shown : "virtual tables", p->shown ? " supports" : " support", what);
}

/* A statement other than the SELECT and SHOW forms. */
static bool fail_statement(vq_parser *p, const char *what)
{
    return fail(p, VQ_ERR_UNSUPPORTED,
                "envproxy: the virtual schemas __envs and __compare support SELECT, SHOW [FULL] "
                "TABLES, SHOW [FULL] COLUMNS, DESCRIBE and SHOW DATABASES; %s is not supported",
                what);
}

static bool fail_function(vq_parser *p, const vq_tok *name)
{
    char what[96];
    snprintf(what, sizeof what, "the function %.40s()", name->val);
    return fail_unsupported(p, what);
}

/* ---- Parser: names and operands --------------------------------------------------------- */

static struct vq_select *new_select(vq_parser *p, vq_query *q)
{
    q->sel = mem_alloc(p->mem, sizeof *q->sel);
    p->sel = q->sel;
    if (!q->sel)
        fail_nomem(p);
    return q->sel;
}

/* Reads name[.name[.name]] (at most max parts) into parts; returns the count, 0 on error.
 * Stops before ".*" so that the caller can read t.*. */
static int parse_name(vq_parser *p, const char **parts, int max, const char *what)
{
    int n = 0;
    for (;;) {
        const vq_tok *t = cur(p);
        if (t->kind != TK_IDENT || (n == 0 && tok_reserved(t))) {
            fail_syntax(p, what);
            return 0;
        }
        parts[n++] = t->val;
        advance(p);
        if (!is_op(p, ".") || tok_is_op(peek(p, 1), "*"))
            return n;
        if (n == max) {
            fail_syntax(p, "a name with fewer parts");
            return 0;
        }
        advance(p);
    }
}

static const char *join_name(vq_parser *p, const char *const *parts, int n)
{
    if (n == 1)
        return parts[0];
    if (n == 2)
        return mem_printf(p->mem, "%s.%s", parts[0], parts[1]);
    return mem_printf(p->mem, "%s.%s.%s", parts[0], parts[1], parts[2]);
}

static int add_slot(vq_parser *p, const char *const *parts, int n, vq_clause clause)
{
    struct vq_select *s = p->sel;
    vq_slot *slots = mem_grow(p->mem, s->slots, s->n_slots, &s->cap_slots, sizeof *slots);
    const char *shown = join_name(p, parts, n);
    if (!slots || !shown) {
        fail_nomem(p);
        return -1;
    }
    s->slots = slots;
    vq_slot *sl = &slots[s->n_slots];
    sl->qschema = n == 3 ? parts[0] : NULL;
    sl->qtable = n >= 2 ? parts[n - 2] : NULL;
    sl->name = parts[n - 1];
    sl->shown = shown;
    sl->clause = clause;
    return (int)s->n_slots++;
}

static bool is_arith(const vq_tok *t)
{
    static const char *const ops[] = {"+", "-", "*",  "/",  "%", "|",
                                      "&", "^", "<<", ">>", "~", NULL};
    if (t->kind == TK_OP)
        for (size_t i = 0; ops[i]; i++)
            if (strcmp(t->val, ops[i]) == 0)
                return true;
    return tok_is_kw(t, "DIV") || tok_is_kw(t, "MOD");
}

/* After an operand or a select item: refuses what would make it an expression. */
static bool check_after_operand(vq_parser *p)
{
    if (is_arith(cur(p)))
        return fail_unsupported(p, "arithmetic");
    if (is_kw(p, "COLLATE"))
        return fail_unsupported(p, "COLLATE");
    return true;
}

/* A numeric literal: an integer that fits int64 is VQ_INT, anything else VQ_DOUBLE. */
static bool number_literal(vq_parser *p, const vq_tok *t, bool neg, vq_operand *o)
{
    const char *s = t->val;
    char *text = neg ? mem_printf(p->mem, "-%s", s) : mem_strdup(p->mem, s);
    if (!text)
        return fail_nomem(p);
    o->type = VQ_INT;
    o->lit.s = text;
    o->lit.len = strlen(text);
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'b')) {
        uint64_t v = 0;
        bool big = false;
        for (const char *c = s + 2; *c; c++) {
            unsigned d = is_digit((unsigned char)*c)
                             ? (unsigned)(*c - '0')
                             : (unsigned)(fold((unsigned char)*c) - 'a' + 10);
            unsigned base = s[1] == 'x' ? 16 : 2;
            if (v > (UINT64_MAX - d) / base)
                big = true;
            v = v * base + d;
        }
        if (big || v > (uint64_t)INT64_MAX) {
            o->type = VQ_DOUBLE;
            o->lit.d = big ? 18446744073709551615.0 : (double)v;
            o->lit.d = neg ? -o->lit.d : o->lit.d;
            o->lit.i = double_to_int(o->lit.d);
        } else {
            o->lit.i = neg ? -(int64_t)v : (int64_t)v;
            o->lit.d = (double)o->lit.i;
        }
        return true;
    }
    int64_t i;
    if (!strpbrk(s, ".eE") && str_to_int_exact(text, o->lit.len, &i)) {
        o->lit.i = i;
        o->lit.d = (double)i;
    } else {
        o->type = VQ_DOUBLE;
        o->lit.d = strtod(text, NULL);
        o->lit.i = double_to_int(o->lit.d);
    }
    return true;
}

/* Reads a column reference or a literal (string, number with sign, NULL, TRUE, FALSE). */
static bool parse_operand(vq_parser *p, vq_clause clause, vq_operand *o)
{
    bool neg = false, sign = false;
    while (is_op(p, "-") || is_op(p, "+")) {
        neg ^= is_op(p, "-");
        sign = true;
        advance(p);
    }
    const vq_tok *t = cur(p);
    memset(o, 0, sizeof *o);
    if (sign && t->kind != TK_NUMBER)
        return t->kind == TK_END ? fail_syntax(p, "a number") : fail_unsupported(p, "arithmetic");
    switch (t->kind) {
    case TK_NUMBER:
        if (!number_literal(p, t, neg, o))
            return false;
        advance(p);
        break;
    case TK_STRING:
        o->type = VQ_STRING;
        o->lit.s = t->val;
        o->lit.len = t->vlen;
        o->lit.d = str_to_double(t->val, t->vlen);
        o->lit.i = double_to_int(o->lit.d);
        advance(p);
        break;
    case TK_IDENT:
        if (!t->quoted && ci_eq(t->val, "NULL")) {
            o->type = VQ_STRING;
            o->lit.is_null = true;
            advance(p);
            break;
        }
        if (!t->quoted && (ci_eq(t->val, "TRUE") || ci_eq(t->val, "FALSE"))) {
            bool v = ci_eq(t->val, "TRUE");
            o->type = VQ_INT;
            o->lit.i = v;
            o->lit.d = v;
            o->lit.s = v ? "1" : "0";
            o->lit.len = 1;
            advance(p);
            break;
        }
        if (tok_is_op(peek(p, 1), "(")) {
            if (tok_is_kw(t, "EXISTS"))
                return fail_unsupported(p, "a subquery");
            return fail_function(p, t);
        }
        if (tok_is_kw(t, "CASE"))
            return fail_unsupported(p, "CASE");
        if (tok_is_kw(t, "INTERVAL") || tok_is_kw(t, "BINARY"))
            return fail_unsupported(p, "an expression");
        if (tok_reserved(t))
            return fail_syntax(p, "a column name or a value");
        {
            const char *parts[3];
            int n = parse_name(p, parts, 3, "a column name");
            if (!n)
                return false;
            o->is_col = true;
            o->slot = add_slot(p, parts, n, clause);
            if (o->slot < 0)
                return false;
        }
        break;
    case TK_OP:
        if (tok_is_op(t, "?"))
            return fail_unsupported(p, "a placeholder (?)");
        if (tok_is_op(t, "("))
            return tok_is_kw(peek(p, 1), "SELECT") || tok_is_kw(peek(p, 1), "WITH")
                       ? fail_unsupported(p, "a subquery")
                       : fail_unsupported(p, "an expression in parentheses");
        return fail_syntax(p, "a column name or a value");
    case TK_VAR:
        return fail_unsupported(p, "a variable");
    default:
        return fail_syntax(p, "a column name or a value");
    }
    return check_after_operand(p);
}

/* ---- Parser: WHERE ---------------------------------------------------------------------- */

static vq_expr *parse_or(vq_parser *p);

static vq_expr *new_expr(vq_parser *p, vq_expr_kind kind)
{
    vq_expr *e = mem_alloc(p->mem, sizeof *e);
    if (!e) {
        fail_nomem(p);
        return NULL;
    }
    e->kind = kind;
    e->escape = -1;
    return e;
}

static bool enter(vq_parser *p)
{
    if (++p->depth > VQ_MAX_DEPTH) {
        char what[64];
        snprintf(what, sizeof what, "nesting more than %d levels deep", VQ_MAX_DEPTH);
        return fail_unsupported(p, what);
    }
    return true;
}

static bool cmp_op(const vq_tok *t, vq_cmp *op)
{
    static const struct {
        const char *text;
        vq_cmp op;
    } ops[] = {{"=", OP_EQ}, {"<=>", OP_NSEQ}, {"<>", OP_NE}, {"!=", OP_NE},
               {"<", OP_LT}, {"<=", OP_LE},    {">", OP_GT},  {">=", OP_GE}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (tok_is_op(t, ops[i].text)) {
            *op = ops[i].op;
            return true;
        }
    return false;
}

static bool starts_predicate_tail(const vq_tok *t)
{
    vq_cmp op;
    return cmp_op(t, &op) || tok_is_kw(t, "IS") || tok_is_kw(t, "IN") || tok_is_kw(t, "LIKE") ||
           tok_is_kw(t, "BETWEEN");
}

static vq_expr *parse_in_list(vq_parser *p, vq_expr *e)
{
    if (!accept_op(p, "(")) {
        fail_syntax(p, "'(' after IN");
        return NULL;
    }
    if (is_kw(p, "SELECT") || is_kw(p, "WITH")) {
        fail_unsupported(p, "a subquery");
        return NULL;
    }
    size_t cap = 0;
    do {
        vq_operand *list = mem_grow(p->mem, e->list, e->n_list, &cap, sizeof *list);
        if (!list) {
            fail_nomem(p);
            return NULL;
        }
        e->list = list;
        if (!parse_operand(p, CL_WHERE, &list[e->n_list]))
            return NULL;
        e->n_list++;
    } while (accept_op(p, ","));
    if (!accept_op(p, ")")) {
        fail_syntax(p, "',' or ')' in the IN list");
        return NULL;
    }
    return e;
}

/* A comparison, IN, LIKE, BETWEEN, IS test, a bare operand, or a parenthesized condition. */
static vq_expr *parse_predicate(vq_parser *p)
{
    if (is_op(p, "(") && !tok_is_kw(peek(p, 1), "SELECT") && !tok_is_kw(peek(p, 1), "WITH")) {
        if (!enter(p))
            return NULL;
        advance(p);
        vq_expr *e = parse_or(p);
        if (!e)
            return NULL;
        if (is_op(p, ",")) {
            fail_unsupported(p, "a row constructor");
            return NULL;
        }
        if (!accept_op(p, ")")) {
            fail_syntax(p, "')'");
            return NULL;
        }
        p->depth--;
        if (starts_predicate_tail(cur(p))) {
            fail_unsupported(p, "comparing a condition in parentheses");
            return NULL;
        }
        return e;
    }
    vq_operand a;
    if (!parse_operand(p, CL_WHERE, &a))
        return NULL;
    vq_expr *e = new_expr(p, EX_TRUTH);
    if (!e)
        return NULL;
    e->a = a;
    vq_cmp op;
    if (accept_kw(p, "IS")) {
        e->negated = accept_kw(p, "NOT");
        if (accept_kw(p, "NULL")) {
            e->kind = EX_NULLTEST;
        } else if (is_kw(p, "TRUE") || is_kw(p, "FALSE") || is_kw(p, "UNKNOWN")) {
            e->kind = EX_BOOLTEST;
            e->truth = is_kw(p, "TRUE") ? 1 : is_kw(p, "FALSE") ? 0 : -1;
            advance(p);
        } else {
            fail_syntax(p, "NULL, TRUE, FALSE or UNKNOWN after IS");
            return NULL;
        }
        return e;
    }
    if (is_kw(p, "NOT") && (tok_is_kw(peek(p, 1), "IN") || tok_is_kw(peek(p, 1), "LIKE") ||
                            tok_is_kw(peek(p, 1), "BETWEEN") || tok_is_kw(peek(p, 1), "REGEXP") ||
                            tok_is_kw(peek(p, 1), "RLIKE"))) {
        e->negated = true;
        advance(p);
    }
    if (accept_kw(p, "IN")) {
        e->kind = EX_IN;
        return parse_in_list(p, e);
    }
    if (accept_kw(p, "LIKE")) {
        e->kind = EX_LIKE;
        e->escape = '\\';
        if (!parse_operand(p, CL_WHERE, &e->b))
            return NULL;
        if (accept_kw(p, "ESCAPE")) {
            const vq_tok *t = cur(p);
            if (t->kind != TK_STRING || t->vlen > 1) {
                fail_syntax(p, "a one-character string after ESCAPE");
                return NULL;
            }
            e->escape = t->vlen ? (unsigned char)t->val[0] : -1;
            advance(p);
        }
        return e;
    }
    if (accept_kw(p, "BETWEEN")) {
        e->kind = EX_BETWEEN;
        if (!parse_operand(p, CL_WHERE, &e->b))
            return NULL;
        if (!accept_kw(p, "AND")) {
            fail_syntax(p, "AND in BETWEEN");
            return NULL;
        }
        if (!parse_operand(p, CL_WHERE, &e->c))
            return NULL;
        return e;
    }
    if (is_kw(p, "REGEXP") || is_kw(p, "RLIKE")) {
        fail_unsupported(p, "REGEXP");
        return NULL;
    }
    if (is_kw(p, "SOUNDS") || is_kw(p, "MEMBER")) {
        fail_unsupported(p, "this operator");
        return NULL;
    }
    if (e->negated) {
        fail_syntax(p, "IN, LIKE or BETWEEN after NOT");
        return NULL;
    }
    if (cmp_op(cur(p), &op)) {
        advance(p);
        if ((is_kw(p, "ANY") || is_kw(p, "ALL") || is_kw(p, "SOME")) &&
            tok_is_op(peek(p, 1), "(")) {
            fail_unsupported(p, "a subquery");
            return NULL;
        }
        e->kind = EX_CMP;
        e->cmp = op;
        if (!parse_operand(p, CL_WHERE, &e->b))
            return NULL;
        if (starts_predicate_tail(cur(p))) {
            fail_unsupported(p, "a chain of comparisons");
            return NULL;
        }
        return e;
    }
    return e;
}

static vq_expr *parse_not(vq_parser *p)
{
    if (is_kw(p, "NOT") || (is_op(p, "!"))) {
        if (!enter(p))
            return NULL;
        advance(p);
        vq_expr *inner = parse_not(p);
        if (!inner)
            return NULL;
        p->depth--;
        vq_expr *e = new_expr(p, EX_NOT);
        if (!e)
            return NULL;
        e->kids = mem_alloc(p->mem, sizeof *e->kids);
        if (!e->kids) {
            fail_nomem(p);
            return NULL;
        }
        e->kids[0] = inner;
        e->n_kids = 1;
        return e;
    }
    return parse_predicate(p);
}

/* Reads sub (sep sub)* into one n-ary node of kind, or returns the single sub. */
static vq_expr *parse_chain(vq_parser *p, vq_expr_kind kind, const char *kw, const char *op,
                            vq_expr *(*sub)(vq_parser *))
{
    vq_expr *first = sub(p);
    if (!first)
        return NULL;
    if (!is_kw(p, kw) && !is_op(p, op))
        return first;
    vq_expr *e = new_expr(p, kind);
    if (!e)
        return NULL;
    size_t cap = 0;
    vq_expr *next = first;
    for (;;) {
        vq_expr **kids = mem_grow(p->mem, e->kids, e->n_kids, &cap, sizeof *kids);
        if (!kids) {
            fail_nomem(p);
            return NULL;
        }
        e->kids = kids;
        kids[e->n_kids++] = next;
        if (!accept_kw(p, kw) && !accept_op(p, op))
            return e;
        if (!(next = sub(p)))
            return NULL;
    }
}

static vq_expr *parse_and(vq_parser *p)
{
    return parse_chain(p, EX_AND, "AND", "&&", parse_not);
}

static vq_expr *parse_or(vq_parser *p)
{
    vq_expr *e = parse_chain(p, EX_OR, "OR", "||", parse_and);
    if (e && is_kw(p, "XOR")) {
        fail_unsupported(p, "XOR");
        return NULL;
    }
    return e;
}

/* ---- Parser: SELECT --------------------------------------------------------------------- */

static vq_item *new_item(vq_parser *p, vq_item_kind kind)
{
    struct vq_select *s = p->sel;
    vq_item *items = mem_grow(p->mem, s->items, s->n_items, &s->cap_items, sizeof *items);
    if (!items) {
        fail_nomem(p);
        return NULL;
    }
    s->items = items;
    vq_item *it = &items[s->n_items++];
    it->kind = kind;
    it->slot = -1;
    return it;
}

/* [AS] alias after an item: an identifier or a string. */
static bool parse_alias(vq_parser *p, const char **alias)
{
    bool as = accept_kw(p, "AS");
    const vq_tok *t = cur(p);
    if (t->kind == TK_STRING || (t->kind == TK_IDENT && !tok_reserved(t))) {
        *alias = t->val;
        advance(p);
        return true;
    }
    return as ? fail_syntax(p, "an alias after AS") : true;
}

static bool parse_count(vq_parser *p)
{
    size_t start = cur(p)->start;
    advance(p); /* COUNT */
    advance(p); /* ( */
    vq_item *it = new_item(p, IT_COUNT);
    if (!it)
        return false;
    const vq_tok *t = cur(p);
    if (accept_op(p, "*")) {
        /* every row */
    } else if (tok_is_kw(t, "DISTINCT")) {
        return fail_unsupported(p, "COUNT(DISTINCT ...)");
    } else {
        vq_operand o;
        if (!parse_operand(p, CL_FIELDS, &o))
            return false;
        if (o.is_col)
            it->slot = o.slot;
        else
            it->count_none = o.lit.is_null;
    }
    if (!is_op(p, ")"))
        return fail_syntax(p, "')' after COUNT(");
    it->text = mem_strndup(p->mem, p->sql + start, cur(p)->end - start);
    if (!it->text)
        return fail_nomem(p);
    advance(p);
    if (is_kw(p, "OVER"))
        return fail_unsupported(p, "a window function");
    if (!check_after_operand(p))
        return false;
    return parse_alias(p, &it->alias);
}

static bool parse_item(vq_parser *p)
{
    const vq_tok *t = cur(p);
    if (accept_op(p, "*")) {
        return new_item(p, IT_STAR) != NULL;
    }
    if (t->kind == TK_IDENT && tok_is_op(peek(p, 1), "(")) {
        if (tok_is_kw(t, "COUNT"))
            return parse_count(p);
        return fail_function(p, t);
    }
    if (t->kind == TK_IDENT && !tok_reserved(t)) {
        const char *parts[3];
        int n = parse_name(p, parts, 3, "a column name");
        if (!n)
            return false;
        if (is_op(p, ".")) { /* t.* or schema.t.* */
            advance(p);
            advance(p);
            if (n > 2)
                return fail_syntax(p, "schema.table.*");
            vq_item *it = new_item(p, IT_STAR);
            if (!it)
                return false;
            it->qschema = n == 2 ? parts[0] : NULL;
            it->qtable = parts[n - 1];
            return true;
        }
        vq_item *it = new_item(p, IT_COLUMN);
        if (!it)
            return false;
        it->name = parts[n - 1];
        it->slot = add_slot(p, parts, n, CL_FIELDS);
        if (it->slot < 0 || !check_after_operand(p))
            return false;
        return parse_alias(p, &it->alias);
    }
    if (tok_is_kw(t, "CASE"))
        return fail_unsupported(p, "CASE");
    if (tok_is_op(t, "("))
        return tok_is_kw(peek(p, 1), "SELECT") ? fail_unsupported(p, "a subquery")
                                               : fail_unsupported(p, "an expression");
    if (t->kind == TK_STRING || t->kind == TK_NUMBER || tok_is_kw(t, "NULL") ||
        tok_is_kw(t, "TRUE") || tok_is_kw(t, "FALSE") || tok_is_op(t, "-"))
        return fail_unsupported(p, "a value in the select list");
    if (t->kind == TK_VAR)
        return fail_unsupported(p, "a variable");
    return fail_syntax(p, "a column name, * or COUNT(*)");
}

/* Clauses a SELECT on a virtual table does not take, wherever they appear. */
static bool check_clause(vq_parser *p)
{
    static const char *const joins[] = {"JOIN",  "INNER",   "LEFT",          "RIGHT",
                                        "CROSS", "NATURAL", "STRAIGHT_JOIN", NULL};
    const vq_tok *t = cur(p);
    if (tok_in(t, joins))
        return fail_unsupported(p, "JOIN");
    if (tok_is_kw(t, "GROUP"))
        return fail_unsupported(p, "GROUP BY");
    if (tok_is_kw(t, "HAVING"))
        return fail_unsupported(p, "HAVING");
    if (tok_is_kw(t, "WINDOW"))
        return fail_unsupported(p, "WINDOW");
    if (tok_is_kw(t, "UNION") || tok_is_kw(t, "EXCEPT") || tok_is_kw(t, "INTERSECT"))
        return fail_unsupported(p, "UNION");
    if (tok_is_kw(t, "INTO"))
        return fail_unsupported(p, "SELECT ... INTO");
    if (tok_is_kw(t, "FOR") || tok_is_kw(t, "LOCK"))
        return fail_unsupported(p, "a locking read (FOR UPDATE, LOCK IN SHARE MODE)");
    if (tok_is_kw(t, "PROCEDURE"))
        return fail_unsupported(p, "PROCEDURE");
    if (tok_is_kw(t, "USE") || tok_is_kw(t, "FORCE") || tok_is_kw(t, "IGNORE"))
        return fail_unsupported(p, "an index hint");
    if (tok_is_kw(t, "PARTITION"))
        return fail_unsupported(p, "PARTITION");
    return true;
}

/* Optional ';'s, then the end. */
static bool parse_end(vq_parser *p)
{
    bool semi = false;
    while (cur(p)->kind == TK_SEMI) {
        semi = true;
        advance(p);
    }
    if (cur(p)->kind == TK_END)
        return true;
    if (semi)
        return fail_statement(p, "more than one statement in a query");
    return fail_syntax(p, "the end of the statement");
}

/* A non-negative integer for LIMIT or OFFSET (saturating). */
static bool parse_count_value(vq_parser *p, uint64_t *out)
{
    const vq_tok *t = cur(p);
    if (tok_is_op(t, "?"))
        return fail_unsupported(p, "a placeholder (?)");
    if (t->kind == TK_VAR)
        return fail_unsupported(p, "a variable");
    if (t->kind != TK_NUMBER || !is_digit((unsigned char)t->val[0]) || strpbrk(t->val, ".eExb"))
        return fail_syntax(p, "a non-negative integer");
    uint64_t v = 0;
    for (const char *c = t->val; *c; c++) {
        unsigned d = (unsigned)(*c - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *out = v;
    advance(p);
    return true;
}

static bool parse_order(vq_parser *p)
{
    struct vq_select *s = p->sel;
    if (!accept_kw(p, "BY"))
        return fail_syntax(p, "BY after ORDER");
    do {
        vq_order *order = mem_grow(p->mem, s->order, s->n_order, &s->cap_order, sizeof *order);
        if (!order)
            return fail_nomem(p);
        s->order = order;
        vq_order *o = &order[s->n_order];
        const vq_tok *t = cur(p);
        if (t->kind == TK_NUMBER) {
            if (!is_digit((unsigned char)t->val[0]) || strpbrk(t->val, ".eExb"))
                return fail_unsupported(p, "ORDER BY an expression");
            o->shown = t->val;
            o->position = strlen(t->val) > 9 ? 1000000000L : strtol(t->val, NULL, 10);
            if (o->position == 0)
                o->position = -1; /* reported as an unknown column by vq_execute */
            advance(p);
        } else if (t->kind == TK_IDENT && tok_is_op(peek(p, 1), "(")) {
            return fail_function(p, t);
        } else if (t->kind == TK_IDENT && !tok_reserved(t)) {
            const char *parts[3];
            int n = parse_name(p, parts, 3, "a column name");
            if (!n)
                return false;
            o->qschema = n == 3 ? parts[0] : NULL;
            o->qtable = n >= 2 ? parts[n - 2] : NULL;
            o->name = parts[n - 1];
            o->shown = join_name(p, parts, n);
            if (!o->shown)
                return fail_nomem(p);
        } else if (t->kind == TK_STRING || tok_is_op(t, "(") || tok_is_op(t, "-")) {
            return fail_unsupported(p, "ORDER BY an expression");
        } else {
            return fail_syntax(p, "a column name or position after ORDER BY");
        }
        if (!check_after_operand(p))
            return false;
        if (accept_kw(p, "DESC"))
            o->desc = true;
        else
            accept_kw(p, "ASC");
        s->n_order++;
    } while (accept_op(p, ","));
    return true;
}

static bool parse_limit(vq_parser *p)
{
    struct vq_select *s = p->sel;
    uint64_t a;
    if (!parse_count_value(p, &a))
        return false;
    s->has_limit = true;
    if (accept_op(p, ",")) {
        s->offset = a;
        return parse_count_value(p, &s->limit);
    }
    s->limit = a;
    if (accept_kw(p, "OFFSET"))
        return parse_count_value(p, &s->offset);
    return true;
}

/* Finds "FROM name[.name]" at depth 0 so that errors met before FROM can name the table. */
static void prescan_table(vq_parser *p)
{
    int depth = 0;
    for (size_t i = p->pos; i + 1 < p->n_toks; i++) {
        const vq_tok *t = &p->toks[i];
        depth += tok_is_op(t, "(") - tok_is_op(t, ")");
        if (depth != 0 || !tok_is_kw(t, "FROM") || t[1].kind != TK_IDENT)
            continue;
        if (i + 3 < p->n_toks && tok_is_op(&t[2], ".") && t[3].kind == TK_IDENT)
            p->shown = mem_printf(p->mem, "%s.%s", t[1].val, t[3].val);
        else
            p->shown = t[1].val;
        return;
    }
}

static bool parse_select(vq_parser *p, vq_query *q)
{
    static const char *const ignored[] = {"ALL",
                                          "SQL_NO_CACHE",
                                          "SQL_CACHE",
                                          "SQL_CALC_FOUND_ROWS",
                                          "HIGH_PRIORITY",
                                          "STRAIGHT_JOIN",
                                          "SQL_SMALL_RESULT",
                                          "SQL_BIG_RESULT",
                                          "SQL_BUFFER_RESULT",
                                          NULL};
    struct vq_select *s = new_select(p, q);
    if (!s)
        return false;
    q->kind = VQ_SELECT;
    prescan_table(p);
    advance(p); /* SELECT */
    for (;;) {
        if (is_kw(p, "DISTINCT") || is_kw(p, "DISTINCTROW"))
            return fail_unsupported(p, "DISTINCT");
        if (!tok_in(cur(p), ignored))
            break;
        advance(p);
    }
    do {
        if (!parse_item(p))
            return false;
    } while (accept_op(p, ","));
    if (!check_clause(p))
        return false;
    if (!accept_kw(p, "FROM")) {
        if (cur(p)->kind == TK_END || cur(p)->kind == TK_SEMI)
            return fail_unsupported(p, "a SELECT without FROM");
        return fail_syntax(p, "FROM");
    }
    if (is_op(p, "("))
        return fail_unsupported(p, "a subquery in FROM");
    if (is_kw(p, "DUAL"))
        return fail_unsupported(p, "a SELECT without a table");
    if (cur(p)->kind == TK_IDENT && tok_is_op(peek(p, 1), "("))
        return fail_unsupported(p, "a table function");
    const char *parts[2];
    int n = parse_name(p, parts, 2, "a table name");
    if (!n)
        return false;
    q->schema = n == 2 ? parts[0] : NULL;
    q->table = parts[n - 1];
    if (!check_clause(p) || !parse_alias(p, &s->alias) || !check_clause(p))
        return false;
    if (is_op(p, ","))
        return fail_unsupported(p, "JOIN");
    if (accept_kw(p, "WHERE") && !(s->where = parse_or(p)))
        return false;
    if (!check_clause(p))
        return false;
    if (accept_kw(p, "ORDER") && !parse_order(p))
        return false;
    if (!check_clause(p))
        return false;
    if (accept_kw(p, "LIMIT") && !parse_limit(p))
        return false;
    if (!check_clause(p) || !parse_end(p))
        return false;
    bool count = false, other = false;
    for (size_t i = 0; i < s->n_items; i++) {
        if (s->items[i].kind == IT_COUNT)
            count = true;
        else
            other = true;
    }
    if (count && other)
        return fail_unsupported(p, "COUNT(*) together with columns (GROUP BY)");
    return true;
}

/* ---- Parser: SHOW, DESCRIBE, writes ----------------------------------------------------- */

/* [LIKE 'pat' | WHERE expr] of the SHOW forms; the result is filtered as a SELECT * would be. */
static bool parse_show_filter(vq_parser *p, vq_query *q)
{
    struct vq_select *s = new_select(p, q);
    if (!s || !new_item(p, IT_STAR))
        return false;
    if (accept_kw(p, "LIKE")) {
        if (cur(p)->kind != TK_STRING)
            return fail_syntax(p, "a string after LIKE");
        q->like = cur(p)->val;
        advance(p);
    } else if (accept_kw(p, "WHERE")) {
        if (!(s->where = parse_or(p)))
            return false;
    }
    return parse_end(p);
}

static bool parse_show(vq_parser *p, vq_query *q)
{
    advance(p); /* SHOW */
    bool extended = accept_kw(p, "EXTENDED");
    q->full = accept_kw(p, "FULL");
    const char *parts[2];
    if (accept_kw(p, "TABLES")) {
        q->kind = VQ_SHOW_TABLES;
        if (extended)
            return fail_syntax(p, "SHOW [FULL] TABLES");
        if (accept_kw(p, "FROM") || accept_kw(p, "IN")) {
            if (!parse_name(p, parts, 1, "a schema name"))
                return false;
            q->schema = parts[0];
        }
        return parse_show_filter(p, q);
    }
    if (accept_kw(p, "COLUMNS") || accept_kw(p, "FIELDS")) {
        q->kind = VQ_SHOW_COLUMNS;
        if (!accept_kw(p, "FROM") && !accept_kw(p, "IN"))
            return fail_syntax(p, "FROM or IN");
        int n = parse_name(p, parts, 2, "a table name");
        if (!n)
            return false;
        q->schema = n == 2 ? parts[0] : NULL;
        q->table = parts[n - 1];
        if (accept_kw(p, "FROM") || accept_kw(p, "IN")) {
            if (!parse_name(p, parts, 1, "a schema name"))
                return false;
            q->schema = parts[0];
        }
        return parse_show_filter(p, q);
    }
    if (!q->full && !extended && (accept_kw(p, "DATABASES") || accept_kw(p, "SCHEMAS"))) {
        q->kind = VQ_SHOW_DATABASES;
        return parse_show_filter(p, q);
    }
    const vq_tok *t = cur(p);
    if (t->kind != TK_IDENT)
        return fail_syntax(p, "TABLES, COLUMNS or DATABASES after SHOW");
    char what[80];
    snprintf(what, sizeof what, "SHOW %s%.40s", q->full ? "FULL " : "", t->val);
    return fail_statement(p, upper(what));
}

static bool parse_describe(vq_parser *p, vq_query *q)
{
    static const char *const explain[] = {"SELECT",     "INSERT", "UPDATE", "DELETE",  "REPLACE",
                                          "WITH",       "TABLE",  "FORMAT", "ANALYZE", "EXTENDED",
                                          "PARTITIONS", "FOR",    "VALUES", NULL};
    advance(p); /* DESCRIBE */
    if (tok_in(cur(p), explain) || is_op(p, "("))
        return fail_statement(p, "EXPLAIN of a statement");
    q->kind = VQ_DESCRIBE;
    const char *parts[2];
    int n = parse_name(p, parts, 2, "a table name");
    if (!n)
        return false;
    q->schema = n == 2 ? parts[0] : NULL;
    q->table = parts[n - 1];
    const vq_tok *t = cur(p);
    if (t->kind == TK_STRING || (t->kind == TK_IDENT && !tok_reserved(t))) {
        q->like = t->val;
        advance(p);
    }
    struct vq_select *s = new_select(p, q);
    if (!s || !new_item(p, IT_STAR))
        return false;
    return parse_end(p);
}

static bool is_virtual_schema(const char *name)
{
    return ci_eq(name, "__envs") || ci_eq(name, "__compare");
}

/* INSERT, UPDATE, DROP, ...: read only as far as the target, which names the error. */
static bool parse_write(vq_parser *p, const char *verb)
{
    static const char *const skip[] = {
        "INTO",   "FROM",      "TABLE", "IGNORE", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY",
        "QUICK",  "TEMPORARY", "IF",    "NOT",    "EXISTS",       "OR",      "REPLACE",
        "ONLINE", "OFFLINE",   "VIEW",  "UNIQUE", "FULLTEXT",     "SPATIAL", NULL};
    advance(p);
    bool db = false;
    if (ci_eq(verb, "LOAD")) {
        while (cur(p)->kind != TK_END && !is_kw(p, "TABLE"))
            advance(p);
    }
    for (;;) {
        if (is_kw(p, "DATABASE") || is_kw(p, "SCHEMA")) {
            db = true;
            advance(p);
        } else if (is_kw(p, "INDEX")) {
            while (cur(p)->kind != TK_END && !is_kw(p, "ON"))
                advance(p);
            advance(p);
        } else if (tok_in(cur(p), skip)) {
            advance(p);
        } else {
            break;
        }
    }
    const vq_tok *t = cur(p);
    const char *parts[2];
    int n = 0;
    if (t->kind == TK_IDENT) {
        parts[0] = t->val;
        advance(p);
        n = 1;
        if (is_op(p, ".") && peek(p, 1)->kind == TK_IDENT) {
            advance(p);
            parts[1] = cur(p)->val;
            n = 2;
        }
    }
    if (n == 0)
        return fail(p, VQ_ERR_READONLY,
                    "envproxy: the virtual schemas __envs and __compare are "
                    "read only: %s is not allowed",
                    verb);
    if (db && is_virtual_schema(parts[0]))
        return fail(p, VQ_ERR_READONLY, "Database '%s' is read only", parts[0]);
    if (db || (n == 2 && !is_virtual_schema(parts[0]))) {
        char what[128];
        snprintf(what, sizeof what, "writing to %.40s%s%.40s from a virtual table (%s)", parts[0],
                 n == 2 ? "." : "", n == 2 ? parts[1] : "", verb);
        return fail_statement(p, what);
    }
    if (n == 2)
        return fail(p, VQ_ERR_READONLY, "Table '%s.%s' is read only", parts[0], parts[1]);
    return fail(p, VQ_ERR_READONLY, "Table '%s' is read only", parts[0]);
}

int vq_parse(const char *sql, size_t len, vq_query *q, char *err, size_t errlen)
{
    static const char *const writes[] = {"INSERT",   "REPLACE", "UPDATE", "DELETE",
                                         "TRUNCATE", "DROP",    "ALTER",  "CREATE",
                                         "RENAME",   "LOAD",    NULL};
    memset(q, 0, sizeof *q);
    if (err && errlen)
        err[0] = '\0';
    vq_parser p = {
        .sql = sql ? sql : "", .len = sql ? len : 0, .mem = &q->mem, .err = err, .errlen = errlen};
    if (tokenize(&p)) {
        const vq_tok *t = cur(&p);
        char verb[24];
        if (tok_is_kw(t, "SELECT")) {
            parse_select(&p, q);
        } else if (tok_is_kw(t, "SHOW")) {
            parse_show(&p, q);
        } else if (tok_is_kw(t, "DESCRIBE") || tok_is_kw(t, "DESC") || tok_is_kw(t, "EXPLAIN")) {
            parse_describe(&p, q);
        } else if (tok_in(t, writes)) {
            snprintf(verb, sizeof verb, "%s", t->val);
            parse_write(&p, upper(verb));
        } else if (tok_is_kw(t, "WITH")) {
            fail_statement(&p, "WITH (a common table expression)");
        } else if (tok_is_op(t, "(")) {
            fail_statement(&p, "a statement in parentheses");
        } else if (t->kind == TK_IDENT && !t->quoted) {
            char what[64];
            snprintf(what, sizeof what, "%.40s", t->val);
            fail_statement(&p, upper(what));
        } else if (t->kind == TK_END || t->kind == TK_SEMI) {
            fail_syntax(&p, "a statement");
        } else {
            fail_syntax(&p, "SELECT, SHOW or DESCRIBE");
        }
    }
    if (p.status != VQ_OK) {
        vq_query_free(q);
        return p.status;
    }
    return VQ_OK;
}

/* ---- vq_mentions_virtual ---------------------------------------------------------------- */

bool vq_mentions_virtual(const char *sql, size_t len)
{
    if (!sql)
        return false;
    sql_lexer lx;
    sqllex_init(&lx, sql, len, NULL);
    bool after_sysvar = false;
    for (;;) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_END || t.kind == SQLTOK_ERROR)
            return false;
        const char *s = sql + t.start;
        size_t n = t.len;
        if (t.kind == SQLTOK_QIDENT && n >= 2) {
            s++;
            n -= 2;
        } else if (t.kind != SQLTOK_WORD) {
            after_sysvar = t.kind == SQLTOK_SYSVAR;
            continue;
        }
        if (!after_sysvar && ((n == 6 && strncasecmp(s, "__envs", 6) == 0) ||
                              (n == 9 && strncasecmp(s, "__compare", 9) == 0)))
            return true;
        after_sysvar = false;
    }
}

/* ---- vq_where_params -------------------------------------------------------------------- */

static int param_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l && names[i][l - 1] == '?')
            l--;
        if (strlen(name) == l && strncasecmp(names[i], name, l) == 0)
            return i;
    }
    return -1;
}

static const char *slot_name(const vq_query *q, const vq_operand *o)
{
    return o->is_col ? q->sel->slots[o->slot].name : NULL;
}

/* Finds a column operand named after a parameter outside the accepted tests. */
static const char *misused_param(const vq_query *q, const vq_expr *e, const char *const *names,
                                 int n)
{
    if (e->param)
        return NULL;
    const vq_operand *ops[3] = {&e->a, &e->b, &e->c};
    for (int i = 0; i < 3; i++)
        if (ops[i]->is_col && param_index(names, n, slot_name(q, ops[i])) >= 0)
            return slot_name(q, ops[i]);
    for (size_t i = 0; i < e->n_list; i++)
        if (e->list[i].is_col && param_index(names, n, slot_name(q, &e->list[i])) >= 0)
            return slot_name(q, &e->list[i]);
    for (size_t i = 0; i < e->n_kids; i++) {
        const char *m = misused_param(q, e->kids[i], names, n);
        if (m)
            return m;
    }
    return NULL;
}

int vq_where_params(vq_query *q, const char *const *names, int n, const char **values, char *err,
                    size_t errlen)
{
    for (int i = 0; i < n; i++)
        values[i] = NULL;
    /* "__compare.query takes WHERE envs = '...' AND sql = '...' [AND key = '...']" */
    char help[512];
    size_t h = 0;
    const char *table = q->table ? q->table : "this table";
    if (q->schema)
        h += (size_t)snprintf(help, sizeof help, "%s.%s takes WHERE ", q->schema, table);
    else
        h += (size_t)snprintf(help, sizeof help, "%s takes WHERE ", table);
    for (int i = 0; i < n && h < sizeof help; i++) {
        size_t l = strlen(names[i]);
        bool opt = l && names[i][l - 1] == '?';
        h += (size_t)snprintf(help + h, sizeof help - h, "%s%s%s%.*s = '...'%s", i ? " " : "",
                              opt ? "[" : "", i ? "AND " : "", (int)(opt ? l - 1 : l), names[i],
                              opt ? "]" : "");
    }
    struct vq_select *s = q->kind == VQ_SELECT ? q->sel : NULL;
    vq_expr *w = s ? s->where : NULL;
    if (s) {
        s->param_help = mem_strdup(&q->mem, help);
        if (!s->param_help)
            return set_err(err, errlen, VQ_ERR_NOMEM, "envproxy: out of memory");
    }
    vq_expr *single[1] = {w};
    vq_expr **conj = single;
    size_t n_conj = w ? 1 : 0;
    if (w && w->kind == EX_AND) {
        conj = w->kids;
        n_conj = w->n_kids;
    }
    for (size_t i = 0; i < n_conj; i++)
        conj[i]->param = false;
    for (size_t i = 0; s && i < s->n_slots; i++)
        s->slots[i].param = false;
    for (size_t i = 0; i < n_conj; i++) {
        vq_expr *e = conj[i];
        if (e->kind != EX_CMP || e->cmp != OP_EQ || e->a.is_col == e->b.is_col)
            continue;
        vq_operand *col = e->a.is_col ? &e->a : &e->b, *lit = e->a.is_col ? &e->b : &e->a;
        int k = param_index(names, n, slot_name(q, col));
        if (k < 0 || lit->lit.is_null)
            continue;
        if (values[k])
            return set_err(err, errlen, VQ_ERR_PARAM, "envproxy: parameter '%s' is given twice: %s",
                           slot_name(q, col), help);
        values[k] = lit->lit.s;
        e->param = true;
        s->slots[col->slot].param = true;
    }
    const char *bad = w ? misused_param(q, w, names, n) : NULL;
    if (bad)
        return set_err(err, errlen, VQ_ERR_PARAM,
                       "envproxy: parameter '%s' must be an equality test with a value, ANDed with "
                       "the other conditions: %s",
                       bad, help);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (!values[i] && !(l && names[i][l - 1] == '?'))
            return set_err(err, errlen, VQ_ERR_PARAM, "envproxy: missing parameter '%s': %s",
                           names[i], help);
    }
    return VQ_OK;
}

/* ---- Evaluation ------------------------------------------------------------------------- */

typedef struct {
    const vq_table *t;
    const size_t *colmap; /* slot -> table column */
    const vq_value *row;
} vq_eval;

static const vq_value *operand_value(const vq_eval *c, const vq_operand *o, vq_type *type)
{
    if (o->is_col) {
        size_t col = c->colmap[o->slot];
        *type = c->t->columns[col].type;
        return &c->row[col];
    }
    *type = o->type;
    return &o->lit;
}

/* a op b with NULLs: 1 true, 0 false, -1 NULL. */
static int eval_cmp(const vq_eval *c, const vq_operand *oa, vq_cmp op, const vq_operand *ob)
{
    vq_type ta, tb;
    const vq_value *a = operand_value(c, oa, &ta), *b = operand_value(c, ob, &tb);
    if (op == OP_NSEQ) {
        if (a->is_null || b->is_null)
            return a->is_null && b->is_null;
        return value_cmp(a, ta, b, tb) == 0;
    }
    if (a->is_null || b->is_null)
        return -1;
    int r = value_cmp(a, ta, b, tb);
    switch (op) {
    case OP_EQ:
        return r == 0;
    case OP_NE:
        return r != 0;
    case OP_LT:
        return r < 0;
    case OP_LE:
        return r <= 0;
    case OP_GT:
        return r > 0;
    default:
        return r >= 0;
    }
}

static int not3(int v)
{
    return v < 0 ? -1 : !v;
}

static int eval_expr(const vq_eval *c, const vq_expr *e)
{
    vq_type ta, tb;
    const vq_value *a, *b;
    int r;
    switch (e->kind) {
    case EX_AND:
        r = 1;
        for (size_t i = 0; i < e->n_kids; i++) {
            if (e->kids[i]->param)
                continue;
            int v = eval_expr(c, e->kids[i]);
            if (v == 0)
                return 0;
            if (v < 0)
                r = -1;
        }
        return r;
    case EX_OR:
        r = 0;
        for (size_t i = 0; i < e->n_kids; i++) {
            int v = eval_expr(c, e->kids[i]);
            if (v == 1)
                return 1;
            if (v < 0)
                r = -1;
        }
        return r;
    case EX_NOT:
        return not3(eval_expr(c, e->kids[0]));
    case EX_CMP:
        return eval_cmp(c, &e->a, e->cmp, &e->b);
    case EX_IN:
        r = 0;
        for (size_t i = 0; i < e->n_list && r != 1; i++) {
            int v = eval_cmp(c, &e->a, OP_EQ, &e->list[i]);
            if (v == 1 || (v < 0 && r == 0))
                r = v;
        }
        return e->negated ? not3(r) : r;
    case EX_LIKE:
        a = operand_value(c, &e->a, &ta);
        b = operand_value(c, &e->b, &tb);
        if (a->is_null || b->is_null)
            return -1;
        r = like_match(a->s, a->len, b->s, b->len, e->escape);
        return e->negated ? !r : r;
    case EX_NULLTEST:
        a = operand_value(c, &e->a, &ta);
        return a->is_null != e->negated;
    case EX_BOOLTEST:
        a = operand_value(c, &e->a, &ta);
        r = value_truth(a, ta) == e->truth;
        return e->negated ? !r : r;
    case EX_BETWEEN: {
        int lo = eval_cmp(c, &e->a, OP_GE, &e->b), hi = eval_cmp(c, &e->a, OP_LE, &e->c);
        r = lo == 0 || hi == 0 ? 0 : lo < 0 || hi < 0 ? -1 : 1;
        return e->negated ? not3(r) : r;
    }
    default:
        a = operand_value(c, &e->a, &ta);
        return value_truth(a, ta);
    }
}

/* ---- Execution -------------------------------------------------------------------------- */

/* The column of t that name (with optional qualifiers) denotes, or -1. With a table alias,
 * only the alias qualifies, as in MySQL. */
static long find_column(const vq_table *t, const char *alias, const char *qschema,
                        const char *qtable, const char *name)
{
    if (qtable) {
        if (alias) {
            if (qschema || !ci_eq(qtable, alias))
                return -1;
        } else if (!ci_eq(qtable, t->name) || (qschema && !ci_eq(qschema, t->schema))) {
            return -1;
        }
    }
    for (size_t i = 0; i < t->n_columns; i++)
        if (ci_eq(t->columns[i].name, name))
            return (long)i;
    return -1;
}

typedef struct {
    size_t col;
    vq_type type;
    bool desc;
} vq_sort_key;

typedef struct {
    const vq_table *t;
    const vq_sort_key *keys;
    size_t n_keys;
} vq_sort;

static int row_cmp(const vq_sort *s, size_t ra, size_t rb)
{
    const vq_table *t = s->t;
    for (size_t k = 0; k < s->n_keys; k++) {
        const vq_sort_key *key = &s->keys[k];
        const vq_value *a = &t->rows[ra * t->n_columns + key->col];
        const vq_value *b = &t->rows[rb * t->n_columns + key->col];
        int r;
        if (a->is_null || b->is_null)
            r = a->is_null == b->is_null ? 0 : a->is_null ? -1 : 1;
        else
            r = value_cmp(a, key->type, b, key->type);
        if (r)
            return key->desc ? -r : r;
    }
    return 0;
}

/* Stable bottom-up merge sort of row indexes; tmp has room for n. */
static void sort_rows(const vq_sort *s, size_t *rows, size_t *tmp, size_t n)
{
    size_t *src = rows, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                dst[o++] = row_cmp(s, src[j], src[i]) < 0 ? src[j++] : src[i++];
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
        }
        size_t *x = src;
        src = dst;
        dst = x;
    }
    if (src != rows)
        memcpy(rows, src, n * sizeof *rows);
}

/* One output column: a table column, or a COUNT item. */
typedef struct {
    long tcol;
    const vq_item *count;
    const char *name;
} vq_out;

/* The working state of one run_select; every array is freed by run_free. */
typedef struct {
    const struct vq_select *s;
    const vq_table *t;
    char *err;
    size_t errlen;
    size_t *colmap; /* slot -> table column */
    vq_out *outs;   /* output columns */
    size_t n_outs;
    size_t *item_out; /* item -> its first output column */
    bool counting;
    vq_sort_key *keys;
    size_t n_keys;
    size_t *rows; /* kept row indexes */
    size_t n_rows;
} vq_run;

static int run_nomem(vq_run *run)
{
    return set_err(run->err, run->errlen, VQ_ERR_NOMEM, "envproxy: out of memory");
}

static int unknown_column(const vq_run *run, const char *shown, vq_clause clause)
{
    const char *help = run->s->param_help;
    return set_err(run->err, run->errlen, VQ_ERR_NO_COLUMN, "Unknown column '%s' in '%s'%s%s",
                   shown, clause_names[clause], help ? "; " : "", help ? help : "");
}

/* Binds every column the query names (except parameters) to a column of the table. */
static int run_bind(vq_run *run)
{
    const struct vq_select *s = run->s;
    run->colmap = calloc(s->n_slots ? s->n_slots : 1, sizeof *run->colmap);
    if (!run->colmap)
        return run_nomem(run);
    for (size_t i = 0; i < s->n_slots; i++) {
        const vq_slot *sl = &s->slots[i];
        if (sl->param)
            continue;
        long c = find_column(run->t, s->alias, sl->qschema, sl->qtable, sl->name);
        if (c < 0)
            return unknown_column(run, sl->shown, sl->clause);
        run->colmap[i] = (size_t)c;
    }
    return VQ_OK;
}

static bool star_matches(const struct vq_select *s, const vq_table *t, const vq_item *it)
{
    if (!it->qtable)
        return true;
    if (s->alias)
        return !it->qschema && ci_eq(it->qtable, s->alias);
    return ci_eq(it->qtable, t->name) && (!it->qschema || ci_eq(it->qschema, t->schema));
}

/* The output columns: * expanded, aliases applied. */
static int run_project(vq_run *run)
{
    const struct vq_select *s = run->s;
    const vq_table *t = run->t;
    size_t n = 0;
    for (size_t i = 0; i < s->n_items; i++)
        n += s->items[i].kind == IT_STAR ? t->n_columns : 1;
    run->outs = calloc(n ? n : 1, sizeof *run->outs);
    run->item_out = calloc(s->n_items ? s->n_items : 1, sizeof *run->item_out);
    if (!run->outs || !run->item_out)
        return run_nomem(run);
    for (size_t i = 0; i < s->n_items; i++) {
        const vq_item *it = &s->items[i];
        run->item_out[i] = run->n_outs;
        if (it->kind == IT_STAR) {
            if (!star_matches(s, t, it))
                return set_err(run->err, run->errlen, VQ_ERR_NO_TABLE, "Unknown table '%s'",
                               it->qtable);
            for (size_t c = 0; c < t->n_columns; c++)
                run->outs[run->n_outs++] = (vq_out){(long)c, NULL, t->columns[c].name};
        } else if (it->kind == IT_COLUMN) {
            run->outs[run->n_outs++] =
                (vq_out){(long)run->colmap[it->slot], NULL, it->alias ? it->alias : it->name};
        } else {
            run->counting = true;
            run->outs[run->n_outs++] = (vq_out){-1, it, it->alias ? it->alias : it->text};
        }
    }
    return VQ_OK;
}

/* ORDER BY keys: a position, an alias of the select list, or a column of the table. Keys on
 * a COUNT are no keys (there is one row). */
static int run_order(vq_run *run)
{
    const struct vq_select *s = run->s;
    run->keys = calloc(s->n_order ? s->n_order : 1, sizeof *run->keys);
    if (!run->keys)
        return run_nomem(run);
    for (size_t k = 0; k < s->n_order; k++) {
        const vq_order *o = &s->order[k];
        long tcol = -1;
        bool found = false;
        if (o->position) {
            if (o->position < 0 || (size_t)o->position > run->n_outs)
                return unknown_column(run, o->shown, CL_ORDER);
            tcol = run->outs[o->position - 1].tcol;
        } else {
            for (size_t i = 0; !o->qtable && i < s->n_items && !found; i++)
                if (s->items[i].alias && ci_eq(s->items[i].alias, o->name)) {
                    tcol = run->outs[run->item_out[i]].tcol;
                    found = true;
                }
            if (!found)
                tcol = find_column(run->t, s->alias, o->qschema, o->qtable, o->name);
            if (!found && tcol < 0)
                return unknown_column(run, o->shown, CL_ORDER);
        }
        if (tcol >= 0)
            run->keys[run->n_keys++] =
                (vq_sort_key){(size_t)tcol, run->t->columns[tcol].type, o->desc};
    }
    return VQ_OK;
}

/* Keeps the rows whose first column matches like (when given) and whose WHERE is true. */
static int run_filter(vq_run *run, const char *like)
{
    const vq_table *t = run->t;
    const vq_expr *where = run->s->where && !run->s->where->param ? run->s->where : NULL;
    run->rows = malloc((t->n_rows ? t->n_rows : 1) * sizeof *run->rows);
    if (!run->rows)
        return run_nomem(run);
    size_t like_len = like ? strlen(like) : 0;
    for (size_t r = 0; r < t->n_rows; r++) {
        const vq_value *row = &t->rows[r * t->n_columns];
        if (like && (t->n_columns == 0 || row[0].is_null ||
                     !like_match(row[0].s, row[0].len, like, like_len, '\\')))
            continue;
        vq_eval ev = {t, run->colmap, row};
        if (where && eval_expr(&ev, where) != 1)
            continue;
        run->rows[run->n_rows++] = r;
    }
    return VQ_OK;
}

static int result_columns(vq_run *run, vq_result *out)
{
    const vq_table *t = run->t;
    out->schema = mem_strdup(&out->mem, t->schema);
    out->table = mem_strdup(&out->mem, t->name);
    out->columns = mem_alloc(&out->mem, (run->n_outs ? run->n_outs : 1) * sizeof *out->columns);
    if (!out->schema || !out->table || !out->columns)
        return run_nomem(run);
    out->n_columns = run->n_outs;
    for (size_t i = 0; i < run->n_outs; i++) {
        const vq_out *o = &run->outs[i];
        vq_result_column *col = &out->columns[i];
        col->name = mem_strdup(&out->mem, o->name);
        col->org_name = mem_strdup(&out->mem, o->tcol >= 0 ? t->columns[o->tcol].name : "");
        col->type = o->tcol >= 0 ? t->columns[o->tcol].type : VQ_INT;
        col->binary = o->tcol >= 0 && t->binary && t->binary[o->tcol];
        if (!col->name || !col->org_name)
            return run_nomem(run);
    }
    return VQ_OK;
}

/* The one row of a COUNT query, unless LIMIT/OFFSET skip it. */
static int result_counts(vq_run *run, vq_result *out)
{
    const struct vq_select *s = run->s;
    const vq_table *t = run->t;
    if (s->has_limit && (s->offset > 0 || s->limit == 0))
        return VQ_OK;
    out->values = mem_alloc(&out->mem, run->n_outs * sizeof *out->values);
    if (!out->values)
        return run_nomem(run);
    for (size_t i = 0; i < run->n_outs; i++) {
        const vq_item *it = run->outs[i].count;
        int64_t cnt = 0;
        if (it->slot >= 0) {
            size_t col = run->colmap[it->slot];
            for (size_t r = 0; r < run->n_rows; r++)
                cnt += !t->rows[run->rows[r] * t->n_columns + col].is_null;
        } else if (!it->count_none) {
            cnt = (int64_t)run->n_rows;
        }
        char *s_cnt = mem_printf(&out->mem, "%" PRId64, cnt);
        if (!s_cnt)
            return run_nomem(run);
        out->values[i] = (vq_value){.i = cnt, .d = (double)cnt, .s = s_cnt, .len = strlen(s_cnt)};
    }
    out->n_rows = 1;
    return VQ_OK;
}

/* The kept rows, sorted, cut by LIMIT/OFFSET, projected. */
static int result_rows(vq_run *run, vq_result *out)
{
    const struct vq_select *s = run->s;
    const vq_table *t = run->t;
    if (run->n_keys && run->n_rows > 1) {
        size_t *tmp = malloc(run->n_rows * sizeof *tmp);
        if (!tmp)
            return run_nomem(run);
        vq_sort so = {t, run->keys, run->n_keys};
        sort_rows(&so, run->rows, tmp, run->n_rows);
        free(tmp);
    }
    size_t first = 0, count = run->n_rows;
    if (s->has_limit) {
        first = s->offset < run->n_rows ? (size_t)s->offset : run->n_rows;
        count = run->n_rows - first;
        if (s->limit < count)
            count = (size_t)s->limit;
    }
    size_t w = run->n_outs;
    if (count && w) {
        if (count > SIZE_MAX / 4 / w / sizeof(vq_value))
            return run_nomem(run);
        out->values = mem_alloc(&out->mem, count * w * sizeof *out->values);
        if (!out->values)
            return run_nomem(run);
        for (size_t r = 0; r < count; r++) {
            const vq_value *row = &t->rows[run->rows[first + r] * t->n_columns];
            for (size_t i = 0; i < w; i++)
                out->values[r * w + i] = row[run->outs[i].tcol];
        }
    }
    out->n_rows = count;
    return VQ_OK;
}

static void run_free(vq_run *run)
{
    free(run->colmap);
    free(run->outs);
    free(run->item_out);
    free(run->keys);
    free(run->rows);
}

/* Runs sel over t into out; like (may be NULL) filters on the first column. On error out is
 * left empty. */
static int run_select(const struct vq_select *s, const vq_table *t, const char *like,
                      vq_result *out, char *err, size_t errlen)
{
    vq_run run = {.s = s, .t = t, .err = err, .errlen = errlen};
    memset(out, 0, sizeof *out);
    int rc = run_bind(&run);
    if (rc == VQ_OK)
        rc = run_project(&run);
    if (rc == VQ_OK)
        rc = run_order(&run);
    if (rc == VQ_OK)
        rc = run_filter(&run, like);
    if (rc == VQ_OK)
        rc = result_columns(&run, out);
    if (rc == VQ_OK)
        rc = run.counting ? result_counts(&run, out) : result_rows(&run, out);
    run_free(&run);
    if (rc != VQ_OK)
        vq_result_free(out);
    return rc;
}

int vq_execute(const vq_query *q, const vq_table *t, vq_result *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (q->kind != VQ_SELECT || !q->sel) {
        memset(out, 0, sizeof *out);
        return set_err(err, errlen, VQ_ERR_UNSUPPORTED,
                       "envproxy: vq_execute runs SELECT; SHOW and DESCRIBE have their own calls");
    }
    return run_select(q->sel, t, NULL, out, err, errlen);
}

/* Filters a table built for SHOW or DESCRIBE by the query's LIKE or WHERE into out, which
 * takes the table over (freed on error). */
static int run_show(const vq_query *q, vq_table *built, vq_result *out, char *err, size_t errlen)
{
    vq_item star = {.kind = IT_STAR, .slot = -1};
    struct vq_select star_only = {.items = &star, .n_items = 1};
    const struct vq_select *s = q && q->sel && q->kind != VQ_SELECT ? q->sel : &star_only;
    int rc = run_select(s, built, q ? q->like : NULL, out, err, errlen);
    if (rc != VQ_OK) {
        vq_table_free(built);
        return rc;
    }
    out->owned = built;
    return VQ_OK;
}

static const char *type_name(vq_type t)
{
    switch (t) {
    case VQ_INT:
        return "bigint";
    case VQ_DOUBLE:
        return "double";
    case VQ_DATETIME:
        return "datetime";
    default:
        return "varchar(255)";
    }
}

int vq_describe(const vq_query *q, const vq_table *t, vq_result *out, char *err, size_t errlen)
{
    static const vq_column plain[] = {{"Field", VQ_STRING},   {"Type", VQ_STRING},
                                      {"Null", VQ_STRING},    {"Key", VQ_STRING},
                                      {"Default", VQ_STRING}, {"Extra", VQ_STRING}};
    static const vq_column full[] = {
        {"Field", VQ_STRING}, {"Type", VQ_STRING},       {"Collation", VQ_STRING},
        {"Null", VQ_STRING},  {"Key", VQ_STRING},        {"Default", VQ_STRING},
        {"Extra", VQ_STRING}, {"Privileges", VQ_STRING}, {"Comment", VQ_STRING}};
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    bool f = q && q->full;
    vq_table *d = vq_table_new("information_schema", "COLUMNS", f ? full : plain, f ? 9 : 6);
    if (!d)
        return set_err(err, errlen, VQ_ERR_NOMEM, "envproxy: out of memory");
    for (size_t i = 0; i < t->n_columns; i++) {
        long r = vq_table_add_row(d);
        if (r < 0)
            goto nomem;
        size_t c = 0, row = (size_t)r;
        int bad = vq_set_str(d, row, c++, t->columns[i].name);
        bad |= vq_set_str(d, row, c++, type_name(t->columns[i].type));
        if (f)
            bad |= vq_set_str(d, row, c++,
                              t->columns[i].type == VQ_STRING ? "utf8mb4_general_ci" : NULL);
        bad |= vq_set_str(d, row, c++, "YES");
        bad |= vq_set_str(d, row, c++, "");
        c++; /* Default: NULL */
        bad |= vq_set_str(d, row, c++, "");
        if (f) {
            bad |= vq_set_str(d, row, c++, "select");
            bad |= vq_set_str(d, row, c++, "");
        }
        if (bad)
            goto nomem;
    }
    return run_show(q, d, out, err, errlen);
nomem:
    vq_table_free(d);
    return set_err(err, errlen, VQ_ERR_NOMEM, "envproxy: out of memory");
}

/* A one- or two-column table of names for SHOW TABLES / SHOW DATABASES. */
static int show_names(const vq_query *q, const char *header, const char *type_header,
                      const char *const *names, size_t n, vq_result *out, char *err, size_t errlen)
{
    vq_column cols[2] = {{header, VQ_STRING}, {type_header, VQ_STRING}};
    vq_table *d = vq_table_new("information_schema", "", cols, type_header ? 2 : 1);
    if (!d)
        return set_err(err, errlen, VQ_ERR_NOMEM, "envproxy: out of memory");
    for (size_t i = 0; i < n; i++) {
        long r = vq_table_add_row(d);
        if (r < 0 || vq_set_str(d, (size_t)r, 0, names[i]) ||
            (type_header && vq_set_str(d, (size_t)r, 1, "SYSTEM VIEW"))) {
            vq_table_free(d);
            return set_err(err, errlen, VQ_ERR_NOMEM, "envproxy: out of memory");
        }
    }
    return run_show(q, d, out, err, errlen);
}

int vq_show_tables(const vq_query *q, const char *schema, const char *const *names, size_t n,
                   vq_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    const char *like = q ? q->like : NULL;
    size_t need =
        strlen("Tables_in_") + strlen(schema ? schema : "") + (like ? strlen(like) + 3 : 0) + 1;
    char *header = malloc(need);
    if (!header)
        return set_err(err, errlen, VQ_ERR_NOMEM, "envproxy: out of memory");
    snprintf(header, need, "Tables_in_%s%s%s%s", schema ? schema : "", like ? " (" : "",
             like ? like : "", like ? ")" : "");
    int rc = show_names(q, header, q && q->full ? "Table_type" : NULL, names, n, out, err, errlen);
    free(header);
    return rc;
}

int vq_show_databases(const vq_query *q, const char *const *names, size_t n, vq_result *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    const char *like = q ? q->like : NULL;
    size_t need = strlen("Database") + (like ? strlen(like) + 3 : 0) + 1;
    char *header = malloc(need);
    if (!header)
        return set_err(err, errlen, VQ_ERR_NOMEM, "envproxy: out of memory");
    snprintf(header, need, "Database%s%s%s", like ? " (" : "", like ? like : "", like ? ")" : "");
    int rc = show_names(q, header, NULL, names, n, out, err, errlen);
    free(header);
    return rc;
}

const vq_value *vq_result_value(const vq_result *r, size_t row, size_t col)
{
    if (!r || row >= r->n_rows || col >= r->n_columns)
        return NULL;
    return &r->values[row * r->n_columns + col];
}

void vq_result_free(vq_result *r)
{
    if (!r)
        return;
    mem_free(r->mem);
    vq_table_free(r->owned);
    memset(r, 0, sizeof *r);
}
