/* json.h: a strict JSON (RFC 8259) reader and a writer that always produces valid UTF-8
 * (pure: no I/O, no event loop). Allocation failure aborts the process, as in packet.h. */
#ifndef ENVPROXY_JSON_H
#define ENVPROXY_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 64 /* arrays and objects nested deeper than this are refused */

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json json;

typedef struct {
    char *key; /* NUL-terminated; may also hold NULs (\u0000), key_len says how long */
    size_t key_len;
    json *val;
} json_member;

struct json {
    json_type type;
    union {
        bool b;
        struct {
            double value;
            char *text; /* the number as written, so that ids are echoed exactly */
        } num;
        struct {
            char *s; /* UTF-8, NUL-terminated; may also hold NULs, len says how long */
            size_t len;
        } str;
        struct {
            json **items;
            size_t n, cap;
        } arr;
        struct {
            json_member *items; /* in input order; a repeated key is kept, the last one wins */
            size_t n, cap;
        } obj;
    } u;
};

/* ---- reading ---------------------------------------------------------------------------- */

/* Parses exactly one JSON value (surrounding white space allowed) from text[0..len). The
 * input must be UTF-8; strings take every escape including \uXXXX and surrogate pairs, which
 * become UTF-8 (a lone surrogate is an error). Arrays and objects may nest max_depth deep
 * (<= 0: JSON_MAX_DEPTH). Returns a tree the caller frees with json_free(), or NULL with a
 * message naming the byte offset in err. */
json *json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen);

void json_free(json *v);

/* The member named key of an object (the last one when the key is repeated); NULL when v is
 * not an object or has no such member. */
json *json_get(const json *v, const char *key);

/* v's string, or NULL when v is NULL or not a string. */
const char *json_string_value(const json *v);

/* "null", "boolean", "number", "string", "array", "object" (for error messages). */
const char *json_type_name(json_type t);

/* Deep equality: numbers by value, strings and keys bytewise, members in order. */
bool json_equal(const json *a, const json *b);

/* ---- building --------------------------------------------------------------------------- */

json *json_new_null(void);
json *json_new_bool(bool b);
json *json_new_int(long long v);
json *json_new_double(double v); /* NaN and infinities become null */
json *json_new_string(const char *s, size_t len);
json *json_new_cstr(const char *s);
json *json_new_array(void);
json *json_new_object(void);
/* A deep copy of v. */
json *json_clone(const json *v);

/* Appends v to array a; a takes ownership. */
void json_array_add(json *a, json *v);
/* Sets member key of object o to v, replacing (and freeing) an earlier value; o takes
 * ownership of v. */
void json_object_set(json *o, const char *key, json *v);

/* ---- writing ---------------------------------------------------------------------------- */

/* A growable text buffer, NUL-terminated whenever data is not NULL. */
typedef struct {
    char *data;
    size_t len, cap;
} json_buf;

void json_buf_init(json_buf *b);
void json_buf_free(json_buf *b);
void json_buf_reset(json_buf *b);
void json_buf_put(json_buf *b, const void *p, size_t n);
void json_buf_putc(json_buf *b, char c);
void json_buf_puts(json_buf *b, const char *s);
void json_buf_printf(json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the text over to the caller (free() it) and leaves b empty: it may be written to
 * again, and must still be freed with json_buf_free(). */
char *json_buf_take(json_buf *b, size_t *len);

/* Writes s[0..len) as a quoted JSON string: '"', '\\' and control characters are escaped,
 * valid UTF-8 is copied, and each byte that does not start a valid UTF-8 sequence becomes
 * \ufffd, so the output is always valid UTF-8 whatever the input. */
void json_write_string(json_buf *b, const char *s, size_t len);

/* True when s[0..len) is a number as JSON writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 */
bool json_number_valid(const char *s, size_t len);

/* Writes v compactly (no white space). */
void json_write(json_buf *b, const json *v);

/* v as compact JSON text, NUL-terminated; the caller frees it. len may be NULL. */
char *json_serialize(const json *v, size_t *len);

/* The length of the valid UTF-8 sequence at s[0..n) (1 to 4), or 0 when the bytes there are
 * not one: overlong forms, surrogates and code points above U+10FFFF are not valid. */
size_t json_utf8_seq_len(const unsigned char *s, size_t n);

#endif
