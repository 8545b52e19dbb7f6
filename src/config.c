/* config.c: proxy.yaml and its includes -> the config model, with FILE:LINE:COL diagnostics. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

bool config_unset_vars_empty = false;

#define DEFAULT_LISTEN_HOST "127.0.0.1"
#define DEFAULT_LISTEN_PORT 3307
#define DEFAULT_ACCOUNTS "envproxy.db"
#define DEFAULT_MAX_ROWS 10000
#define DEFAULT_STATEMENT_TIMEOUT_MS 30000
#define DEFAULT_MAX_PACKET_SIZE (64LL * 1024 * 1024)
#define MIN_MAX_PACKET_SIZE 1024LL
#define MAX_MAX_PACKET_SIZE (1024LL * 1024 * 1024)
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define DEFAULT_HEALTH_INTERVAL_MS 5000
#define DEFAULT_HEALTH_TIMEOUT_MS 2000
#define DEFAULT_IDLE_TRANSACTION_TIMEOUT_MS 60000
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 10000
#define DEFAULT_CLIENT_WRITE_TIMEOUT_MS 60000
#define DEFAULT_LOG_LEVEL 2
#define DEFAULT_HANDSHAKE_PACKET_SIZE (16LL * 1024)
#define MIN_HANDSHAKE_PACKET_SIZE 1024LL
#define MAX_HANDSHAKE_PACKET_SIZE (1024LL * 1024)
#define DEFAULT_PIPELINED_INPUT (1024LL * 1024)
#define MIN_PIPELINED_INPUT (16LL * 1024)
#define MAX_PIPELINED_INPUT (1024LL * 1024 * 1024)
#define MAX_THREADS 1024
#define ENV_NAME_MAX 64

#define YAML_MAX_DEPTH 64     /* deeper nesting is refused: no real configuration needs it */
#define YAML_MAX_NODES 200000 /* bounds alias expansion ("billion laughs") */
#define SHOWN_MAX 60          /* longest value quoted in a message */

/* ---------------------------------------------------------------------------------------------
 * Memory and strings. Running out of memory while reading a configuration is not recoverable in
 * any useful way, so these helpers abort instead of returning NULL.
 */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("envproxy: out of memory while loading the configuration\n", stderr);
        abort();
    }
    return q;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fputs("envproxy: out of memory while loading the configuration\n", stderr);
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xrealloc(NULL, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/* Returns the buffer's string (never NULL); the caller frees it. */
static char *sb_take(sbuf *b)
{
    char *s = b->p ? b->p : xstrdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * Diagnostics.
 */

void cfg_diags_init(cfg_diags *d)
{
    d->msgs = NULL;
    d->n = d->cap = 0;
}

void cfg_diags_free(cfg_diags *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    cfg_diags_init(d);
}

void cfg_diags_print(const cfg_diags *d, FILE *out)
{
    for (int i = 0; d && i < d->n; i++)
        fprintf(out, "%s\n", d->msgs[i]);
}

/* Appends msg (taking ownership) to d. */
static void diags_push(cfg_diags *d, char *msg)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->msgs = xrealloc(d->msgs, (size_t)d->cap * sizeof *d->msgs);
    }
    d->msgs[d->n++] = msg;
}

/* ---------------------------------------------------------------------------------------------
 * A small document tree built from libyaml events. Mappings hold their keys and values
 * alternately in kids[]. Every node keeps the 1-based position where it starts.
 */

enum { YN_SCALAR, YN_MAP, YN_SEQ };

typedef struct ynode {
    int kind;
    int line, col;
    int height; /* levels in this subtree: 1 for a scalar */
    bool plain; /* a plain (unquoted) scalar: only those can be null */
    char *text; /* scalar text */
    struct ynode **kids;
    int n, cap;
} ynode;

static void node_free(ynode *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->n; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static void node_push(ynode *parent, ynode *kid)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 8;
        parent->kids = xrealloc(parent->kids, (size_t)parent->cap * sizeof *parent->kids);
    }
    parent->kids[parent->n++] = kid;
    if (parent->height < kid->height + 1)
        parent->height = kid->height + 1;
}

/* True for a scalar YAML reads as null: empty, "~" or "null" written without quotes. */
static bool node_is_null(const ynode *n)
{
    if (n->kind != YN_SCALAR || !n->plain)
        return false;
    const char *t = n->text;
    return !*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL");
}

/* ---------------------------------------------------------------------------------------------
 * The loader's state: the model being filled, the diagnostics and the file being read.
 */

typedef struct {
    config *c;
    cfg_diags *d;
    int errors;

    const char *file; /* display name of the file being read (owned by c->files) */
    char *dir;        /* absolute directory of that file, for relative paths */
    bool included;    /* reading an included file: only environments allowed */

    char **seen; /* real paths of the files read, so that each is read once */
    int n_seen;

    bool env_written;          /* some environment was written, valid or not */
    bool have_envs_key;        /* the main file has an environments key ... */
    cfg_mark envs_mark;        /* ... written here */
    cfg_mark default_env_mark; /* where default_environment was written */

    const ynode **includes; /* include patterns of the main file (nodes of its tree) */
    int n_includes;
} loader;

static void diag_at(loader *ld, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void diag(loader *ld, const ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void diag_at(loader *ld, const char *file, int line, int col, const char *fmt, ...)
{
    char *msg = NULL, *line_text = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (!msg || asprintf(&line_text, "%s:%d:%d: %s", file, line, col, msg) < 0) {
        fputs("envproxy: out of memory while loading the configuration\n", stderr);
        abort();
    }
    free(msg);
    diags_push(ld->d, line_text);
    ld->errors++;
}

/* Reports a problem at node n of the file being read. */
static void diag(loader *ld, const ynode *n, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) {
        fputs("envproxy: out of memory while loading the configuration\n", stderr);
        abort();
    }
    va_end(ap);
    diag_at(ld, ld->file, n->line, n->col, "%s", msg);
    free(msg);
}

/* Writes s into buf for quoting in a message: control characters become '?', and a long value is
 * cut with "...". Returns buf. */
static const char *shown(const char *s, char *buf, size_t size)
{
    size_t i = 0, room = size - 4;
    for (; s[i] && i < room && i < SHOWN_MAX; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* What a node is, for "got ..." in messages about non-scalars. */
static const char *node_kind_name(const ynode *n)
{
    if (n->kind == YN_MAP)
        return "a mapping";
    if (n->kind == YN_SEQ)
        return "a list";
    return node_is_null(n) ? "an empty value" : "a scalar";
}

/* ---------------------------------------------------------------------------------------------
 * YAML events -> tree.
 */

typedef struct {
    char *name;
    const ynode *node;
} yanchor;

typedef struct {
    loader *ld;
    yaml_parser_t parser;
    const char *text; /* the input, to place reader errors */
    size_t len;
    yanchor *anchors;
    int n_anchors, cap_anchors;
    long n_nodes;
} ybuild;

/* Reports libyaml's error for the parser in b, at the position it names. */
static void report_parser_error(ybuild *b)
{
    yaml_parser_t *p = &b->parser;
    const char *problem = p->problem ? p->problem : "cannot parse the file";
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;

    if (p->error == YAML_READER_ERROR || p->error == YAML_MEMORY_ERROR) {
        /* Reader errors carry a byte offset rather than a mark. */
        size_t off = p->error == YAML_READER_ERROR ? p->problem_offset : p->mark.index;
        line = 1;
        col = 1;
        for (size_t i = 0; i < off && i < b->len; i++) {
            if (b->text[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)b->text[i] & 0xc0) != 0x80) {
                col++;
            }
        }
    }
    if (p->context && p->error != YAML_READER_ERROR)
        diag_at(b->ld, b->ld->file, line, col, "YAML syntax error: %s (%s started at %d:%d)",
                problem, p->context, (int)p->context_mark.line + 1,
                (int)p->context_mark.column + 1);
    else
        diag_at(b->ld, b->ld->file, line, col, "YAML syntax error: %s", problem);
}

static bool next_event(ybuild *b, yaml_event_t *ev)
{
    if (yaml_parser_parse(&b->parser, ev))
        return true;
    report_parser_error(b);
    return false;
}

/* Allocates a node, counting it against the document's budget. NULL (reported) when spent. */
static ynode *node_new(ybuild *b, int kind, int line, int col)
{
    if (++b->n_nodes > YAML_MAX_NODES) {
        if (b->n_nodes == YAML_MAX_NODES + 1)
            diag_at(b->ld, b->ld->file, line, col,
                    "the document is too large (more than %d YAML nodes)", YAML_MAX_NODES);
        return NULL;
    }
    ynode *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    n->line = line;
    n->col = col;
    n->height = 1;
    return n;
}

/* Deep copy of src for an alias; NULL (reported) when the node budget is spent. */
static ynode *node_copy(ybuild *b, const ynode *src)
{
    ynode *n = node_new(b, src->kind, src->line, src->col);
    if (!n)
        return NULL;
    n->plain = src->plain;
    n->text = src->text ? xstrdup(src->text) : NULL;
    for (int i = 0; i < src->n; i++) {
        ynode *k = node_copy(b, src->kids[i]);
        if (!k) {
            node_free(n);
            return NULL;
        }
        node_push(n, k);
    }
    return n;
}

static void anchor_add(ybuild *b, const char *name, const ynode *n)
{
    if (b->n_anchors == b->cap_anchors) {
        b->cap_anchors = b->cap_anchors ? b->cap_anchors * 2 : 8;
        b->anchors = xrealloc(b->anchors, (size_t)b->cap_anchors * sizeof *b->anchors);
    }
    b->anchors[b->n_anchors].name = xstrdup(name);
    b->anchors[b->n_anchors].node = n;
    b->n_anchors++;
}

static const ynode *anchor_find(const ybuild *b, const char *name)
{
    for (int i = b->n_anchors - 1; i >= 0; i--)
        if (!strcmp(b->anchors[i].name, name))
            return b->anchors[i].node;
    return NULL;
}

/* Builds the node that starts with ev (already parsed; deleted here) together with everything
 * up to its end event. Returns NULL after reporting a problem; the tree is then unusable. */
static ynode *read_node(ybuild *b, yaml_event_t *ev, int depth)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    ynode *n = NULL;
    char *anchor = NULL;

    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = node_new(b, YN_SCALAR, line, col);
        if (n) {
            n->text = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
            n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            if (strlen(n->text) != ev->data.scalar.length)
                diag_at(b->ld, b->ld->file, line, col, "a value may not contain a NUL character");
            if (ev->data.scalar.anchor)
                anchor_add(b, (const char *)ev->data.scalar.anchor, n);
        }
        yaml_event_delete(ev);
        return n;

    case YAML_ALIAS_EVENT: {
        const ynode *target = anchor_find(b, (const char *)ev->data.alias.anchor);
        if (!target)
            diag_at(b->ld, b->ld->file, line, col,
                    "alias '*%s' refers to no anchor defined before it",
                    (const char *)ev->data.alias.anchor);
        else if (depth + target->height > YAML_MAX_DEPTH)
            diag_at(b->ld, b->ld->file, line, col, "nesting is too deep (more than %d levels)",
                    YAML_MAX_DEPTH);
        else
            n = node_copy(b, target);
        yaml_event_delete(ev);
        return n;
    }

    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool is_map = ev->type == YAML_MAPPING_START_EVENT;
        yaml_char_t *a = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
        if (a)
            anchor = xstrdup((const char *)a);
        yaml_event_delete(ev);
        if (depth >= YAML_MAX_DEPTH) {
            diag_at(b->ld, b->ld->file, line, col, "nesting is too deep (more than %d levels)",
                    YAML_MAX_DEPTH);
            free(anchor);
            return NULL;
        }
        n = node_new(b, is_map ? YN_MAP : YN_SEQ, line, col);
        if (!n) {
            free(anchor);
            return NULL;
        }
        for (;;) {
            yaml_event_t e;
            if (!next_event(b, &e))
                goto fail;
            if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            ynode *kid = read_node(b, &e, depth + 1);
            if (!kid)
                goto fail;
            node_push(n, kid);
        }
        if (anchor)
            anchor_add(b, anchor, n);
        free(anchor);
        return n;
    }

    default:
        diag_at(b->ld, b->ld->file, line, col, "unexpected YAML structure");
        yaml_event_delete(ev);
        return NULL;
    }

fail:
    free(anchor);
    node_free(n);
    return NULL;
}

/* Parses text (len bytes) as at most one YAML document. Returns true with *root set (NULL when
 * the file holds no document), or false after reporting the problem. */
static bool parse_yaml(loader *ld, const char *text, size_t len, ynode **root)
{
    ybuild b;
    memset(&b, 0, sizeof b);
    b.ld = ld;
    b.text = text;
    b.len = len;
    *root = NULL;
    if (!yaml_parser_initialize(&b.parser)) {
        fputs("envproxy: out of memory while loading the configuration\n", stderr);
        abort();
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);

    ynode *doc = NULL;
    int docs = 0;
    bool ok = true;
    for (;;) {
        yaml_event_t ev;
        if (!next_event(&b, &ev)) {
            ok = false;
            break;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type == YAML_DOCUMENT_START_EVENT && docs++ > 0) {
            diag_at(ld, ld->file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                    "only one YAML document may appear in a file");
            yaml_event_delete(&ev);
            ok = false;
            break;
        }
        if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT ||
            ev.type == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        doc = read_node(&b, &ev, 0);
        if (!doc) {
            ok = false;
            break;
        }
    }

    for (int i = 0; i < b.n_anchors; i++)
        free(b.anchors[i].name);
    free(b.anchors);
    yaml_parser_delete(&b.parser);
    if (!ok) {
        node_free(doc);
        return false;
    }
    *root = doc;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Value parsers (pure).
 */

/* Parses an optionally signed decimal integer that fills all of s. */
static bool parse_ll(const char *s, long long *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Splits s into its leading digits (as *value) and the rest (*suffix). False when s does not
 * start with a digit or the number overflows. */
static bool split_number(const char *s, long long *value, const char **suffix)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    long long v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        int digit = *s - '0';
        if (v > (LLONG_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *value = v;
    *suffix = s;
    return true;
}

long long config_parse_duration_ms(const char *s)
{
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    long long v;
    const char *suffix;
    if (!split_number(s, &v, &suffix))
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(suffix, units[i].unit) != 0)
            continue;
        if (v > LLONG_MAX / units[i].ms)
            return -1;
        return v * units[i].ms;
    }
    return -1;
}

long long config_parse_size(const char *s)
{
    static const struct {
        const char *unit;
        long long bytes;
    } units[] = {{"", 1},          {"k", 1LL << 10},  {"K", 1LL << 10},   {"KiB", 1LL << 10},
                 {"m", 1LL << 20}, {"M", 1LL << 20},  {"MiB", 1LL << 20}, {"g", 1LL << 30},
                 {"G", 1LL << 30}, {"GiB", 1LL << 30}};
    long long v;
    const char *suffix;
    if (!split_number(s, &v, &suffix))
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(suffix, units[i].unit) != 0)
            continue;
        if (v > LLONG_MAX / units[i].bytes)
            return -1;
        return v * units[i].bytes;
    }
    return -1;
}

/* Parses "host:port", "[v6]:port" or "localhost:port" (read as 127.0.0.1). The host must be an
 * IP address. On success out->host is allocated. */
static bool parse_addr(const char *s, cfg_addr *out)
{
    const char *host, *port;
    size_t host_len;
    int family;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return false;
        host = s + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
        family = AF_INET6;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return false;
        host = s;
        host_len = (size_t)(colon - s);
        port = colon + 1;
        family = AF_INET;
    }
    long long p;
    if (!host_len || !parse_ll(port, &p) || p < 1 || p > 65535 || *port == '+' || *port == '-')
        return false;

    char *h = xstrndup(host, host_len);
    if (family == AF_INET && !strcmp(h, "localhost")) {
        free(h);
        h = xstrdup("127.0.0.1");
    }
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(family, h, buf) != 1) {
        free(h);
        return false;
    }
    out->host = h;
    out->port = (int)p;
    return true;
}

static bool env_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > ENV_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static bool var_name_ok(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Paths.
 */

/* Joins dir and path (unless path is absolute) and removes "." and ".." segments and repeated
 * slashes. The result is allocated; dir must be absolute. */
static char *path_resolve(const char *dir, const char *path)
{
    sbuf in = {0}, out = {0};
    if (path[0] != '/') {
        sb_puts(&in, dir);
        sb_puts(&in, "/");
    }
    sb_puts(&in, path);

    char *joined = sb_take(&in);
    char *save = NULL;
    size_t *marks = xcalloc(strlen(joined) + 1, sizeof *marks);
    int depth = 0;
    for (char *seg = strtok_r(joined, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (!strcmp(seg, "."))
            continue;
        if (!strcmp(seg, "..")) {
            if (depth > 0) {
                out.len = marks[--depth];
                out.p[out.len] = '\0';
            }
            continue;
        }
        marks[depth++] = out.len;
        sb_puts(&out, "/");
        sb_puts(&out, seg);
    }
    free(marks);
    free(joined);
    if (!out.len)
        sb_puts(&out, "/");
    return sb_take(&out);
}

/* The directory part of path as written ("." when it has none). Allocated. */
static char *path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

/* The absolute, symlink-free directory of the file at path, or NULL with errno set. */
static char *file_dir_abs(const char *path)
{
    char *dir = path_dir(path);
    char *abs = realpath(dir, NULL);
    free(dir);
    return abs;
}

/* Reads the whole file at path into a NUL-terminated buffer (length in *len). Returns NULL with
 * errno set when the file cannot be opened or read. */
static char *read_whole_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        errno = EISDIR;
        return NULL;
    }
    sbuf b = {0};
    char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(b.p);
            close(fd);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        sb_putn(&b, chunk, (size_t)r);
    }
    close(fd);
    *len = b.len;
    return sb_take(&b);
}

/* ---------------------------------------------------------------------------------------------
 * Typed values. Each getter reads one value node, substitutes ${VAR} and either stores the
 * result or reports why it cannot (the stored value then stays as it was). A null value (an
 * empty value, "~" or "null") counts as if the key were absent.
 */

/* Expands ${VAR}, ${VAR:-default} and $$ in s. Returns the result (caller frees), or NULL after
 * reporting each problem at n. Messages name variables but never quote any part of the value. */
static char *expand_vars(loader *ld, const char *key, const ynode *n, const char *s)
{
    sbuf out = {0};
    bool bad = false;
    while (*s) {
        const char *dollar = strchr(s, '$');
        if (!dollar) {
            sb_puts(&out, s);
            break;
        }
        sb_putn(&out, s, (size_t)(dollar - s));
        if (dollar[1] == '$') {
            sb_puts(&out, "$");
            s = dollar + 2;
            continue;
        }
        if (dollar[1] != '{') {
            sb_puts(&out, "$");
            s = dollar + 1;
            continue;
        }
        const char *name = dollar + 2, *close = strchr(name, '}');
        if (!close) {
            diag(ld, n, "%s: unterminated '${' (write '$$' for a literal '$')", key);
            bad = true;
            break;
        }
        const char *dflt = strstr(name, ":-");
        if (dflt && dflt > close)
            dflt = NULL;
        size_t name_len = (size_t)((dflt ? dflt : close) - name);
        if (!var_name_ok(name, name_len)) {
            diag(ld, n,
                 "%s: a '${...}' reference needs a variable name of letters, digits and '_' "
                 "(write '$$' for a literal '$')",
                 key);
            bad = true;
        } else {
            char *var = xstrndup(name, name_len);
            const char *val = getenv(var);
            if (dflt && (!val || !*val))
                sb_putn(&out, dflt + 2, (size_t)(close - dflt - 2));
            else if (val)
                sb_puts(&out, val);
            else if (config_unset_vars_empty)
                ; /* read as empty: the caller does not need backend credentials */
            else {
                diag(ld, n, "%s: environment variable '%s' is not set", key, var);
                bad = true;
            }
            free(var);
        }
        s = close + 1;
    }
    char *r = sb_take(&out);
    if (bad) {
        free(r);
        return NULL;
    }
    return r;
}

/* Fetches n's text with variables substituted. Returns 1 and sets *out (caller frees), 0 when n
 * is null, or -1 after reporting that n is not a scalar (expect says what was wanted) or that
 * substitution failed. */
static int scalar_value(loader *ld, const char *key, const ynode *n, const char *expect, char **out)
{
    if (n->kind != YN_SCALAR) {
        diag(ld, n, "%s: expected %s, got %s", key, expect, node_kind_name(n));
        return -1;
    }
    if (node_is_null(n))
        return 0;
    *out = expand_vars(ld, key, n, n->text);
    return *out ? 1 : -1;
}

static void bad_value(loader *ld, const char *key, const ynode *n, const char *expect,
                      const char *val)
{
    char buf[SHOWN_MAX + 8];
    diag(ld, n, "%s: expected %s, got '%s'", key, expect, shown(val, buf, sizeof buf));
}

/* A string value. A null leaves *out unchanged; otherwise *out is replaced. */
static void get_string(loader *ld, const char *key, const ynode *n, char **out)
{
    char *s;
    if (scalar_value(ld, key, n, "a string", &s) <= 0)
        return;
    free(*out);
    *out = s;
}

/* A string that must not be empty. Sets *written when the key held a usable value. */
static void get_required(loader *ld, const char *key, const ynode *n, char **out, bool *written)
{
    const char *expect = "a non-empty string";
    char *s = NULL;
    int r = scalar_value(ld, key, n, expect, &s);
    *written = true; /* present, even when wrong: "missing" would be misleading */
    if (r < 0)
        return;
    if (r == 0 || !*s) {
        if (r == 0)
            diag(ld, n, "%s: expected %s, got an empty value", key, expect);
        else
            bad_value(ld, key, n, expect, s);
        free(s);
        return;
    }
    free(*out);
    *out = s;
}

static void get_int(loader *ld, const char *key, const ynode *n, long long lo, long long hi,
                    const char *expect, long long *out)
{
    char *s;
    long long v;
    if (scalar_value(ld, key, n, expect, &s) <= 0)
        return;
    if (!parse_ll(s, &v) || v < lo || v > hi)
        bad_value(ld, key, n, expect, s);
    else
        *out = v;
    free(s);
}

static void get_int32(loader *ld, const char *key, const ynode *n, long long lo, long long hi,
                      const char *expect, int *out)
{
    long long v = *out;
    get_int(ld, key, n, lo, hi, expect, &v);
    *out = (int)v;
}

static void get_bool(loader *ld, const char *key, const ynode *n, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    const char *expect = "true or false";
    char *s;
    if (scalar_value(ld, key, n, expect, &s) <= 0)
        return;
    for (size_t i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
            *out = !strcasecmp(s, yes[i]);
            free(s);
            return;
        }
    }
    bad_value(ld, key, n, expect, s);
    free(s);
}

/* A duration in milliseconds; with positive set, 0 is refused. */
static void get_duration(loader *ld, const char *key, const ynode *n, bool positive, long long *out)
{
    const char *expect = positive ? "a duration above 0 such as 500ms, 30s, 2m or 1h"
                                  : "a duration such as 500ms, 30s, 2m or 1h (0 = none)";
    char *s;
    if (scalar_value(ld, key, n, expect, &s) <= 0)
        return;
    long long v = config_parse_duration_ms(s);
    if (v < 0 || (positive && v == 0))
        bad_value(ld, key, n, expect, s);
    else
        *out = v;
    free(s);
}

static void get_size(loader *ld, const char *key, const ynode *n, long long lo, long long hi,
                     const char *expect, long long *out)
{
    char *s;
    if (scalar_value(ld, key, n, expect, &s) <= 0)
        return;
    long long v = config_parse_size(s);
    if (v < lo || v > hi)
        bad_value(ld, key, n, expect, s);
    else
        *out = v;
    free(s);
}

/* One of names[0..count); *out becomes the index. */
static void get_enum(loader *ld, const char *key, const ynode *n, const char *const *names,
                     int count, const char *expect, int *out)
{
    char *s;
    if (scalar_value(ld, key, n, expect, &s) <= 0)
        return;
    for (int i = 0; i < count; i++) {
        if (!strcmp(s, names[i])) {
            *out = i;
            free(s);
            return;
        }
    }
    bad_value(ld, key, n, expect, s);
    free(s);
}

/* A file path, made absolute against the directory of the file being read. An empty value
 * leaves *out unchanged, like an absent key. */
static void get_path(loader *ld, const char *key, const ynode *n, char **out)
{
    char *s;
    if (scalar_value(ld, key, n, "a file path", &s) <= 0)
        return;
    if (*s) {
        free(*out);
        *out = path_resolve(ld->dir, s);
    }
    free(s);
}

#define ADDR_EXPECT "an address such as 127.0.0.1:3307 or [::1]:3307"

/* An address; returns true when *out was filled (out->host allocated). */
static bool get_addr(loader *ld, const char *key, const ynode *n, cfg_addr *out)
{
    char *s;
    if (scalar_value(ld, key, n, ADDR_EXPECT, &s) <= 0)
        return false;
    bool ok = parse_addr(s, out);
    if (!ok)
        bad_value(ld, key, n, ADDR_EXPECT, s);
    free(s);
    return ok;
}

/* ---------------------------------------------------------------------------------------------
 * Mappings and keys.
 */

/* Checks key number i of map: it must be a scalar and must not repeat an earlier key. Reports
 * and returns false otherwise (the pair is then skipped). */
static bool key_ok(loader *ld, const ynode *map, int i, bool check_repeat)
{
    const ynode *key = map->kids[2 * i];
    if (key->kind != YN_SCALAR) {
        diag(ld, key, "expected a key name, got %s", node_kind_name(key));
        return false;
    }
    if (!check_repeat)
        return true;
    for (int j = 0; j < i; j++) {
        const ynode *prev = map->kids[2 * j];
        if (prev->kind == YN_SCALAR && !strcmp(prev->text, key->text)) {
            char buf[SHOWN_MAX + 8];
            diag(ld, key, "key '%s' is already defined at %s:%d:%d",
                 shown(key->text, buf, sizeof buf), ld->file, prev->line, prev->col);
            return false;
        }
    }
    return true;
}

static int key_index(const char *const *keys, int count, const char *key)
{
    for (int i = 0; i < count; i++)
        if (!strcmp(keys[i], key))
            return i;
    return -1;
}

/* Reports key as unknown; where (may be NULL) says in what, e.g. "in pool". */
static void unknown_key(loader *ld, const ynode *key, const char *where, const char *const *keys,
                        int count)
{
    sbuf allowed = {0};
    for (int i = 0; i < count; i++) {
        if (i)
            sb_puts(&allowed, ", ");
        sb_puts(&allowed, keys[i]);
    }
    char buf[SHOWN_MAX + 8];
    char *list = sb_take(&allowed);
    diag(ld, key, "unknown key '%s'%s%s (allowed: %s)", shown(key->text, buf, sizeof buf),
         where ? " " : "", where ? where : "", list);
    free(list);
}

/* Checks that n is a mapping (null counts as an empty one). Returns false after reporting. */
static bool want_map(loader *ld, const char *key, const ynode *n)
{
    if (n->kind == YN_MAP || node_is_null(n))
        return true;
    if (n->kind == YN_SCALAR) {
        char buf[SHOWN_MAX + 8];
        diag(ld, n, "%s: expected a mapping, got '%s'", key, shown(n->text, buf, sizeof buf));
    } else {
        diag(ld, n, "%s: expected a mapping, got %s", key, node_kind_name(n));
    }
    return false;
}

static int map_pairs(const ynode *n)
{
    return n->kind == YN_MAP ? n->n / 2 : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Sections.
 */

enum { LIM_MAX_ROWS, LIM_STATEMENT_TIMEOUT, LIM_IDLE_TRANSACTION_TIMEOUT, LIM_COUNT };
static const char *const limits_keys[LIM_COUNT] = {"max_rows", "statement_timeout",
                                                   "idle_transaction_timeout"};

/* Reads a limits mapping into out; values not written stay as they were (-1 = unset). */
static void load_limits(loader *ld, const ynode *n, cfg_limits *out)
{
    if (!want_map(ld, "limits", n))
        return;
    for (int i = 0; i < map_pairs(n); i++) {
        const ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
        if (!key_ok(ld, n, i, true))
            continue;
        switch (key_index(limits_keys, LIM_COUNT, key->text)) {
        case LIM_MAX_ROWS:
            get_int(ld, "limits.max_rows", val, 0, LLONG_MAX, "an integer >= 0 (0 = no cap)",
                    &out->max_rows);
            break;
        case LIM_STATEMENT_TIMEOUT:
            get_duration(ld, "limits.statement_timeout", val, false, &out->statement_timeout_ms);
            break;
        case LIM_IDLE_TRANSACTION_TIMEOUT:
            get_duration(ld, "limits.idle_transaction_timeout", val, false,
                         &out->idle_transaction_timeout_ms);
            break;
        default:
            unknown_key(ld, key, "in limits", limits_keys, LIM_COUNT);
        }
    }
}

enum {
    POOL_MAX,
    POOL_MIN,
    POOL_IDLE_TIMEOUT,
    POOL_CONNECT_TIMEOUT,
    POOL_WAIT_TIMEOUT,
    POOL_MULTIPLEX,
    POOL_COUNT
};
static const char *const pool_keys[POOL_COUNT] = {"max",          "min",
                                                  "idle_timeout", "connect_timeout",
                                                  "wait_timeout", "multiplex"};

static void load_pool(loader *ld, const ynode *n, cfg_pool *out)
{
    if (!want_map(ld, "pool", n))
        return;
    int errors = ld->errors;
    const ynode *min_node = NULL;
    for (int i = 0; i < map_pairs(n); i++) {
        const ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
        if (!key_ok(ld, n, i, true))
            continue;
        switch (key_index(pool_keys, POOL_COUNT, key->text)) {
        case POOL_MAX:
            get_int32(ld, "pool.max", val, 1, INT_MAX, "an integer >= 1", &out->max);
            break;
        case POOL_MIN:
            get_int32(ld, "pool.min", val, 0, INT_MAX, "an integer >= 0", &out->min);
            min_node = val;
            break;
        case POOL_IDLE_TIMEOUT:
            get_duration(ld, "pool.idle_timeout", val, true, &out->idle_timeout_ms);
            break;
        case POOL_CONNECT_TIMEOUT:
            get_duration(ld, "pool.connect_timeout", val, true, &out->connect_timeout_ms);
            break;
        case POOL_WAIT_TIMEOUT:
            get_duration(ld, "pool.wait_timeout", val, true, &out->wait_timeout_ms);
            break;
        case POOL_MULTIPLEX:
            get_bool(ld, "pool.multiplex", val, &out->multiplex);
            break;
        default:
            unknown_key(ld, key, "in pool", pool_keys, POOL_COUNT);
        }
    }
    if (ld->errors == errors && min_node && out->min > out->max)
        diag(ld, min_node, "pool.min (%d) must not be greater than pool.max (%d)", out->min,
             out->max);
}

static const char *const tls_mode_names[] = {"disabled", "preferred", "required", "verify_ca",
                                             "verify_full"};

enum { ETLS_MODE, ETLS_CA, ETLS_COUNT };
static const char *const env_tls_keys[ETLS_COUNT] = {"mode", "ca"};

static void load_env_tls(loader *ld, const ynode *n, cfg_env *e)
{
    if (!want_map(ld, "tls", n))
        return;
    for (int i = 0; i < map_pairs(n); i++) {
        const ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
        if (!key_ok(ld, n, i, true))
            continue;
        switch (key_index(env_tls_keys, ETLS_COUNT, key->text)) {
        case ETLS_MODE: {
            int mode = (int)e->tls_mode;
            get_enum(ld, "tls.mode", val, tls_mode_names, 5,
                     "one of disabled, preferred, required, verify_ca, verify_full", &mode);
            e->tls_mode = (backend_tls_mode)mode;
            break;
        }
        case ETLS_CA:
            get_path(ld, "tls.ca", val, &e->tls_ca);
            break;
        default:
            unknown_key(ld, key, "in tls", env_tls_keys, ETLS_COUNT);
        }
    }
}

enum {
    ENV_DESCRIPTION,
    ENV_HOST,
    ENV_PORT,
    ENV_USER,
    ENV_PASSWORD,
    ENV_DATABASE,
    ENV_ACCESS,
    ENV_LIMITS,
    ENV_POOL,
    ENV_TLS,
    ENV_COUNT
};
static const char *const env_keys[ENV_COUNT] = {"description", "host",     "port",   "user",
                                                "password",    "database", "access", "limits",
                                                "pool",        "tls"};
static const char *const access_names[] = {"read_only", "read_write"};

static void env_init(cfg_env *e)
{
    memset(e, 0, sizeof *e);
    e->port = 3306;
    e->access = ACCESS_READ_ONLY;
    e->limits.max_rows = -1;
    e->limits.statement_timeout_ms = -1;
    e->limits.idle_transaction_timeout_ms = -1;
    e->pool.max = 20;
    e->pool.multiplex = true;
    e->pool.min = 0;
    e->pool.idle_timeout_ms = 300000;
    e->pool.connect_timeout_ms = 2000;
    e->pool.wait_timeout_ms = 5000;
    e->tls_mode = BTLS_PREFERRED;
}

static void env_free(cfg_env *e)
{
    free(e->name);
    free(e->description);
    free(e->host);
    free(e->user);
    free(e->password);
    free(e->database);
    free(e->tls_ca);
}

/* Reads the body of environment e (its name already set) from n. */
static void load_env_body(loader *ld, const ynode *name, const ynode *n, cfg_env *e)
{
    char buf[SHOWN_MAX + 8], where[SHOWN_MAX + 32];
    snprintf(where, sizeof where, "in environment '%s'", shown(name->text, buf, sizeof buf));
    if (n->kind != YN_MAP && !node_is_null(n)) {
        if (n->kind == YN_SCALAR)
            diag(ld, n, "environment '%s': expected a mapping of settings, got '%s'", e->name,
                 shown(n->text, buf, sizeof buf));
        else
            diag(ld, n, "environment '%s': expected a mapping of settings, got %s", e->name,
                 node_kind_name(n));
        return;
    }

    bool have_host = false, have_user = false;
    for (int i = 0; i < map_pairs(n); i++) {
        const ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
        if (!key_ok(ld, n, i, true))
            continue;
        switch (key_index(env_keys, ENV_COUNT, key->text)) {
        case ENV_DESCRIPTION:
            get_string(ld, "description", val, &e->description);
            break;
        case ENV_HOST:
            get_required(ld, "host", val, &e->host, &have_host);
            break;
        case ENV_PORT:
            get_int32(ld, "port", val, 1, 65535, "an integer from 1 to 65535", &e->port);
            break;
        case ENV_USER:
            get_required(ld, "user", val, &e->user, &have_user);
            break;
        case ENV_PASSWORD:
            get_string(ld, "password", val, &e->password);
            break;
        case ENV_DATABASE:
            get_string(ld, "database", val, &e->database);
            if (e->database && !*e->database) {
                free(e->database);
                e->database = NULL;
            }
            break;
        case ENV_ACCESS: {
            int access = (int)e->access;
            get_enum(ld, "access", val, access_names, 2, "read_only or read_write", &access);
            e->access = (env_access)access;
            break;
        }
        case ENV_LIMITS:
            load_limits(ld, val, &e->limits);
            break;
        case ENV_POOL:
            load_pool(ld, val, &e->pool);
            break;
        case ENV_TLS:
            load_env_tls(ld, val, e);
            break;
        default:
            unknown_key(ld, key, where, env_keys, ENV_COUNT);
        }
    }
    if (!have_host)
        diag(ld, name, "environment '%s': missing required key 'host'", e->name);
    if (!have_user)
        diag(ld, name, "environment '%s': missing required key 'user'", e->name);
}

static const cfg_env *find_env(const config *c, const char *name)
{
    for (int i = 0; i < c->n_envs; i++)
        if (!strcmp(c->envs[i].name, name))
            return &c->envs[i];
    return NULL;
}

/* Reads an environments mapping, appending each valid, new environment to the model. Bodies of
 * rejected environments are still checked so that all their problems are reported. */
static void load_environments(loader *ld, const ynode *n)
{
    if (node_is_null(n))
        return;
    if (n->kind != YN_MAP) {
        diag(ld, n, "environments: expected a mapping of names to environments, got %s",
             n->kind == YN_SEQ ? "a list" : "a scalar");
        ld->env_written = true; /* reported already; "none defined" would only repeat it */
        return;
    }
    for (int i = 0; i < map_pairs(n); i++) {
        const ynode *name = n->kids[2 * i], *val = n->kids[2 * i + 1];
        if (!key_ok(ld, n, i, false))
            continue;
        ld->env_written = true;

        cfg_env e;
        env_init(&e);
        e.name = xstrdup(name->text);
        e.name_len = strlen(e.name);
        e.mark.file = ld->file;
        e.mark.line = name->line;
        e.mark.col = name->col;

        char buf[SHOWN_MAX + 8];
        bool keep = true;
        const cfg_env *prev;
        if (!env_name_ok(name->text)) {
            diag(ld, name, "invalid environment name '%s': use 1 to %d letters, digits, '_' or '-'",
                 shown(name->text, buf, sizeof buf), ENV_NAME_MAX);
            keep = false;
        } else if ((prev = find_env(ld->c, name->text)) != NULL) {
            diag(ld, name, "environment '%s' is already defined at %s:%d:%d", name->text,
                 prev->mark.file, prev->mark.line, prev->mark.col);
            keep = false;
        }
        load_env_body(ld, name, val, &e);
        if (!e.description)
            e.description = xstrdup("");
        if (!e.password)
            e.password = xstrdup("");

        if (!keep) {
            env_free(&e);
            continue;
        }
        config *c = ld->c;
        c->envs = xrealloc(c->envs, (size_t)(c->n_envs + 1) * sizeof *c->envs);
        c->envs[c->n_envs++] = e;
    }
}

enum { TTLS_CERT, TTLS_KEY, TTLS_REQUIRE, TTLS_COUNT };
static const char *const top_tls_keys[TTLS_COUNT] = {"cert", "key", "require"};

static void load_top_tls(loader *ld, const ynode *n)
{
    if (!want_map(ld, "tls", n))
        return;
    for (int i = 0; i < map_pairs(n); i++) {
        const ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
        if (!key_ok(ld, n, i, true))
            continue;
        switch (key_index(top_tls_keys, TTLS_COUNT, key->text)) {
        case TTLS_CERT:
            get_path(ld, "tls.cert", val, &ld->c->tls_cert);
            break;
        case TTLS_KEY:
            get_path(ld, "tls.key", val, &ld->c->tls_key);
            break;
        case TTLS_REQUIRE:
            get_bool(ld, "tls.require", val, &ld->c->tls_require);
            break;
        default:
            unknown_key(ld, key, "in tls", top_tls_keys, TTLS_COUNT);
        }
    }
}

static void set_http_addr(config *c, const cfg_addr *a)
{
    if (c->http)
        free(c->http->host);
    free(c->http);
    c->http = xcalloc(1, sizeof *c->http);
    *c->http = *a;
}

enum { HTTP_LISTEN, HTTP_TLS, HTTP_COUNT };
static const char *const http_keys[HTTP_COUNT] = {"listen", "tls"};

/* http: ADDRESS, or http: {listen: ADDRESS, tls: BOOL} (TLS with the tls: section's pair). */
static void load_http(loader *ld, const ynode *n)
{
    cfg_addr a;
    if (n->kind != YN_MAP) {
        if (get_addr(ld, "http", n, &a))
            set_http_addr(ld->c, &a);
        return;
    }
    bool have_listen = false;
    for (int i = 0; i < map_pairs(n); i++) {
        const ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
        if (!key_ok(ld, n, i, true))
            continue;
        switch (key_index(http_keys, HTTP_COUNT, key->text)) {
        case HTTP_LISTEN:
            have_listen = true;
            if (get_addr(ld, "http.listen", val, &a))
                set_http_addr(ld->c, &a);
            break;
        case HTTP_TLS:
            get_bool(ld, "http.tls", val, &ld->c->http_tls);
            break;
        default:
            unknown_key(ld, key, "in http", http_keys, HTTP_COUNT);
        }
    }
    if (!have_listen)
        diag(ld, n, "http: missing required key 'listen'");
}

enum { THR_MAX_FAILURES, THR_WINDOW, THR_BLOCK, THR_COUNT };
static const char *const throttle_keys[THR_COUNT] = {"max_failures", "window", "block"};

static void load_throttle(loader *ld, const ynode *n)
{
    if (!want_map(ld, "login_throttle", n))
        return;
    for (int i = 0; i < map_pairs(n); i++) {
        const ynode *key = n->kids[2 * i], *val = n->kids[2 * i + 1];
        if (!key_ok(ld, n, i, true))
            continue;
        switch (key_index(throttle_keys, THR_COUNT, key->text)) {
        case THR_MAX_FAILURES:
            get_int32(ld, "login_throttle.max_failures", val, 0, 1000000,
                      "an integer from 0 (off) to 1000000", &ld->c->throttle_max_failures);
            break;
        case THR_WINDOW:
            get_duration(ld, "login_throttle.window", val, true, &ld->c->throttle_window_ms);
            break;
        case THR_BLOCK:
            get_duration(ld, "login_throttle.block", val, true, &ld->c->throttle_block_ms);
            break;
        default:
            unknown_key(ld, key, "in login_throttle", throttle_keys, THR_COUNT);
        }
    }
}

static void free_addrs(cfg_addr *a, int n)
{
    for (int i = 0; i < n; i++)
        free(a[i].host);
    free(a);
}

/* listen: one address or a list of them. */
static void load_listen(loader *ld, const ynode *n)
{
    config *c = ld->c;
    if (node_is_null(n))
        return;
    if (n->kind == YN_MAP) {
        diag(ld, n, "listen: expected " ADDR_EXPECT ", or a list of addresses, got a mapping");
        return;
    }
    if (n->kind == YN_SEQ && n->n == 0) {
        diag(ld, n, "listen: expected at least one address");
        return;
    }
    free_addrs(c->listen, c->n_listen);
    int count = n->kind == YN_SEQ ? n->n : 1;
    c->listen = xcalloc((size_t)count, sizeof *c->listen);
    c->n_listen = 0;
    for (int i = 0; i < count; i++) {
        const ynode *item = n->kind == YN_SEQ ? n->kids[i] : n;
        if (node_is_null(item)) {
            diag(ld, item, "listen: expected " ADDR_EXPECT ", got an empty value");
            continue;
        }
        if (get_addr(ld, "listen", item, &c->listen[c->n_listen]))
            c->n_listen++;
    }
}

static void add_include(loader *ld, const ynode *n)
{
    ld->includes = xrealloc(ld->includes, (size_t)(ld->n_includes + 1) * sizeof *ld->includes);
    ld->includes[ld->n_includes++] = n;
}

/* include: a glob pattern or a list of them; read later, once the main file is done. */
static void load_include_key(loader *ld, const ynode *n)
{
    if (node_is_null(n))
        return;
    if (n->kind == YN_SCALAR) {
        add_include(ld, n);
        return;
    }
    if (n->kind == YN_MAP) {
        diag(ld, n, "include: expected a glob pattern or a list of them, got a mapping");
        return;
    }
    for (int i = 0; i < n->n; i++) {
        if (n->kids[i]->kind != YN_SCALAR)
            diag(ld, n->kids[i], "include: expected a glob pattern, got %s",
                 node_kind_name(n->kids[i]));
        else
            add_include(ld, n->kids[i]);
    }
}

enum {
    TOP_LISTEN,
    TOP_THREADS,
    TOP_ACCOUNTS,
    TOP_DEFAULT_ENVIRONMENT,
    TOP_INCLUDE,
    TOP_TLS,
    TOP_LIMITS,
    TOP_AUDIT_LOG,
    TOP_SECRET_KEY_FILE,
    TOP_HTTP,
    TOP_MAX_PACKET_SIZE,
    TOP_HANDSHAKE_TIMEOUT,
    TOP_HEALTH_INTERVAL,
    TOP_SHUTDOWN_TIMEOUT,
    TOP_LOG_LEVEL,
    TOP_ENVIRONMENTS,
    TOP_LOGIN_THROTTLE,
    TOP_CLIENT_WRITE_TIMEOUT,
    TOP_MAX_CLIENT_CONNECTIONS,
    TOP_MAX_CONNECTIONS_PER_HOST,
    TOP_MAX_CONNECTIONS_PER_ACCOUNT,
    TOP_MAX_HANDSHAKE_PACKET_SIZE,
    TOP_MAX_PIPELINED_INPUT,
    TOP_CLIENT_IDLE_TIMEOUT,
    TOP_HEALTH_TIMEOUT,
    TOP_AUDIT_BUFFER,
    TOP_COUNT
};
static const char *const top_keys[TOP_COUNT] = {"listen",          "threads",
                                                "accounts",        "default_environment",
                                                "include",         "tls",
                                                "limits",          "audit_log",
                                                "secret_key_file", "http",
                                                "max_packet_size", "handshake_timeout",
                                                "health_interval", "shutdown_timeout",
                                                "log_level",       "environments",
                                                "login_throttle",
                                                "client_write_timeout",
                                                "max_client_connections",
                                                "max_connections_per_host",
                                                "max_connections_per_account",
                                                "max_handshake_packet_size",
                                                "max_pipelined_input",
                                                "client_idle_timeout",
                                                "health_timeout",
                                                "audit_buffer"};
static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

/* Reads the top level of a file: every setting for the main file, only environments for an
 * included one. */
static void load_top(loader *ld, const ynode *root)
{
    config *c = ld->c;
    if (!root || node_is_null(root))
        return;
    if (root->kind != YN_MAP) {
        diag(ld, root, "expected a mapping of settings at the top level, got %s",
             node_kind_name(root));
        return;
    }
    for (int i = 0; i < map_pairs(root); i++) {
        const ynode *key = root->kids[2 * i], *val = root->kids[2 * i + 1];
        if (!key_ok(ld, root, i, true))
            continue;
        int k = key_index(top_keys, TOP_COUNT, key->text);
        if (ld->included && k != TOP_ENVIRONMENTS) {
            diag(ld, key, "only 'environments' may appear in an included file");
            continue;
        }
        switch (k) {
        case TOP_LISTEN:
            load_listen(ld, val);
            break;
        case TOP_THREADS:
            get_int32(ld, "threads", val, 1, MAX_THREADS, "an integer from 1 to 1024", &c->threads);
            break;
        case TOP_ACCOUNTS:
            get_path(ld, "accounts", val, &c->accounts);
            break;
        case TOP_DEFAULT_ENVIRONMENT:
            get_string(ld, "default_environment", val, &c->default_environment);
            if (c->default_environment && !*c->default_environment) {
                free(c->default_environment);
                c->default_environment = NULL;
            }
            ld->default_env_mark = (cfg_mark){ld->file, val->line, val->col};
            break;
        case TOP_INCLUDE:
            load_include_key(ld, val);
            break;
        case TOP_TLS:
            load_top_tls(ld, val);
            break;
        case TOP_LIMITS:
            load_limits(ld, val, &c->limits);
            break;
        case TOP_AUDIT_LOG:
            get_path(ld, "audit_log", val, &c->audit_log);
            break;
        case TOP_AUDIT_BUFFER:
            get_size(ld, "audit_buffer", val, 64LL << 10, 1LL << 30,
                     "a size from 64KiB to 1GiB such as 4MiB", &c->audit_buffer);
            break;
        case TOP_SECRET_KEY_FILE:
            get_path(ld, "secret_key_file", val, &c->secret_key_file);
            break;
        case TOP_HTTP:
            load_http(ld, val);
            break;
        case TOP_MAX_PACKET_SIZE:
            get_size(ld, "max_packet_size", val, MIN_MAX_PACKET_SIZE, MAX_MAX_PACKET_SIZE,
                     "a size from 1KiB to 1GiB such as 65536, 64k, 16MiB or 1G",
                     &c->max_packet_size);
            break;
        case TOP_HANDSHAKE_TIMEOUT:
            get_duration(ld, "handshake_timeout", val, true, &c->handshake_timeout_ms);
            break;
        case TOP_HEALTH_INTERVAL:
            get_duration(ld, "health_interval", val, true, &c->health_interval_ms);
            break;
        case TOP_HEALTH_TIMEOUT:
            get_duration(ld, "health_timeout", val, true, &c->health_timeout_ms);
            break;
        case TOP_SHUTDOWN_TIMEOUT:
            get_duration(ld, "shutdown_timeout", val, false, &c->shutdown_timeout_ms);
            break;
        case TOP_LOGIN_THROTTLE:
            load_throttle(ld, val);
            break;
        case TOP_CLIENT_WRITE_TIMEOUT:
            get_duration(ld, "client_write_timeout", val, true, &c->client_write_timeout_ms);
            break;
        case TOP_MAX_CLIENT_CONNECTIONS:
            get_int32(ld, "max_client_connections", val, 0, 10000000,
                      "an integer from 0 (derived from the descriptor limit) to 10000000",
                      &c->max_client_connections);
            break;
        case TOP_MAX_CONNECTIONS_PER_HOST:
            get_int32(ld, "max_connections_per_host", val, 0, 10000000,
                      "an integer from 0 (no limit) to 10000000", &c->max_connections_per_host);
            break;
        case TOP_MAX_CONNECTIONS_PER_ACCOUNT:
            get_int32(ld, "max_connections_per_account", val, 0, 10000000,
                      "an integer from 0 (no limit) to 10000000",
                      &c->max_connections_per_account);
            break;
        case TOP_MAX_HANDSHAKE_PACKET_SIZE:
            get_size(ld, "max_handshake_packet_size", val, MIN_HANDSHAKE_PACKET_SIZE,
                     MAX_HANDSHAKE_PACKET_SIZE, "a size from 1KiB to 1MiB such as 16KiB",
                     &c->max_handshake_packet_size);
            break;
        case TOP_MAX_PIPELINED_INPUT:
            get_size(ld, "max_pipelined_input", val, MIN_PIPELINED_INPUT, MAX_PIPELINED_INPUT,
                     "a size from 16KiB to 1GiB such as 1MiB", &c->max_pipelined_input);
            break;
        case TOP_CLIENT_IDLE_TIMEOUT:
            get_duration(ld, "client_idle_timeout", val, false, &c->client_idle_timeout_ms);
            break;
        case TOP_LOG_LEVEL:
            get_enum(ld, "log_level", val, log_level_names, 4, "one of error, warn, info, debug",
                     &c->log_level);
            break;
        case TOP_ENVIRONMENTS:
            if (!ld->included) {
                ld->have_envs_key = true;
                ld->envs_mark = (cfg_mark){ld->file, key->line, key->col};
            }
            load_environments(ld, val);
            break;
        default:
            unknown_key(ld, key, NULL, top_keys, TOP_COUNT);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Files and includes.
 */

/* Records name as a file read and returns the model's copy, which marks point to. */
static const char *add_file(config *c, const char *name)
{
    c->files = xrealloc(c->files, (size_t)(c->n_files + 1) * sizeof *c->files);
    c->files[c->n_files] = xstrdup(name);
    return c->files[c->n_files++];
}

/* True when the file at real path rp was read already; otherwise remembers it. */
static bool seen_before(loader *ld, const char *rp)
{
    for (int i = 0; i < ld->n_seen; i++)
        if (!strcmp(ld->seen[i], rp))
            return true;
    ld->seen = xrealloc(ld->seen, (size_t)(ld->n_seen + 1) * sizeof *ld->seen);
    ld->seen[ld->n_seen++] = xstrdup(rp);
    return false;
}

/* Parses text (len bytes) as the file called name and loads its top level. Returns false when
 * the file is not valid YAML (reported). *root_out, when given, receives the tree (caller frees),
 * since include values of the main file are read after it. */
static bool load_text(loader *ld, const char *name, const char *text, size_t len, bool included,
                      ynode **root_out)
{
    const char *saved_file = ld->file;
    char *saved_dir = ld->dir;
    bool saved_included = ld->included;

    ld->file = add_file(ld->c, name);
    ld->dir = file_dir_abs(name);
    if (!ld->dir)
        ld->dir = xstrdup("/");
    ld->included = included;

    ynode *root = NULL;
    bool ok = parse_yaml(ld, text, len, &root);
    if (ok)
        load_top(ld, root);

    free(ld->dir);
    ld->file = saved_file;
    ld->dir = saved_dir;
    ld->included = saved_included;
    if (root_out)
        *root_out = root;
    else
        node_free(root);
    return ok;
}

/* Reads the included file at path, found through the include value at n. A file that cannot be
 * read is reported at n; with quiet_dirs a directory is skipped silently (a glob matched it). */
static void include_file(loader *ld, const ynode *n, const char *path, bool quiet_dirs)
{
    char buf[SHOWN_MAX + 8];
    struct stat st;
    int err = stat(path, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (err == EISDIR && quiet_dirs)
        return;
    if (err) {
        diag(ld, n, "include: cannot open '%s': %s", shown(path, buf, sizeof buf), strerror(err));
        return;
    }
    char *rp = realpath(path, NULL);
    if (rp && seen_before(ld, rp)) {
        free(rp);
        return;
    }
    free(rp);

    size_t len = 0;
    char *text = read_whole_file(path, &len);
    if (!text) {
        diag(ld, n, "include: cannot open '%s': %s", shown(path, buf, sizeof buf), strerror(errno));
        return;
    }
    load_text(ld, path, text, len, true, NULL);
    free(text);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Copies s with glob metacharacters escaped, for a directory placed in front of a pattern. */
static char *glob_escape(const char *s)
{
    sbuf b = {0};
    for (; *s; s++) {
        if (strchr("*?[]\\", *s))
            sb_puts(&b, "\\");
        sb_putn(&b, s, 1);
    }
    return sb_take(&b);
}

/* Reads the files an include value names. Relative patterns are taken from main_dir, the
 * directory of the main file as written (so file names in messages look like the user's). */
static void load_include(loader *ld, const ynode *n, const char *main_dir)
{
    char *pat = NULL;
    int r = scalar_value(ld, "include", n, "a glob pattern", &pat);
    if (r <= 0)
        return;
    if (!*pat) {
        bad_value(ld, "include", n, "a glob pattern", pat);
        free(pat);
        return;
    }
    bool relative = pat[0] != '/' && strcmp(main_dir, ".") != 0;
    bool magic = strpbrk(pat, "*?[") != NULL;
    sbuf b = {0};
    if (relative) {
        char *dir = magic ? glob_escape(main_dir) : xstrdup(main_dir);
        sb_puts(&b, dir);
        if (dir[strlen(dir) - 1] != '/')
            sb_puts(&b, "/");
        free(dir);
    }
    sb_puts(&b, pat);
    char *full = sb_take(&b);

    if (!magic) {
        /* A plain file name: it must exist. */
        include_file(ld, n, full, false);
        free(full);
        free(pat);
        return;
    }
    glob_t g;
    memset(&g, 0, sizeof g);
    int gr = glob(full, 0, NULL, &g);
    if (gr == 0) {
        qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
        for (size_t i = 0; i < g.gl_pathc; i++)
            include_file(ld, n, g.gl_pathv[i], true);
    } else if (gr != GLOB_NOMATCH) {
        char buf[SHOWN_MAX + 8];
        diag(ld, n, "include: cannot read '%s': %s", shown(pat, buf, sizeof buf),
             gr == GLOB_NOSPACE ? "out of memory" : "read error");
    }
    globfree(&g);
    free(full);
    free(pat);
}

/* Fills in defaults and checks what needs every file: limits inheritance, default_environment,
 * that some environment exists. */
static void finish(loader *ld)
{
    config *c = ld->c;
    if (c->limits.max_rows < 0)
        c->limits.max_rows = DEFAULT_MAX_ROWS;
    if (c->limits.statement_timeout_ms < 0)
        c->limits.statement_timeout_ms = DEFAULT_STATEMENT_TIMEOUT_MS;
    for (int i = 0; i < c->n_envs; i++) {
        cfg_limits *l = &c->envs[i].limits;
        if (l->max_rows < 0)
            l->max_rows = c->limits.max_rows;
        if (l->statement_timeout_ms < 0)
            l->statement_timeout_ms = c->limits.statement_timeout_ms;
        /* Unset everywhere: on for read-only environments, whose open transactions must not
         * hold locks a writer waits for, off for read-write ones. */
        if (l->idle_transaction_timeout_ms < 0)
            l->idle_transaction_timeout_ms = c->limits.idle_transaction_timeout_ms;
        if (l->idle_transaction_timeout_ms < 0)
            l->idle_transaction_timeout_ms = c->envs[i].access == ACCESS_READ_ONLY
                                                 ? DEFAULT_IDLE_TRANSACTION_TIMEOUT_MS
                                                 : 0;
    }

    if (c->n_listen == 0) {
        free(c->listen);
        c->listen = xcalloc(1, sizeof *c->listen);
        c->listen[0].host = xstrdup(DEFAULT_LISTEN_HOST);
        c->listen[0].port = DEFAULT_LISTEN_PORT;
        c->n_listen = 1;
    }
    if (c->threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
    }
    if (!c->accounts) {
        char *dir = file_dir_abs(c->path);
        c->accounts = path_resolve(dir ? dir : "/", DEFAULT_ACCOUNTS);
        free(dir);
    }

    if (!ld->env_written) {
        if (ld->have_envs_key)
            diag_at(ld, ld->envs_mark.file, ld->envs_mark.line, ld->envs_mark.col,
                    "no environments are defined");
        else
            diag_at(ld, c->files[0], 1, 1, "no environments are defined");
    }
    if (c->default_environment) {
        if (!find_env(c, c->default_environment) && ld->env_written) {
            sbuf names = {0};
            for (int i = 0; i < c->n_envs; i++) {
                if (i)
                    sb_puts(&names, ", ");
                sb_puts(&names, c->envs[i].name);
            }
            char buf[SHOWN_MAX + 8];
            char *list = sb_take(&names);
            diag_at(ld, ld->default_env_mark.file, ld->default_env_mark.line,
                    ld->default_env_mark.col,
                    "default_environment: unknown environment '%s' (defined: %s)",
                    shown(c->default_environment, buf, sizeof buf), *list ? list : "none");
            free(list);
        }
    } else if (c->n_envs > 0) {
        c->default_environment = xstrdup(c->envs[0].name);
    }
}

static config *config_new(const char *path)
{
    config *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    c->limits.max_rows = -1;
    c->limits.statement_timeout_ms = -1;
    c->limits.idle_transaction_timeout_ms = -1;
    c->max_packet_size = DEFAULT_MAX_PACKET_SIZE;
    c->handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
    c->health_interval_ms = DEFAULT_HEALTH_INTERVAL_MS;
    c->health_timeout_ms = DEFAULT_HEALTH_TIMEOUT_MS;
    c->shutdown_timeout_ms = DEFAULT_SHUTDOWN_TIMEOUT_MS;
    c->client_write_timeout_ms = DEFAULT_CLIENT_WRITE_TIMEOUT_MS;
    c->throttle_max_failures = 10;
    c->throttle_window_ms = 60000;
    c->throttle_block_ms = 60000;
    c->log_level = DEFAULT_LOG_LEVEL;
    c->max_handshake_packet_size = DEFAULT_HANDSHAKE_PACKET_SIZE;
    c->max_pipelined_input = DEFAULT_PIPELINED_INPUT;
    c->audit_buffer = 4LL << 20;
    return c;
}

config *config_load(const char *path, cfg_diags *d)
{
    cfg_diags local;
    if (!d) {
        cfg_diags_init(&local);
        d = &local;
    }
    loader ld;
    memset(&ld, 0, sizeof ld);
    ld.d = d;
    ld.c = config_new(path ? path : "");

    size_t len = 0;
    char *text = path ? read_whole_file(path, &len) : NULL;
    if (!text) {
        char *msg = NULL;
        if (asprintf(&msg, "%s: cannot open: %s", path ? path : "(null)",
                     strerror(path ? errno : EINVAL)) < 0)
            abort();
        diags_push(d, msg);
        ld.errors++;
    } else {
        char *rp = realpath(path, NULL);
        if (rp)
            seen_before(&ld, rp);
        free(rp);

        ynode *root = NULL;
        bool parsed = load_text(&ld, path, text, len, false, &root);
        free(text);
        /* A main file that is not valid YAML says nothing reliable about the rest. */
        if (parsed) {
            char *main_dir = path_dir(path);
            ld.file = ld.c->files[0];
            for (int i = 0; i < ld.n_includes; i++)
                load_include(&ld, ld.includes[i], main_dir);
            free(main_dir);
            finish(&ld);
        }
        node_free(root);
    }

    for (int i = 0; i < ld.n_seen; i++)
        free(ld.seen[i]);
    free(ld.seen);
    free(ld.includes);

    config *c = ld.c;
    if (ld.errors) {
        config_free(c);
        c = NULL;
    }
    if (d == &local)
        cfg_diags_free(&local);
    return c;
}

void config_free(config *c)
{
    if (!c)
        return;
    free(c->path);
    free_addrs(c->listen, c->n_listen);
    free(c->accounts);
    free(c->default_environment);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->audit_log);
    free(c->secret_key_file);
    if (c->http)
        free(c->http->host);
    free(c->http);
    for (int i = 0; i < c->n_envs; i++)
        env_free(&c->envs[i]);
    free(c->envs);
    for (int i = 0; i < c->n_files; i++)
        free(c->files[i]);
    free(c->files);
    free(c);
}

const cfg_env *config_find_env(const config *c, const char *name)
{
    if (!c || !name)
        return NULL;
    return find_env(c, name);
}
