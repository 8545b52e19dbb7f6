/* relay.c: sends a client's command to its backend connection and streams the response
 * back packet by packet, without buffering a whole result.
 *
 * Rows and column definitions pass as they arrive (only the sequence id in the header is
 * rewritten, in place: see "what goes to the client"), so memory stays bounded whatever the
 * size of a result. The small packets that end a result (OK, EOF, ERR) are read whole and
 * rewritten into the format the client negotiated: backends never use CLIENT_DEPRECATE_EOF
 * and always send session-state tracking, clients may differ on both. */
#include "envproxy.h"
#include "log.h"
#include "rewrite.h"
#include "vquery.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define RELAY_HIGH_WATER (1024 * 1024) /* pause the backend above this much client output */
#define RELAY_LOW_WATER (256 * 1024)   /* and resume below this */
#define RELAY_READ_MAX (256 * 1024)    /* bytes read from a backend at once */
#define RELAY_CARRY_MAX 1024           /* bytes of a batch carried in front of the next read */
#define INFILE_HIGH_WATER (1024 * 1024) /* stop reading a client's file above this much
                                         * backend output */
#define INFILE_LOW_WATER (256 * 1024)   /* and read on below this */
#define INFILE_STALL_MS 30000 /* a client whose file is dropped must send on within this */

static void relay_backend_cb(evutil_socket_t fd, short what, void *arg);
static void infile_abort(client *c, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void infile_request(client *c, const uint8_t *p, size_t len, uint8_t be_seq);

/* ---- what goes to the client ----
 * The packets of a batch are gathered in order as a short list of pieces: runs of whole
 * packets passed on in place from the window (only their sequence ids rewritten, see
 * in_pass_packet) and the few packets the relay builds (copied into the worker's staging
 * area). relay_flush_out hands them to the client's socket with one writev when nothing is
 * queued there, so the bytes of rows are never copied in user space; what the socket does
 * not take, and everything on a TLS connection, is copied into the socket buffer.
 *
 * The list belongs to one client at a time (a worker runs one batch at a time, but a batch
 * may end a command whose successor starts another client's work): a client that finds it
 * taken gathers in c->rl_out, as every client does outside a batch. What the client gets
 * is c->rl_out followed by the list. The list never outlives its batch: it points into the
 * window, so in_commit moves what is left of it into c->rl_out. */

#define OUT_PIECES 16
#define OUT_STAGE 8192

static __thread struct {
    client *owner;     /* whose pieces these are, NULL when none */
    int n;             /* pieces in piece */
    size_t staged;     /* bytes used in stage */
    struct iovec piece[OUT_PIECES];
    uint8_t stage[OUT_STAGE];
} ob;

/* Whether c may add to the list (taking it when free). */
static bool ob_mine(client *c)
{
    if (ob.owner == c)
        return true;
    if (ob.owner || !c->rl_batch)
        return false;
    ob.owner = c;
    ob.n = 0;
    ob.staged = 0;
    return true;
}

static void ob_release(void)
{
    ob.owner = NULL;
    ob.n = 0;
    ob.staged = 0;
}

/* Copies c's pieces into c->rl_out and frees the list. */
static void ob_spill(client *c)
{
    if (ob.owner != c)
        return;
    for (int i = 0; i < ob.n; i++)
        evbuffer_add(c->rl_out, ob.piece[i].iov_base, ob.piece[i].iov_len);
    ob_release();
}

/* Adds n bytes that stay where they are until the list is written or spilled (the
 * window's). */
static void out_ref(client *c, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    if (ob_mine(c)) {
        struct iovec *last = ob.n ? &ob.piece[ob.n - 1] : NULL;
        if (last && (const uint8_t *)last->iov_base + last->iov_len == p) {
            last->iov_len += n;
            return;
        }
        if (ob.n < OUT_PIECES) {
            ob.piece[ob.n].iov_base = (void *)p;
            ob.piece[ob.n].iov_len = n;
            ob.n++;
            return;
        }
        ob_spill(c);
    }
    evbuffer_add(c->rl_out, p, n);
}

/* Adds a copy of n bytes (a packet the relay built). */
static void out_put(client *c, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (ob_mine(c) && n <= OUT_STAGE - ob.staged) {
        uint8_t *to = ob.stage + ob.staged;
        memcpy(to, p, n);
        ob.staged += n;
        out_ref(c, to, n); /* joins the staged piece before it when that is the last */
        return;
    }
    ob_spill(c);
    evbuffer_add(c->rl_out, p, n);
}

/* Room for n bytes at the end of the stage, for a packet built in place and then added
 * with out_ref; NULL when the stage is taken or too full. */
static uint8_t *out_room(client *c, size_t n)
{
    if (!ob_mine(c) || n > OUT_STAGE - ob.staged)
        return NULL;
    uint8_t *to = ob.stage + ob.staged;
    ob.staged += n;
    return to;
}

/* Hands what was gathered to the client's socket buffer. Called after each batch of
 * backend packets and before anything that ends the response (after which the client's
 * next command may write to the socket buffer itself). */
void relay_flush_out(client *c)
{
    if (c->rl_sink) {
        /* An interrupted statement: what the backend still sends never reaches the client. */
        if (ob.owner == c)
            ob_release();
        evbuffer_drain(c->rl_out, evbuffer_get_length(c->rl_out));
        return;
    }
    size_t queued = evbuffer_get_length(c->rl_out);
    bool pieces = ob.owner == c && ob.n > 0;
    if (!pieces && queued == 0)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool direct = !c->tls && c->fd >= 0 && evbuffer_get_length(out) == 0;
    if (pieces && queued == 0 && direct) {
        /* The usual case: the pieces straight from where they are to the socket. */
        size_t total = 0;
        for (int i = 0; i < ob.n; i++)
            total += ob.piece[i].iov_len;
        c->rl_bytes += total;
        ssize_t w = writev(c->fd, ob.piece, ob.n);
        size_t done = w > 0 ? (size_t)w : 0; /* EAGAIN or an error: the bufferevent takes over
                                               * (and reports it) */
        if (done == total) {
            ob_release();
            return;
        }
        for (int i = 0; i < ob.n; i++) {
            size_t len = ob.piece[i].iov_len;
            if (done >= len) {
                done -= len;
                continue;
            }
            evbuffer_add(c->rl_out, (const uint8_t *)ob.piece[i].iov_base + done, len - done);
            done = 0;
        }
        ob_release();
        evbuffer_add_buffer(out, c->rl_out);
        return;
    }
    ob_spill(c);
    size_t n = evbuffer_get_length(c->rl_out);
    c->rl_bytes += n;
    if (direct) {
        /* Nothing is queued: write now, which spares watching for writability (two
         * epoll_ctl calls and a wake-up) when the socket takes it all, as it mostly does. */
        while (evbuffer_get_length(c->rl_out) > 0) {
            if (evbuffer_write(c->rl_out, c->fd) <= 0)
                break; /* EAGAIN or an error: the bufferevent takes over (and reports it) */
        }
        if (evbuffer_get_length(c->rl_out) == 0)
            return;
    }
    evbuffer_add_buffer(out, c->rl_out);
}

/* ---- the backend bytes of a batch ----
 * A batch is handled from one contiguous window: bytes read straight from the socket into
 * the worker's buffer, or b->in when it holds the rest of an earlier batch. What the batch
 * consumed is dropped once at its end (in_commit); an incomplete packet left over stays in
 * b->in for the next batch. Nothing else touches b->in while a window is open. */

#define RELAY_READ_CHUNK 65536
static __thread uint8_t read_buf[RELAY_READ_CHUNK];

static size_t in_avail(const client *c)
{
    return c->rl_in_len - c->rl_in_off;
}

static uint8_t *in_ptr(const client *c)
{
    return c->rl_in + c->rl_in_off;
}

static void in_drain(client *c, size_t n)
{
    c->rl_in_off += n;
}

/* Copies n bytes of the window to the client. */
static void in_to_out(client *c, size_t n)
{
    out_put(c, in_ptr(c), n);
    c->rl_in_off += n;
}

/* Passes a whole packet of n bytes (header included) at the front of the window to the
 * client with its sequence id rewritten in place: no copy of its own. */
static void in_pass_packet(client *c, size_t n)
{
    uint8_t *h = in_ptr(c);
    h[3] = c->seq++;
    if (!c->rl_sink)
        out_ref(c, h, n);
    c->rl_in_off += n;
}

/* Opens the window over b->in followed by n fresh bytes (n may be 0). */
static void in_open(client *c, uint8_t *fresh, size_t n)
{
    backend *b = c->be;
    c->rl_in_off = 0;
    c->rl_batch = true;
    if (n > 0 && evbuffer_get_length(b->in) == 0) {
        c->rl_in = fresh;
        c->rl_in_len = n;
        c->rl_in_direct = true;
        return;
    }
    if (n > 0)
        evbuffer_add(b->in, fresh, n);
    c->rl_in_len = evbuffer_get_length(b->in);
    c->rl_in = c->rl_in_len ? evbuffer_pullup(b->in, -1) : NULL;
    c->rl_in_direct = false;
}

/* Closes the window: drops what was consumed, keeps the rest in b->in. */
static void in_commit(client *c)
{
    backend *b = c->be;
    ob_spill(c); /* pieces not written yet point into the window */
    c->rl_batch = false;
    if (c->rl_in && b) {
        if (!c->rl_in_direct)
            evbuffer_drain(b->in, c->rl_in_off);
        else if (c->rl_in_off < c->rl_in_len)
            evbuffer_add(b->in, in_ptr(c), in_avail(c));
    }
    c->rl_in = NULL;
    c->rl_in_len = c->rl_in_off = 0;
    c->rl_in_direct = false;
}

/* The response ended (or the relay stops): send what was gathered (from the window where
 * it is), then close the window. */
static void relay_end_batch(client *c)
{
    relay_flush_out(c);
    in_commit(c);
}

/* Counts the statement for /metrics. */
static void relay_count(client *c, bool failed)
{
    int env = c->be->pool->index;
    double ms = (double)(now_ms() - c->rl_started_ms);
    metrics_statement(c->p, env, failed ? VERDICT_ERROR : VERDICT_ALLOWED, ms);
    uint8_t cmd = c->cmd.len ? c->cmd.data[0] : 0;
    if (cmd == CMD_QUERY || (cmd == CMD_STMT_EXECUTE && c->job == JOB_STMT))
        client_audit(c, failed ? "error" : "allowed", (long long)c->rl_total_rows, ms,
                     failed ? c->rl_error : NULL, NULL);
    metrics_rows(c->p, env, c->rl_total_rows, c->rl_bytes);
}

/* Ends an interruption's bookkeeping: no timer, no kill reporting back. */
static void interrupt_clear(client *c)
{
    backend_kill_forget(c->rl_kill);
    c->rl_kill = NULL;
    c->rl_interrupt = RLI_NONE;
    c->rl_sink = false;
    c->rl_ended = false;
}

/* The backend broke or spoke nonsense: drop it and tell the client. */
static void relay_fail(client *c, uint16_t code, const char *msg)
{
    backend *b = c->be;
    if (c->rl == RL_INFILE) {
        /* The client is sending its file: it reads no answer before the file's end. */
        infile_abort(c, code, "envproxy: %s", msg);
        return;
    }
    /* Half a packet (a row cut by the backend's death) may have gone to the client
     * already: no error can follow it cleanly. */
    bool mid_packet = !c->rl_sink && !c->rl_discard && (c->rl_remaining > 0 || c->rl_continued);
    relay_end_batch(c);
    if (c->rl_sink) {
        /* Interrupted: the client's last packet was the one before the sink. */
        c->seq = c->rl_seq_cut;
        c->rl_total_rows = c->rl_rows_cut;
        c->rl_rows = 0;
    }
    interrupt_clear(c);
    stmt_relay_failed(c);
    snprintf(c->rl_error, sizeof(c->rl_error), "%u: envproxy: %s", code, msg);
    const cfg_env *e = b->pool->env;
    log_warn("conn %u %s user=%s env=%s: %s", c->id, c->addr, c->user, e->name, msg);
    backend_unwatch(b);
    client_timer_stop(c);
    c->rl_total_rows += c->rl_rows;
    relay_count(c, true);
    char note[200];
    client_lose_backend(c, b, note, sizeof(note));
    if (mid_packet) {
        /* The client gets what came before, then the connection closes: a lost connection
         * is what it sees, as when a server dies in the middle of a row. Waiting for the
         * rest of a packet that never comes would hang it. */
        log_warn("conn %u %s user=%s env=%s: half a packet had gone to the client; closing "
                 "its connection",
                 c->id, c->addr, c->user, e->name);
        client_close_after_flush(c);
        return;
    }
    client_send_err(c, code, "HY000", "envproxy: %s (environment '%s')%s", msg, e->name, note);
    client_command_done(c);
}

/* The error an interruption ends with, as the server words it. */
static void interrupt_error(client *c, const char *more)
{
    if (c->rl_interrupt == RLI_TIMEOUT)
        client_send_err(c, 3024, "HY000",
                        "Query execution was interrupted, maximum statement execution time "
                        "exceeded%s",
                        more);
    else
        client_send_err(c, 1317, "70100", "Query execution was interrupted%s", more);
}

/* The interrupted statement's response ended and the kill was answered: the client gets
 * the interruption's error when the sink dropped anything, else the response it got was
 * whole (the statement ended before the kill). */
static void interrupted_end(client *c)
{
    client_timer_stop(c);
    bool cut = c->rl_sink;
    bool failed = c->rl_end_failed;
    c->rl_sink = false;
    if (cut) {
        c->seq = c->rl_seq_cut;
        c->rl_total_rows = c->rl_rows_cut;
        snprintf(c->rl_error, sizeof(c->rl_error), "%s",
                 c->rl_interrupt == RLI_TIMEOUT ? "3024: statement_timeout"
                                                : "1317: Query execution was interrupted");
        interrupt_error(c, "");
        failed = true;
    }
    interrupt_clear(c);
    relay_count(c, failed);
    client_command_done(c);
}

static void relay_finish(client *c, bool failed)
{
    backend *b = c->be;
    health_seen_alive(&c->p->health[b->pool->index]); /* a whole response came back */
    stmt_exec_done(c); /* an EXECUTE's long data is used up by its answer, whatever follows */
    relay_end_batch(c);
    backend_park(b);
    if (failed || c->rl_warned)
        b->diag = b->diag_hold = true; /* what SHOW WARNINGS there shows is this session's */
    else if (!c->job_reads_diag)
        b->diag_hold = false;
    /* The statement's deadline ends here (the deadline watch then finds none). An
     * interrupted statement's grace timer runs until the kill is answered. */
    if (!c->rl_interrupt)
        c->rl_deadline_ms = 0;
    /* An error ends a response without the session state: a statement that may have set
     * sql_mode before it failed leaves the mode to be read again. A prepared statement's
     * text decides as a query's does. */
    bool may_set = c->job == JOB_STMT && c->stmt ? c->stmt->changes_mode : c->job_mode_changed;
    if (failed && may_set)
        b->resync = true;
    if (c->job == JOB_STMT && c->stmt ? c->stmt->sets_tracking : c->job_sets_tracking)
        session_after_tracking(c, b);
    if (evbuffer_get_length(b->in) > 0) {
        relay_fail(c, 2027, "unexpected bytes after the end of a response");
        return;
    }
    if ((evbuffer_get_length(b->out) > 0 || b->closing) && !c->rl_interrupt) {
        /* The server refused the packet (larger than its max_allowed_packet, or a network
         * error reading it), perhaps before it had read it all, and closes the connection.
         * Its answer went to the client; the connection serves no other statement (what is
         * left of the command must not be followed by the next one either). As the server
         * would, the client's connection is closed when its session had state there (a
         * transaction, ...), so that nothing of it is lost silently. */
        relay_count(c, failed);
        char note[200];
        log_warn("conn %u %s user=%s env=%s: the backend refused the command and closes its "
                 "connection; it is dropped",
                 c->id, c->addr, c->user, b->pool->env->name);
        if (client_lose_backend(c, b, note, sizeof(note)))
            client_close_after_flush(c);
        else
            client_command_done(c);
        return;
    }
    if (c->rl_interrupt) {
        c->rl_ended = true;
        c->rl_end_failed = failed;
        if (c->rl_kill)
            return; /* the kill's answer ends the command (kill_answered): a kill still on
                     * its way must not hit the session's next statement */
        interrupted_end(c);
        return;
    }
    if (c->rl_infile == INF_DECLINED) {
        /* The backend's answer to the empty file went to the sink: the client is told why
         * nothing was sent instead. */
        c->rl_sink = false;
        c->seq = c->rl_seq_cut;
        snprintf(c->rl_error, sizeof(c->rl_error), "%u: local file request refused",
                 c->rl_infile_code);
        client_send_err(c, c->rl_infile_code, "HY000", "%s", c->rl_infile_msg);
        failed = true;
    }
    relay_count(c, failed);
    client_command_done(c);
}

static void put_header(client *c, size_t len)
{
    uint8_t h[PKT_HEADER] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), c->seq++};
    out_put(c, h, PKT_HEADER);
}

/* An end-of-rows packet in the client's format (EOF, or OK with CLIENT_DEPRECATE_EOF). */
static void put_eof(client *c, uint16_t warnings, uint16_t status)
{
    uint8_t pk[PKT_EOF_MAX];
    out_put(c, pk, pkt_put_eof(pk, &c->seq, c->caps, warnings, status));
}

/* An interrupted statement's result is cut here: what was gathered goes to the client, the
 * rest of the response is dropped. */
static void sink_start(client *c)
{
    relay_flush_out(c);
    c->rl_sink = true;
    c->rl_seq_cut = c->seq;
    c->rl_rows_cut = c->rl_total_rows + c->rl_rows;
}

/* Starts copying one physical packet whose header is at the front of the window. */
static void stream_packet(client *c, size_t len)
{
    in_drain(c, PKT_HEADER);
    if (!c->rl_discard) {
        put_header(c, len);
    }
    c->rl_remaining = len;
    c->rl_continued = len == PKT_MAX_PAYLOAD;
}

/* An OK packet from the backend, rewritten for the client. Returns -1 when malformed. */
static int relay_ok(client *c, const uint8_t *p, size_t len, uint16_t *status)
{
    pkt_ok ok;
    if (pkt_parse_ok(p, len, CAP_SESSION_TRACK, &ok))
        return -1;
    backend *b = c->be;
    if (ok.schema_changed) {
        free(b->cur_db);
        b->cur_db = ok.schema_len ? strndup((const char *)ok.schema, ok.schema_len) : NULL;
        if (c->job_moves_session) {
            size_t n = ok.schema_len > ROUTE_NAME_MAX ? ROUTE_NAME_MAX : ok.schema_len;
            memcpy(c->db, ok.schema, n);
            c->db[n] = '\0';
            c->has_db = n > 0;
        }
    }
    if (ok.state)
        session_note_changes(c, b, ok.state, ok.state_len);
    session_note_status(b, ok.status);
    *status = ok.status & (uint16_t)~ST_SESSION_STATE_CHANGED;
    c->last_status = *status;
    b->status = *status;
    if (ok.insert_id != 0)
        session_pin(c, "LAST_INSERT_ID"); /* a later SELECT LAST_INSERT_ID() must see it */
    if (ok.warnings)
        c->rl_warned = true;
    uint8_t out_room[512];
    pbuf out;
    pbuf_init_on(&out, out_room, sizeof(out_room));
    pkt_build_ok(&out, &c->seq, ok.affected, ok.insert_id, txn_status(c, b, *status), ok.warnings,
                 (const char *)ok.info, ok.info_len);
    out_put(c, out.data, out.len);
    pbuf_free(&out);
    return 0;
}

/* Appends one packet (payload p) to a list of column definitions kept for later. */
static void keep_packet(pbuf *list, const uint8_t *p, size_t len)
{
    uint8_t seq = 0;
    size_t start = pkt_begin(list);
    pbuf_put(list, p, len);
    pkt_end(list, start, &seq);
}

/* Sends a packet of a PREPARE response to the client (not in silent mode). */
static void prep_forward(client *c, const uint8_t *p, size_t len)
{
    if (c->rl_silent)
        return;
    put_header(c, len);
    out_put(c, p, len);
}

/* After the parameter part of a PREPARE response: on to the columns, or the end. */
static int prep_after_params(client *c)
{
    cl_stmt *st = c->stmt;
    if (st->n_columns == 0) {
        relay_end_batch(c);
        stmt_prepared(c, true);
        return 0;
    }
    c->rl = RL_PREP_COLS;
    c->rl_count = st->n_columns;
    return 1;
}

/* One whole packet of a COM_STMT_PREPARE response. Returns 1 to go on, 0 when the response
 * ended (the command is finished), -1 when malformed. */
static int relay_prepare_packet(client *c, const uint8_t *p, size_t len)
{
    backend *b = c->be;
    cl_stmt *st = c->stmt;
    bool is_eof = pkt_is_eof(p, len);
    switch (c->rl) {
    case RL_PREP_OK:
        if (len > 0 && p[0] == 0xFF) {
            if (!c->rl_silent) {
                prep_forward(c, p, len);
            } else if (c->no_reply) {
                stmt_defer_error(c, p, len); /* for SEND_LONG_DATA: its EXECUTE's error */
            } else {
                /* Our own PREPARE failed: the client sees the error as its command's. */
                put_header(c, len);
                out_put(c, p, len);
            }
            in_drain(c, PKT_HEADER + len);
            backend_park(b);
            relay_end_batch(c);
            stmt_prepared(c, false); /* ends the statement's deadline */
            return 0;
        }
        if (len < 12 || p[0] != 0x00)
            return -1;
        st->backend_id = pkt_u32(p + 1);
        st->n_columns = pkt_u16(p + 5);
        st->n_params = pkt_u16(p + 7);
        st->prep_warnings = pkt_u16(p + 10);
        {
            uint8_t ok[12];
            memcpy(ok, p, 12);
            ok[1] = (uint8_t)st->id;
            ok[2] = (uint8_t)(st->id >> 8);
            ok[3] = (uint8_t)(st->id >> 16);
            ok[4] = (uint8_t)(st->id >> 24);
            prep_forward(c, ok, 12);
        }
        in_drain(c, PKT_HEADER + len);
        pbuf_reset(&st->params);
        pbuf_reset(&st->columns);
        if (st->n_params > 0) {
            c->rl = RL_PREP_PARAMS;
            c->rl_count = st->n_params;
            return 1;
        }
        return prep_after_params(c);
    case RL_PREP_PARAMS:
    case RL_PREP_COLS: {
        if (is_eof || (len > 0 && p[0] == 0xFF))
            return -1;
        uint8_t def_room[512];
        pbuf def;
        pbuf_init_on(&def, def_room, sizeof(def_room));
        uint8_t seq = 0;
        int bad = pkt_copy_column(&def, &seq, p, len, b->ext_metadata, c->ext_meta);
        if (!bad) {
            prep_forward(c, def.data + PKT_HEADER, def.len - PKT_HEADER);
            /* Kept as the backend sent it: clients that asked for extended metadata and
             * clients that did not are both answered from it. */
            keep_packet(c->rl == RL_PREP_COLS ? &st->columns : &st->params, p, len);
        }
        pbuf_free(&def);
        if (bad)
            return -1;
        in_drain(c, PKT_HEADER + len);
        if (--c->rl_count == 0)
            c->rl = c->rl == RL_PREP_PARAMS ? RL_PREP_PARAMS_EOF : RL_PREP_COLS_EOF;
        return 1;
    }
    case RL_PREP_PARAMS_EOF:
    case RL_PREP_COLS_EOF: {
        if (!is_eof)
            return -1;
        uint16_t warnings, status;
        pkt_parse_eof(p, len, &warnings, &status);
        in_drain(c, PKT_HEADER + len);
        if (!c->rl_silent && !(c->caps & CAP_DEPRECATE_EOF))
            put_eof(c, warnings, status);
        if (c->rl == RL_PREP_PARAMS_EOF)
            return prep_after_params(c);
        relay_end_batch(c);
        stmt_prepared(c, true);
        return 0;
    }
    default:
        return -1;
    }
}

/* MariaDB's progress report (an ERR packet with code 0xFFFF), sent during long statements
 * (LOAD DATA, ALTER TABLE) because Connector/C announces MARIADB_CLIENT_PROGRESS. The proxy
 * does not offer progress reports to its clients: they are dropped. */
static bool is_progress(const uint8_t *p, size_t len)
{
    return len >= 3 && p[0] == 0xFF && p[1] == 0xFF && p[2] == 0xFF;
}

/* The run of whole rows at the front of the window, for a result that is not interrupted
 * (the caller checks): each row's sequence id is rewritten in place and the run joins
 * what goes to the client as one piece; past max_rows the rows are dropped instead, as the
 * packet-by-packet path below does. Stops before the first packet that needs more than
 * that: one not whole in the window, a long one (16 MiB - 1 bytes, continued in the next),
 * an EOF, ERR or progress report, and the row that would pass the cap of a dump client. */
static void rows_run(client *c)
{
    uint8_t *start = in_ptr(c), *p = start;
    size_t room = in_avail(c);
    long long cap = client_max_rows(c, c->route.env);
    uint64_t limit = UINT64_MAX; /* rows this run may take */
    if (cap > 0)
        limit = c->rl_rows < (uint64_t)cap ? (uint64_t)cap - c->rl_rows : 0;
    bool drop = limit == 0; /* past the cap: the whole run is dropped */
    if (drop) {
        if (!c->rl_truncated)
            return; /* the first row past the cap: the path below decides (cap_fails) */
        limit = UINT64_MAX;
    }
    uint8_t seq = c->seq;
    uint64_t rows = 0;
    while (room > PKT_HEADER && rows < limit) {
        size_t len = pkt_u24(p);
        /* Not empty, not continued (16 MiB - 1), whole in the window. */
        if (len - 1 >= PKT_MAX_PAYLOAD - 1 || len > room - PKT_HEADER)
            break;
        uint8_t first = p[PKT_HEADER];
        if (first >= 0xFE && (first == 0xFF || len < 9))
            break; /* ERR or a progress report, EOF */
        p[3] = seq++; /* dropped rows: the bytes go nowhere, seq is not kept */
        rows++;
        p += PKT_HEADER + len;
        room -= PKT_HEADER + len;
    }
    size_t n = (size_t)(p - start);
    if (n == 0)
        return;
    if (drop) {
        c->rl_discard = true;
        c->rl_truncated = true;
    } else {
        out_ref(c, start, n);
        c->seq = seq;
        c->rl_rows += rows;
        c->rl_discard = false;
    }
    c->rl_in_off += n;
}

/* Handles the packets in the window. Returns false when the relay ended (finished or
 * failed). */
static bool relay_process_packets(client *c)
{
    backend *b = c->be;
    for (;;) {
        size_t avail = in_avail(c);
        if (c->rl == RL_INFILE) {
            if (avail == 0)
                return true;
            size_t plen = avail >= PKT_HEADER ? pkt_u24(in_ptr(c)) : 0;
            if (avail >= PKT_HEADER + plen && is_progress(in_ptr(c) + PKT_HEADER, plen)) {
                in_drain(c, PKT_HEADER + plen);
                continue;
            }
            if (avail < PKT_HEADER + 3 || (plen < PKT_MAX_PAYLOAD && avail < PKT_HEADER + plen &&
                                           in_ptr(c)[PKT_HEADER] == 0xFF))
                return true; /* wait for the whole packet: it may be a progress report */
            /* The server spoke before the file ended (killed, net_read_timeout, a packet
             * too large): what it would read next is not the file any more. */
            char said[200] = "";
            const uint8_t *h = in_ptr(c);
            size_t n = avail >= PKT_HEADER ? pkt_u24(h) : 0;
            if (avail >= PKT_HEADER + 3 && n >= 3 && avail >= PKT_HEADER + n &&
                h[PKT_HEADER] == 0xFF) {
                size_t skip = n >= 9 && h[PKT_HEADER + 3] == '#' ? 9 : 3;
                snprintf(said, sizeof(said), ": %u %.*s", pkt_u16(h + PKT_HEADER + 1),
                         (int)(n > skip ? (n - skip > 120 ? 120 : n - skip) : 0),
                         (const char *)h + PKT_HEADER + skip);
            }
            infile_abort(c, 2027, "envproxy: the backend answered before the end of the file%s",
                         said);
            return false;
        }
        if (c->rl_remaining > 0) {
            if (avail == 0)
                return true;
            size_t n = avail < c->rl_remaining ? avail : c->rl_remaining;
            if (c->rl_discard)
                in_drain(c, n);
            else
                in_to_out(c, n);
            c->rl_remaining -= n;
            if (c->rl_remaining > 0)
                return true;
            if (!c->rl_continued && c->rl == RL_ONE) {
                relay_finish(c, false);
                return false;
            }
            continue;
        }
        if (c->rl == RL_ROWS && !c->rl_continued && !c->rl_interrupt && !c->rl_sink) {
            rows_run(c);
            avail = in_avail(c);
        }
        if (avail < PKT_HEADER)
            return true;
        const uint8_t *h = in_ptr(c);
        size_t len = pkt_u24(h);
        if (c->rl_continued) {
            /* The next physical part of a long packet. */
            stream_packet(c, len);
            if (len == 0 && c->rl == RL_ONE) {
                relay_finish(c, false);
                return false;
            }
            continue;
        }
        if (len > 0 && avail < PKT_HEADER + 1)
            return true;
        uint8_t first = len > 0 ? h[PKT_HEADER] : 0;

        bool is_eof = first == 0xFE && len < 9;
        if (c->rl_interrupt && !c->rl_sink &&
            !(first == 0xFF || (c->rl == RL_FIRST && first == 0x00) ||
              (is_eof && (c->rl == RL_ROWS || c->rl == RL_FIELDS))))
            sink_start(c); /* interrupted: no more of the result goes to the client */
        bool is_column = c->rl == RL_COLUMNS || (c->rl == RL_FIELDS && !is_eof && first != 0xFF);
        bool preparing = c->rl >= RL_PREP_OK;
        bool whole = c->rl == RL_FIRST || c->rl == RL_COLS_EOF || first == 0xFF || is_eof ||
                     (is_column && (b->ext_metadata != c->ext_meta || c->rl_capture)) ||
                     preparing;
        c->rl_discard = false;
        if (!whole) {
            /* A row or a column definition: copy it as it comes. */
            if (c->rl == RL_COLUMNS && --c->rl_columns == 0)
                c->rl = RL_COLS_EOF;
            if (c->rl == RL_ROWS) {
                /* max_rows: rows past the cap are read and dropped, never buffered. */
                long long cap = client_max_rows(c, c->route.env);
                if (cap > 0 && c->rl_rows >= (uint64_t)cap && !c->rl_truncated &&
                    client_cap_fails(c)) {
                    /* A dump or export cut short would restore without complaint: fail it
                     * instead. Decided once per result, at its first row past the cap. */
                    char msg[240];
                    snprintf(msg, sizeof(msg),
                             "the result has more than %lld rows (limits.max_rows): a dump "
                             "or export of it would be incomplete; see \"Backups\" in the "
                             "README (user limits NAME --max-rows 0)",
                             cap);
                    relay_fail(c, 1104, msg);
                    return false;
                }
                if (cap > 0 && c->rl_rows >= (uint64_t)cap) {
                    c->rl_discard = true;
                    c->rl_truncated = true;
                } else {
                    c->rl_rows++;
                }
            }
            if (!c->rl_discard && c->rl != RL_ONE && len < PKT_MAX_PAYLOAD &&
                avail >= PKT_HEADER + len) {
                in_pass_packet(c, PKT_HEADER + len); /* whole: no copy of its own */
                continue;
            }
            stream_packet(c, len);
            if (len == 0 && c->rl == RL_ONE) {
                relay_finish(c, false);
                return false;
            }
            continue;
        }
        if (len >= PKT_MAX_PAYLOAD) {
            relay_fail(c, 2027, "malformed response from the backend");
            return false;
        }
        if (avail < PKT_HEADER + len)
            return true;
        const uint8_t *p = in_ptr(c) + PKT_HEADER;
        if (is_progress(p, len)) {
            in_drain(c, PKT_HEADER + len);
            continue;
        }

        if (preparing) {
            int r = relay_prepare_packet(c, p, len);
            if (r < 0) {
                relay_fail(c, 2027, "malformed COM_STMT_PREPARE response from the backend");
                return false;
            }
            if (r == 0)
                return false; /* the response ended */
            continue;
        }
        if (first == 0xFF) {
            uint16_t code = len >= 3 ? pkt_u16(p + 1) : 0;
            if (c->rl_interrupt && !c->rl_sink &&
                (code == 1317 || code == 1927 || code == 1969 || code == 3024))
                sink_start(c); /* our kill's error: the client gets the interruption's */
            if (c->rl_sink) {
                in_drain(c, PKT_HEADER + len);
                relay_finish(c, true);
                return false;
            }
            if (len >= 3) {
                /* For the audit log: "code: message" (after the SQLSTATE marker). */
                size_t skip = len >= 9 && p[3] == '#' ? 9 : 3;
                snprintf(c->rl_error, sizeof(c->rl_error), "%u: %.*s", code,
                         (int)(len > skip ? len - skip : 0), (const char *)p + skip);
            }
            if (code == 1153 || (code >= 1157 && code <= 1161))
                c->be->closing = true; /* the server closes after these (net_read errors) */
            /* ERR: unchanged but for the sequence id; the response ends here. */
            in_pass_packet(c, PKT_HEADER + len);
            c->rl_total_rows += c->rl_rows;
            relay_finish(c, true);
            return false;
        }
        if (is_column && !is_eof && first != 0xFF) {
            /* A column definition in the client's format: with MariaDB's extended metadata
             * when it asked for it, without otherwise. */
            uint8_t out_room[512];
            pbuf out;
            pbuf_init_on(&out, out_room, sizeof(out_room));
            int bad = pkt_copy_column(&out, &c->seq, p, len, b->ext_metadata, c->ext_meta);
            if (!bad) {
                out_put(c, out.data, out.len);
                if (c->rl_capture && c->rl == RL_COLUMNS)
                    keep_packet(&c->stmt_be->result_columns, p, len);
            }
            pbuf_free(&out);
            if (bad) {
                relay_fail(c, 2027, "malformed column definition from the backend");
                return false;
            }
            in_drain(c, PKT_HEADER + len);
            if (c->rl == RL_COLUMNS && --c->rl_columns == 0)
                c->rl = RL_COLS_EOF;
            continue;
        }
        uint16_t status = 0;
        switch (c->rl) {
        case RL_FIRST:
            if (c->exec_long_data)
                stmt_exec_done(c); /* the server has the EXECUTE's long data: used up */
            if (first == 0x00) {
                if (relay_ok(c, p, len, &status)) {
                    relay_fail(c, 2027, "malformed OK packet from the backend");
                    return false;
                }
                in_drain(c, PKT_HEADER + len);
                if (!(status & ST_MORE_RESULTS)) {
                    relay_finish(c, false);
                    return false;
                }
                continue;
            }
            if (first == 0xFB) {
                if (c->rl_infile != INF_NONE) {
                    relay_fail(c, 2027, "the backend asked for a second local file");
                    return false;
                }
                uint8_t be_seq = in_ptr(c)[3];
                in_drain(c, PKT_HEADER + len);
                infile_request(c, p, len, be_seq);
                continue;
            }
            {
                /* A column count; MariaDB adds a "metadata follows" byte for clients with
                 * MARIADB_CLIENT_CACHE_METADATA (Connector/C asks for it). The client gets the
                 * plain count, and the metadata must follow. */
                preader r;
                uint64_t n;
                uint8_t follows = 1;
                pr_init(&r, p, len);
                if (!pr_lenenc(&r, &n, NULL) || n == 0 ||
                    (pr_left(&r) == 1 && !pr_u8(&r, &follows)) || pr_left(&r) != 0 ||
                    follows > 1) {
                    relay_fail(c, 2027, "malformed result set header from the backend");
                    return false;
                }
                /* follows == 0: the backend statement's metadata did not change since its
                 * last execution (or its PREPARE) and is not repeated; the client gets it
                 * from what was kept of that. */
                be_stmt *e = c->job == JOB_STMT ? c->stmt_be : NULL;
                if (follows == 0 && (!e || e->n_result_columns != n)) {
                    relay_fail(c, 2027, "result without metadata from the backend");
                    return false;
                }
                c->rl_columns = n;
                in_drain(c, PKT_HEADER + len);
                c->rl_capture = follows == 1 && e != NULL;
                const pbuf *kept = follows == 0 ? &e->result_columns : NULL;
                uint8_t *room = n < 251 && b->ext_metadata == c->ext_meta && !c->rl_capture
                                    ? out_room(c, PKT_HEADER + 1 + (kept ? kept->len : 0))
                                    : NULL;
                if (room) {
                    /* The usual case built in place: the count, and the definitions kept
                     * from an earlier execution when the backend skipped them. */
                    pkt_put_header(room, 1, c->seq++);
                    room[PKT_HEADER] = (uint8_t)n;
                    size_t used = PKT_HEADER + 1;
                    if (kept)
                        used += pkt_reframe_into(room + used, kept->data, kept->len, &c->seq);
                    out_ref(c, room, used);
                    c->rl = kept ? RL_COLS_EOF : RL_COLUMNS;
                    continue;
                }
                uint8_t out_room[512];
                pbuf out;
                pbuf_init_on(&out, out_room, sizeof(out_room));
                size_t start = pkt_begin(&out);
                pbuf_lenenc(&out, n);
                pkt_end(&out, start, &c->seq);
                if (follows == 0 && pkt_append_columns(&out, &e->result_columns, &c->seq,
                                                       b->ext_metadata, c->ext_meta)) {
                    pbuf_free(&out);
                    relay_fail(c, 2027, "malformed kept column definitions");
                    return false;
                }
                /* MariaDB skips the metadata when it did not change since the statement's
                 * last execution: keep this execution's for the next one. */
                if (c->rl_capture) {
                    pbuf_reset(&e->result_columns);
                    e->n_result_columns = n;
                }
                out_put(c, out.data, out.len);
                pbuf_free(&out);
                if (follows == 0) {
                    c->rl = RL_COLS_EOF;
                    continue;
                }
            }
            c->rl = RL_COLUMNS;
            continue;
        case RL_COLS_EOF:
            if (!is_eof) {
                relay_fail(c, 2027, "malformed result set from the backend");
                return false;
            }
            if (c->caps & CAP_DEPRECATE_EOF)
                in_drain(c, PKT_HEADER + len);
            else
                in_pass_packet(c, PKT_HEADER + len); /* unchanged but for the sequence id */
            c->rl = RL_ROWS;
            continue;
        case RL_PREP_OK:
        case RL_PREP_PARAMS:
        case RL_PREP_PARAMS_EOF:
        case RL_PREP_COLS:
        case RL_PREP_COLS_EOF:
        case RL_INFILE:
            return false; /* handled above */
        case RL_ROWS:
        case RL_FIELDS:
        case RL_COLUMNS:
        case RL_ONE: {
            if (c->rl == RL_COLUMNS || c->rl == RL_ONE) {
                relay_fail(c, 2027, "malformed result set from the backend");
                return false;
            }
            uint16_t warnings;
            pkt_parse_eof(p, len, &warnings, &status);
            if (warnings)
                c->rl_warned = true;
            c->last_status = status;
            b->status = status;
            session_note_status(b, status);
            in_drain(c, PKT_HEADER + len);
            if (c->rl_vdbs && c->rl == RL_ROWS) {
                /* SHOW DATABASES: the virtual schemas are listed too. */
                static const char *const names[] = {"__compare", "__envs", "__queries"};
                c->rl_vdbs = false;
                uint8_t extra_room[512];
                pbuf extra;
                pbuf_init_on(&extra, extra_room, sizeof(extra_room));
                for (int k = 0; k < 3; k++) {
                    const char *pat = c->rl_vdbs_like;
                    if (pat && !vq_like(names[k], strlen(names[k]), pat, strlen(pat)))
                        continue;
                    pkt_build_text_row(&extra, &c->seq, 1, &names[k], NULL);
                }
                out_put(c, extra.data, extra.len);
                pbuf_free(&extra);
            }
            if (c->rl_truncated) {
                /* The result ends normally, with one more warning: SHOW WARNINGS says why. */
                if (warnings < 0xFFFF)
                    warnings++;
                c->truncated_to = client_max_rows(c, c->route.env);
                log_info("conn %u %s user=%s env=%s: result truncated to %lld rows", c->id,
                         c->addr, c->user, c->route.env->name, c->truncated_to);
            }
            c->rl_total_rows += c->rl_rows;
            c->rl_rows = 0;
            c->rl_truncated = false;
            put_eof(c, warnings, txn_status(c, b, status));
            if (status & ST_MORE_RESULTS) {
                c->rl = RL_FIRST;
                continue;
            }
            relay_finish(c, false);
            return false;
        }
        }
    }
}

/* Handles a batch: what b->in holds, then n fresh bytes. Returns false when the relay
 * ended (the window was closed by whatever ended it). */
static bool relay_process(client *c, uint8_t *fresh, size_t n)
{
    in_open(c, fresh, n);
    bool going = relay_process_packets(c);
    if (going)
        relay_end_batch(c);
    return going;
}

/* Interrupted with no packet half sent to the client: the rest is dropped or ends the
 * response, so the backend is read whatever the client takes. */
static bool interrupt_at_boundary(const client *c)
{
    return c->rl_sink ||
           (c->rl_interrupt && c->rl_remaining == 0 && !c->rl_continued) ||
           (c->rl_interrupt && c->rl_discard);
}

/* An interrupted statement whose client stopped reading in the middle of a packet: the
 * rest of that one packet (under 16 MiB) is read and queued for the client anyway, so that
 * the sink starts at its end and the client gets the interruption's ERR after whole
 * packets, instead of being disconnected when the grace time passes with half a packet
 * sent (the kill's side connection may not log in, or the server not stop in time). A row
 * split over several 16 MiB packets is not: past the grace time that client is closed. */
static bool interrupt_reads_on(const client *c)
{
    return c->rl_interrupt && !c->rl_continued;
}

/* Pauses reading from the backend while the client has much unsent output. */
static bool relay_throttle(client *c)
{
    if (c->rl == RL_INFILE)
        return false; /* the backend is being sent the file, the client gets nothing */
    if (client_out_queued(c) < RELAY_HIGH_WATER)
        return false;
    if (interrupt_at_boundary(c))
        return false; /* nothing more goes to the client but a small final packet */
    if (interrupt_reads_on(c))
        return false; /* the end of the packet half sent; the sink takes the rest */
    backend_unwatch(c->be);
    c->rl_paused = true;
    bufferevent_setwatermark(c->bev, EV_WRITE, RELAY_LOW_WATER, 0);
    return true;
}

void relay_resume(client *c)
{
    if (c->state != CL_RELAY || !c->rl_paused)
        return;
    c->rl_paused = false;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (!relay_process(c, NULL, 0))
        return;
    if (!relay_throttle(c))
        backend_watch(c->be, relay_backend_cb, c);
}

static void relay_backend_cb(evutil_socket_t fd, short what, void *arg)
{
    client *c = arg;
    backend *b = c->be;
    if (what & EV_WRITE) {
        if (backend_flush(b) < 0) {
            relay_fail(c, 2013, "lost connection to the backend while sending the statement");
            return;
        }
    }
    if (what & EV_READ) {
        /* Straight into the worker's buffer, and handled from there: bytes that end the
         * response are never stored. A few bytes left over from the last batch (a packet
         * header cut by the end of a read) go in front of the new ones, so that the batch
         * is still handled where it was read instead of being copied into b->in whole. */
        for (size_t total = 0; total < RELAY_READ_MAX;) {
            size_t carry = evbuffer_get_length(b->in);
            if (carry > RELAY_CARRY_MAX)
                carry = 0; /* a long packet under way: in_open appends to b->in */
            size_t cap = sizeof(read_buf) - carry;
            int n = backend_read(b, read_buf + carry, cap);
            if (n == -2)
                break;
            if (n <= 0) {
                relay_fail(c, 2013, "lost connection to the backend during the query");
                return;
            }
            if (carry)
                evbuffer_remove(b->in, read_buf, carry);
            if (!relay_process(c, read_buf, carry + (size_t)n))
                return;
            total += (size_t)n;
            if ((size_t)n < cap || client_out_queued(c) >= RELAY_HIGH_WATER)
                break;
        }
    }
    if (!relay_throttle(c))
        backend_watch(b, relay_backend_cb, c);
    if (c->rl == RL_INFILE && (!c->in_paused || evbuffer_get_length(b->out) < INFILE_LOW_WATER))
        relay_file_input(c); /* the backend took some of the file: more may go */
}

void relay_queue_command(backend *b, const uint8_t *payload, size_t len)
{
    size_t parts = pkt_part_count(len);
    for (size_t i = 0; i < parts; i++) {
        size_t off, n;
        pkt_part(len, i, &off, &n);
        uint8_t h[PKT_HEADER];
        pkt_put_header(h, n, (uint8_t)i);
        evbuffer_add(b->out, h, PKT_HEADER);
        evbuffer_add(b->out, payload + off, n);
    }
}

void relay_start(client *c, relay_state first)
{
    relay_send(c, first, c->cmd.data, c->cmd.len);
}

void relay_send(client *c, relay_state first, const uint8_t *payload, size_t len)
{
    backend *b = c->be;
    if (!c->route.read_only) {
        b->tainted = true; /* see backend.tainted */
        /* Both arrays hold a name of at most ROUTE_NAME_MAX bytes: a copy, not snprintf. */
        _Static_assert(sizeof(b->taint_user) == sizeof(c->user), "taint_user holds a user");
        memcpy(b->taint_user, c->user, sizeof(b->taint_user));
    }
    c->rl_mode_tracked = false;
    c->state = CL_RELAY;
    c->rl = first;
    c->rl_remaining = 0;
    c->rl_continued = false;
    c->rl_paused = false;
    c->rl_rows = 0;
    c->rl_discard = false;
    c->rl_truncated = false;
    c->rl_interrupt = RLI_NONE;
    c->rl_sink = false;
    c->rl_ended = false;
    c->rl_end_failed = false;
    c->rl_kill = NULL;
    c->rl_count = 0;
    c->rl_infile = INF_NONE;
    c->rl_capture = false;
    c->rl_started_ms = now_ms();
    c->rl_bytes = 0;
    c->rl_total_rows = 0;
    c->rl_error[0] = '\0';
    c->rl_in = NULL;
    c->rl_in_len = c->rl_in_off = 0;
    c->rl_batch = false;
    size_t stale = evbuffer_get_length(b->in);
    if (stale)
        evbuffer_drain(b->in, stale);
    long long timeout = client_statement_timeout(c, c->route.env);
    if (timeout > 0) {
        /* A PREPARE or one-packet response runs nothing to kill: past the deadline its
         * connection is closed (deadline_passed). No timer: the worker's deadline watch
         * (relay_note_deadline) looks at it. */
        c->rl_deadline_ms = c->rl_started_ms + (uint64_t)timeout;
        relay_note_deadline(c->w, c->rl_deadline_ms);
    } else {
        c->rl_deadline_ms = 0;
    }

    if (!b->ssl && len < PKT_MAX_PAYLOAD && evbuffer_get_length(b->out) == 0) {
        /* The usual case, one packet and nothing queued: written straight from here. */
        uint8_t h[PKT_HEADER] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), 0};
        struct iovec iov[2] = {{h, PKT_HEADER}, {(void *)payload, len}};
        ssize_t n = writev(b->fd, iov, 2);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            relay_fail(c, 2013, "lost connection to the backend while sending the statement");
            return;
        }
        size_t done = n > 0 ? (size_t)n : 0;
        if (done < PKT_HEADER)
            evbuffer_add(b->out, h + done, PKT_HEADER - done);
        size_t from = done > PKT_HEADER ? done - PKT_HEADER : 0;
        if (from < len)
            evbuffer_add(b->out, payload + from, len - from);
        backend_watch(b, relay_backend_cb, c); /* with EV_WRITE while b->out holds the rest */
        return;
    }
    relay_queue_command(b, payload, len);
    if (backend_flush(b) < 0) {
        relay_fail(c, 2013, "lost connection to the backend while sending the statement");
        return;
    }
    backend_watch(b, relay_backend_cb, c);
}

/* ---- interrupting a statement (statement_timeout, KILL QUERY) ----
 * The query is killed on the server over a side connection. The client keeps what was
 * complete at that moment; from the first packet that would start or continue a result,
 * everything the backend still sends is read and dropped (the sink, whatever the client
 * takes) until the response ends, and the client then gets the interruption's ERR with the
 * next sequence id. The command ends only once the kill was answered too, so that a late
 * kill cannot hit the session's next statement. A backend that has not ended the statement
 * within the grace time is closed (relay_give_up): the deadline holds whatever it does. */

/* Time the backend gets to end an interrupted statement once the kill's side connection
 * is open: past connect_timeout plus this, its connection is closed. */
#define RELAY_KILL_GRACE_MS 1000

static long long kill_grace_ms(const backend *b)
{
    return b->pool->env->pool.connect_timeout_ms + RELAY_KILL_GRACE_MS;
}

/* The side connection answered the kill (or failed to deliver it). */
static void kill_answered(void *arg, bool ended)
{
    client *c = arg;
    c->rl_kill = NULL;
    if (!ended)
        log_warn("conn %u %s user=%s env=%s: the statement could not be killed; its connection "
                 "is closed unless it ends in time",
                 c->id, c->addr, c->user, c->be ? c->be->pool->env->name : "-");
    if (c->rl_ended)
        interrupted_end(c);
}

bool relay_interrupt(client *c, int why)
{
    backend *b = c->be;
    if (c->state != CL_RELAY || !b)
        return false;
    if (c->rl_interrupt)
        return true; /* under way */
    if (c->rl == RL_INFILE) {
        /* Half a file went to the server: only closing its connection ends the statement
         * without committing what arrived. */
        if (why == RLI_TIMEOUT)
            infile_abort(c, 3024,
                         "Query execution was interrupted, maximum statement execution time "
                         "exceeded");
        else
            infile_abort(c, 1317, "Query execution was interrupted");
        return true;
    }
    if (c->rl >= RL_ONE) {
        /* A one-packet or PREPARE response: short, the kill alone does. */
        backend_kill_query(b->pool, c->w->base, b->thread_id, NULL, NULL);
        return true;
    }
    c->rl_interrupt = (uint8_t)why;
    c->rl_sink = false;
    c->rl_ended = false;
    client_timer_arm(c, now_ms(), kill_grace_ms(b));
    struct be_kill *k = backend_kill_query(b->pool, c->w->base, b->thread_id, kill_answered, c);
    c->rl_kill = k; /* NULL when it was over at once */
    if (c->rl_paused && (interrupt_at_boundary(c) || interrupt_reads_on(c))) {
        /* The client takes nothing more than the end of its packet: read on, the rest is
         * dropped. */
        c->rl_paused = false;
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        if (!relay_process(c, NULL, 0))
            return true;
        backend_watch(c->be, relay_backend_cb, c);
    }
    return true;
}

/* The grace time passed and the interrupted statement has not ended (or its kill was not
 * answered): the backend connection is closed, which ends the statement on the server side
 * too, and the client is told, with the session's lost state if it had any. */
static void relay_give_up(client *c)
{
    backend *b = c->be;
    const cfg_env *e = b->pool->env;
    long long grace = kill_grace_ms(b);
    bool mid_packet = !c->rl_sink && !c->rl_ended && !c->rl_discard &&
                      (c->rl_remaining > 0 || c->rl_continued);
    log_warn("conn %u %s user=%s env=%s: the backend did not end the interrupted statement "
             "within %lld ms; closing backend connection %lu",
             c->id, c->addr, c->user, e->name, grace, b->thread_id);
    backend_kill_forget(c->rl_kill);
    c->rl_kill = NULL;
    backend_unwatch(b);
    /* No COM_QUIT behind the statement: a server that resumes reads the end of the stream
     * right after it, which ends a waiting statement (SLEEP, a lock wait) too. */
    if (b->fd >= 0)
        shutdown(b->fd, SHUT_RDWR);
    if (mid_packet) {
        /* Half a packet went to the client: no error can follow it cleanly. */
        client_free(c);
        return;
    }
    if (c->rl_ended && !c->rl_sink) {
        /* The client has its whole response; only the kill's answer is missing, and a late
         * kill must not hit the next statement: the connection goes. With session state on
         * it, it stays held, closed: the next statement reports the loss. */
        relay_count(c, c->rl_end_failed);
        if (!client_session_has_state(c, b))
            client_drop_backend(c, b);
        interrupt_clear(c);
        client_command_done(c);
        return;
    }
    if (c->rl_sink) {
        c->seq = c->rl_seq_cut;
        c->rl_total_rows = c->rl_rows_cut;
    } else {
        c->rl_total_rows += c->rl_rows;
    }
    c->rl_sink = false;
    snprintf(c->rl_error, sizeof(c->rl_error), "%s: the backend did not stop it; closed",
             c->rl_interrupt == RLI_TIMEOUT ? "3024: statement_timeout"
                                            : "1317: Query execution was interrupted");
    relay_count(c, true);
    char note[200] = "", more[400];
    if (client_session_has_state(c, b)) {
        /* 3024 and 1317 end a statement, not a transaction: a client goes on with it, and
         * its COMMIT, on a new connection, answered OK for work that was gone. The closed
         * connection stays held, as for a response that had ended (above): the session's
         * next statement there fails as after a restart (2013, the state named). */
        snprintf(note, sizeof(note),
                 "; the session's state there is lost with it: its next statement there "
                 "fails");
        log_warn("conn %u %s user=%s env=%s: backend connection %lu closed with session "
                 "state; the next statement there reports it",
                 c->id, c->addr, c->user, e->name, b->thread_id);
    } else {
        client_drop_backend(c, b);
    }
    snprintf(more, sizeof(more),
             " (envproxy: environment '%s' did not stop it within %lld ms, so its connection "
             "was closed%s)",
             e->name, grace, note);
    interrupt_error(c, more);
    interrupt_clear(c);
    client_command_done(c);
}

static void deadline_passed(client *c);

void relay_timeout(client *c)
{
    backend *b = c->be;
    if (c->state == CL_RELAY && c->rl == RL_INFILE && c->rl_infile == INF_DRAIN) {
        log_warn("conn %u %s user=%s: sent nothing of its file for %d ms after the statement "
                 "failed; disconnecting it",
                 c->id, c->addr, c->user, INFILE_STALL_MS);
        client_free(c);
        return;
    }
    if (c->state != CL_RELAY || !b)
        return;
    if (c->rl_interrupt) {
        relay_give_up(c);
        return;
    }
    /* The timer may have been added for something else (the idle timeout's): the statement's
     * deadline is the deadline watch's (relay_check_deadlines). */
    if (c->rl_deadline_ms && now_ms() >= c->rl_deadline_ms)
        deadline_passed(c);
}

/* The statement of c (in the relay, not interrupted) ran past its statement_timeout. */
static void deadline_passed(client *c)
{
    backend *b = c->be;
    if (c->rl >= RL_ONE) {
        relay_fail(c, 2013, "no answer from the backend within statement_timeout; its "
                            "connection was closed");
        return;
    }
    log_warn("conn %u %s user=%s env=%s: statement_timeout (%lld ms) passed; killing query on "
             "backend thread %lu",
             c->id, c->addr, c->user, b->pool->env->name,
             client_statement_timeout(c, b->pool->env), b->thread_id);
    relay_interrupt(c, RLI_TIMEOUT);
}

void relay_note_deadline(worker *w, uint64_t deadline_ms)
{
    uint64_t due = atomic_load_explicit(&w->deadline_due, memory_order_relaxed);
    if (!due || deadline_ms < due)
        atomic_store_explicit(&w->deadline_due, deadline_ms, memory_order_relaxed);
}

void relay_check_deadlines(worker *w)
{
    /* Cleared first: a deadline noted from here on is seen by the next watch. */
    atomic_store(&w->deadline_posted, false);
    uint64_t now = now_ms(), next = 0;
    client *c = w->clients;
    while (c) {
        client *after = c->next; /* deadline_passed may end c, never another client */
        /* An interrupted statement waits for its grace time on the client's own timer. */
        if (c->state == CL_RELAY && c->be && c->rl_deadline_ms && !c->rl_interrupt) {
            if (now >= c->rl_deadline_ms)
                deadline_passed(c);
            else if (!next || c->rl_deadline_ms < next)
                next = c->rl_deadline_ms;
        }
        c = after;
    }
    atomic_store_explicit(&w->deadline_due, next, memory_order_relaxed);
}

void relay_client_gone(client *c)
{
    if (ob.owner == c)
        ob_release();
    backend_kill_forget(c->rl_kill);
    c->rl_kill = NULL;
}

/* ---- LOAD DATA LOCAL INFILE ----
 * The backend asks for a file with a 0xFB packet naming it. It is passed to the client only
 * when it names, byte for byte, the file of the client's own statement (handle_query keeps
 * it) and the client announced CLIENT_LOCAL_FILES; any other request is answered with an
 * empty file, so that the server ends the statement without data, and the client gets an
 * error instead of the server's answer. The proxy never opens a file itself.
 *
 * The client's file packets are then moved to the backend as they come, with the backend's
 * sequence ids, never more than INFILE_HIGH_WATER queued: above it the client is not read
 * until the backend took most of it. The client's empty packet ends the file; the server's
 * OK or ERR is relayed as any. Anything that stops the transfer half way (the backend
 * answering or breaking, statement_timeout, KILL QUERY) closes the backend connection,
 * which ends the statement on the server without committing it: the server would read
 * whatever came next as more of the file. The rest of the client's file is then read and
 * dropped, and its end answered with the error (INF_DRAIN). */

bool relay_reads_file(const client *c)
{
    return c->state == CL_RELAY && c->rl == RL_INFILE;
}

static void set_reading(client *c, bool on)
{
    if (on && c->in_paused) {
        c->in_paused = false;
        bufferevent_enable(c->bev, EV_READ);
    } else if (!on && !c->in_paused) {
        c->in_paused = true;
        bufferevent_disable(c->bev, EV_READ);
    }
}

static void arm_stall_timer(client *c)
{
    client_timer_arm(c, now_ms(), INFILE_STALL_MS);
}

/* Keeps printable ASCII of a server's file name for the log. */
static void printable(char *out, size_t cap, const uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++)
        out[o++] = s[i] >= 0x20 && s[i] < 0x7F ? (char)s[i] : '?';
    out[o] = '\0';
}

/* The backend's request for a file (payload p, len bytes, sequence id be_seq), taken off
 * the window. */
static void infile_request(client *c, const uint8_t *p, size_t len, uint8_t be_seq)
{
    backend *b = c->be;
    const cfg_env *e = b->pool->env;
    const char *why = NULL;
    if (c->rl_interrupt)
        why = "interrupted";
    else if (!c->infile_name)
        why = "the statement is not LOAD DATA LOCAL INFILE";
    else if (!(c->caps & CAP_LOCAL_FILES))
        why = "the client did not enable LOCAL INFILE";
    else if (!rewrite_infile_request_matches(c->infile_name, c->infile_len, p, len))
        why = "it is not the file the statement names";
    if (!why) {
        put_header(c, len);
        out_put(c, p, len);
        c->rl = RL_INFILE;
        c->rl_infile = INF_SENDING;
        c->rl_be_seq = (uint8_t)(be_seq + 1);
        c->rl_file_left = 0;
        c->rl_file_cont = false;
        c->rl_file_bytes = 0;
        return;
    }
    /* An empty file: the server ends the statement without data. Its answer is dropped. */
    char name[120];
    printable(name, sizeof(name), p + 1, len > 0 ? len - 1 : 0);
    log_warn("conn %u %s user=%s env=%s: the backend asked for local file '%s'; refused (%s)",
             c->id, c->addr, c->user, e->name, name, why);
    uint8_t h[PKT_HEADER] = {0, 0, 0, (uint8_t)(be_seq + 1)};
    evbuffer_add(b->out, h, PKT_HEADER);
    if (!c->rl_sink)
        sink_start(c);
    c->rl_infile = INF_DECLINED;
    c->rl_infile_code = 1148;
    if (!c->infile_name)
        snprintf(c->rl_infile_msg, sizeof(c->rl_infile_msg),
                 "envproxy: environment '%s' asked for a local file although the statement is "
                 "not LOAD DATA LOCAL INFILE; nothing was sent",
                 e->name);
    else if (!(c->caps & CAP_LOCAL_FILES))
        snprintf(c->rl_infile_msg, sizeof(c->rl_infile_msg),
                 "envproxy: LOAD DATA LOCAL INFILE needs a client that allows it (mariadb "
                 "--local-infile=1, PyMySQL local_infile=True); nothing was sent");
    else
        snprintf(c->rl_infile_msg, sizeof(c->rl_infile_msg),
                 "envproxy: environment '%s' asked for a local file other than the one the "
                 "statement names; nothing was sent and the statement ended without data",
                 e->name);
}

/* Stops a transfer half way (see above). fmt is the start of the client's error. */
static void infile_abort(client *c, uint16_t code, const char *fmt, ...)
{
    backend *b = c->be;
    relay_end_batch(c);
    char head[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    const cfg_env *e = b->pool->env;
    log_warn("conn %u %s user=%s env=%s: LOAD DATA LOCAL INFILE stopped after %llu bytes of "
             "the file (%s); closing backend connection %lu",
             c->id, c->addr, c->user, e->name, c->rl_file_bytes, head, b->thread_id);
    backend_unwatch(b);
    evbuffer_drain(b->out, evbuffer_get_length(b->out));
    if (b->fd >= 0)
        shutdown(b->fd, SHUT_RDWR); /* the end of the stream, no COM_QUIT inside the file */
    client_timer_stop(c);
    snprintf(c->rl_error, sizeof(c->rl_error), "%u: %.180s", code, head);
    relay_count(c, true);
    interrupt_clear(c);
    stmt_relay_failed(c);
    char note[200];
    client_lose_backend(c, b, note, sizeof(note)); /* c->be is NULL from here */
    snprintf(c->rl_infile_msg, sizeof(c->rl_infile_msg),
             "%.160s (envproxy: the file was being sent; the connection to environment '%.64s' "
             "was closed, so the statement did not complete%s)",
             head, e->name, note);
    c->rl_infile_code = code;
    c->rl_infile = INF_DRAIN;
    arm_stall_timer(c);
    set_reading(c, true);
    relay_file_input(c); /* what the client sent already */
}

/* The client broke the framing of its file: it cannot be answered in step any more. */
static void infile_bad_client(client *c, uint8_t seq)
{
    log_warn("conn %u %s user=%s: packet out of order in its LOAD DATA LOCAL INFILE file "
             "(sequence %u, expected %u)",
             c->id, c->addr, c->user, seq, c->seq);
    if (c->be) {
        backend *b = c->be;
        backend_unwatch(b);
        evbuffer_drain(b->out, evbuffer_get_length(b->out));
        if (b->fd >= 0)
            shutdown(b->fd, SHUT_RDWR);
        snprintf(c->rl_error, sizeof(c->rl_error), "1156: packets out of order in the file");
        relay_count(c, true);
        interrupt_clear(c);
        char note[200];
        client_lose_backend(c, b, note, sizeof(note));
    }
    client_timer_stop(c);
    c->rl_infile = INF_DRAIN;
    c->rl = RL_FIRST; /* nothing more of the client is read as a file */
    set_reading(c, true);
    c->seq = (uint8_t)(seq + 1);
    client_send_err(c, 1156, "08S01", "Got packets out of order");
    client_close_after_flush(c);
}

void relay_file_input(client *c)
{
    if (!relay_reads_file(c))
        return;
    client_input_own(c); /* chains of the input are moved to the backend below */
    struct evbuffer *in = bufferevent_get_input(c->bev);
    backend *b = c->rl_infile == INF_SENDING ? c->be : NULL;
    bool ended = false, moved = false;
    for (;;) {
        if (b && evbuffer_get_length(b->out) >= INFILE_HIGH_WATER)
            break;
        size_t avail = evbuffer_get_length(in);
        if (c->rl_file_left > 0) {
            if (avail == 0)
                break;
            size_t n = avail < c->rl_file_left ? avail : c->rl_file_left;
            if (b)
                evbuffer_remove_buffer(in, b->out, n);
            else
                evbuffer_drain(in, n);
            c->rl_file_left -= n;
            c->rl_file_bytes += n;
            moved = true;
            continue;
        }
        if (avail < PKT_HEADER)
            break;
        uint8_t h[PKT_HEADER];
        evbuffer_copyout(in, h, PKT_HEADER);
        if (h[3] != c->seq) {
            infile_bad_client(c, h[3]);
            return;
        }
        size_t len = pkt_u24(h);
        c->seq++;
        evbuffer_drain(in, PKT_HEADER);
        moved = true;
        bool last = len == 0 && !c->rl_file_cont; /* an empty packet after a full one
                                                   * only ends that packet */
        c->rl_file_cont = len == PKT_MAX_PAYLOAD;
        c->rl_file_left = len;
        if (b) {
            uint8_t bh[PKT_HEADER];
            pkt_put_header(bh, len, c->rl_be_seq++);
            evbuffer_add(b->out, bh, PKT_HEADER);
        }
        if (last) {
            ended = true;
            break;
        }
    }
    if (c->rl_infile == INF_DRAIN) {
        if (!ended) {
            if (moved)
                arm_stall_timer(c);
            return;
        }
        client_timer_stop(c);
        c->rl = RL_FIRST;
        client_send_err(c, c->rl_infile_code, "HY000", "%s", c->rl_infile_msg);
        client_command_done(c);
        return;
    }
    if (backend_flush(b) < 0) {
        relay_fail(c, 2013, "lost connection to the backend while sending the file");
        return;
    }
    if (ended) {
        /* The server's OK or ERR comes next, as for any statement. */
        c->rl = RL_FIRST;
        c->rl_infile = INF_SENT;
        set_reading(c, true);
    } else {
        set_reading(c, evbuffer_get_length(b->out) < INFILE_HIGH_WATER);
    }
    backend_watch(b, relay_backend_cb, c);
}
