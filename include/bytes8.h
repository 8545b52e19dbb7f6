/* bytes8.h: looking at eight bytes at a time (the audit log's string scans). Little-endian:
 * the lowest set bit of a mask is the first byte. */
#ifndef ENVPROXY_BYTES8_H
#define ENVPROXY_BYTES8_H

#include <stdint.h>
#include <string.h>

#define BYTES_01 0x0101010101010101ull
#define BYTES_7F 0x7f7f7f7f7f7f7f7full
#define BYTES_80 0x8080808080808080ull

static inline uint64_t load8(const void *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* The bytes of w equal to c, each as its high bit (0x80), the others 0. Exact for every
 * byte: each sum stays within its byte (at most 0x7f + 0x7f), so no carry reaches a
 * neighbour. */
static inline uint64_t bytes_equal(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (c * BYTES_01);
    return ~(((x & BYTES_7F) + BYTES_7F) | x) & BYTES_80;
}

#endif
