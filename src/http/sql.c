/* http/sql.c: internal sessions: the HTTP front door's SQL runs through a worker client (the
 * same statement path as the MySQL port: grants, routing, policy, pool, relay, limits, audit),
 * reached over a socketpair whose other end this file reads as a MySQL client, on the main
 * loop, without blocking. */
#include "http_sql.h"
#include "log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Largest logical packet accepted from the session (a row); larger ones fail the statement. */
#define HSQL_MAX_PACKET (64u * 1024 * 1024)

typedef enum {
    HS_LOGIN,      /* waiting for the session's OK */
    HS_IDLE,
    HS_FIRST,      /* OK, ERR or a column count */
    HS_COLUMNS,
    HS_COLS_EOF,
    HS_ROWS,
    HS_PREP_OK,
    HS_PREP_PARAMS,
    HS_PREP_PARAMS_EOF,
    HS_PREP_COLS,
    HS_PREP_COLS_EOF,
    HS_DEAD,
} hs_state;

struct hsql {
    proxy *p;
    struct bufferevent *bev;
    hs_state st;
    hsql_done_fn done;
    hsql_row_fn row;
    void *arg;
    hsql_result res;
    pbuf pkt;    /* the logical packet being joined */
    bool binary; /* rows of an EXECUTE */
    int set_no;  /* result sets seen for this command; rows go out only for the first */
    uint64_t cols_left;
    /* EXECUTE after PREPARE */
    const hsql_param *params;
    int n_params;
    uint32_t stmt_id;
    uint16_t prep_params, prep_cols, left;
    bool in_callback;
    bool free_pending;
    bool paused; /* hsql_pause: not reading from the socket */
    hs_state after_login; /* a command sent before the login's answer came: its first state */
};

const hsql_result *hsql_get_result(const hsql *s)
{
    return &s->res;
}

void hsql_pause(hsql *s, bool paused)
{
    if (!s || !s->bev || s->paused == paused)
        return;
    s->paused = paused;
    if (paused) {
        bufferevent_disable(s->bev, EV_READ);
        return;
    }
    bufferevent_enable(s->bev, EV_READ);
    /* Whole packets read before the pause may still wait in the input. */
    if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void reset_result(hsql *s)
{
    free(s->res.cols);
    memset(&s->res, 0, sizeof(s->res));
    s->set_no = 0;
}

static void set_error(hsql *s, unsigned code, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_error(hsql *s, unsigned code, const char *state, const char *fmt, ...)
{
    s->res.err = true;
    s->res.code = code;
    snprintf(s->res.sqlstate, sizeof(s->res.sqlstate), "%s", state);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->res.message, sizeof(s->res.message), fmt, ap);
    va_end(ap);
}

static void hsql_destroy(hsql *s)
{
    if (s->bev)
        bufferevent_free(s->bev); /* closes our end: the worker's client goes, killing what runs */
    free(s->res.cols);
    pbuf_free(&s->pkt);
    free(s);
}

void hsql_free(hsql *s)
{
    if (!s)
        return;
    if (s->in_callback) {
        s->free_pending = true;
        s->st = HS_DEAD;
        return;
    }
    hsql_destroy(s);
}

/* The command ended (or the session broke): back to idle and tell the caller. */
static void finish(hsql *s, bool broken)
{
    s->st = broken ? HS_DEAD : HS_IDLE;
    hsql_done_fn done = s->done;
    s->done = NULL;
    if (done)
        done(s, s->arg);
}

static void parse_err(hsql *s, const uint8_t *p, size_t n)
{
    preader r;
    pr_init(&r, p + 1, n - 1);
    uint16_t code = 0;
    pr_u16(&r, &code);
    char state[6] = "HY000";
    if (pr_left(&r) >= 6 && r.p[0] == '#') {
        memcpy(state, r.p + 1, 5);
        pr_skip(&r, 6);
    }
    size_t ml = pr_left(&r);
    set_error(s, code, state, "%.*s", (int)(ml > 500 ? 500 : ml), (const char *)r.p);
}

static bool parse_column(const uint8_t *p, size_t n, hj_column *c)
{
    preader r;
    pr_init(&r, p, n);
    const uint8_t *str;
    size_t len;
    for (int i = 0; i < 4; i++) /* catalog, schema, table, org_table */
        if (!pr_lenenc_str(&r, &str, &len))
            return false;
    if (!pr_lenenc_str(&r, &str, &len))
        return false;
    snprintf(c->name, sizeof(c->name), "%.*s", (int)(len > 255 ? 255 : len), (const char *)str);
    if (!pr_lenenc_str(&r, &str, &len)) /* org_name */
        return false;
    uint64_t fixed;
    bool isnull;
    uint32_t length;
    if (!pr_lenenc(&r, &fixed, &isnull) || !pr_u16(&r, &c->charset) || !pr_u32(&r, &length) ||
        !pr_u8(&r, &c->type) || !pr_u16(&r, &c->flags) || !pr_u8(&r, &c->decimals))
        return false;
    return true;
}

/* A row for the caller: values as text (NULL for SQL NULL). */
static bool deliver_row(hsql *s, const uint8_t *p, size_t n)
{
    int nc = s->res.n_cols;
    const char *stackv[64];
    size_t stackl[64];
    char stackbuf[64][64];
    const char **vals = nc <= 64 ? stackv : calloc((size_t)nc, sizeof(*vals));
    size_t *lens = nc <= 64 ? stackl : calloc((size_t)nc, sizeof(*lens));
    char(*bufs)[64] = nc <= 64 ? stackbuf : calloc((size_t)nc, 64);
    if (!vals || !lens || !bufs)
        abort();
    bool ok = true;
    preader r;
    if (s->binary) {
        pr_init(&r, p, n);
        const uint8_t *bitmap;
        size_t bl = ((size_t)nc + 7 + 2) / 8;
        ok = pr_skip(&r, 1) && pr_bytes(&r, bl, &bitmap);
        for (int i = 0; ok && i < nc; i++) {
            size_t bit = (size_t)i + 2;
            if (bitmap[bit / 8] & (1u << (bit % 8))) {
                vals[i] = NULL;
                lens[i] = 0;
                continue;
            }
            ok = hj_binary_value(&r, &s->res.cols[i], bufs[i], 64, &vals[i], &lens[i]);
        }
    } else {
        pr_init(&r, p, n);
        for (int i = 0; ok && i < nc; i++) {
            if (pr_left(&r) > 0 && r.p[0] == 0xFB) {
                pr_skip(&r, 1);
                vals[i] = NULL;
                lens[i] = 0;
                continue;
            }
            const uint8_t *v;
            ok = pr_lenenc_str(&r, &v, &lens[i]);
            vals[i] = (const char *)v;
        }
    }
    if (ok) {
        s->res.rows_seen++;
        if (s->row)
            s->row(s, s->arg, vals, lens);
    }
    if (nc > 64) {
        free(vals);
        free(lens);
        free(bufs);
    }
    return ok;
}

static void send_packet(hsql *s, const pbuf *payload)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    uint8_t seq = 0;
    pbuf b;
    pbuf_init(&b);
    size_t start = pkt_begin(&b);
    pbuf_put(&b, payload->data, payload->len);
    pkt_end(&b, start, &seq);
    evbuffer_add(out, b.data, b.len);
    pbuf_free(&b);
}

static void send_execute(hsql *s)
{
    pbuf b;
    pbuf_init(&b);
    pbuf_u8(&b, CMD_STMT_EXECUTE);
    pbuf_u32(&b, s->stmt_id);
    pbuf_u8(&b, 0);  /* no cursor */
    pbuf_u32(&b, 1); /* iterations */
    if (s->n_params > 0) {
        size_t nb = ((size_t)s->n_params + 7) / 8;
        size_t at = b.len;
        for (size_t i = 0; i < nb; i++)
            pbuf_u8(&b, 0);
        for (int i = 0; i < s->n_params; i++)
            if (s->params[i].kind == HP_NULL)
                b.data[at + (size_t)i / 8] |= (uint8_t)(1u << (i % 8));
        pbuf_u8(&b, 1); /* types follow */
        for (int i = 0; i < s->n_params; i++) {
            const hsql_param *pa = &s->params[i];
            uint8_t t = pa->kind == HP_NULL     ? HT_NULL
                        : pa->kind == HP_INT    ? HT_LONGLONG
                        : pa->kind == HP_DOUBLE ? HT_DOUBLE
                        : pa->kind == HP_DECIMAL ? HT_NEWDECIMAL
                                                 : HT_VAR_STRING;
            pbuf_u8(&b, t);
            pbuf_u8(&b, 0);
        }
        for (int i = 0; i < s->n_params; i++) {
            const hsql_param *pa = &s->params[i];
            if (pa->kind == HP_INT) {
                pbuf_u32(&b, (uint32_t)((uint64_t)pa->i & 0xffffffffu));
                pbuf_u32(&b, (uint32_t)((uint64_t)pa->i >> 32));
            } else if (pa->kind == HP_DOUBLE) {
                uint64_t bits;
                memcpy(&bits, &pa->d, 8);
                pbuf_u32(&b, (uint32_t)(bits & 0xffffffffu));
                pbuf_u32(&b, (uint32_t)(bits >> 32));
            } else if (pa->kind != HP_NULL) {
                pbuf_lenenc_str(&b, pa->s, pa->len);
            }
        }
    }
    send_packet(s, &b);
    pbuf_free(&b);
    s->binary = true;
    s->st = HS_FIRST;
}

static void send_close_stmt(hsql *s)
{
    pbuf b;
    pbuf_init(&b);
    pbuf_u8(&b, CMD_STMT_CLOSE);
    pbuf_u32(&b, s->stmt_id);
    send_packet(s, &b);
    pbuf_free(&b);
}

/* One whole logical packet from the session. */
static void handle(hsql *s, const uint8_t *p, size_t n)
{
    if (n == 0) {
        set_error(s, 2027, "HY000", "malformed packet from the session");
        finish(s, true);
        return;
    }
    switch (s->st) {
    case HS_LOGIN:
        if (p[0] == 0xFF) {
            parse_err(s, p, n);
            finish(s, true);
        } else if (s->after_login != HS_LOGIN) {
            s->st = s->after_login; /* the pipelined command's answer follows */
        } else {
            finish(s, false);
        }
        return;
    case HS_FIRST:
        if (p[0] == 0xFF) {
            parse_err(s, p, n);
            if (s->stmt_id)
                send_close_stmt(s);
            finish(s, false);
            return;
        }
        if (p[0] == 0x00) {
            preader r;
            pr_init(&r, p + 1, n - 1);
            uint64_t aff = 0, id = 0;
            bool isnull;
            uint16_t status = 0, warn = 0;
            pr_lenenc(&r, &aff, &isnull);
            pr_lenenc(&r, &id, &isnull);
            pr_u16(&r, &status);
            pr_u16(&r, &warn);
            if (s->set_no == 0) {
                s->res.affected = aff;
                s->res.insert_id = id;
            }
            s->res.warnings += warn;
            s->set_no++;
            if (status & ST_MORE_RESULTS)
                return; /* the next result follows */
            if (s->stmt_id)
                send_close_stmt(s);
            finish(s, false);
            return;
        }
        {
            preader r;
            pr_init(&r, p, n);
            uint64_t nc;
            bool isnull;
            if (!pr_lenenc(&r, &nc, &isnull) || nc == 0 || nc > 4096) {
                set_error(s, 2027, "HY000", "malformed result from the session");
                finish(s, true);
                return;
            }
            s->cols_left = nc;
            if (s->set_no == 0) {
                s->res.has_rows = true;
                s->res.n_cols = (int)nc;
                s->res.cols = calloc(nc, sizeof(hj_column));
                if (!s->res.cols)
                    abort();
            }
            s->st = HS_COLUMNS;
        }
        return;
    case HS_COLUMNS:
        if (s->set_no == 0) {
            hj_column *c = &s->res.cols[(uint64_t)s->res.n_cols - s->cols_left];
            if (!parse_column(p, n, c)) {
                set_error(s, 2027, "HY000", "malformed column definition from the session");
                finish(s, true);
                return;
            }
        }
        if (--s->cols_left == 0)
            s->st = HS_COLS_EOF;
        return;
    case HS_COLS_EOF:
        s->st = HS_ROWS;
        if (s->set_no == 0 && s->row)
            s->row(s, s->arg, NULL, NULL); /* the columns are known */
        return;
    case HS_ROWS:
        if (p[0] == 0xFE && n < 9) {
            uint16_t warn = 0, status = 0;
            pkt_parse_eof(p, n, &warn, &status);
            s->res.warnings += warn;
            s->set_no++;
            if (status & ST_MORE_RESULTS) {
                s->st = HS_FIRST;
                return;
            }
            if (s->stmt_id)
                send_close_stmt(s);
            finish(s, false);
            return;
        }
        if (p[0] == 0xFF) {
            parse_err(s, p, n);
            if (s->stmt_id)
                send_close_stmt(s);
            finish(s, false);
            return;
        }
        if (s->set_no == 0 && !deliver_row(s, p, n)) {
            set_error(s, 2027, "HY000", "malformed row from the session");
            finish(s, true);
        }
        return;
    case HS_PREP_OK: {
        if (p[0] == 0xFF) {
            parse_err(s, p, n);
            finish(s, false);
            return;
        }
        preader r;
        pr_init(&r, p + 1, n - 1);
        uint16_t warn;
        if (p[0] != 0x00 || !pr_u32(&r, &s->stmt_id) || !pr_u16(&r, &s->prep_cols) ||
            !pr_u16(&r, &s->prep_params) || !pr_skip(&r, 1) || !pr_u16(&r, &warn)) {
            set_error(s, 2027, "HY000", "malformed PREPARE response from the session");
            finish(s, true);
            return;
        }
        s->left = s->prep_params;
        s->st = s->left ? HS_PREP_PARAMS : s->prep_cols ? HS_PREP_COLS : HS_IDLE;
        if (s->st == HS_PREP_COLS)
            s->left = s->prep_cols;
        break;
    }
    case HS_PREP_PARAMS:
        if (--s->left == 0)
            s->st = HS_PREP_PARAMS_EOF;
        return;
    case HS_PREP_PARAMS_EOF:
        s->left = s->prep_cols;
        s->st = s->left ? HS_PREP_COLS : HS_IDLE;
        break;
    case HS_PREP_COLS:
        if (--s->left == 0)
            s->st = HS_PREP_COLS_EOF;
        return;
    case HS_PREP_COLS_EOF:
        s->st = HS_IDLE;
        break;
    default:
        return;
    }
    /* PREPARE is complete: execute with the caller's values. */
    if (s->st == HS_IDLE) {
        if (s->prep_params != s->n_params) {
            set_error(s, 1210, "HY000",
                      "envproxy: the statement has %u parameter(s) and %d value(s) were given",
                      s->prep_params, s->n_params);
            send_close_stmt(s);
            finish(s, false);
            return;
        }
        send_execute(s);
    }
}

/* Handles every whole packet in the input (inside a callback: s is not freed here). */
static void process_input(hsql *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    while (s->st != HS_DEAD && !s->free_pending && !s->paused) {
        uint8_t h[4];
        if (evbuffer_copyout(in, h, 4) < 4)
            break;
        size_t len = pkt_u24(h);
        if (evbuffer_get_length(in) < len + 4)
            break;
        if (s->pkt.len + len > HSQL_MAX_PACKET) {
            set_error(s, 1153, "08S01",
                      "envproxy: a row is larger than the HTTP answer allows (%u bytes)",
                      HSQL_MAX_PACKET);
            finish(s, true);
            break;
        }
        evbuffer_drain(in, 4);
        pbuf_reserve(&s->pkt, len);
        evbuffer_remove(in, s->pkt.data + s->pkt.len, len);
        s->pkt.len += len;
        if (len == PKT_MAX_PAYLOAD)
            continue; /* continued in the next packet */
        handle(s, s->pkt.data, s->pkt.len);
        pbuf_reset(&s->pkt);
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    hsql *s = arg;
    s->in_callback = true;
    process_input(s);
    s->in_callback = false;
    if (s->free_pending)
        hsql_destroy(s);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    hsql *s = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if ((what & BEV_EVENT_WRITING) && s->st != HS_DEAD && s->st != HS_IDLE) {
        /* A pipelined command could not be written because the session had already ended
         * (a refused login): its answer may still wait in the socket. Read it first. */
        struct evbuffer *in = bufferevent_get_input(bev);
        evutil_socket_t fd = bufferevent_getfd(bev);
        evbuffer_unfreeze(in, 0); /* the bufferevent keeps its input's end frozen */
        for (int i = 0; i < 64 && evbuffer_read(in, fd, 65536) > 0; i++)
            ;
        evbuffer_freeze(in, 0);
        s->in_callback = true;
        process_input(s);
        if (!s->free_pending && s->st != HS_DEAD && s->st != HS_IDLE) {
            if (!s->res.err)
                set_error(s, 2013, "HY000", "envproxy: the internal session ended: the connection to the environment was lost");
            finish(s, true);
        }
        s->in_callback = false;
        if (s->free_pending)
            hsql_destroy(s);
        return;
    }
    if (s->st == HS_DEAD || s->st == HS_IDLE) {
        s->st = HS_DEAD;
        return;
    }
    if (!s->res.err)
        set_error(s, 2013, "HY000", "envproxy: the internal session ended: the connection to the environment was lost");
    s->in_callback = true;
    finish(s, true);
    s->in_callback = false;
    if (s->free_pending)
        hsql_destroy(s);
}

hsql *hsql_open(proxy *p, const internal_login *login, hsql_done_fn done, void *arg)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("http: socketpair: %s", strerror(errno));
        return NULL;
    }
    hsql *s = calloc(1, sizeof(*s));
    internal_login *l = malloc(sizeof(*l));
    if (!s || !l)
        abort();
    *l = *login;
    s->p = p;
    pbuf_init(&s->pkt);
    evutil_make_socket_nonblocking(sv[0]);
    s->bev = bufferevent_socket_new(p->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    if (!s->bev)
        abort();
    bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    s->st = HS_LOGIN;
    s->after_login = HS_LOGIN;
    s->done = done;
    s->arg = arg;
    worker *w = &p->workers[p->next_worker++ % (unsigned)p->n_workers];
    worker_hand_internal(w, sv[1], l);
    return s;
}

/* Readies s for a command; a session still logging in takes it pipelined (the worker runs
 * it once the login is done; a refused login fails the command with the login's error). */
static bool start(hsql *s, hsql_row_fn row, hsql_done_fn done, void *arg)
{
    reset_result(s);
    s->row = row;
    s->done = done;
    s->arg = arg;
    s->binary = false;
    s->stmt_id = 0;
    if (s->st == HS_LOGIN)
        return true;
    if (s->st != HS_IDLE) {
        set_error(s, 2013, "HY000", "envproxy: the internal session ended: the connection to the environment was lost");
        return false;
    }
    return true;
}

/* Sends a command whose payload is text (COM_QUERY, COM_STMT_PREPARE); its answer is
 * read from state next, after the login's answer when that has not come yet. */
static void send_text_command(hsql *s, uint8_t cmd, const char *sql, size_t len,
                              hs_state next)
{
    pbuf b;
    pbuf_init(&b);
    pbuf_u8(&b, cmd);
    pbuf_put(&b, sql, len);
    send_packet(s, &b);
    pbuf_free(&b);
    if (s->st == HS_LOGIN)
        s->after_login = next;
    else
        s->st = next;
}

void hsql_query(hsql *s, const char *sql, size_t len, hsql_row_fn row, hsql_done_fn done,
                void *arg)
{
    if (!start(s, row, done, arg)) {
        finish(s, true);
        return;
    }
    send_text_command(s, CMD_QUERY, sql, len, HS_FIRST);
}

void hsql_execute(hsql *s, const char *sql, size_t len, const hsql_param *params, int n,
                  hsql_row_fn row, hsql_done_fn done, void *arg)
{
    if (!start(s, row, done, arg)) {
        finish(s, true);
        return;
    }
    s->params = params;
    s->n_params = n;
    send_text_command(s, CMD_STMT_PREPARE, sql, len, HS_PREP_OK);
}
