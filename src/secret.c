/* secret.c: AES-256-GCM encryption of backend passwords ("enc:" values) and key loading. */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define KEY_FILE_MAX 4096 /* a key file is a line of text; anything bigger is not one */
#define HEADER_LEN (1 + SECRET_NONCE_LEN)
#define OVERHEAD (HEADER_LEN + SECRET_TAG_LEN)

static bool test_nonce_set;
static uint8_t test_nonce[SECRET_NONCE_LEN];

void secret_test_set_nonce(const uint8_t nonce[SECRET_NONCE_LEN])
{
    test_nonce_set = nonce != NULL;
    if (nonce)
        memcpy(test_nonce, nonce, SECRET_NONCE_LEN);
}

/* ---------------------------------------------------------------------------------------------
 * Base64 (RFC 4648). The decoder is strict: no whitespace, '=' only as final padding, and the
 * unused bits of the last character must be zero, so each byte string has one accepted form
 * per alphabet.
 */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes in (n bytes) with padding into out, which holds 4 * ((n + 2) / 3) + 1 bytes. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_chars[(v >> 18) & 63];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    out[o] = '\0';
}

/* The value of base64 character c (url: the URL-safe alphabet instead), or -1. */
static int b64_value(char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* Decodes s (n characters, padding optional) into out (room for 3 * (n / 4) + 2 bytes).
 * Returns the number of bytes, or -1 when s is not base64 in the chosen alphabet. */
static long b64_decode(const char *s, size_t n, bool url, uint8_t *out)
{
    size_t pad = 0;
    if (n % 4 == 0)
        while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
            pad++;
    n -= pad;
    if (n % 4 == 1 || (pad && n % 4 != 4 - pad))
        return -1;

    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero */
        return -1;
    return (long)o;
}

/* ---------------------------------------------------------------------------------------------
 * Keys.
 */

/* A hex digit's value, -1 for any other character (OpenSSL's). */
static int hex_value(char c)
{
    return OPENSSL_hexchar2int((unsigned char)c);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int secret_parse_key(const char *text, size_t len, uint8_t key[SECRET_KEY_LEN], char *err,
                     size_t errlen)
{
    while (len && is_space(*text)) {
        text++;
        len--;
    }
    while (len && is_space(text[len - 1]))
        len--;

    if (len == 2 * SECRET_KEY_LEN) {
        bool hex = true;
        for (size_t i = 0; i < len && hex; i++)
            hex = hex_value(text[i]) >= 0;
        if (hex) {
            for (size_t i = 0; i < SECRET_KEY_LEN; i++)
                key[i] = (uint8_t)(hex_value(text[2 * i]) << 4 | hex_value(text[2 * i + 1]));
            return 0;
        }
    }
    if (len >= 43 && len <= 44) { /* 32 bytes in base64: 43 characters, 44 with padding */
        uint8_t buf[3 * (44 / 4) + 2];
        for (int url = 0; url <= 1; url++) {
            long n = b64_decode(text, len, url, buf);
            if (n == SECRET_KEY_LEN) {
                memcpy(key, buf, SECRET_KEY_LEN);
                OPENSSL_cleanse(buf, sizeof buf);
                return 0;
            }
        }
        OPENSSL_cleanse(buf, sizeof buf);
    }
    snprintf(err, errlen,
             len ? "not a valid key: a key is 32 bytes written as 64 hex digits or in base64 "
                   "(make one with `openssl rand -hex 32`)"
                 : "the key is empty (make one with `openssl rand -hex 32`)");
    return -1;
}

/* Reads and parses the key file at path, refusing one that others could read. */
static int load_key_file(const char *path, uint8_t key[SECRET_KEY_LEN], char *err, size_t errlen)
{
    char msg[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* no wait on a FIFO */
    if (fd < 0) {
        snprintf(err, errlen, "key file %s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "key file %s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen,
                 "key file %s: group or others may access it (mode %04o); allow only its owner: "
                 "chmod 600 %s",
                 path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -1;
    }
    if (st.st_size > KEY_FILE_MAX) {
        snprintf(err, errlen, "key file %s: too large for a key (%lld bytes)", path,
                 (long long)st.st_size);
        close(fd);
        return -1;
    }

    char buf[KEY_FILE_MAX + 1];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "key file %s: cannot read: %s", path, strerror(errno));
            OPENSSL_cleanse(buf, sizeof buf);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == sizeof buf) {
            snprintf(err, errlen, "key file %s: too large for a key", path);
            OPENSSL_cleanse(buf, sizeof buf);
            close(fd);
            return -1;
        }
    }
    close(fd);
    int rc = secret_parse_key(buf, len, key, msg, sizeof msg);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc < 0)
        snprintf(err, errlen, "key file %s: %s", path, msg);
    return rc;
}

int secret_load_key(const char *key_file, uint8_t key[SECRET_KEY_LEN], char *err, size_t errlen)
{
    const char *env = getenv(SECRET_KEY_ENV);
    if (env && *env) {
        char msg[256];
        if (secret_parse_key(env, strlen(env), key, msg, sizeof msg) == 0)
            return 0;
        snprintf(err, errlen, "%s: %s", SECRET_KEY_ENV, msg);
        return -1;
    }
    if (key_file && *key_file)
        return load_key_file(key_file, key, err, errlen);
    snprintf(err, errlen,
             "no secret key: set %s or name a key file with secret_key_file in the configuration "
             "(make a key with `openssl rand -hex 32`)",
             SECRET_KEY_ENV);
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Encryption.
 */

bool secret_is_encrypted(const char *value)
{
    return value && strncmp(value, SECRET_PREFIX, strlen(SECRET_PREFIX)) == 0;
}

int secret_encrypt(const uint8_t key[SECRET_KEY_LEN], const char *plain, size_t len, char **out_enc,
                   char *err, size_t errlen)
{
    *out_enc = NULL;
    if (len > SECRET_PLAIN_MAX) {
        snprintf(err, errlen, "the password is too long (at most %d bytes)", SECRET_PLAIN_MAX);
        return -1;
    }
    if (memchr(plain, '\0', len)) {
        snprintf(err, errlen, "the password contains a NUL byte");
        return -1;
    }

    size_t raw_len = OVERHEAD + len;
    uint8_t *raw = malloc(raw_len);
    char *out = malloc(strlen(SECRET_PREFIX) + 4 * ((raw_len + 2) / 3) + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, rc = -1;
    if (!raw || !out || !ctx) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    raw[0] = SECRET_VERSION;
    if (test_nonce_set) {
        memcpy(raw + 1, test_nonce, SECRET_NONCE_LEN);
    } else if (RAND_bytes(raw + 1, SECRET_NONCE_LEN) != 1) {
        snprintf(err, errlen, "cannot get random bytes for the nonce");
        goto done;
    }
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SECRET_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, raw + 1) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)SECRET_AAD, (int)strlen(SECRET_AAD)) !=
            1 ||
        EVP_EncryptUpdate(ctx, raw + HEADER_LEN, &n, (const uint8_t *)plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, raw + HEADER_LEN + n, &fin) != 1 || (size_t)(n + fin) != len ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SECRET_TAG_LEN, raw + HEADER_LEN + len) !=
            1) {
        snprintf(err, errlen, "cannot encrypt: OpenSSL refused AES-256-GCM");
        goto done;
    }
    strcpy(out, SECRET_PREFIX);
    b64_encode(raw, raw_len, out + strlen(SECRET_PREFIX));
    *out_enc = out;
    out = NULL;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (raw)
        OPENSSL_cleanse(raw, raw_len);
    free(raw);
    free(out);
    return rc;
}

int secret_decrypt(const uint8_t key[SECRET_KEY_LEN], const char *enc, char **out_plain, char *err,
                   size_t errlen)
{
    *out_plain = NULL;
    if (!secret_is_encrypted(enc)) {
        snprintf(err, errlen, "not an enc: value");
        return -1;
    }
    const char *b64 = enc + strlen(SECRET_PREFIX);
    size_t b64_len = strlen(b64);
    if (b64_len > 4 * ((OVERHEAD + SECRET_PLAIN_MAX + 2) / 3)) {
        snprintf(err, errlen, "enc: value is too long");
        return -1;
    }
    uint8_t *raw = malloc(3 * (b64_len / 4) + 3);
    char *plain = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    size_t len = 0;
    int rc = -1;
    if (!raw) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    long raw_len = b64_decode(b64, b64_len, false, raw);
    if (raw_len < 0) {
        snprintf(err, errlen, "enc: value is not valid base64");
        goto done;
    }
    if (raw_len < OVERHEAD) {
        snprintf(err, errlen, "enc: value is too short to hold an encrypted password");
        goto done;
    }
    if (raw[0] != SECRET_VERSION) {
        snprintf(err, errlen,
                 "enc: value has format version %u, but this envproxy reads version %u only",
                 raw[0], SECRET_VERSION);
        goto done;
    }
    len = (size_t)raw_len - OVERHEAD;
    plain = malloc(len + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (!plain || !ctx) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    int n = 0, fin = 0;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SECRET_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw + 1) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)SECRET_AAD, (int)strlen(SECRET_AAD)) !=
            1 ||
        EVP_DecryptUpdate(ctx, (uint8_t *)plain, &n, raw + HEADER_LEN, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SECRET_TAG_LEN, raw + HEADER_LEN + len) !=
            1 ||
        EVP_DecryptFinal_ex(ctx, (uint8_t *)plain + n, &fin) != 1 || (size_t)(n + fin) != len) {
        snprintf(err, errlen, "cannot decrypt: wrong key or damaged value");
        goto done;
    }
    plain[len] = '\0';
    if (memchr(plain, '\0', len)) {
        snprintf(err, errlen, "the decrypted password contains a NUL byte");
        goto done;
    }
    *out_plain = plain;
    plain = NULL;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (plain) {
        OPENSSL_cleanse(plain, len + 1);
        free(plain);
    }
    OPENSSL_cleanse(raw, 3 * (b64_len / 4) + 3);
    free(raw);
    return rc;
}

void secret_free(char *plain)
{
    if (!plain)
        return;
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
}
