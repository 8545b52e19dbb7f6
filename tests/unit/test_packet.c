/* test_packet.c: the MySQL packet codec, fed with hand-built byte strings. Inputs that a
 * parser reads are copied into heap blocks of exactly their length, so that a build with
 * -fsanitize=address reports any read past the end. */
#include "envproxy.h"
#include "packet.h"
#include "unit.h"

#include <event2/buffer.h>

#include <stdint.h>
#include <stdlib.h>

/* A heap copy of exactly n bytes of p (the caller frees). */
static uint8_t *exact(const void *p, size_t n)
{
    uint8_t *d = calloc(n ? n : 1, 1);
    if (!d)
        abort();
    if (n)
        memcpy(d, p, n);
    return d;
}

/* Compares got[0..got_len) with want[0..want_len) and prints the first difference. */
static int same_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len,
                      int line)
{
    if (got_len != want_len) {
        fprintf(stderr, "%s:%d: %zu bytes, want %zu\n", __FILE__, line, got_len, want_len);
        return 0;
    }
    for (size_t i = 0; i < want_len; i++) {
        if (got[i] != want[i]) {
            fprintf(stderr, "%s:%d: byte %zu is 0x%02x, want 0x%02x\n", __FILE__, line, i, got[i],
                    want[i]);
            return 0;
        }
    }
    return 1;
}

#define CHECK_BYTES(got, got_len, want)                                                            \
    CHECK(same_bytes((got), (got_len), (want), sizeof(want), __LINE__))

/* ---- pbuf ---------------------------------------------------------------------------- */

static void test_pbuf(void)
{
    pbuf b;
    pbuf_init(&b);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, 0);

    pbuf_put(&b, "", 0); /* nothing to add: no allocation */
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);

    pbuf_u8(&b, 0xAB);
    CHECK(b.data != NULL);
    CHECK_INT(b.len, 1);
    CHECK(b.cap >= 1);
    size_t cap = b.cap;
    pbuf_reserve(&b, 0);
    CHECK_INT(b.cap, cap);
    pbuf_reserve(&b, cap - 1); /* exactly fills it */
    CHECK_INT(b.cap, cap);

    /* Growth keeps what was written. */
    uint8_t pattern[1000];
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
    for (int round = 0; round < 100; round++)
        pbuf_put(&b, pattern, sizeof(pattern));
    CHECK_INT(b.len, 1 + 100 * sizeof(pattern));
    CHECK(b.cap >= b.len);
    CHECK_INT(b.data[0], 0xAB);
    int intact = 1;
    for (int round = 0; round < 100; round++)
        if (memcmp(b.data + 1 + round * sizeof(pattern), pattern, sizeof(pattern)) != 0)
            intact = 0;
    CHECK(intact);

    /* One big reservation in one go. */
    pbuf_reserve(&b, 1u << 20);
    CHECK(b.cap >= b.len + (1u << 20));

    /* reset keeps the memory. */
    cap = b.cap;
    pbuf_reset(&b);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, cap);
    CHECK(b.data != NULL);

    /* Fixed-width integers are little-endian. */
    pbuf_u16(&b, 0x1234);
    pbuf_u24(&b, 0xABCDEF);
    pbuf_u32(&b, 0x01020304);
    pbuf_cstr(&b, "hi");
    pbuf_cstr(&b, "");
    pbuf_lenenc_str(&b, "xyz", 3);
    pbuf_lenenc_str(&b, "", 0);
    static const uint8_t want[] = {0x34, 0x12, 0xEF, 0xCD, 0xAB, 0x04, 0x03, 0x02, 0x01,
                                   'h',  'i',  0,    0,    3,    'x',  'y',  'z',  0};
    CHECK_BYTES(b.data, b.len, want);

    CHECK_INT(pkt_u16(want), 0x1234);
    CHECK_INT(pkt_u24(want + 2), 0xABCDEF);
    CHECK_INT(pkt_u32(want + 5), 0x01020304);
    static const uint8_t high[] = {0xFF, 0xFF, 0xFF, 0xFF};
    CHECK_INT(pkt_u32(high), 0xFFFFFFFFu);

    pbuf_free(&b);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, 0);
    pbuf_free(&b); /* twice is harmless */
}

/* ---- length-encoded integers ---------------------------------------------------------- */

typedef struct {
    uint64_t value;
    uint8_t bytes[9];
    size_t n;
} lenenc_case;

static const lenenc_case LENENC_CASES[] = {
    {0, {0x00}, 1},
    {1, {0x01}, 1},
    {250, {0xFA}, 1},
    {251, {0xFC, 0xFB, 0x00}, 3},
    {252, {0xFC, 0xFC, 0x00}, 3},
    {255, {0xFC, 0xFF, 0x00}, 3},
    {256, {0xFC, 0x00, 0x01}, 3},
    {0xFFFF, {0xFC, 0xFF, 0xFF}, 3},
    {0x10000, {0xFD, 0x00, 0x00, 0x01}, 4},
    {0xFFFFFF, {0xFD, 0xFF, 0xFF, 0xFF}, 4},
    {0x1000000, {0xFE, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}, 9},
    {0xFFFFFFFFull, {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00}, 9},
    {0x100000000ull, {0xFE, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}, 9},
    {0x0102030405060708ull, {0xFE, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}, 9},
    {UINT64_MAX, {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 9},
};

static void test_lenenc_roundtrip(void)
{
    for (size_t i = 0; i < sizeof(LENENC_CASES) / sizeof(LENENC_CASES[0]); i++) {
        const lenenc_case *c = &LENENC_CASES[i];
        pbuf b;
        pbuf_init(&b);
        pbuf_lenenc(&b, c->value);
        if (!same_bytes(b.data, b.len, c->bytes, c->n, __LINE__)) {
            fprintf(stderr, "  encoding %llu\n", (unsigned long long)c->value);
            unit_failed++;
        } else {
            unit_passed++;
        }
        pbuf_free(&b);

        /* Decoding, with and without a NULL flag. */
        uint8_t *in = exact(c->bytes, c->n);
        preader r;
        uint64_t v = 12345;
        bool is_null = true;
        pr_init(&r, in, c->n);
        CHECK(pr_lenenc(&r, &v, &is_null));
        CHECK(v == c->value);
        CHECK(!is_null);
        CHECK_INT(pr_left(&r), 0);
        pr_init(&r, in, c->n);
        v = 12345;
        CHECK(pr_lenenc(&r, &v, NULL));
        CHECK(v == c->value);

        /* Every shorter prefix fails without reading past it. */
        for (size_t cut = 0; cut < c->n; cut++) {
            uint8_t *part = exact(c->bytes, cut);
            pr_init(&r, part, cut);
            CHECK(!pr_lenenc(&r, &v, &is_null));
            CHECK(r.bad);
            CHECK_INT(pr_left(&r), 0);
            free(part);
        }
        free(in);
    }
}

static void test_lenenc_special(void)
{
    preader r;
    uint64_t v;
    bool is_null;

    /* 0xFB is NULL in a row, only where the caller asked for it. */
    uint8_t *fb = exact("\xFB\x07", 2);
    pr_init(&r, fb, 2);
    v = 99;
    is_null = false;
    CHECK(pr_lenenc(&r, &v, &is_null));
    CHECK(is_null);
    CHECK_INT(v, 0);
    CHECK_INT(pr_left(&r), 1);
    pr_init(&r, fb, 2);
    CHECK(!pr_lenenc(&r, &v, NULL));
    CHECK(r.bad);
    CHECK_INT(pr_left(&r), 0);
    uint8_t u;
    CHECK(!pr_u8(&r, &u)); /* a failed reader stays failed */
    free(fb);

    /* 0xFF is not a length. */
    uint8_t *ff = exact("\xFF\x01\x02\x03\x04\x05\x06\x07\x08", 9);
    pr_init(&r, ff, 9);
    is_null = true;
    CHECK(!pr_lenenc(&r, &v, &is_null));
    CHECK(!is_null);
    CHECK(r.bad);
    pr_init(&r, ff, 9);
    CHECK(!pr_lenenc(&r, &v, NULL));
    free(ff);

    /* Non-minimal encodings are read as what they say. */
    uint8_t *wide = exact("\xFC\x05\x00", 3);
    pr_init(&r, wide, 3);
    CHECK(pr_lenenc(&r, &v, NULL));
    CHECK_INT(v, 5);
    free(wide);

    /* An empty reader. */
    uint8_t *one = exact("", 1);
    pr_init(&r, one, 0);
    CHECK(!pr_lenenc(&r, &v, &is_null));
    free(one);
}

/* ---- the bounded reader ---------------------------------------------------------------- */

static void test_reader_basic(void)
{
    static const uint8_t src[] = {0x01, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12, 'a',
                                  'b',  0,    0x03, 'x',  'y',  'z',  0xAA, 0xBB};
    uint8_t *in = exact(src, sizeof(src));
    preader r;
    pr_init(&r, in, sizeof(src));
    CHECK_INT(pr_left(&r), sizeof(src));
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    const char *s;
    size_t n;
    const uint8_t *p;
    CHECK(pr_u8(&r, &u8));
    CHECK_INT(u8, 1);
    CHECK(pr_u16(&r, &u16));
    CHECK_INT(u16, 0x1234);
    CHECK(pr_u32(&r, &u32));
    CHECK_INT(u32, 0x12345678);
    CHECK(pr_cstr(&r, &s, &n));
    CHECK_STR(s, "ab");
    CHECK_INT(n, 2);
    CHECK(s == (const char *)in + 7);
    CHECK(pr_lenenc_str(&r, &p, &n));
    CHECK_INT(n, 3);
    CHECK(p == in + 11);
    CHECK(memcmp(p, "xyz", 3) == 0);
    CHECK_INT(pr_left(&r), 2);
    CHECK(pr_bytes(&r, 1, &p));
    CHECK_INT(p[0], 0xAA);
    CHECK(pr_skip(&r, 1));
    CHECK_INT(pr_left(&r), 0);
    CHECK(pr_skip(&r, 0));
    CHECK(pr_bytes(&r, 0, &p));
    CHECK(!r.bad);
    CHECK(!pr_u8(&r, &u8));
    CHECK(r.bad);
    free(in);
}

/* Every reader function on input that is too short for it: each must fail, mark the reader
 * failed and read nothing past the end. */
static void test_reader_truncated(void)
{
    preader r;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    const uint8_t *p;
    const char *s;
    size_t n;
    static const uint8_t full[] = {1, 2, 3, 4, 5, 6, 7, 8};

    for (size_t len = 0; len < 4; len++) {
        uint8_t *in = exact(full, len);
        if (len < 1) {
            pr_init(&r, in, len);
            CHECK(!pr_u8(&r, &u8));
            CHECK_INT(pr_left(&r), 0);
        }
        if (len < 2) {
            pr_init(&r, in, len);
            CHECK(!pr_u16(&r, &u16));
            CHECK_INT(pr_left(&r), 0);
        }
        pr_init(&r, in, len);
        CHECK(!pr_u32(&r, &u32));
        CHECK(r.bad);
        pr_init(&r, in, len);
        CHECK(!pr_skip(&r, len + 1));
        pr_init(&r, in, len);
        CHECK(!pr_bytes(&r, len + 1, &p));
        pr_init(&r, in, len);
        CHECK(!pr_skip(&r, SIZE_MAX));
        pr_init(&r, in, len);
        CHECK(!pr_bytes(&r, SIZE_MAX, &p));
        free(in);
    }

    /* A failed read leaves the reader failed for every later call. */
    uint8_t *in = exact(full, sizeof(full));
    pr_init(&r, in, sizeof(full));
    CHECK(!pr_skip(&r, 9));
    CHECK(!pr_u8(&r, &u8));
    CHECK(!pr_u16(&r, &u16));
    CHECK(!pr_u32(&r, &u32));
    CHECK(!pr_skip(&r, 0));
    CHECK(!pr_bytes(&r, 0, &p));
    CHECK(!pr_lenenc(&r, &u64, NULL));
    CHECK(!pr_lenenc_str(&r, &p, &n));
    CHECK(!pr_cstr(&r, &s, &n));
    CHECK_INT(pr_left(&r), 0);
    free(in);

    /* Length-encoded strings whose length runs past the end. */
    static const uint8_t short_str[] = {5, 'a', 'b', 'c', 'd'};
    in = exact(short_str, sizeof(short_str));
    pr_init(&r, in, sizeof(short_str));
    CHECK(!pr_lenenc_str(&r, &p, &n));
    CHECK(r.bad);
    free(in);
    static const uint8_t huge_str[] = {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 'a'};
    in = exact(huge_str, sizeof(huge_str));
    pr_init(&r, in, sizeof(huge_str));
    CHECK(!pr_lenenc_str(&r, &p, &n));
    free(in);
    static const uint8_t null_str[] = {0xFB, 'a'};
    in = exact(null_str, sizeof(null_str));
    pr_init(&r, in, sizeof(null_str));
    CHECK(!pr_lenenc_str(&r, &p, &n)); /* NULL is not a string length */
    free(in);
    static const uint8_t empty_str[] = {0};
    in = exact(empty_str, 1);
    pr_init(&r, in, 1);
    CHECK(pr_lenenc_str(&r, &p, &n));
    CHECK_INT(n, 0);
    CHECK_INT(pr_left(&r), 0);
    free(in);
    static const uint8_t exact_str[] = {0xFC, 0x03, 0x00, 'a', 'b', 'c'};
    in = exact(exact_str, sizeof(exact_str));
    pr_init(&r, in, sizeof(exact_str));
    CHECK(pr_lenenc_str(&r, &p, &n));
    CHECK_INT(n, 3);
    CHECK(p == in + 3);
    pr_init(&r, in, sizeof(exact_str) - 1);
    CHECK(!pr_lenenc_str(&r, &p, &n));
    free(in);

    /* NUL-terminated strings. */
    in = exact("abc", 3);
    pr_init(&r, in, 3);
    CHECK(!pr_cstr(&r, &s, &n)); /* no NUL before the end */
    CHECK(r.bad);
    CHECK_INT(pr_left(&r), 0);
    free(in);
    in = exact("abc", 4);
    pr_init(&r, in, 4);
    CHECK(pr_cstr(&r, &s, &n));
    CHECK_STR(s, "abc");
    CHECK_INT(n, 3);
    CHECK_INT(pr_left(&r), 0);
    CHECK(!pr_cstr(&r, &s, &n)); /* nothing left */
    free(in);
    in = exact("\0\0", 2);
    pr_init(&r, in, 2);
    CHECK(pr_cstr(&r, &s, &n));
    CHECK_INT(n, 0);
    CHECK(pr_cstr(&r, &s, &n));
    CHECK_INT(n, 0);
    CHECK(!pr_cstr(&r, &s, &n));
    free(in);
    /* A NUL just past the reader's end does not count. */
    in = exact("abc", 4);
    pr_init(&r, in, 3);
    CHECK(!pr_cstr(&r, &s, &n));
    free(in);

    /* A mixed record cut at every length: the whole sequence succeeds only when complete. */
    static const uint8_t rec[] = {0x07, 0x01, 0x02, 0x01, 0x02, 0x03, 0x04, 0xFC, 0x02,
                                  0x00, 'h',  'i',  'n',  'a',  'm',  'e',  0,    0xAA};
    for (size_t len = 0; len <= sizeof(rec); len++) {
        in = exact(rec, len);
        pr_init(&r, in, len);
        bool ok = pr_u8(&r, &u8) && pr_u16(&r, &u16) && pr_u32(&r, &u32) &&
                  pr_lenenc_str(&r, &p, &n) && pr_cstr(&r, &s, &n) && pr_bytes(&r, 1, &p);
        CHECK(ok == (len == sizeof(rec)));
        if (ok) {
            CHECK_INT(p[0], 0xAA);
            CHECK_INT(pr_left(&r), 0);
        }
        free(in);
    }
}

/* ---- framing --------------------------------------------------------------------------- */

static void test_framing_small(void)
{
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 0;

    size_t start = pkt_begin(&b);
    CHECK_INT(start, 0);
    CHECK_INT(b.len, PKT_HEADER);
    pbuf_put(&b, "abc", 3);
    pkt_end(&b, start, &seq);
    CHECK_INT(seq, 1);

    start = pkt_begin(&b);
    CHECK_INT(start, 7);
    pkt_end(&b, start, &seq); /* an empty payload */
    CHECK_INT(seq, 2);

    start = pkt_begin(&b);
    for (int i = 0; i < 300; i++)
        pbuf_u8(&b, (uint8_t)i);
    seq = 255;
    pkt_end(&b, start, &seq);
    CHECK_INT(seq, 0); /* the sequence id wraps */

    static const uint8_t want_head[] = {3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 1, 0x2C, 0x01, 0, 255};
    CHECK(same_bytes(b.data, 15, want_head, sizeof(want_head), __LINE__));
    CHECK_INT(b.len, 15 + 300);
    CHECK_INT(b.data[15], 0);
    CHECK_INT(b.data[15 + 299], (uint8_t)299);

    /* Just under the continuation threshold: one packet. */
    pbuf_reset(&b);
    seq = 4;
    start = pkt_begin(&b);
    pbuf_reserve(&b, PKT_MAX_PAYLOAD - 1);
    memset(b.data + b.len, 'q', PKT_MAX_PAYLOAD - 1);
    b.len += PKT_MAX_PAYLOAD - 1;
    pkt_end(&b, start, &seq);
    CHECK_INT(seq, 5);
    CHECK_INT(b.len, PKT_HEADER + PKT_MAX_PAYLOAD - 1);
    CHECK_INT(pkt_u24(b.data), PKT_MAX_PAYLOAD - 1);
    CHECK_INT(b.data[3], 4);
    pbuf_free(&b);
}

/* Builds a packet of n payload bytes (byte i is (i * 31 + 7) mod 251) after a 5-byte prefix
 * packet, then checks the physical packets: want_n of them, the sizes in want_sizes. */
static void check_big_packet(size_t n, const size_t *want_sizes, int want_n)
{
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 0;
    size_t start = pkt_begin(&b);
    pbuf_put(&b, "first", 5);
    pkt_end(&b, start, &seq);

    seq = 250; /* so that the ids wrap inside the packet */
    start = pkt_begin(&b);
    CHECK_INT(start, 9);
    pbuf_reserve(&b, n);
    uint8_t *d = b.data + b.len;
    for (size_t i = 0; i < n; i++)
        d[i] = (uint8_t)((i * 31 + 7) % 251);
    b.len += n;
    pkt_end(&b, start, &seq);
    CHECK_INT(seq, (uint8_t)(250 + want_n));

    /* The prefix packet is untouched. */
    static const uint8_t first[] = {5, 0, 0, 0, 'f', 'i', 'r', 's', 't'};
    CHECK(same_bytes(b.data, 9, first, sizeof(first), __LINE__));

    size_t off = 9, at = 0;
    int ok = 1;
    for (int k = 0; k < want_n; k++) {
        if (off + PKT_HEADER > b.len) {
            ok = 0;
            break;
        }
        size_t len = pkt_u24(b.data + off);
        if (len != want_sizes[k] || b.data[off + 3] != (uint8_t)(250 + k)) {
            fprintf(stderr, "%s: packet %d has length %zu seq %u, want %zu seq %u\n", __FILE__, k,
                    len, b.data[off + 3], want_sizes[k], (uint8_t)(250 + k));
            ok = 0;
            break;
        }
        off += PKT_HEADER;
        for (size_t i = 0; i < len; i++, at++) {
            if (b.data[off + i] != (uint8_t)((at * 31 + 7) % 251)) {
                fprintf(stderr, "%s: payload byte %zu is wrong\n", __FILE__, at);
                ok = 0;
                break;
            }
        }
        if (!ok)
            break;
        off += len;
    }
    CHECK(ok);
    CHECK_INT(at, n);
    CHECK_INT(off, b.len);
    pbuf_free(&b);
}

static void test_framing_large(void)
{
    /* Exactly 0xFFFFFF bytes: a full packet and an empty one to close it. */
    const size_t one_full[] = {PKT_MAX_PAYLOAD, 0};
    check_big_packet(PKT_MAX_PAYLOAD, one_full, 2);

    /* A little more: a full packet and the remainder. */
    const size_t full_and_rest[] = {PKT_MAX_PAYLOAD, 10};
    check_big_packet(PKT_MAX_PAYLOAD + 10, full_and_rest, 2);

    /* An exact multiple: two full packets and an empty one. */
    const size_t two_full[] = {PKT_MAX_PAYLOAD, PKT_MAX_PAYLOAD, 0};
    check_big_packet(2 * (size_t)PKT_MAX_PAYLOAD, two_full, 3);
}

/* ---- forwarded commands at the 16 MiB boundary ----------------------------------------- */

/* Reads bytes[0..n) as a server does: one logical packet (physical packets joined while
 * one is PKT_MAX_PAYLOAD long, sequence ids counting from 0), compared with want[0..len) as
 * it goes. Returns the bytes it used, 0 when they do not hold exactly that packet. */
static size_t server_read(const uint8_t *bytes, size_t n, const uint8_t *want, size_t len)
{
    size_t off = 0, got = 0;
    uint8_t seq = 0;
    for (;;) {
        if (n - off < PKT_HEADER)
            return 0;
        size_t part = pkt_u24(bytes + off);
        if (bytes[off + 3] != seq++ || n - off - PKT_HEADER < part || len - got < part ||
            memcmp(bytes + off + PKT_HEADER, want + got, part) != 0)
            return 0;
        got += part;
        off += PKT_HEADER + part;
        if (part < PKT_MAX_PAYLOAD)
            return got == len ? off : 0;
    }
}

/* A command payload of len bytes (command byte first) that carries, where a 24-bit length
 * would end it, the bytes of a COM_QUERY packet: a reader that cuts the length runs it. */
static uint8_t *smuggling_payload(uint8_t cmd, size_t len)
{
    uint8_t *p = malloc(len);
    if (!p)
        abort();
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)('a' + i % 23);
    p[0] = cmd;
    static const char fake[] = "\x03SET GLOBAL read_only = 1";
    size_t at = len & PKT_MAX_PAYLOAD; /* where the cut packet would end */
    if (at + PKT_HEADER + sizeof(fake) - 1 <= len) {
        pkt_put_header(p + at, sizeof(fake) - 1, 0);
        memcpy(p + at + PKT_HEADER, fake, sizeof(fake) - 1);
    }
    return p;
}

/* Checks that bytes[0..n) hold exactly one logical packet equal to payload[0..len). */
static void check_one_command(const uint8_t *bytes, size_t n, const uint8_t *payload, size_t len,
                              int line)
{
    size_t used = server_read(bytes, n, payload, len);
    if (used != n) {
        unit_failed++;
        fprintf(stderr, "%s:%d: cmd 0x%02x, %zu payload bytes: not one packet of them in %zu "
                "bytes\n", __FILE__, line, payload[0], len, n);
    } else {
        unit_passed++;
    }
}

/* Every command the proxy forwards, at PKT_MAX_PAYLOAD - 1, PKT_MAX_PAYLOAD,
 * PKT_MAX_PAYLOAD + 1 and 2 * PKT_MAX_PAYLOAD payload bytes: the relay's framing toward a
 * backend (relay_queue_command) and the builders' (pkt_put_framed, pkt_end) give one
 * logical packet that holds exactly the payload, and nothing after it. */
static void test_forwarded_commands_at_boundary(void)
{
    static const uint8_t cmds[] = {
        CMD_QUERY,         CMD_STMT_PREPARE, CMD_STMT_EXECUTE, CMD_STMT_SEND_LONG_DATA,
        CMD_INIT_DB,       CMD_FIELD_LIST,   CMD_CHANGE_USER,  CMD_STMT_RESET,
        CMD_STMT_CLOSE,    CMD_STATISTICS,   CMD_SET_OPTION,   CMD_RESET_CONNECTION,
    };
    const size_t sizes[] = {PKT_MAX_PAYLOAD - 1, PKT_MAX_PAYLOAD, PKT_MAX_PAYLOAD + 1,
                            2 * (size_t)PKT_MAX_PAYLOAD};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t len = sizes[k];
        CHECK_INT(pkt_part_count(len), len / PKT_MAX_PAYLOAD + 1);
        uint8_t *payload = smuggling_payload(cmds[0], len);
        size_t wire_len = len + pkt_part_count(len) * PKT_HEADER;
        uint8_t *wire = malloc(wire_len);
        pbuf out;
        pbuf_init(&out);
        if (!wire)
            abort();
        for (size_t m = 0; m < sizeof(cmds); m++) {
            payload[0] = cmds[m];

            backend b;
            memset(&b, 0, sizeof(b));
            b.out = evbuffer_new();
            if (!b.out)
                abort();
            relay_queue_command(&b, payload, len);
            size_t n = evbuffer_get_length(b.out);
            CHECK_INT(n, wire_len);
            if (n == wire_len && evbuffer_copyout(b.out, wire, n) == (ev_ssize_t)n)
                check_one_command(wire, n, payload, len, __LINE__);
            evbuffer_free(b.out);

            pbuf_reset(&out);
            uint8_t seq = 0;
            pkt_put_framed(&out, payload, len, &seq);
            CHECK_INT(seq, pkt_part_count(len));
            check_one_command(out.data, out.len, payload, len, __LINE__);

            pbuf_reset(&out);
            seq = 0;
            size_t start = pkt_begin(&out);
            pbuf_put(&out, payload, len);
            pkt_end(&out, start, &seq);
            check_one_command(out.data, out.len, payload, len, __LINE__);
        }
        pbuf_free(&out);
        free(wire);
        free(payload);
    }
}

/* ---- builders -------------------------------------------------------------------------- */

/* Checks that b holds exactly one packet with sequence id seq and returns its payload. */
static const uint8_t *one_packet(const pbuf *b, uint8_t seq, size_t *len)
{
    CHECK(b->len >= PKT_HEADER);
    if (b->len < PKT_HEADER) {
        *len = 0;
        return b->data;
    }
    *len = pkt_u24(b->data);
    CHECK_INT(*len, b->len - PKT_HEADER);
    CHECK_INT(b->data[3], seq);
    return b->data + PKT_HEADER;
}

static void test_greeting(void)
{
    uint8_t scramble[20];
    for (int i = 0; i < 20; i++)
        scramble[i] = (uint8_t)(0x41 + i);
    pkt_greeting g = {
        .server_version = "5.7-x",
        .connection_id = 0x01020304,
        .scramble = scramble,
        .capabilities = 0xA1B2C3D4,
        .charset = 45,
        .status = ST_AUTOCOMMIT,
        .auth_plugin = "mysql_native_password",
    };
    /* clang-format off */
    static const uint8_t want[] = {
        10,                                             /* protocol version */
        '5', '.', '7', '-', 'x', 0,                     /* server version */
        0x04, 0x03, 0x02, 0x01,                         /* connection id */
        0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, /* scramble, first 8 bytes */
        0,                                              /* filler */
        0xD4, 0xC3,                                     /* capabilities, low half */
        45,                                             /* charset */
        0x02, 0x00,                                     /* status */
        0xB2, 0xA1,                                     /* capabilities, high half */
        21,                                             /* auth plugin data length */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                   /* reserved */
        0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, 0x51, 0x52, 0x53, 0x54, /* 12 more */
        0,                                              /* the scramble's NUL */
        'm', 'y', 's', 'q', 'l', '_', 'n', 'a', 't', 'i', 'v', 'e', '_', 'p', 'a', 's', 's', 'w',
        'o', 'r', 'd', 0,
    };
    /* clang-format on */
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 0;
    pkt_build_greeting(&b, &seq, &g);
    CHECK_INT(seq, 1);
    size_t len;
    const uint8_t *p = one_packet(&b, 0, &len);
    CHECK_BYTES(p, len, want);
    pbuf_free(&b);
}

static void test_ok_builder(void)
{
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 2;
    size_t len;
    pkt_build_ok(&b, &seq, 1, 300, ST_AUTOCOMMIT | ST_IN_TRANS, 3, "info", 4);
    CHECK_INT(seq, 3);
    static const uint8_t want[] = {0x00, 0x01, 0xFC, 0x2C, 0x01, 0x03, 0x00,
                                   0x03, 0x00, 0x04, 'i',  'n',  'f',  'o'};
    const uint8_t *p = one_packet(&b, 2, &len);
    CHECK_BYTES(p, len, want);

    /* It parses back (the message is length-encoded, as servers send it). */
    pkt_ok ok;
    CHECK_INT(pkt_parse_ok(p, len, CAP_PROTOCOL_41, &ok), 0);
    CHECK(ok.affected == 1);
    CHECK(ok.insert_id == 300);
    CHECK_INT(ok.status, ST_AUTOCOMMIT | ST_IN_TRANS);
    CHECK_INT(ok.warnings, 3);
    CHECK_INT(ok.info_len, 4);
    CHECK(ok.info && memcmp(ok.info, "info", 4) == 0);
    CHECK(!ok.schema_changed);

    pbuf_reset(&b);
    seq = 1;
    pkt_build_ok(&b, &seq, 0, 0, ST_AUTOCOMMIT, 0, NULL, 0);
    static const uint8_t bare[] = {0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00};
    p = one_packet(&b, 1, &len);
    CHECK_BYTES(p, len, bare);

    pbuf_reset(&b);
    seq = 1;
    pkt_build_ok(&b, &seq, UINT64_MAX, 0x10000, 0, 0, "", 0);
    static const uint8_t big[] = {0x00, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                  0xFF, 0xFD, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    p = one_packet(&b, 1, &len);
    CHECK_BYTES(p, len, big);
    pbuf_free(&b);
}

static void test_eof_builder(void)
{
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 5;
    size_t len;
    uint16_t w, st;

    /* Classic EOF: 0xFE, warnings, status. */
    pkt_build_eof(&b, &seq, CAP_PROTOCOL_41, 0x0102, 0x0022);
    CHECK_INT(seq, 6);
    static const uint8_t classic[] = {0xFE, 0x02, 0x01, 0x22, 0x00};
    const uint8_t *p = one_packet(&b, 5, &len);
    CHECK_BYTES(p, len, classic);
    CHECK(pkt_is_eof(p, len));
    CHECK_INT(pkt_parse_eof(p, len, &w, &st), 0);
    CHECK_INT(w, 0x0102);
    CHECK_INT(st, 0x0022);

    /* With CAP_DEPRECATE_EOF: an OK packet with the 0xFE header; status comes first. */
    pbuf_reset(&b);
    seq = 5;
    pkt_build_eof(&b, &seq, CAP_PROTOCOL_41 | CAP_DEPRECATE_EOF, 0x0102, 0x0022);
    CHECK_INT(seq, 6);
    static const uint8_t dep[] = {0xFE, 0x00, 0x00, 0x22, 0x00, 0x02, 0x01};
    p = one_packet(&b, 5, &len);
    CHECK_BYTES(p, len, dep);
    pkt_ok ok;
    CHECK_INT(pkt_parse_ok(p, len, CAP_PROTOCOL_41 | CAP_DEPRECATE_EOF | CAP_SESSION_TRACK, &ok),
              0);
    CHECK_INT(ok.status, 0x0022);
    CHECK_INT(ok.warnings, 0x0102);
    pbuf_free(&b);
}

static void test_err_builder(void)
{
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 1;
    size_t len;
    pkt_build_err(&b, &seq, 1044, "42000", "Access denied for user '%s'", "bob");
    CHECK_INT(seq, 2);
    static const uint8_t want[] = {0xFF, 0x14, 0x04, '#', '4', '2', '0', '0', '0', 'A',
                                   'c',  'c',  'e',  's', 's', ' ', 'd', 'e', 'n', 'i',
                                   'e',  'd',  ' ',  'f', 'o', 'r', ' ', 'u', 's', 'e',
                                   'r',  ' ',  '\'', 'b', 'o', 'b', '\''};
    const uint8_t *p = one_packet(&b, 1, &len);
    CHECK_BYTES(p, len, want);

    /* An empty message. */
    pbuf_reset(&b);
    seq = 0;
    pkt_build_err(&b, &seq, 0xFFFF, "HY000", "%s", "");
    static const uint8_t bare[] = {0xFF, 0xFF, 0xFF, '#', 'H', 'Y', '0', '0', '0'};
    p = one_packet(&b, 0, &len);
    CHECK_BYTES(p, len, bare);

    /* A very long message still makes one well-formed packet. */
    char longmsg[2000];
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    pbuf_reset(&b);
    seq = 0;
    pkt_build_err(&b, &seq, 1064, "42000", "%s", longmsg);
    p = one_packet(&b, 0, &len);
    CHECK(len > 9 && len <= 9 + sizeof(longmsg));
    CHECK_INT(p[0], 0xFF);
    CHECK_INT(p[3], '#');
    CHECK_INT(p[len - 1], 'm');
    pbuf_free(&b);
}

static void test_auth_switch_builder(void)
{
    uint8_t scramble[20];
    for (int i = 0; i < 20; i++)
        scramble[i] = (uint8_t)(i + 1);
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 2;
    size_t len;
    pkt_build_auth_switch(&b, &seq, "caching_sha2_password", scramble);
    CHECK_INT(seq, 3);
    static const uint8_t want[] = {0xFE, 'c', 'a', 'c', 'h', 'i', 'n', 'g', '_', 's', 'h',
                                   'a',  '2', '_', 'p', 'a', 's', 's', 'w', 'o', 'r', 'd',
                                   0,    1,   2,   3,   4,   5,   6,   7,   8,   9,   10,
                                   11,   12,  13,  14,  15,  16,  17,  18,  19,  20,  0};
    const uint8_t *p = one_packet(&b, 2, &len);
    CHECK_BYTES(p, len, want);
    pbuf_free(&b);
}

static void test_column_builder(void)
{
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 2;
    size_t len;
    pkt_build_column(&b, &seq, "db", "t", "col", 33, 0x00010203, PKT_TYPE_VAR_STRING, 0x0081, 2,
                     false);
    CHECK_INT(seq, 3);
    /* clang-format off */
    static const uint8_t want[] = {
        3,    'd',  'e',  'f',        /* catalog */
        2,    'd',  'b',              /* schema */
        1,    't',                    /* table */
        1,    't',                    /* original table */
        3,    'c',  'o',  'l',        /* name */
        3,    'c',  'o',  'l',        /* original name */
        0x0C,                         /* length of the fixed fields */
        33,   0,                      /* charset */
        0x03, 0x02, 0x01, 0x00,       /* column length */
        253,                          /* type */
        0x81, 0x00,                   /* flags */
        2,                            /* decimals */
        0,    0,                      /* filler */
    };
    /* clang-format on */
    const uint8_t *p = one_packet(&b, 2, &len);
    CHECK_BYTES(p, len, want);

    /* Empty schema and table, as for a computed column. */
    pbuf_reset(&b);
    seq = 1;
    pkt_build_column(&b, &seq, "", "", "_env", 63, 64, PKT_TYPE_LONGLONG, 0, 0, false);
    static const uint8_t computed[] = {3,   'd', 'e',  'f', 0,
                                       0,   0,   4,    '_', 'e',
                                       'n', 'v', 4,    '_', 'e',
                                       'n', 'v', 0x0C, 63,  0,
                                       64,  0,   0,    0,   PKT_TYPE_LONGLONG,
                                       0,   0,   0,    0,   0};
    p = one_packet(&b, 1, &len);
    CHECK_BYTES(p, len, computed);
    pbuf_free(&b);
}

static void test_text_row_builder(void)
{
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 4;
    size_t len;
    const char *vals[] = {"1", NULL, "", "abc"};
    pkt_build_text_row(&b, &seq, 4, vals, NULL);
    CHECK_INT(seq, 5);
    static const uint8_t want[] = {1, '1', 0xFB, 0, 3, 'a', 'b', 'c'};
    const uint8_t *p = one_packet(&b, 4, &len);
    CHECK_BYTES(p, len, want);

    /* Explicit lengths: binary values with NUL bytes inside. */
    pbuf_reset(&b);
    seq = 0;
    const char *bin[] = {"a\0b", NULL};
    const size_t lens[] = {3, 0};
    pkt_build_text_row(&b, &seq, 2, bin, lens);
    static const uint8_t want_bin[] = {3, 'a', 0, 'b', 0xFB};
    p = one_packet(&b, 0, &len);
    CHECK_BYTES(p, len, want_bin);

    /* A value longer than 250 bytes takes a 3-byte length. */
    char big[301];
    memset(big, 'z', 300);
    big[300] = '\0';
    const char *one[] = {big};
    pbuf_reset(&b);
    seq = 0;
    pkt_build_text_row(&b, &seq, 1, one, NULL);
    p = one_packet(&b, 0, &len);
    CHECK_INT(len, 303);
    CHECK_INT(p[0], 0xFC);
    CHECK_INT(pkt_u16(p + 1), 300);
    CHECK_INT(p[302], 'z');

    /* No columns: an empty payload. */
    pbuf_reset(&b);
    seq = 0;
    pkt_build_text_row(&b, &seq, 0, vals, NULL);
    p = one_packet(&b, 0, &len);
    CHECK_INT(len, 0);

    /* Rows read back with the reader, NULL included. */
    pbuf_reset(&b);
    seq = 0;
    pkt_build_text_row(&b, &seq, 4, vals, NULL);
    p = one_packet(&b, 0, &len);
    preader r;
    pr_init(&r, p, len);
    uint64_t v;
    bool is_null;
    const uint8_t *s;
    CHECK(pr_lenenc(&r, &v, &is_null) && !is_null && v == 1);
    CHECK(pr_bytes(&r, 1, &s) && s[0] == '1');
    CHECK(pr_lenenc(&r, &v, &is_null) && is_null);
    CHECK(pr_lenenc(&r, &v, &is_null) && !is_null && v == 0);
    CHECK(pr_lenenc(&r, &v, &is_null) && !is_null && v == 3);
    CHECK(pr_skip(&r, 3));
    CHECK_INT(pr_left(&r), 0);
    pbuf_free(&b);
}

/* ---- HandshakeResponse41 ---------------------------------------------------------------- */

#define BASE_CAPS (CAP_PROTOCOL_41 | CAP_LONG_PASSWORD | CAP_TRANSACTIONS | CAP_MULTI_RESULTS)

/* The fixed 32-byte head: capabilities, max packet, charset, 23 zero bytes. */
static void hs_head(pbuf *b, uint32_t caps)
{
    static const uint8_t zero[23];
    pbuf_u32(b, caps);
    pbuf_u32(b, 0x01000000);
    pbuf_u8(b, 45);
    pbuf_put(b, zero, sizeof(zero));
}

static const uint8_t AUTH20[20] = {0x8a, 0x01, 0xfe, 0x00, 0x7f, 0x22, 0x33, 0x44, 0x55, 0x66,
                                   0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x10};

/* Parses b's contents from an exact-size heap copy; returns parse's result and leaves the copy
 * in *copy for pointer checks (the caller frees). */
static int hs_parse(const pbuf *b, size_t len, pkt_handshake_response *out, uint8_t **copy,
                    char *err, size_t errlen)
{
    *copy = exact(b->data, len);
    err[0] = '\0';
    return pkt_parse_handshake_response(*copy, len, out, err, errlen);
}

static bool span_eq(const void *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* A connector with CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA (libmariadb, Connector/J). */
static void build_full_response(pbuf *b)
{
    uint32_t caps = BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_PLUGIN_AUTH_LENENC |
                    CAP_CONNECT_WITH_DB | CAP_CONNECT_ATTRS | CAP_DEPRECATE_EOF | CAP_SESSION_TRACK;
    hs_head(b, caps);
    pbuf_cstr(b, "alice");
    pbuf_lenenc_str(b, AUTH20, sizeof(AUTH20));
    pbuf_cstr(b, "shop@prod");
    pbuf_cstr(b, "mysql_native_password");
    pbuf attrs;
    pbuf_init(&attrs);
    pbuf_lenenc_str(&attrs, "_client_name", 12);
    pbuf_lenenc_str(&attrs, "libmariadb", 10);
    pbuf_lenenc_str(&attrs, "_os", 3);
    pbuf_lenenc_str(&attrs, "Linux", 5);
    pbuf_lenenc_str(&attrs, "empty", 5);
    pbuf_lenenc_str(&attrs, "", 0);
    pbuf_lenenc_str(b, attrs.data, attrs.len);
    pbuf_free(&attrs);
}

static void test_handshake_lenenc(void)
{
    pbuf b;
    pbuf_init(&b);
    build_full_response(&b);
    pkt_handshake_response hr;
    uint8_t *in;
    char err[256];
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(!hr.ssl_request);
    CHECK(hr.caps & CAP_PLUGIN_AUTH_LENENC);
    CHECK(hr.caps & CAP_CONNECT_ATTRS);
    CHECK_INT(hr.max_packet, 0x01000000);
    CHECK_INT(hr.charset, 45);
    CHECK(span_eq(hr.user, hr.user_len, "alice"));
    CHECK(hr.user == (const char *)in + 32);
    CHECK_INT(hr.auth_len, 20);
    CHECK(hr.auth && memcmp(hr.auth, AUTH20, 20) == 0);
    CHECK(hr.auth == in + 32 + 6 + 1);
    CHECK(span_eq(hr.database, hr.database_len, "shop@prod"));
    CHECK(span_eq(hr.plugin, hr.plugin_len, "mysql_native_password"));
    free(in);

    /* Every truncation is handled without reading past it; cuts inside the fixed head or the
     * user name fail. */
    for (size_t len = 0; len < b.len; len++) {
        int rc = hs_parse(&b, len, &hr, &in, err, sizeof(err));
        CHECK(rc == 0 || rc == -1);
        if (len <= 32 + 5) {
            CHECK_INT(rc, -1);
            CHECK(err[0] != '\0');
        }
        free(in);
    }

    /* An authentication response longer than 250 bytes takes a 3-byte length. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_PLUGIN_AUTH_LENENC);
    pbuf_cstr(&b, "bob");
    uint8_t long_auth[300];
    for (size_t i = 0; i < sizeof(long_auth); i++)
        long_auth[i] = (uint8_t)i;
    pbuf_lenenc_str(&b, long_auth, sizeof(long_auth));
    pbuf_cstr(&b, "sha256_password");
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK_INT(hr.auth_len, 300);
    CHECK(hr.auth && memcmp(hr.auth, long_auth, 300) == 0);
    CHECK(hr.database == NULL);
    CHECK(span_eq(hr.plugin, hr.plugin_len, "sha256_password"));
    free(in);

    /* An empty password: length 0. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH_LENENC);
    pbuf_cstr(&b, "root");
    pbuf_u8(&b, 0);
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(span_eq(hr.user, hr.user_len, "root"));
    CHECK_INT(hr.auth_len, 0);
    CHECK(hr.database == NULL);
    CHECK(hr.plugin == NULL);
    free(in);
    pbuf_free(&b);
}

static void test_handshake_secure(void)
{
    pbuf b;
    pbuf_init(&b);
    pkt_handshake_response hr;
    uint8_t *in;
    char err[256];

    /* CLIENT_SECURE_CONNECTION: a one-byte length (PyMySQL, older clients). */
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_WITH_DB);
    pbuf_cstr(&b, "app_user");
    pbuf_u8(&b, 20);
    pbuf_put(&b, AUTH20, 20);
    pbuf_cstr(&b, "shop");
    pbuf_cstr(&b, "mysql_native_password");
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(span_eq(hr.user, hr.user_len, "app_user"));
    CHECK_INT(hr.auth_len, 20);
    CHECK(hr.auth == in + 32 + 9 + 1);
    CHECK(hr.auth && memcmp(hr.auth, AUTH20, 20) == 0); /* a NUL inside is fine */
    CHECK(span_eq(hr.database, hr.database_len, "shop"));
    CHECK(span_eq(hr.plugin, hr.plugin_len, "mysql_native_password"));
    free(in);

    /* The same with an empty database name and no plugin flag. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_CONNECT_WITH_DB);
    pbuf_cstr(&b, "u");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "");
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(hr.database != NULL);
    CHECK_INT(hr.database_len, 0);
    CHECK(hr.plugin == NULL);
    free(in);

    /* CLIENT_CONNECT_WITH_DB set but nothing after the auth data: no database. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_CONNECT_WITH_DB | CAP_PLUGIN_AUTH);
    pbuf_cstr(&b, "u");
    pbuf_u8(&b, 1);
    pbuf_u8(&b, 'x');
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(hr.database == NULL);
    CHECK(hr.plugin == NULL);
    free(in);

    /* Without CLIENT_CONNECT_WITH_DB the next string is the plugin, not a database. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH);
    pbuf_cstr(&b, "u");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "caching_sha2_password");
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(hr.database == NULL);
    CHECK(span_eq(hr.plugin, hr.plugin_len, "caching_sha2_password"));
    free(in);

    /* Neither length flag: the auth data is NUL-terminated (4.1 without secure connection). */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_CONNECT_WITH_DB);
    pbuf_cstr(&b, "old");
    pbuf_cstr(&b, "12345678");
    pbuf_cstr(&b, "legacy");
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(span_eq(hr.auth, hr.auth_len, "12345678"));
    CHECK(span_eq(hr.database, hr.database_len, "legacy"));
    free(in);
    pbuf_free(&b);
}

static void test_handshake_plugin_unterminated(void)
{
    pbuf b;
    pbuf_init(&b);
    pkt_handshake_response hr;
    uint8_t *in;
    char err[256];

    /* The plugin name runs to the end of the packet without its NUL. */
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_WITH_DB);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 20);
    pbuf_put(&b, AUTH20, 20);
    pbuf_cstr(&b, "shop");
    pbuf_put(&b, "mysql_native_password", 21);
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(span_eq(hr.plugin, hr.plugin_len, "mysql_native_password"));
    CHECK(span_eq(hr.database, hr.database_len, "shop"));
    free(in);

    /* Followed by attributes, the plugin name keeps its NUL. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "p");
    pbuf_u8(&b, 4);
    pbuf_lenenc_str(&b, "k", 1);
    pbuf_lenenc_str(&b, "v", 1);
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(span_eq(hr.plugin, hr.plugin_len, "p"));
    free(in);

    /* Attributes flag set but the packet ends after the plugin: no attributes, fine. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "p");
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    free(in);

    /* Empty attributes. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "p");
    pbuf_u8(&b, 0);
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    free(in);
    pbuf_free(&b);
}

static void test_handshake_ssl_request(void)
{
    pbuf b;
    pbuf_init(&b);
    pkt_handshake_response hr;
    uint8_t *in;
    char err[256];

    hs_head(&b, BASE_CAPS | CAP_SSL | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH);
    CHECK_INT(b.len, 32);
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(hr.ssl_request);
    CHECK(hr.caps & CAP_SSL);
    CHECK_INT(hr.max_packet, 0x01000000);
    CHECK_INT(hr.charset, 45);
    CHECK(hr.user == NULL);
    free(in);

    /* 32 bytes without CLIENT_SSL is a truncated response, not an SSLRequest. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION);
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), -1);
    CHECK(!hr.ssl_request);
    CHECK(err[0] != '\0');
    free(in);

    /* The full response after TLS keeps CLIENT_SSL and is not an SSLRequest. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SSL | CAP_SECURE_CONNECTION);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    CHECK_INT(hs_parse(&b, b.len, &hr, &in, err, sizeof(err)), 0);
    CHECK(!hr.ssl_request);
    CHECK(span_eq(hr.user, hr.user_len, "alice"));
    free(in);
    pbuf_free(&b);
}

/* Expects the parse of b to fail with a message containing want. */
static void expect_hs_error(const pbuf *b, const char *want, int line)
{
    pkt_handshake_response hr;
    uint8_t *in;
    char err[256];
    int rc = hs_parse(b, b->len, &hr, &in, err, sizeof(err));
    if (rc == -1 && strstr(err, want)) {
        unit_passed++;
    } else {
        unit_failed++;
        fprintf(stderr, "%s:%d: got %d \"%s\", want -1 with \"%s\"\n", __FILE__, line, rc, err,
                want);
    }
    free(in);
}

static void test_handshake_malformed(void)
{
    pbuf b;
    pbuf_init(&b);
    pkt_handshake_response hr;
    uint8_t *in;
    char err[256];

    /* Too short. */
    for (size_t len = 0; len < 32; len++) {
        pbuf_reset(&b);
        hs_head(&b, BASE_CAPS | CAP_SSL);
        CHECK_INT(hs_parse(&b, len, &hr, &in, err, sizeof(err)), -1);
        CHECK(err[0] != '\0');
        free(in);
    }
    pbuf_reset(&b);
    pbuf_put(&b, "\x00\x02\x00", 3);
    expect_hs_error(&b, "too short", __LINE__);

    /* No CLIENT_PROTOCOL_41. */
    pbuf_reset(&b);
    hs_head(&b, (BASE_CAPS | CAP_SECURE_CONNECTION) & ~CAP_PROTOCOL_41);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    expect_hs_error(&b, "4.1", __LINE__);

    /* The user name runs to the end. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION);
    pbuf_put(&b, "alice", 5);
    expect_hs_error(&b, "user", __LINE__);

    /* Auth data longer than what is left: one-byte length. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 20);
    pbuf_put(&b, AUTH20, 19);
    expect_hs_error(&b, "auth", __LINE__);

    /* The one-byte length itself missing. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION);
    pbuf_cstr(&b, "alice");
    expect_hs_error(&b, "auth", __LINE__);

    /* Length-encoded: too long, truncated length, NULL and 0xFF markers. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH_LENENC);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 21);
    pbuf_put(&b, AUTH20, 20);
    expect_hs_error(&b, "auth", __LINE__);
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_PLUGIN_AUTH_LENENC);
    pbuf_cstr(&b, "alice");
    pbuf_put(&b, "\xFC\x01", 2);
    expect_hs_error(&b, "auth", __LINE__);
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_PLUGIN_AUTH_LENENC);
    pbuf_cstr(&b, "alice");
    pbuf_put(&b, "\xFB", 1);
    expect_hs_error(&b, "auth", __LINE__);
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_PLUGIN_AUTH_LENENC);
    pbuf_cstr(&b, "alice");
    pbuf_put(&b, "\xFF\x00", 2);
    expect_hs_error(&b, "auth", __LINE__);
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_PLUGIN_AUTH_LENENC);
    pbuf_cstr(&b, "alice");
    pbuf_put(&b, "\xFE\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 9);
    expect_hs_error(&b, "auth", __LINE__);

    /* NUL-terminated auth data without its NUL. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS);
    pbuf_cstr(&b, "alice");
    pbuf_put(&b, "abc", 3);
    expect_hs_error(&b, "auth", __LINE__);

    /* A database name without its NUL. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_CONNECT_WITH_DB | CAP_PLUGIN_AUTH);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_put(&b, "shop", 4);
    expect_hs_error(&b, "database", __LINE__);

    /* Attributes whose length runs past the end. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "mysql_native_password");
    pbuf_u8(&b, 50);
    pbuf_lenenc_str(&b, "k", 1);
    pbuf_lenenc_str(&b, "v", 1);
    expect_hs_error(&b, "attributes", __LINE__);
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "mysql_native_password");
    pbuf_put(&b, "\xFD\x00\x00", 3);
    expect_hs_error(&b, "attributes", __LINE__);

    /* Malformed attributes: a key without a value, a value running past the block. */
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "p");
    pbuf_u8(&b, 4);
    pbuf_put(&b, "\x03key", 4);
    expect_hs_error(&b, "attributes", __LINE__);
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "p");
    pbuf_u8(&b, 5);
    pbuf_put(&b, "\x01k\x05vv", 5); /* value says 5 bytes, the block has 2 left */
    pbuf_put(&b, "vvv", 3);         /* bytes after the block must not be borrowed */
    expect_hs_error(&b, "attributes", __LINE__);
    pbuf_reset(&b);
    hs_head(&b, BASE_CAPS | CAP_SECURE_CONNECTION | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS);
    pbuf_cstr(&b, "alice");
    pbuf_u8(&b, 0);
    pbuf_cstr(&b, "p");
    pbuf_u8(&b, 3);
    pbuf_put(&b, "\x01k\xFB", 3); /* NULL is not a string */
    expect_hs_error(&b, "attributes", __LINE__);
    pbuf_free(&b);
}

/* ---- OK packets from a backend ----------------------------------------------------------- */

/* An OK with session tracking: affected 2, insert id 0, status with SESSION_STATE_CHANGED,
 * info "", a system-variable change (autocommit=OFF) and a schema change to "shop". */
static void build_tracked_ok(pbuf *b)
{
    pbuf_u8(b, 0x00);
    pbuf_lenenc(b, 2);
    pbuf_lenenc(b, 0);
    pbuf_u16(b, ST_AUTOCOMMIT | ST_SESSION_STATE_CHANGED);
    pbuf_u16(b, 1);
    pbuf_lenenc_str(b, "", 0);

    pbuf state, entry;
    pbuf_init(&state);
    pbuf_init(&entry);
    pbuf_lenenc_str(&entry, "autocommit", 10);
    pbuf_lenenc_str(&entry, "OFF", 3);
    pbuf_u8(&state, 0); /* SESSION_TRACK_SYSTEM_VARIABLES */
    pbuf_lenenc_str(&state, entry.data, entry.len);
    pbuf_reset(&entry);
    pbuf_lenenc_str(&entry, "shop", 4);
    pbuf_u8(&state, 1); /* SESSION_TRACK_SCHEMA */
    pbuf_lenenc_str(&state, entry.data, entry.len);
    pbuf_lenenc_str(b, state.data, state.len);
    pbuf_free(&state);
    pbuf_free(&entry);
}

/* Parses an exact-size copy of p; on success the pointers in ok are moved back onto p, so
 * they stay valid after the copy is freed. */
static int parse_ok_exact(const uint8_t *p, size_t len, uint32_t caps, pkt_ok *ok)
{
    uint8_t *in = exact(p, len);
    int rc = pkt_parse_ok(in, len, caps, ok);
    if (rc == 0) {
        /* Pointers into the payload must stay inside it. */
        CHECK(ok->info_len == 0 || (ok->info >= in && ok->info + ok->info_len <= in + len));
        CHECK(!ok->schema_changed || (ok->schema >= in && ok->schema + ok->schema_len <= in + len));
        if (ok->info)
            ok->info = p + (ok->info - in);
        if (ok->schema)
            ok->schema = p + (ok->schema - in);
    }
    free(in);
    return rc;
}

static void test_parse_ok(void)
{
    pkt_ok ok;
    const uint32_t TRACK = CAP_PROTOCOL_41 | CAP_SESSION_TRACK;

    /* Without CLIENT_SESSION_TRACK: a length-encoded message, no session state. */
    static const uint8_t plain[] = {0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 'h', 'i'};
    uint8_t *in = exact(plain, sizeof(plain));
    CHECK_INT(pkt_parse_ok(in, sizeof(plain), CAP_PROTOCOL_41, &ok), 0);
    CHECK(ok.affected == 1 && ok.insert_id == 0);
    CHECK_INT(ok.status, ST_AUTOCOMMIT);
    CHECK_INT(ok.warnings, 0);
    CHECK(span_eq(ok.info, ok.info_len, "hi"));
    CHECK(!ok.schema_changed);
    free(in);
    for (size_t len = 0; len < sizeof(plain); len++)
        CHECK_INT(parse_ok_exact(plain, len, CAP_PROTOCOL_41, &ok), len == 7 ? 0 : -1);

    /* Large counters. */
    static const uint8_t counters[] = {0x00, 0xFD, 0x00, 0x00, 0x01, 0xFE, 1,    2,    3,
                                       4,    5,    6,    7,    8,    0x00, 0x00, 0x05, 0x00};
    CHECK_INT(parse_ok_exact(counters, sizeof(counters), TRACK, &ok), 0);
    CHECK(ok.affected == 0x10000);
    CHECK(ok.insert_id == 0x0807060504030201ull);
    CHECK_INT(ok.warnings, 5);
    CHECK_INT(ok.info_len, 0);

    /* With tracking but nothing after the counters. */
    static const uint8_t bare[] = {0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00};
    CHECK_INT(parse_ok_exact(bare, sizeof(bare), TRACK, &ok), 0);
    CHECK_INT(ok.info_len, 0);
    CHECK(!ok.schema_changed);

    /* With tracking: a length-encoded info, no state change flag. */
    static const uint8_t info[] = {0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 3, 'a', 'b', 'c'};
    CHECK_INT(parse_ok_exact(info, sizeof(info), TRACK, &ok), 0);
    CHECK(span_eq(ok.info, ok.info_len, "abc"));
    CHECK(!ok.schema_changed);
    CHECK_INT(parse_ok_exact(info, sizeof(info) - 1, TRACK, &ok), -1);

    /* A state block with a system variable and a schema change. */
    pbuf b;
    pbuf_init(&b);
    build_tracked_ok(&b);
    in = exact(b.data, b.len);
    CHECK_INT(pkt_parse_ok(in, b.len, TRACK, &ok), 0);
    CHECK(ok.affected == 2);
    CHECK_INT(ok.status, ST_AUTOCOMMIT | ST_SESSION_STATE_CHANGED);
    CHECK_INT(ok.warnings, 1);
    CHECK_INT(ok.info_len, 0);
    CHECK(ok.schema_changed);
    CHECK(span_eq(ok.schema, ok.schema_len, "shop"));
    free(in);

    /* Its 0xFE (deprecate-EOF) form parses the same. */
    b.data[0] = 0xFE;
    CHECK_INT(parse_ok_exact(b.data, b.len, TRACK | CAP_DEPRECATE_EOF, &ok), 0);
    CHECK(ok.schema_changed);
    CHECK(span_eq(ok.schema, ok.schema_len, "shop"));
    b.data[0] = 0x00;

    /* Cut anywhere: before the counters end it fails; right after the counters or the info
     * it is a shorter valid OK; inside the state block it fails. */
    for (size_t len = 0; len < b.len; len++) {
        int want = (len == 7 || len == 8) ? 0 : -1;
        int rc = parse_ok_exact(b.data, len, TRACK, &ok);
        if (rc != want)
            fprintf(stderr, "  (cut at %zu of %zu)\n", len, b.len);
        CHECK_INT(rc, want);
        CHECK(!ok.schema_changed || rc != 0 || len == b.len);
    }

    /* The same bytes without the state-changed flag: the block is not read. */
    b.data[3] = ST_AUTOCOMMIT;
    b.data[4] = 0x00;
    CHECK_INT(parse_ok_exact(b.data, b.len, TRACK, &ok), 0);
    CHECK(!ok.schema_changed);
    pbuf_free(&b);

    /* Only a system variable: no schema change. */
    static const uint8_t sysvar[] = {0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x09,
                                     0x00, 0x07, 0x03, 's',  'q',  'l',  0x02, 'o',  'n'};
    CHECK_INT(parse_ok_exact(sysvar, sizeof(sysvar), TRACK, &ok), 0);
    CHECK(!ok.schema_changed);

    /* Other tracker types (transaction state, 5) are skipped. */
    static const uint8_t other[] = {0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x09,
                                    0x05, 0x02, 0x01, 'T',  0x01, 0x03, 0x02, 'd',  'b'};
    CHECK_INT(parse_ok_exact(other, sizeof(other), TRACK, &ok), 0);
    CHECK(ok.schema_changed);
    CHECK(span_eq(ok.schema, ok.schema_len, "db"));

    /* An empty schema (the session has no database now). */
    static const uint8_t noschema[] = {0x00, 0x00, 0x00, 0x00, 0x40, 0x00,
                                       0x00, 0x00, 0x03, 0x01, 0x01, 0x00};
    CHECK_INT(parse_ok_exact(noschema, sizeof(noschema), TRACK, &ok), 0);
    CHECK(ok.schema_changed);
    CHECK_INT(ok.schema_len, 0);

    /* Malformed state blocks. */
    static const uint8_t type_only[] = {0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x01, 0x01};
    CHECK_INT(parse_ok_exact(type_only, sizeof(type_only), TRACK, &ok), -1);
    static const uint8_t entry_past_block[] = {0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
                                               0x03, 0x01, 0x05, 0x04, 's',  'h',  'o',  'p'};
    CHECK_INT(parse_ok_exact(entry_past_block, sizeof(entry_past_block), TRACK, &ok), -1);
    static const uint8_t schema_past_entry[] = {0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
                                                0x04, 0x01, 0x02, 0x04, 's',  'h',  'o',  'p'};
    CHECK_INT(parse_ok_exact(schema_past_entry, sizeof(schema_past_entry), TRACK, &ok), -1);
    static const uint8_t block_past_end[] = {0x00, 0x00, 0x00, 0x00, 0x40, 0x00,
                                             0x00, 0x00, 0x20, 0x01, 0x01, 0x00};
    CHECK_INT(parse_ok_exact(block_past_end, sizeof(block_past_end), TRACK, &ok), -1);
    static const uint8_t null_info[] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFB};
    CHECK_INT(parse_ok_exact(null_info, sizeof(null_info), TRACK, &ok), -1);

    /* Not an OK at all. */
    static const uint8_t err[] = {0xFF, 0x15, 0x04, '#', '2', '8', '0', '0', '0'};
    CHECK_INT(parse_ok_exact(err, sizeof(err), TRACK, &ok), -1);
    static const uint8_t other_head[] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00};
    CHECK_INT(parse_ok_exact(other_head, sizeof(other_head), TRACK, &ok), -1);
    static const uint8_t bad_affected[] = {0x00, 0xFF, 0x00, 0x02, 0x00, 0x00, 0x00};
    CHECK_INT(parse_ok_exact(bad_affected, sizeof(bad_affected), TRACK, &ok), -1);
    static const uint8_t null_affected[] = {0x00, 0xFB, 0x00, 0x02, 0x00, 0x00, 0x00};
    CHECK_INT(parse_ok_exact(null_affected, sizeof(null_affected), TRACK, &ok), -1);
}

/* ---- EOF packets ----------------------------------------------------------------------- */

static void test_eof(void)
{
    static const uint8_t eof9[] = {0xFE, 0x01, 0x00, 0x02, 0x00, 0, 0, 0, 0};
    uint16_t w = 77, st = 77;
    uint8_t *in;

    CHECK(!pkt_is_eof(eof9, 0));
    for (size_t len = 1; len < 9; len++) {
        in = exact(eof9, len);
        CHECK(pkt_is_eof(in, len));
        CHECK_INT(pkt_parse_eof(in, len, &w, &st), 0);
        if (len >= 5) {
            CHECK_INT(w, 1);
            CHECK_INT(st, 2);
        } else {
            CHECK_INT(w, 0);
            CHECK_INT(st, 0);
        }
        free(in);
    }
    /* Nine bytes or more starting with 0xFE is a length-encoded integer (a row), not EOF. */
    in = exact(eof9, 9);
    CHECK(!pkt_is_eof(in, 9));
    CHECK_INT(pkt_parse_eof(in, 9, &w, &st), -1);
    free(in);

    static const uint8_t ok[] = {0x00, 0x00, 0x00, 0x02, 0x00};
    CHECK(!pkt_is_eof(ok, sizeof(ok)));
    CHECK_INT(pkt_parse_eof(ok, sizeof(ok), &w, &st), -1);
    static const uint8_t errp[] = {0xFF, 0x00};
    CHECK(!pkt_is_eof(errp, sizeof(errp)));
    in = exact("", 1);
    CHECK_INT(pkt_parse_eof(in, 0, &w, &st), -1);
    free(in);
}

/* ---- random input ------------------------------------------------------------------------ */

static bool inside(const void *p, size_t n, const uint8_t *buf, size_t len)
{
    const uint8_t *q = p;
    if (!q)
        return n == 0;
    return q >= buf && q <= buf + len && n <= (size_t)(buf + len - q);
}

/* Random bytes, half of them shaped like the real thing (plausible flags, zero filler, a
 * leading 0x00), so that the parsers get past their first checks. */
static void test_fuzz(void)
{
    static const uint32_t flag_pool[] = {
        CAP_SSL,           CAP_SECURE_CONNECTION, CAP_PLUGIN_AUTH,   CAP_PLUGIN_AUTH_LENENC,
        CAP_CONNECT_ATTRS, CAP_CONNECT_WITH_DB,   CAP_SESSION_TRACK, CAP_DEPRECATE_EOF};
    srand(20240601);
    int hs_ok = 0, ok_ok = 0, bad_ptr = 0;
    for (int it = 0; it < 20000; it++) {
        size_t len = (size_t)(rand() % 301);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
            abort();
        for (size_t i = 0; i < len; i++) {
            int r = rand();
            /* Small values, NULs and 0xFB..0xFF are the interesting bytes. */
            buf[i] = (r & 3) == 0   ? 0
                     : (r & 3) == 1 ? (uint8_t)(0xFB + (r >> 2) % 5)
                                    : (uint8_t)(r >> 4);
        }
        uint32_t caps = 0;
        for (size_t k = 0; k < sizeof(flag_pool) / sizeof(flag_pool[0]); k++)
            if (rand() & 1)
                caps |= flag_pool[k];
        bool shaped = rand() & 1;

        if (shaped && len >= 32) {
            uint32_t c = caps | CAP_PROTOCOL_41;
            buf[0] = (uint8_t)c;
            buf[1] = (uint8_t)(c >> 8);
            buf[2] = (uint8_t)(c >> 16);
            buf[3] = (uint8_t)(c >> 24);
            memset(buf + 9, 0, 23);
            if (len > 32 && (rand() & 1))
                buf[32 + rand() % (int)(len - 32)] = 0; /* a user name end */
        }
        pkt_handshake_response hr;
        char err[128];
        int rc = pkt_parse_handshake_response(buf, len, &hr, err, sizeof(err));
        CHECK(rc == 0 || rc == -1);
        if (rc == 0) {
            hs_ok++;
            if (!inside(hr.user, hr.user_len, buf, len) ||
                !inside(hr.auth, hr.auth_len, buf, len) ||
                !inside(hr.database, hr.database_len, buf, len) ||
                !inside(hr.plugin, hr.plugin_len, buf, len))
                bad_ptr++;
        }

        if (shaped && len >= 1) {
            buf[0] = (rand() & 1) ? 0x00 : 0xFE;
            if (len >= 8 && (rand() & 1)) {
                /* One-byte counters, then a status with SESSION_STATE_CHANGED. */
                buf[1] = (uint8_t)(rand() % 251);
                buf[2] = (uint8_t)(rand() % 251);
                buf[4] |= ST_SESSION_STATE_CHANGED >> 8;
            }
        }
        pkt_ok ok;
        rc = pkt_parse_ok(buf, len, caps, &ok);
        CHECK(rc == 0 || rc == -1);
        if (rc == 0) {
            ok_ok++;
            if (!inside(ok.info, ok.info_len, buf, len) ||
                (ok.schema_changed && !inside(ok.schema, ok.schema_len, buf, len)))
                bad_ptr++;
        }
        uint16_t w, st;
        pkt_parse_eof(buf, len, &w, &st);
        free(buf);
    }
    CHECK_INT(bad_ptr, 0);
    /* The shaping must actually reach the success paths. */
    CHECK(hs_ok > 0);
    CHECK(ok_ok > 0);

    /* Single-byte mutations of a valid response. */
    pbuf b;
    pbuf_init(&b);
    build_full_response(&b);
    for (int it = 0; it < 5000; it++) {
        uint8_t *buf = exact(b.data, b.len);
        int flips = 1 + rand() % 3;
        for (int f = 0; f < flips; f++)
            buf[32 + rand() % (int)(b.len - 32)] = (uint8_t)rand();
        size_t len = b.len - (size_t)(rand() % 4);
        pkt_handshake_response hr;
        char err[128];
        int rc = pkt_parse_handshake_response(buf, len, &hr, err, sizeof(err));
        CHECK(rc == 0 || rc == -1);
        if (rc == 0 &&
            (!inside(hr.user, hr.user_len, buf, len) || !inside(hr.auth, hr.auth_len, buf, len) ||
             !inside(hr.database, hr.database_len, buf, len) ||
             !inside(hr.plugin, hr.plugin_len, buf, len)))
            bad_ptr++;
        free(buf);
    }
    CHECK_INT(bad_ptr, 0);
    pbuf_free(&b);
}

/* An empty payload may have no storage at all (a pbuf never written to has data NULL). Every
 * get on it must fail without touching the pointer. Run last: under
 * -fno-sanitize-recover=undefined a violation stops the binary. */
static void test_reader_null(void)
{
    preader r;
    uint8_t u8;
    uint64_t v;
    const uint8_t *p;
    const char *s;
    size_t n;
    pbuf empty;
    pbuf_init(&empty);
    pr_init(&r, empty.data, empty.len);
    CHECK_INT(pr_left(&r), 0);
    CHECK(!pr_u8(&r, &u8));
    pr_init(&r, empty.data, empty.len);
    CHECK(!pr_lenenc(&r, &v, NULL));
    pr_init(&r, empty.data, empty.len);
    CHECK(!pr_lenenc_str(&r, &p, &n));
    pr_init(&r, empty.data, empty.len);
    CHECK(!pr_cstr(&r, &s, &n));
    CHECK(r.bad);
}

/* pbuf_init_on: the caller's storage until it is outgrown, then the heap; the storage is
 * never freed and keeps its bytes. */
static void test_pbuf_on_storage(void)
{
    uint8_t room[8];
    memset(room, 0xAA, sizeof(room));
    pbuf b;
    pbuf_init_on(&b, room, sizeof(room));
    pbuf_put(&b, "abcdef", 6);
    CHECK(b.data == room && b.len == 6 && b.borrowed);
    pbuf_put(&b, "gh", 2);
    CHECK(b.data == room && b.len == 8); /* exactly full: still the storage */
    pbuf_put(&b, "ijkl", 4);
    CHECK(b.data != room && !b.borrowed && b.len == 12 && b.cap >= 12);
    CHECK(memcmp(b.data, "abcdefghijkl", 12) == 0);
    CHECK(memcmp(room, "abcdefgh", 8) == 0);
    pbuf_free(&b); /* frees the heap copy only (ASan would see a bad free) */
    CHECK(b.data == NULL && b.len == 0 && !b.borrowed);

    pbuf_init_on(&b, room, sizeof(room));
    pbuf_put(&b, "xy", 2);
    pbuf_free(&b); /* never heap: nothing to free */
    CHECK(b.data == NULL && room[0] == 'x');
}

/* pkt_append_reframed: stored packets come out with fresh sequence ids, payloads intact; a
 * store cut short ends at the last whole packet. */
static void test_append_reframed(void)
{
    pbuf store, out;
    pbuf_init(&store);
    pbuf_init(&out);
    uint8_t seq = 7; /* whatever the stored ids were */
    const char *payloads[] = {"one", "", "three33"};
    for (int i = 0; i < 3; i++) {
        size_t start = pkt_begin(&store);
        pbuf_put(&store, payloads[i], strlen(payloads[i]));
        pkt_end(&store, start, &seq);
    }
    uint8_t next = 2;
    pkt_append_reframed(&out, &store, &next);
    CHECK(next == 5);
    CHECK(out.len == store.len);
    size_t off = 0;
    for (int i = 0; i < 3 && off + PKT_HEADER <= out.len; i++) {
        size_t n = pkt_u24(out.data + off);
        CHECK(n == strlen(payloads[i]));
        CHECK(out.data[off + 3] == (uint8_t)(2 + i));
        CHECK(memcmp(out.data + off + PKT_HEADER, payloads[i], n) == 0);
        off += PKT_HEADER + n;
    }
    CHECK(off == out.len);

    /* The last packet's payload cut by two bytes: only the first two come out. */
    pbuf_reset(&out);
    pbuf cut = store;
    cut.len -= 2;
    next = 0;
    pkt_append_reframed(&out, &cut, &next);
    CHECK(next == 2);
    CHECK(out.len == 2 * PKT_HEADER + 3);
    /* A store shorter than a header: nothing. */
    pbuf_reset(&out);
    cut.len = 3;
    next = 0;
    pkt_append_reframed(&out, &cut, &next);
    CHECK(out.len == 0 && next == 0);

    /* pkt_reframe_into: the same bytes as pkt_append_reframed, into a flat buffer; it stops
     * at a header claiming 16 MiB - 1 bytes (never a kept packet) as at a cut one. */
    uint8_t flat[64];
    next = 9;
    size_t used = pkt_reframe_into(flat, store.data, store.len, &next);
    CHECK(used == store.len && next == 12);
    pbuf_reset(&out);
    next = 9;
    pkt_append_reframed(&out, &store, &next);
    CHECK(out.len == used && memcmp(out.data, flat, used) == 0);
    uint8_t odd[2 * PKT_HEADER + 3] = {3, 0, 0, 0, 'a', 'b', 'c', 0xFF, 0xFF, 0xFF, 0};
    next = 0;
    CHECK(pkt_reframe_into(flat, odd, sizeof(odd), &next) == PKT_HEADER + 3 && next == 1);
    pbuf_free(&store);
    pbuf_free(&out);
}

/* Binary-protocol rows of the proxy's own results: fixed-size numbers, the NULL bitmap at
 * bit offset 2, DATETIME in its 4/7/11-byte forms, strings length-encoded. */
static void test_binary_row_builder(void)
{
    static const uint8_t types[] = {PKT_TYPE_LONGLONG, PKT_TYPE_VAR_STRING, PKT_TYPE_DOUBLE,
                                    PKT_TYPE_DATETIME, PKT_TYPE_LONG, PKT_TYPE_DATETIME};
    const char *vals[] = {"-2", NULL, "1.5", "2026-12-04 13:14:15", "7", "2026-01-02"};
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 3;
    pkt_build_binary_row(&b, &seq, 6, types, vals, NULL);
    static const uint8_t want[] = {
        0x00, 0x08,                                     /* header; NULL bitmap: column 1 */
        0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* -2 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF8, 0x3F, /* 1.5 */
        0x07, 0xEA, 0x07, 12, 4, 13, 14, 15,            /* datetime, 7 bytes */
        0x07, 0x00, 0x00, 0x00,                         /* 7 */
        0x04, 0xEA, 0x07, 1, 2,                         /* a date: 4 bytes */
    };
    CHECK_INT(b.len, PKT_HEADER + sizeof(want));
    CHECK_INT(b.data[3], 3);
    CHECK_INT(seq, 4);
    CHECK(b.len == PKT_HEADER + sizeof(want) &&
          memcmp(b.data + PKT_HEADER, want, sizeof(want)) == 0);
    pbuf_free(&b);

    /* Microseconds: 11 bytes. */
    static const uint8_t dt[] = {PKT_TYPE_DATETIME};
    const char *v2[] = {"2026-12-04 00:00:00.5"};
    pbuf_init(&b);
    pkt_build_binary_row(&b, &seq, 1, dt, v2, NULL);
    CHECK_INT(b.len, PKT_HEADER + 2 + 12);
    CHECK_INT(b.data[PKT_HEADER + 2], 11);
    CHECK_INT(pkt_u32(b.data + PKT_HEADER + 2 + 8), 500000);
    pbuf_free(&b);

    /* What fits: a column with one value that does not is sent as a string. */
    CHECK(pkt_binary_value_fits(PKT_TYPE_LONGLONG, "-9223372036854775808", 20));
    CHECK(!pkt_binary_value_fits(PKT_TYPE_LONGLONG, "18446744073709551615", 20));
    CHECK(!pkt_binary_value_fits(PKT_TYPE_LONGLONG, "12abc", 5));
    CHECK(!pkt_binary_value_fits(PKT_TYPE_LONGLONG, "", 0));
    CHECK(!pkt_binary_value_fits(PKT_TYPE_LONG, "2147483648", 10));
    CHECK(pkt_binary_value_fits(PKT_TYPE_DOUBLE, "1e300", 5));
    CHECK(!pkt_binary_value_fits(PKT_TYPE_DOUBLE, "1e999", 5));
    CHECK(pkt_binary_value_fits(PKT_TYPE_DATETIME, "0000-00-00 00:00:00", 19));
    CHECK(!pkt_binary_value_fits(PKT_TYPE_DATETIME, "2026-13-01", 10));
    CHECK(!pkt_binary_value_fits(PKT_TYPE_DATETIME, "yesterday", 9));
    CHECK(pkt_binary_value_fits(PKT_TYPE_VAR_STRING, "anything", 8));
}

int main(void)
{
    test_binary_row_builder();
    test_pbuf();
    test_pbuf_on_storage();
    test_append_reframed();
    test_lenenc_roundtrip();
    test_lenenc_special();
    test_reader_basic();
    test_reader_truncated();
    test_framing_small();
    test_framing_large();
    test_forwarded_commands_at_boundary();
    test_greeting();
    test_ok_builder();
    test_eof_builder();
    test_err_builder();
    test_auth_switch_builder();
    test_column_builder();
    test_text_row_builder();
    test_handshake_lenenc();
    test_handshake_secure();
    test_handshake_plugin_unterminated();
    test_handshake_ssl_request();
    test_handshake_malformed();
    test_parse_ok();
    test_eof();
    test_fuzz();
    test_reader_null();
    return unit_report("packet");
}
