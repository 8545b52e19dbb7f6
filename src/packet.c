/* packet.c: MySQL wire-protocol framing, builders and parsers. */
#include "packet.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pbuf_init(pbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->borrowed = false;
}

void pbuf_init_on(pbuf *b, uint8_t *storage, size_t cap)
{
    b->data = storage;
    b->len = 0;
    b->cap = cap;
    b->borrowed = true;
}

void pbuf_free(pbuf *b)
{
    if (!b->borrowed)
        free(b->data);
    pbuf_init(b);
}

void pbuf_reset(pbuf *b)
{
    b->len = 0;
}

void pbuf_reserve(pbuf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *d = realloc(b->borrowed ? NULL : b->data, cap);
    if (!d) {
        fprintf(stderr, "envproxy: out of memory\n");
        abort();
    }
    if (b->borrowed && b->len)
        memcpy(d, b->data, b->len);
    b->borrowed = false;
    b->data = d;
    b->cap = cap;
}

void pbuf_put(pbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    pbuf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void pbuf_u8(pbuf *b, uint8_t v)
{
    pbuf_put(b, &v, 1);
}

void pbuf_u16(pbuf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    pbuf_put(b, x, 2);
}

void pbuf_u24(pbuf *b, uint32_t v)
{
    uint8_t x[3] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16)};
    pbuf_put(b, x, 3);
}

void pbuf_u32(pbuf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    pbuf_put(b, x, 4);
}

void pbuf_lenenc(pbuf *b, uint64_t v)
{
    if (v < 251) {
        pbuf_u8(b, (uint8_t)v);
    } else if (v < 0x10000) {
        pbuf_u8(b, 0xFC);
        pbuf_u16(b, (uint16_t)v);
    } else if (v < 0x1000000) {
        pbuf_u8(b, 0xFD);
        pbuf_u24(b, (uint32_t)v);
    } else {
        pbuf_u8(b, 0xFE);
        pbuf_u32(b, (uint32_t)v);
        pbuf_u32(b, (uint32_t)(v >> 32));
    }
}

void pbuf_lenenc_str(pbuf *b, const void *s, size_t n)
{
    pbuf_lenenc(b, n);
    pbuf_put(b, s, n);
}

void pbuf_cstr(pbuf *b, const char *s)
{
    pbuf_put(b, s, strlen(s) + 1);
}

size_t pkt_begin(pbuf *b)
{
    size_t start = b->len;
    pbuf_reserve(b, PKT_HEADER);
    b->len += PKT_HEADER;
    return start;
}

size_t pkt_part_count(size_t len)
{
    return len / PKT_MAX_PAYLOAD + 1;
}

void pkt_part(size_t len, size_t i, size_t *off, size_t *n)
{
    size_t o = i * (size_t)PKT_MAX_PAYLOAD;
    *off = o < len ? o : len;
    size_t rest = len - *off;
    *n = rest > PKT_MAX_PAYLOAD ? PKT_MAX_PAYLOAD : rest;
}

void pkt_put_header(uint8_t h[PKT_HEADER], size_t n, uint8_t seq)
{
    h[0] = (uint8_t)n;
    h[1] = (uint8_t)(n >> 8);
    h[2] = (uint8_t)(n >> 16);
    h[3] = seq;
}

void pkt_put_framed(pbuf *out, const void *payload, size_t len, uint8_t *seq)
{
    size_t parts = pkt_part_count(len);
    pbuf_reserve(out, len + parts * PKT_HEADER);
    for (size_t i = 0; i < parts; i++) {
        size_t off, n;
        pkt_part(len, i, &off, &n);
        uint8_t h[PKT_HEADER];
        pkt_put_header(h, n, (*seq)++);
        pbuf_put(out, h, PKT_HEADER);
        pbuf_put(out, (const uint8_t *)payload + off, n);
    }
}

void pkt_append_reframed(pbuf *out, const pbuf *pkts, uint8_t *seq)
{
    if (pkts->len == 0)
        return;
    pbuf_reserve(out, pkts->len);
    out->len += pkt_reframe_into(out->data + out->len, pkts->data, pkts->len, seq);
}

size_t pkt_reframe_into(uint8_t *dst, const uint8_t *src, size_t len, uint8_t *seq)
{
    /* The whole packets first, then one copy of them and their new sequence ids. */
    size_t end = 0;
    while (end + PKT_HEADER <= len) {
        size_t n = pkt_u24(src + end);
        if (n > len - end - PKT_HEADER || n >= PKT_MAX_PAYLOAD)
            break;
        end += PKT_HEADER + n;
    }
    if (end)
        memcpy(dst, src, end);
    for (size_t off = 0; off < end; off += PKT_HEADER + pkt_u24(dst + off))
        dst[off + 3] = (*seq)++;
    return end;
}

/* Fills in the header at start. A payload of PKT_MAX_PAYLOAD bytes or more is split into
 * physical packets of PKT_MAX_PAYLOAD bytes, each with its own header, ending with a shorter
 * (possibly empty) one. */
void pkt_end(pbuf *b, size_t start, uint8_t *seq)
{
    size_t payload = b->len - start - PKT_HEADER;
    if (payload < PKT_MAX_PAYLOAD) {
        pkt_put_header(b->data + start, payload, (*seq)++);
        return;
    }
    /* Rare: rebuild with continuation headers. */
    uint8_t *copy = malloc(payload);
    if (!copy) {
        fprintf(stderr, "envproxy: out of memory\n");
        abort();
    }
    memcpy(copy, b->data + start + PKT_HEADER, payload);
    b->len = start;
    pkt_put_framed(b, copy, payload, seq);
    free(copy);
}

void pr_init(preader *r, const uint8_t *p, size_t n)
{
    r->p = p;
    r->end = p + n;
    r->bad = false;
}

size_t pr_left(const preader *r)
{
    return r->bad ? 0 : (size_t)(r->end - r->p);
}

static bool pr_need(preader *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

bool pr_u8(preader *r, uint8_t *v)
{
    if (!pr_need(r, 1))
        return false;
    *v = *r->p++;
    return true;
}

bool pr_u16(preader *r, uint16_t *v)
{
    if (!pr_need(r, 2))
        return false;
    *v = pkt_u16(r->p);
    r->p += 2;
    return true;
}

bool pr_u32(preader *r, uint32_t *v)
{
    if (!pr_need(r, 4))
        return false;
    *v = pkt_u32(r->p);
    r->p += 4;
    return true;
}

bool pr_skip(preader *r, size_t n)
{
    if (!pr_need(r, n))
        return false;
    r->p += n;
    return true;
}

bool pr_bytes(preader *r, size_t n, const uint8_t **out)
{
    if (!pr_need(r, n))
        return false;
    *out = r->p;
    r->p += n;
    return true;
}

bool pr_lenenc(preader *r, uint64_t *v, bool *is_null)
{
    uint8_t first;
    if (is_null)
        *is_null = false;
    if (!pr_u8(r, &first))
        return false;
    if (first < 0xFB) {
        *v = first;
        return true;
    }
    if (first == 0xFB) {
        if (!is_null) {
            r->bad = true;
            return false;
        }
        *is_null = true;
        *v = 0;
        return true;
    }
    size_t n = first == 0xFC ? 2 : first == 0xFD ? 3 : first == 0xFE ? 8 : 0;
    if (n == 0 || !pr_need(r, n)) {
        r->bad = true;
        return false;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    *v = x;
    return true;
}

bool pr_lenenc_str(preader *r, const uint8_t **s, size_t *n)
{
    uint64_t len;
    if (!pr_lenenc(r, &len, NULL))
        return false;
    if (len > pr_left(r)) {
        r->bad = true;
        return false;
    }
    *n = (size_t)len;
    return pr_bytes(r, (size_t)len, s);
}

bool pr_cstr(preader *r, const char **s, size_t *n)
{
    if (r->bad || r->p == r->end) {
        r->bad = true;
        return false;
    }
    const uint8_t *nul = memchr(r->p, 0, (size_t)(r->end - r->p));
    if (!nul) {
        r->bad = true;
        return false;
    }
    *s = (const char *)r->p;
    *n = (size_t)(nul - r->p);
    r->p = nul + 1;
    return true;
}

void pkt_build_greeting(pbuf *b, uint8_t *seq, const pkt_greeting *g)
{
    size_t start = pkt_begin(b);
    pbuf_u8(b, 10);
    pbuf_cstr(b, g->server_version);
    pbuf_u32(b, g->connection_id);
    pbuf_put(b, g->scramble, 8);
    pbuf_u8(b, 0);
    pbuf_u16(b, (uint16_t)(g->capabilities & 0xFFFF));
    pbuf_u8(b, g->charset);
    pbuf_u16(b, g->status);
    pbuf_u16(b, (uint16_t)(g->capabilities >> 16));
    pbuf_u8(b, 21); /* length of the auth plugin data, NUL included */
    static const uint8_t reserved[6];
    pbuf_put(b, reserved, sizeof(reserved));
    pbuf_u32(b, g->ext_capabilities);
    pbuf_put(b, g->scramble + 8, 12);
    pbuf_u8(b, 0);
    pbuf_cstr(b, g->auth_plugin);
    pkt_end(b, start, seq);
}

void pkt_build_ok(pbuf *b, uint8_t *seq, uint64_t affected, uint64_t insert_id, uint16_t status,
                  uint16_t warnings, const char *info, size_t info_len)
{
    size_t start = pkt_begin(b);
    pbuf_u8(b, 0x00);
    pbuf_lenenc(b, affected);
    pbuf_lenenc(b, insert_id);
    pbuf_u16(b, status);
    pbuf_u16(b, warnings);
    /* Servers write the message length-encoded even to clients without session tracking,
     * and Connector/C reads it that way. */
    if (info && info_len)
        pbuf_lenenc_str(b, info, info_len);
    pkt_end(b, start, seq);
}

void pkt_build_eof(pbuf *b, uint8_t *seq, uint32_t client_caps, uint16_t warnings,
                   uint16_t status)
{
    uint8_t pk[PKT_EOF_MAX];
    pbuf_put(b, pk, pkt_put_eof(pk, seq, client_caps, warnings, status));
}

size_t pkt_put_eof(uint8_t out[PKT_EOF_MAX], uint8_t *seq, uint32_t client_caps,
                   uint16_t warnings, uint16_t status)
{
    uint8_t *p = out + PKT_HEADER;
    *p++ = 0xFE;
    if (client_caps & CAP_DEPRECATE_EOF) {
        /* An OK packet with the EOF header: affected rows, insert id, status, warnings. */
        *p++ = 0;
        *p++ = 0;
        *p++ = (uint8_t)status;
        *p++ = (uint8_t)(status >> 8);
        *p++ = (uint8_t)warnings;
        *p++ = (uint8_t)(warnings >> 8);
    } else {
        *p++ = (uint8_t)warnings;
        *p++ = (uint8_t)(warnings >> 8);
        *p++ = (uint8_t)status;
        *p++ = (uint8_t)(status >> 8);
    }
    size_t payload = (size_t)(p - out) - PKT_HEADER;
    pkt_put_header(out, payload, (*seq)++);
    return PKT_HEADER + payload;
}

void pkt_build_errv(pbuf *b, uint8_t *seq, uint16_t code, const char *sqlstate, const char *fmt,
                    va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t start = pkt_begin(b);
    pbuf_u8(b, 0xFF);
    pbuf_u16(b, code);
    pbuf_u8(b, '#');
    pbuf_put(b, sqlstate, 5);
    pbuf_put(b, msg, strlen(msg));
    pkt_end(b, start, seq);
}

void pkt_build_err(pbuf *b, uint8_t *seq, uint16_t code, const char *sqlstate, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    pkt_build_errv(b, seq, code, sqlstate, fmt, ap);
    va_end(ap);
}

void pkt_build_auth_switch(pbuf *b, uint8_t *seq, const char *plugin, const uint8_t *scramble)
{
    size_t start = pkt_begin(b);
    pbuf_u8(b, 0xFE);
    pbuf_cstr(b, plugin);
    pbuf_put(b, scramble, 20);
    pbuf_u8(b, 0);
    pkt_end(b, start, seq);
}

void pkt_build_column(pbuf *b, uint8_t *seq, const char *schema, const char *table,
                      const char *name, uint16_t charset, uint32_t length, uint8_t type,
                      uint16_t flags, uint8_t decimals, bool ext)
{
    size_t start = pkt_begin(b);
    pbuf_lenenc_str(b, "def", 3);
    pbuf_lenenc_str(b, schema, strlen(schema));
    pbuf_lenenc_str(b, table, strlen(table));
    pbuf_lenenc_str(b, table, strlen(table));
    pbuf_lenenc_str(b, name, strlen(name));
    pbuf_lenenc_str(b, name, strlen(name));
    if (ext)
        pbuf_u8(b, 0); /* MariaDB's extended metadata: none */
    pbuf_lenenc(b, 0x0C);
    pbuf_u16(b, charset);
    pbuf_u32(b, length);
    pbuf_u8(b, type);
    pbuf_u16(b, flags);
    pbuf_u8(b, decimals);
    pbuf_u16(b, 0);
    pkt_end(b, start, seq);
}

void pkt_build_text_row(pbuf *b, uint8_t *seq, int n, const char *const *vals,
                        const size_t *lens)
{
    size_t start = pkt_begin(b);
    for (int i = 0; i < n; i++) {
        if (!vals[i])
            pbuf_u8(b, 0xFB);
        else
            pbuf_lenenc_str(b, vals[i], lens ? lens[i] : strlen(vals[i]));
    }
    pkt_end(b, start, seq);
}

/* The binary form of a DATETIME value: 0, 4, 7 or 11 bytes after a length byte. */
static bool put_binary_datetime(pbuf *b, const char *v, size_t n)
{
    char text[40];
    if (n >= sizeof(text))
        return false;
    memcpy(text, v, n);
    text[n] = '\0';
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, us = 0;
    int used = 0;
    if (sscanf(text, "%4u-%2u-%2u%n", &y, &mo, &d, &used) != 3)
        return false;
    if (text[used] == ' ') {
        int more = 0;
        if (sscanf(text + used, " %2u:%2u:%2u%n", &h, &mi, &sec, &more) != 3)
            return false;
        used += more;
        if (text[used] == '.') {
            char frac[7] = "000000";
            size_t k = 0;
            for (used++; text[used] >= '0' && text[used] <= '9'; used++)
                if (k < 6)
                    frac[k++] = text[used];
            us = (unsigned)strtoul(frac, NULL, 10);
        }
    }
    if (text[used] != '\0' || mo > 12 || d > 31 || h > 23 || mi > 59 || sec > 59)
        return false;
    uint8_t len = us ? 11 : (h || mi || sec) ? 7 : (y || mo || d) ? 4 : 0;
    pbuf_u8(b, len);
    if (len >= 4) {
        pbuf_u16(b, (uint16_t)y);
        pbuf_u8(b, (uint8_t)mo);
        pbuf_u8(b, (uint8_t)d);
    }
    if (len >= 7) {
        pbuf_u8(b, (uint8_t)h);
        pbuf_u8(b, (uint8_t)mi);
        pbuf_u8(b, (uint8_t)sec);
    }
    if (len == 11)
        pbuf_u32(b, us);
    return true;
}

/* A whole-string decimal number: false for anything else (empty, spaces, trailing bytes). */
static bool parse_number(const char *v, size_t n, bool integer, long long *i, double *d)
{
    char text[64];
    if (n == 0 || n >= sizeof(text))
        return false;
    memcpy(text, v, n);
    text[n] = '\0';
    char *end;
    errno = 0;
    if (integer)
        *i = strtoll(text, &end, 10);
    else
        *d = strtod(text, &end);
    return *end == '\0' && errno == 0;
}

bool pkt_binary_value_fits(uint8_t type, const char *v, size_t n)
{
    long long iv;
    double dv;
    switch (type) {
    case PKT_TYPE_LONGLONG:
        return parse_number(v, n, true, &iv, NULL);
    case PKT_TYPE_LONG:
        return parse_number(v, n, true, &iv, NULL) && iv >= INT32_MIN && iv <= INT32_MAX;
    case PKT_TYPE_DOUBLE:
        return parse_number(v, n, false, NULL, &dv);
    case PKT_TYPE_DATETIME: {
        uint8_t room[16];
        pbuf scratch;
        pbuf_init_on(&scratch, room, sizeof(room));
        bool ok = put_binary_datetime(&scratch, v, n);
        pbuf_free(&scratch);
        return ok;
    }
    default:
        return true;
    }
}

void pkt_build_binary_row(pbuf *b, uint8_t *seq, int n, const uint8_t *types,
                          const char *const *vals, const size_t *lens)
{
    size_t start = pkt_begin(b);
    pbuf_u8(b, 0x00);
    /* The NULL bitmap starts at bit 2 in result rows. */
    size_t nb = ((size_t)n + 7 + 2) / 8;
    size_t bitmap = b->len;
    for (size_t k = 0; k < nb; k++)
        pbuf_u8(b, 0);
    for (int i = 0; i < n; i++) {
        if (!vals[i]) {
            b->data[bitmap + (size_t)(i + 2) / 8] |= (uint8_t)(1u << ((i + 2) % 8));
            continue;
        }
        size_t len = lens ? lens[i] : strlen(vals[i]);
        long long iv;
        double dv;
        bool done = false;
        switch (types[i]) {
        case PKT_TYPE_LONGLONG:
            if ((done = parse_number(vals[i], len, true, &iv, NULL))) {
                pbuf_u32(b, (uint32_t)((unsigned long long)iv & 0xFFFFFFFFu));
                pbuf_u32(b, (uint32_t)((unsigned long long)iv >> 32));
            }
            break;
        case PKT_TYPE_LONG:
            if ((done = parse_number(vals[i], len, true, &iv, NULL) && iv >= INT32_MIN &&
                        iv <= INT32_MAX))
                pbuf_u32(b, (uint32_t)(int32_t)iv);
            break;
        case PKT_TYPE_DOUBLE:
            if ((done = parse_number(vals[i], len, false, NULL, &dv))) {
                uint64_t bits;
                memcpy(&bits, &dv, sizeof(bits));
                pbuf_u32(b, (uint32_t)(bits & 0xFFFFFFFFu));
                pbuf_u32(b, (uint32_t)(bits >> 32));
            }
            break;
        case PKT_TYPE_DATETIME:
            done = put_binary_datetime(b, vals[i], len);
            break;
        default:
            break;
        }
        if (!done)
            pbuf_lenenc_str(b, vals[i], len);
    }
    pkt_end(b, start, seq);
}

int pkt_parse_handshake_response(const uint8_t *payload, size_t len, pkt_handshake_response *out,
                                 char *err, size_t errlen)
{
    preader r;
    memset(out, 0, sizeof(*out));
    pr_init(&r, payload, len);
    if (len < 4) {
        snprintf(err, errlen, "handshake response too short (%zu bytes)", len);
        return -1;
    }
    uint32_t caps = pkt_u32(payload);
    if (!(caps & CAP_PROTOCOL_41)) {
        snprintf(err, errlen, "client does not speak protocol 4.1");
        return -1;
    }
    uint32_t max_packet;
    uint8_t charset;
    if (!pr_u32(&r, &caps) || !pr_u32(&r, &max_packet) || !pr_u8(&r, &charset) ||
        !pr_skip(&r, 19) || !pr_u32(&r, &out->ext_caps)) {
        snprintf(err, errlen, "handshake response too short (%zu bytes)", len);
        return -1;
    }
    out->caps = caps;
    out->max_packet = max_packet;
    if (caps & CAP_LONG_PASSWORD) /* CLIENT_MYSQL: the filler is not MariaDB's */
        out->ext_caps = 0;
    out->charset = charset;
    if (pr_left(&r) == 0 && (caps & CAP_SSL)) {
        out->ssl_request = true;
        return 0;
    }
    if (!pr_cstr(&r, &out->user, &out->user_len)) {
        snprintf(err, errlen, "handshake response: user name is not terminated");
        return -1;
    }
    if (caps & CAP_PLUGIN_AUTH_LENENC) {
        if (!pr_lenenc_str(&r, &out->auth, &out->auth_len)) {
            snprintf(err, errlen, "handshake response: bad auth data length");
            return -1;
        }
    } else if (caps & CAP_SECURE_CONNECTION) {
        uint8_t n;
        if (!pr_u8(&r, &n) || !pr_bytes(&r, n, &out->auth)) {
            snprintf(err, errlen, "handshake response: bad auth data length");
            return -1;
        }
        out->auth_len = n;
    } else {
        const char *s;
        if (!pr_cstr(&r, &s, &out->auth_len)) {
            snprintf(err, errlen, "handshake response: auth data is not terminated");
            return -1;
        }
        out->auth = (const uint8_t *)s;
    }
    if ((caps & CAP_CONNECT_WITH_DB) && pr_left(&r) > 0) {
        if (!pr_cstr(&r, &out->database, &out->database_len)) {
            snprintf(err, errlen, "handshake response: database name is not terminated");
            return -1;
        }
    }
    if ((caps & CAP_PLUGIN_AUTH) && pr_left(&r) > 0) {
        /* Some clients omit the final NUL of the plugin name when nothing follows it. */
        const uint8_t *nul = memchr(r.p, 0, pr_left(&r));
        out->plugin = (const char *)r.p;
        out->plugin_len = nul ? (size_t)(nul - r.p) : pr_left(&r);
        pr_skip(&r, nul ? out->plugin_len + 1 : out->plugin_len);
    }
    if ((caps & CAP_CONNECT_ATTRS) && pr_left(&r) > 0) {
        const uint8_t *attrs;
        size_t n;
        if (!pr_lenenc_str(&r, &attrs, &n)) {
            snprintf(err, errlen, "handshake response: bad connection attributes length");
            return -1;
        }
        preader a;
        pr_init(&a, attrs, n);
        while (pr_left(&a) > 0) {
            const uint8_t *k, *v;
            size_t kn, vn;
            if (!pr_lenenc_str(&a, &k, &kn) || !pr_lenenc_str(&a, &v, &vn)) {
                snprintf(err, errlen, "handshake response: malformed connection attributes");
                return -1;
            }
            if (kn == 12 && memcmp(k, "program_name", 12) == 0) {
                out->program = (const char *)v;
                out->program_len = vn;
            }
        }
    }
    return 0;
}

int pkt_parse_ok(const uint8_t *payload, size_t len, uint32_t caps, pkt_ok *out)
{
    preader r;
    uint8_t head;
    memset(out, 0, sizeof(*out));
    pr_init(&r, payload, len);
    if (!pr_u8(&r, &head) || (head != 0x00 && head != 0xFE))
        return -1;
    if (!pr_lenenc(&r, &out->affected, NULL) || !pr_lenenc(&r, &out->insert_id, NULL) ||
        !pr_u16(&r, &out->status) || !pr_u16(&r, &out->warnings))
        return -1;
    if (pr_left(&r) == 0)
        return 0;
    if (!pr_lenenc_str(&r, &out->info, &out->info_len))
        return -1;
    if (!(caps & CAP_SESSION_TRACK))
        return 0;
    if (!(out->status & ST_SESSION_STATE_CHANGED) || pr_left(&r) == 0)
        return 0;
    const uint8_t *state;
    size_t state_len;
    if (!pr_lenenc_str(&r, &state, &state_len))
        return -1;
    out->state = state;
    out->state_len = state_len;
    preader s;
    pr_init(&s, state, state_len);
    while (pr_left(&s) > 0) {
        uint8_t type;
        const uint8_t *data;
        size_t data_len;
        if (!pr_u8(&s, &type) || !pr_lenenc_str(&s, &data, &data_len))
            return -1;
        if (type == 1) { /* SESSION_TRACK_SCHEMA */
            preader d;
            pr_init(&d, data, data_len);
            if (!pr_lenenc_str(&d, &out->schema, &out->schema_len))
                return -1;
            out->schema_changed = true;
        }
    }
    return 0;
}

bool pkt_is_eof(const uint8_t *payload, size_t len)
{
    return len > 0 && len < 9 && payload[0] == 0xFE;
}

int pkt_parse_eof(const uint8_t *payload, size_t len, uint16_t *warnings, uint16_t *status)
{
    if (!pkt_is_eof(payload, len))
        return -1;
    if (len >= 5) {
        *warnings = pkt_u16(payload + 1);
        *status = pkt_u16(payload + 3);
    } else {
        *warnings = 0;
        *status = 0;
    }
    return 0;
}

/* The length of a column definition's six names (catalog, schema, table, org_table, name,
 * org_name), where MariaDB's extended metadata goes; -1 when the payload is malformed. */
static long column_names_len(const uint8_t *p, size_t len)
{
    preader r;
    const uint8_t *s;
    size_t n;
    pr_init(&r, p, len);
    for (int i = 0; i < 6; i++)
        if (!pr_lenenc_str(&r, &s, &n))
            return -1;
    return (long)(r.p - p);
}

int pkt_copy_column_plain(pbuf *out, uint8_t *seq, const uint8_t *p, size_t len)
{
    long names = column_names_len(p, len);
    if (names < 0)
        return -1;
    size_t keep = (size_t)names;
    preader r;
    const uint8_t *s;
    size_t n;
    pr_init(&r, p + keep, len - keep);
    if (!pr_lenenc_str(&r, &s, &n)) /* extended metadata */
        return -1;
    size_t start = pkt_begin(out);
    pbuf_put(out, p, keep);
    pbuf_put(out, r.p, pr_left(&r));
    pkt_end(out, start, seq);
    return 0;
}

int pkt_copy_column_ext(pbuf *out, uint8_t *seq, const uint8_t *p, size_t len)
{
    long names = column_names_len(p, len);
    if (names < 0)
        return -1;
    size_t keep = (size_t)names;
    size_t start = pkt_begin(out);
    pbuf_put(out, p, keep);
    pbuf_u8(out, 0); /* no extended metadata */
    pbuf_put(out, p + keep, len - keep);
    pkt_end(out, start, seq);
    return 0;
}

int pkt_copy_column(pbuf *out, uint8_t *seq, const uint8_t *p, size_t len, bool from_ext,
                    bool to_ext)
{
    if (from_ext && !to_ext)
        return pkt_copy_column_plain(out, seq, p, len);
    if (!from_ext && to_ext)
        return pkt_copy_column_ext(out, seq, p, len);
    size_t start = pkt_begin(out);
    pbuf_put(out, p, len);
    pkt_end(out, start, seq);
    return 0;
}

int pkt_append_columns(pbuf *out, const pbuf *pkts, uint8_t *seq, bool from_ext, bool to_ext)
{
    if (from_ext == to_ext) {
        pkt_append_reframed(out, pkts, seq);
        return 0;
    }
    size_t off = 0;
    while (off + PKT_HEADER <= pkts->len) {
        size_t n = pkt_u24(pkts->data + off);
        if (off + PKT_HEADER + n > pkts->len)
            return -1;
        if (pkt_copy_column(out, seq, pkts->data + off + PKT_HEADER, n, from_ext, to_ext))
            return -1;
        off += PKT_HEADER + n;
    }
    return 0;
}
