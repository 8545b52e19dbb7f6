/* packet.h: MySQL wire-protocol framing, builders and parsers (pure: plain byte buffers). */
#ifndef ENVPROXY_PACKET_H
#define ENVPROXY_PACKET_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_HEADER 4
#define PKT_MAX_PAYLOAD 0xFFFFFFu /* a physical packet of this size is continued */

/* Capability flags (client/server). */
#define CAP_LONG_PASSWORD 0x00000001u
#define CAP_FOUND_ROWS 0x00000002u
#define CAP_LONG_FLAG 0x00000004u
#define CAP_CONNECT_WITH_DB 0x00000008u
#define CAP_COMPRESS 0x00000020u
#define CAP_LOCAL_FILES 0x00000080u
#define CAP_PROTOCOL_41 0x00000200u
#define CAP_INTERACTIVE 0x00000400u
#define CAP_SSL 0x00000800u
#define CAP_TRANSACTIONS 0x00002000u
#define CAP_SECURE_CONNECTION 0x00008000u
#define CAP_MULTI_STATEMENTS 0x00010000u
#define CAP_MULTI_RESULTS 0x00020000u
#define CAP_PS_MULTI_RESULTS 0x00040000u
#define CAP_PLUGIN_AUTH 0x00080000u
#define CAP_CONNECT_ATTRS 0x00100000u
#define CAP_PLUGIN_AUTH_LENENC 0x00200000u
#define CAP_SESSION_TRACK 0x00800000u
#define CAP_DEPRECATE_EOF 0x01000000u

/* Server status flags. */
#define ST_IN_TRANS 0x0001
#define ST_AUTOCOMMIT 0x0002
#define ST_MORE_RESULTS 0x0008
#define ST_NO_BACKSLASH_ESCAPES 0x0200 /* the session's sql_mode has NO_BACKSLASH_ESCAPES */
#define ST_ANSI_QUOTES 0x8000          /* MariaDB: ... and ANSI_QUOTES */
#define ST_SESSION_STATE_CHANGED 0x4000

/* Commands. */
enum {
    CMD_SLEEP = 0x00,
    CMD_QUIT = 0x01,
    CMD_INIT_DB = 0x02,
    CMD_QUERY = 0x03,
    CMD_FIELD_LIST = 0x04,
    CMD_STATISTICS = 0x09,
    CMD_PROCESS_KILL = 0x0c,
    CMD_PING = 0x0e,
    CMD_CHANGE_USER = 0x11,
    CMD_STMT_PREPARE = 0x16,
    CMD_STMT_EXECUTE = 0x17,
    CMD_STMT_SEND_LONG_DATA = 0x18,
    CMD_STMT_CLOSE = 0x19,
    CMD_STMT_RESET = 0x1a,
    CMD_SET_OPTION = 0x1b,
    CMD_STMT_FETCH = 0x1c,
    CMD_RESET_CONNECTION = 0x1f,
};

/* A growable byte buffer. Allocation failure aborts the process (out of memory). */
typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool borrowed; /* data is the caller's storage (pbuf_init_on); moved to the heap to grow */
} pbuf;

void pbuf_init(pbuf *b);
/* Starts b on the caller's storage (say, a stack array for a packet of a statement's
 * response): no allocation unless it outgrows cap. */
void pbuf_init_on(pbuf *b, uint8_t *storage, size_t cap);
void pbuf_free(pbuf *b);
void pbuf_reset(pbuf *b);
void pbuf_reserve(pbuf *b, size_t extra);
void pbuf_put(pbuf *b, const void *p, size_t n);
void pbuf_u8(pbuf *b, uint8_t v);
void pbuf_u16(pbuf *b, uint16_t v);
void pbuf_u24(pbuf *b, uint32_t v);
void pbuf_u32(pbuf *b, uint32_t v);
void pbuf_lenenc(pbuf *b, uint64_t v);
void pbuf_lenenc_str(pbuf *b, const void *s, size_t n);
void pbuf_cstr(pbuf *b, const char *s); /* with its NUL */

/* Packet framing inside a pbuf: pkt_begin() reserves a header and returns its offset;
 * pkt_end() fills it in, splitting payloads of 16 MiB or more into continuation packets.
 * *seq is the sequence id of the first packet and is advanced past the last one. */
size_t pkt_begin(pbuf *b);
void pkt_end(pbuf *b, size_t start, uint8_t *seq);
/* The physical packets of one logical packet of len payload bytes: len / PKT_MAX_PAYLOAD + 1
 * of them, all but the last PKT_MAX_PAYLOAD bytes long, the last shorter (empty when len is
 * a multiple of PKT_MAX_PAYLOAD, the empty packet that tells the reader the payload ended).
 * pkt_part gives part i's offset in the payload and its length. Every packet the proxy
 * forwards or builds is cut this way. */
size_t pkt_part_count(size_t len);
void pkt_part(size_t len, size_t i, size_t *off, size_t *n);
/* Writes the header of a physical packet of n bytes (n < 2^24) with sequence id seq. */
void pkt_put_header(uint8_t h[PKT_HEADER], size_t n, uint8_t seq);
/* Appends payload as one logical packet (cut as above) to out, sequence ids from *seq. */
void pkt_put_framed(pbuf *out, const void *payload, size_t len, uint8_t *seq);
/* Appends the packets held in pkts (each under its header, payloads under 16 MiB) to out,
 * with sequence ids from *seq. */
void pkt_append_reframed(pbuf *out, const pbuf *pkts, uint8_t *seq);
/* The same into dst (room for len bytes): returns the bytes written, those of the whole
 * packets at the start of src. */
size_t pkt_reframe_into(uint8_t *dst, const uint8_t *src, size_t len, uint8_t *seq);

/* Little-endian readers. */
static inline uint16_t pkt_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t pkt_u24(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
}
static inline uint32_t pkt_u32(const uint8_t *p)
{
    return pkt_u24(p) | ((uint32_t)p[3] << 24);
}

static inline void pkt_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A bounded reader over a payload. Every get fails (returns false) instead of reading past
 * the end, and once failed stays failed. */
typedef struct {
    const uint8_t *p, *end;
    bool bad;
} preader;

void pr_init(preader *r, const uint8_t *p, size_t n);
size_t pr_left(const preader *r);
bool pr_u8(preader *r, uint8_t *v);
bool pr_u16(preader *r, uint16_t *v);
bool pr_u32(preader *r, uint32_t *v);
bool pr_skip(preader *r, size_t n);
bool pr_bytes(preader *r, size_t n, const uint8_t **out);
/* Length-encoded integer; *is_null set for 0xFB (NULL in a row). 0xFF is malformed. */
bool pr_lenenc(preader *r, uint64_t *v, bool *is_null);
bool pr_lenenc_str(preader *r, const uint8_t **s, size_t *n);
/* NUL-terminated string; fails when no NUL is found before the end. */
bool pr_cstr(preader *r, const char **s, size_t *n);

/* Builders. Each appends one whole packet (header included) and advances *seq. */
typedef struct {
    const char *server_version;
    uint32_t connection_id;
    const uint8_t *scramble; /* 20 bytes */
    uint32_t capabilities;
    uint8_t charset;
    uint16_t status;
    const char *auth_plugin;
    /* MariaDB's extended capabilities (the high 32 bits of MARIADB_CLIENT_*): written in the
     * last 4 reserved bytes, CAP_LONG_PASSWORD ("CLIENT_MYSQL") must then be left out. */
    uint32_t ext_capabilities;
} pkt_greeting;

void pkt_build_greeting(pbuf *b, uint8_t *seq, const pkt_greeting *g);
/* OK for a client without CAP_SESSION_TRACK: info, when not empty, as a length-encoded
 * string (as MySQL and MariaDB servers send it). */
void pkt_build_ok(pbuf *b, uint8_t *seq, uint64_t affected, uint64_t insert_id, uint16_t status,
                  uint16_t warnings, const char *info, size_t info_len);
/* The end-of-result marker in the client's format: EOF, or OK with a 0xFE header when the
 * client set CAP_DEPRECATE_EOF. */
void pkt_build_eof(pbuf *b, uint8_t *seq, uint32_t client_caps, uint16_t warnings,
                   uint16_t status);
/* The same packet written into out (PKT_EOF_MAX bytes of room); returns its length. */
#define PKT_EOF_MAX (PKT_HEADER + 7)
size_t pkt_put_eof(uint8_t out[PKT_EOF_MAX], uint8_t *seq, uint32_t client_caps,
                   uint16_t warnings, uint16_t status);
void pkt_build_err(pbuf *b, uint8_t *seq, uint16_t code, const char *sqlstate, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
void pkt_build_errv(pbuf *b, uint8_t *seq, uint16_t code, const char *sqlstate, const char *fmt,
                    va_list ap);
void pkt_build_auth_switch(pbuf *b, uint8_t *seq, const char *plugin, const uint8_t *scramble);
/* Column definition (protocol 41) for result sets the proxy answers itself; ext: with the
 * (empty) extended-metadata string of MARIADB_CLIENT_EXTENDED_METADATA. */
void pkt_build_column(pbuf *b, uint8_t *seq, const char *schema, const char *table,
                      const char *name, uint16_t charset, uint32_t length, uint8_t type,
                      uint16_t flags, uint8_t decimals, bool ext);
/* A text-protocol row; vals[i] == NULL is SQL NULL. */
void pkt_build_text_row(pbuf *b, uint8_t *seq, int n, const char *const *vals,
                        const size_t *lens);

/* The same row in the binary protocol (the answer to COM_STMT_EXECUTE): types[i] is the
 * column's PKT_TYPE_*; LONG, LONGLONG and DOUBLE values are given as decimal text and sent
 * as fixed-size numbers, DATETIME as "YYYY-MM-DD HH:MM:SS[.ffffff]", anything else as a
 * length-encoded string. Every value must fit its type (pkt_binary_value_fits): declare a
 * column VAR_STRING when one of its values does not. */
void pkt_build_binary_row(pbuf *b, uint8_t *seq, int n, const uint8_t *types,
                          const char *const *vals, const size_t *lens);
/* Whether a value given as text can be sent in the binary form of type. */
bool pkt_binary_value_fits(uint8_t type, const char *v, size_t n);

/* The client's HandshakeResponse41 (or the 32-byte SSLRequest that precedes it). */
typedef struct {
    uint32_t caps;
    uint32_t max_packet;
    uint8_t charset;
    bool ssl_request; /* only the fixed part was sent: switch to TLS */
    const char *user;
    size_t user_len;
    const uint8_t *auth;
    size_t auth_len;
    const char *database; /* NULL when absent */
    size_t database_len;
    const char *plugin; /* NULL when absent */
    size_t plugin_len;
    const char *program; /* connection attribute program_name; NULL when absent */
    size_t program_len;
    uint32_t ext_caps; /* MariaDB's extended client capabilities (0 from MySQL clients) */
} pkt_handshake_response;

/* Parses a HandshakeResponse41 payload. Pointers point into payload. Returns 0, or -1 with
 * err describing the problem. Clients without CAP_PROTOCOL_41 are refused. */
int pkt_parse_handshake_response(const uint8_t *payload, size_t len, pkt_handshake_response *out,
                                 char *err, size_t errlen);

/* An OK packet from a backend (which always has CAP_SESSION_TRACK). */
typedef struct {
    uint64_t affected, insert_id;
    uint16_t status, warnings;
    const uint8_t *info;
    size_t info_len;
    const uint8_t *state; /* the whole session-state block, or NULL */
    size_t state_len;
    const uint8_t *schema; /* the new default database when the session state says so */
    size_t schema_len;
    bool schema_changed;
} pkt_ok;

/* Parses an OK packet (header 0x00, or 0xFE in the deprecate-EOF form) sent to a client that
 * negotiated caps. The message is length-encoded either way; the session-state block is read
 * only with CAP_SESSION_TRACK. Returns 0 or -1 when malformed. */
int pkt_parse_ok(const uint8_t *payload, size_t len, uint32_t caps, pkt_ok *out);
/* Parses an EOF packet (0xFE, fewer than 9 bytes). */
int pkt_parse_eof(const uint8_t *payload, size_t len, uint16_t *warnings, uint16_t *status);
bool pkt_is_eof(const uint8_t *payload, size_t len);

/* Appends a column definition packet (payload p, len bytes) to out with sequence *seq, without
 * the extended-metadata string that MariaDB adds after org_name for clients with
 * MARIADB_CLIENT_EXTENDED_METADATA. Returns -1 when the payload is malformed. */
int pkt_copy_column_plain(pbuf *out, uint8_t *seq, const uint8_t *p, size_t len);
/* The other way: appends the plain definition p with an empty extended-metadata string. */
int pkt_copy_column_ext(pbuf *out, uint8_t *seq, const uint8_t *p, size_t len);
/* Appends one column definition in the client's format (to_ext) from one in from_ext. */
int pkt_copy_column(pbuf *out, uint8_t *seq, const uint8_t *p, size_t len, bool from_ext,
                    bool to_ext);
/* pkt_append_reframed for whole column definitions, each converted as pkt_copy_column does.
 * Returns -1 when one is malformed (what came before it was appended). */
int pkt_append_columns(pbuf *out, const pbuf *pkts, uint8_t *seq, bool from_ext, bool to_ext);

/* Column types. */
enum {
    PKT_TYPE_LONG = 3,
    PKT_TYPE_DOUBLE = 5,
    PKT_TYPE_LONGLONG = 8,
    PKT_TYPE_DATETIME = 12,
    PKT_TYPE_VAR_STRING = 253,
};

#endif
