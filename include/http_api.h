/* http_api.h: the HTTP front door: /api/v1 JSON routes on the http: listener, the internal
 * sessions that run their SQL through the MySQL port's one statement path, and the pure
 * pieces (JSON value mapping, binary-protocol values, route matching, named parameters). */
#ifndef ENVPROXY_HTTP_API_H
#define ENVPROXY_HTTP_API_H

#include "json.h"
#include "packet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- pure: values, routes, parameters (http/json.c) ---------------------------------------- */

/* MySQL column types (the ones packet.h does not name). */
enum {
    HT_DECIMAL = 0, HT_TINY = 1, HT_SHORT = 2, HT_LONG = 3, HT_FLOAT = 4, HT_DOUBLE = 5,
    HT_NULL = 6, HT_TIMESTAMP = 7, HT_LONGLONG = 8, HT_INT24 = 9, HT_DATE = 10, HT_TIME = 11,
    HT_DATETIME = 12, HT_YEAR = 13, HT_NEWDATE = 14, HT_VARCHAR = 15, HT_BIT = 16,
    HT_JSON = 245, HT_NEWDECIMAL = 246, HT_ENUM = 247, HT_SET = 248, HT_TINY_BLOB = 249,
    HT_MEDIUM_BLOB = 250, HT_LONG_BLOB = 251, HT_BLOB = 252, HT_VAR_STRING = 253,
    HT_STRING = 254, HT_GEOMETRY = 255,
};
#define HT_FLAG_UNSIGNED 0x0020
#define HT_FLAG_ENUM 0x0100
#define HT_FLAG_SET 0x0800
#define HT_CHARSET_BINARY 63

/* A result column as the front door needs it. */
typedef struct {
    char name[256];
    uint8_t type;
    uint16_t flags, charset;
    uint8_t decimals;
} hj_column;

/* The SQL type name of a column: "int", "bigint unsigned", "varchar", "varbinary", ... */
const char *hj_type_name(const hj_column *c, char *buf, size_t cap);

/* Writes one value (text as the server prints it, v NULL for SQL NULL) as JSON: NULL null;
 * integers within +-2^53 numbers, larger ones strings; DECIMAL strings; FLOAT/DOUBLE numbers
 * (null for a value JSON cannot hold); dates and times strings; text columns UTF-8 strings;
 * columns of the binary character set, BIT and GEOMETRY {"base64":"..."}; a text value that
 * is not valid UTF-8 also {"base64":"..."}. */
void hj_write_value(json_buf *b, const hj_column *c, const char *v, size_t len);

/* Reads one binary-protocol value of column c from r and writes it into out (cap >= 64) as
 * the server would print it in the text protocol; string-like values are returned in place
 * (*s, *n point into the packet). Returns false when the packet is malformed. */
bool hj_binary_value(preader *r, const hj_column *c, char *out, size_t cap, const char **s,
                     size_t *n);

/* SHA-256 of a token, as stored (hex, 64 characters and a NUL). */
void hj_token_hash(const char *token, char out[65]);

/* Route matching: the path (without query string) split on '/'. Returns the number of
 * segments (at most max), each percent-decoded into seg[i] (NUL-terminated, at most 128
 * bytes); -1 when the path is malformed (no leading '/', a bad or NUL escape, an empty
 * segment, too many or too long segments). */
#define HJ_SEG_MAX 128
int hj_split_path(const char *path, char seg[][HJ_SEG_MAX + 1], int max);

/* Named parameters: rewrites each :name of sql (found by the lexer: never inside quotes,
 * identifiers or comments) into '?', filling out (caller frees) and names[i] (the name of the
 * i-th '?', pointers into sql, lengths in name_lens). At most max parameters. Returns the
 * number of parameters, or -1 with err filled (unreadable SQL, a '?' of its own, too many, a
 * leading routing comment). */
int hj_named_params(const char *sql, size_t len, char **out, const char **names,
                    size_t *name_lens, int max, char *err, size_t errlen);

/* Checks a value for a named-query parameter of type (int decimal string date datetime bool)
 * and gives its canonical text in out (cap >= 64) for int, decimal, date, datetime and
 * bool (as "1"/"0"). Returns false with err naming what is wrong. */
bool hj_check_param(const char *type, const json *v, char *out, size_t cap, char *err,
                    size_t errlen);
bool hj_param_type_valid(const char *type);

/* Checks a named query's definition ({"name","description","sql","params","environments",
 * "database"}) against cfg and returns a normalized copy with "owner" set, or NULL with err:
 * names, types and defaults valid, every :name of the SQL declared and every declared one
 * used, and SQL that is not read-only only when every environment it may run in is
 * read_write. by (NULL: the CLI, which answers to no grant) is the account saving it: it needs
 * a grant on every environment listed (one it has none on does not exist for it), and a write
 * grant on each for SQL that is not read-only (else it could leave a write for someone who may
 * write there to run). */
#define HJ_QUERY_DESC_MAX 4096          /* bytes of a named query's description */
#define HJ_QUERY_DEF_MAX (96 * 1024)     /* bytes of its whole definition, as stored */
struct config;
struct account;
json *hj_query_check(const json *def, const char *owner, const struct account *by,
                     const struct config *cfg, char *err, size_t errlen);

/* ---- the front door (http/api.c) ------------------------------------------------------------ */

struct proxy;
struct evhttp;
struct evhttp_request;
/* Adds the /api/v1 routes to http (on the main loop): the generic callback answers them
 * and 404 for anything else. */
void http_api_register(struct proxy *p, struct evhttp *http);
/* http/server.c: the front door answers some requests later. While it does, the connection is busy
 * (its request deadline does not apply) and gone(arg) runs if the connection closes first
 * (evhttp then frees the request). http_conn_done: the answer goes now (not busy; the
 * connection's deadline starts again); also for answers given at once. */
void http_conn_busy(struct evhttp_request *req, const char *user, void (*gone)(void *arg),
                    void *arg);
/* The events that tell that the client of a connection being answered went away: the
 * peer's close itself (EV_CLOSED) where the event loop can see it apart from bytes waiting to
 * be read (a pipelined request, or over TLS the close_notify a client sends before its FIN),
 * else readability, which the caller tells apart with a peek. */
struct event_base;
short http_gone_events(struct event_base *base);
/* Whether user may start one more request that is answered later: an account has at most
 * HTTP_MAX_BUSY_PER_USER of them at once (the listener's connections are shared by all; one
 * account must not hold them all with slow statements). */
#define HTTP_MAX_BUSY_PER_USER 8
bool http_user_may_start(const char *user);
void http_conn_done(struct evhttp_request *req);
/* Whether the listener speaks HTTPS (http.tls). */
bool http_tls_on(void);
/* http/server.c: whether the request's body framing is unambiguous: at most one
 * Content-Length, at most one Transfer-Encoding and that one exactly "chunked". Otherwise it
 * answers 400 and closes the connection (a proxy in front may have framed the body another
 * way, and what follows it on the connection would be read as a request of its own). Every
 * callback of the listener asks this first. */
bool http_framing_ok(struct evhttp_request *req);
/* Counts an answer of the front door by status class (/metrics). */
void http_api_count_status(int status);
/* http/mcp.c: POST/DELETE /mcp for an authenticated user. */
void http_mcp_handle(struct proxy *p, struct evhttp_request *req, const char *user,
                     const char *addr, const char *host);
/* Ends every MCP session (at shutdown, after the listener is gone). */
void http_mcp_shutdown(void);
/* The login sessions and MCP sessions of accounts that are no longer in the store end (main
 * loop; cheap when the store was not read again since the last call): an account made again
 * under the same name does not inherit them. Called by the listener's sweep and before each
 * authentication. */
void http_accounts_follow(struct proxy *p);
struct acct_snapshot;
void http_mcp_accounts_reloaded(const struct acct_snapshot *snap); /* the MCP part */

#endif
