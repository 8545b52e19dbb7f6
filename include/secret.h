/* secret.h: encrypted backend passwords ("enc:" values) and the key that opens them.
 *
 * Format of a value, as written in the configuration:
 *
 *   enc:BASE64
 *
 * where BASE64 is standard base64 (RFC 4648, with '=' padding) of
 *
 *   version (1 byte, 0x01) || nonce (12 random bytes) || ciphertext || tag (16 bytes)
 *
 * The ciphertext is the password encrypted with AES-256-GCM under the secret key and that
 * nonce, with the additional authenticated data "envproxy-secret-v1" (18 bytes, no NUL); the
 * ciphertext is as long as the password. Every value gets a fresh nonce, so encrypting the
 * same password twice gives two different values.
 *
 * The key is 32 bytes, written as 64 hex digits or as base64 (standard or URL-safe alphabet,
 * padding optional); whitespace around it, such as a trailing newline, is ignored. It comes
 * from the environment variable ENVPROXY_SECRET_KEY when that is set and not empty, else from
 * the key file the configuration names (secret_key_file), which must be a regular file that
 * neither group nor others may read, write or execute (mode 0600 or 0400). The key is never
 * written in the YAML itself. Make one with:
 *
 *   (umask 077; openssl rand -hex 32 > /etc/envproxy/secret.key)
 *
 * Error messages never contain a password, a key or an enc: value.
 */
#ifndef ENVPROXY_SECRET_H
#define ENVPROXY_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SECRET_PREFIX "enc:"
#define SECRET_KEY_ENV "ENVPROXY_SECRET_KEY"
#define SECRET_KEY_LEN 32
#define SECRET_NONCE_LEN 12
#define SECRET_TAG_LEN 16
#define SECRET_VERSION 0x01
#define SECRET_AAD "envproxy-secret-v1"
/* Longest password accepted, in bytes. */
#define SECRET_PLAIN_MAX 4096

/* True when value has the enc: form (it may still be malformed). */
bool secret_is_encrypted(const char *value);

/* Reads a key written as text (len bytes; 64 hex digits or base64 of 32 bytes, surrounding
 * whitespace ignored) into key. Returns 0, or -1 with err filled. */
int secret_parse_key(const char *text, size_t len, uint8_t key[SECRET_KEY_LEN], char *err,
                     size_t errlen);

/* Loads the key: from ENVPROXY_SECRET_KEY when it is set and not empty (it then wins over the
 * file), else from key_file (may be NULL: no file configured). A key file that group or others
 * may access, or that is not a regular file, is refused. Returns 0, or -1 with err filled
 * (err names where the key came from, never the key). */
int secret_load_key(const char *key_file, uint8_t key[SECRET_KEY_LEN], char *err, size_t errlen);

/* Encrypts plain (len bytes, at most SECRET_PLAIN_MAX, no NUL byte) into a new "enc:..." string
 * in *out_enc, which the caller frees with free(). Returns 0, or -1 with err filled. */
int secret_encrypt(const uint8_t key[SECRET_KEY_LEN], const char *plain, size_t len, char **out_enc,
                   char *err, size_t errlen);

/* Decrypts an "enc:..." value into a new NUL-terminated string in *out_plain, which the caller
 * releases with secret_free(). Returns 0, or -1 with err filled: "not an enc: value",
 * "enc: value is not valid base64", "enc: value is too short", an unknown format version, or
 * "cannot decrypt: wrong key or damaged value" (wrong key, or anything altered). */
int secret_decrypt(const uint8_t key[SECRET_KEY_LEN], const char *enc, char **out_plain, char *err,
                   size_t errlen);

/* Wipes and frees a string returned by secret_decrypt(). NULL does nothing. */
void secret_free(char *plain);

/* `envproxy -c FILE encrypt-secret [--stdin]`: reads a password (twice on the terminal with
 * echo off, or the first line of standard input with --stdin; never from argv) and prints its
 * enc: form on standard output. key_file is the configuration's secret_key_file (may be NULL).
 * argv[0] is "encrypt-secret". Returns the exit code: 0 done, 1 error (one line on stderr
 * starting "envproxy: "), 2 usage error (usage on stderr). */
int cli_encrypt_secret(const char *key_file, int argc, char **argv);

/* For tests only: makes secret_encrypt() use this nonce instead of a random one (NULL goes
 * back to random nonces). Never call it in the proxy: a repeated nonce breaks GCM. */
void secret_test_set_nonce(const uint8_t nonce[SECRET_NONCE_LEN]);

#endif
