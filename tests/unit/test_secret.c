/* test_secret.c: unit tests of enc: values (AES-256-GCM) and secret key loading. */
#include "secret.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

/* Reference values computed independently (Python's cryptography package, AESGCM) with the
 * key 00 01 .. 1f, the nonce a0 a1 .. ab and the AAD "envproxy-secret-v1". */
#define KAT_PLAIN "hunter2 P@ss"
#define KAT_ENC "enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1Ei5irujFJOwtwDofDY="
#define KAT_EMPTY "enc:AaChoqOkpaanqKmqq7JDvzZ+7jMuXA6VtMBqRs0="
/* The same password sealed with the AAD "envproxy-secret-v2", and with no AAD. */
#define KAT_OTHER_AAD "enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oK5OcB0SQM6AHixfpGxWG74="
#define KAT_NO_AAD "enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oFS231Yxuo0a1eWBd7hQ+CY="
#define KEY_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

#define DAMAGED "cannot decrypt: wrong key or damaged value"
#define NOT_B64 "enc: value is not valid base64"

static uint8_t kat_key[SECRET_KEY_LEN];
static const uint8_t kat_nonce[SECRET_NONCE_LEN] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5,
                                                    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};
static char tmpdir[] = "/tmp/envproxy-secret-XXXXXX";

/* An error message must not show any of these. */
static void check_clean(const char *err, const char *plain)
{
    CHECK(err[0] != '\0');
    CHECK(strstr(err, KEY_HEX) == NULL);
    CHECK(strstr(err, KEY_B64) == NULL);
    CHECK(strstr(err, "AaChoq") == NULL); /* the start of every KAT value */
    if (plain && *plain)
        CHECK(strstr(err, plain) == NULL);
}

/* Expects decrypting enc with key to fail with want (a prefix of the message). */
static void expect_decrypt_error(const uint8_t *key, const char *enc, const char *want)
{
    char err[256] = "";
    char *plain = (char *)"untouched";
    CHECK_INT(secret_decrypt(key, enc, &plain, err, sizeof err), -1);
    CHECK(plain == NULL);
    if (strncmp(err, want, strlen(want)) != 0)
        fprintf(stderr, "  for %.40s: got \"%s\", want \"%s...\"\n", enc, err, want);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    check_clean(err, KAT_PLAIN);
}

/* KAT_ENC decoded, with one byte changed at off (xor mask), encoded again. Caller frees. */
static char *tampered(size_t off, uint8_t mask, int cut)
{
    uint8_t raw[128];
    const char *b64 = KAT_ENC + 4;
    int n = EVP_DecodeBlock(raw, (const uint8_t *)b64, (int)strlen(b64));
    n -= 1; /* EVP_DecodeBlock counts one padding '=' as a byte */
    if (off < (size_t)n)
        raw[off] ^= mask;
    n -= cut;
    char *out = malloc(8 + 4 * ((size_t)n + 2) / 3 + 4);
    strcpy(out, "enc:");
    EVP_EncodeBlock((uint8_t *)out + 4, raw, n);
    return out;
}

static void test_known_answer(void)
{
    char err[256] = "", *enc = NULL, *plain = NULL;

    secret_test_set_nonce(kat_nonce);
    CHECK_INT(secret_encrypt(kat_key, KAT_PLAIN, strlen(KAT_PLAIN), &enc, err, sizeof err), 0);
    CHECK_STR(enc, KAT_ENC);
    free(enc);
    CHECK_INT(secret_encrypt(kat_key, "", 0, &enc, err, sizeof err), 0);
    CHECK_STR(enc, KAT_EMPTY);
    free(enc);
    secret_test_set_nonce(NULL);

    CHECK_INT(secret_decrypt(kat_key, KAT_ENC, &plain, err, sizeof err), 0);
    CHECK_STR(plain, KAT_PLAIN);
    secret_free(plain);
    CHECK_INT(secret_decrypt(kat_key, KAT_EMPTY, &plain, err, sizeof err), 0);
    CHECK_STR(plain, "");
    secret_free(plain);
    secret_free(NULL);
}

static void test_round_trip(void)
{
    char err[256] = "", *e1 = NULL, *e2 = NULL, *plain = NULL;
    static const char *const words[] = {"x", "p@ss w0rd with spaces", "caf\xc3\xa9 \xe2\x82\xac",
                                        "ends with newline-like \\n", "$${VAR}"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        CHECK_INT(secret_encrypt(kat_key, words[i], strlen(words[i]), &e1, err, sizeof err), 0);
        CHECK(secret_is_encrypted(e1));
        CHECK_INT(secret_decrypt(kat_key, e1, &plain, err, sizeof err), 0);
        CHECK_STR(plain, words[i]);
        CHECK(strlen(words[i]) < 4 || strstr(e1, words[i]) == NULL); /* "x" may occur */
        secret_free(plain);
        free(e1);
    }

    /* A fresh nonce each time: the same password gives different values. */
    CHECK_INT(secret_encrypt(kat_key, "same", 4, &e1, err, sizeof err), 0);
    CHECK_INT(secret_encrypt(kat_key, "same", 4, &e2, err, sizeof err), 0);
    CHECK(strcmp(e1, e2) != 0);
    CHECK_INT(strlen(e1), 4 + 4 * ((1 + 12 + 4 + 16 + 2) / 3));
    free(e1);
    free(e2);

    /* The longest password, and one byte more. */
    char *big = malloc(SECRET_PLAIN_MAX + 2);
    memset(big, 'p', SECRET_PLAIN_MAX + 1);
    big[SECRET_PLAIN_MAX + 1] = '\0';
    CHECK_INT(secret_encrypt(kat_key, big, SECRET_PLAIN_MAX, &e1, err, sizeof err), 0);
    CHECK_INT(secret_decrypt(kat_key, e1, &plain, err, sizeof err), 0);
    CHECK_INT(plain ? strlen(plain) : 0, SECRET_PLAIN_MAX);
    secret_free(plain);
    free(e1);
    e1 = (char *)"untouched";
    CHECK_INT(secret_encrypt(kat_key, big, SECRET_PLAIN_MAX + 1, &e1, err, sizeof err), -1);
    CHECK(e1 == NULL);
    CHECK_STR(err, "the password is too long (at most 4096 bytes)");
    free(big);

    CHECK_INT(secret_encrypt(kat_key, "a\0b", 3, &e1, err, sizeof err), -1);
    CHECK_STR(err, "the password contains a NUL byte");

    CHECK(secret_is_encrypted("enc:"));
    CHECK(!secret_is_encrypted("ENC:abc"));
    CHECK(!secret_is_encrypted("plain"));
    CHECK(!secret_is_encrypted(""));
    CHECK(!secret_is_encrypted(NULL));
}

static void test_wrong_key_and_tampering(void)
{
    uint8_t other[SECRET_KEY_LEN];
    memcpy(other, kat_key, sizeof other);
    other[31] ^= 1;
    expect_decrypt_error(other, KAT_ENC, DAMAGED);

    /* The AAD is part of the format. */
    expect_decrypt_error(kat_key, KAT_OTHER_AAD, DAMAGED);
    expect_decrypt_error(kat_key, KAT_NO_AAD, DAMAGED);

    /* Every byte after the version matters: nonce, ciphertext, tag. */
    size_t raw_len = 1 + SECRET_NONCE_LEN + strlen(KAT_PLAIN) + SECRET_TAG_LEN;
    for (size_t off = 1; off < raw_len; off++) {
        char *t = tampered(off, 0x01, 0);
        expect_decrypt_error(kat_key, t, DAMAGED);
        free(t);
    }
    char *t = tampered(raw_len - 1, 0x80, 0); /* the last tag byte */
    expect_decrypt_error(kat_key, t, DAMAGED);
    free(t);
    t = tampered(0, 0, 1); /* one tag byte missing */
    expect_decrypt_error(kat_key, t, DAMAGED);
    free(t);

    /* A changed version byte is reported as such. */
    t = tampered(0, 0x03, 0); /* version 2 */
    expect_decrypt_error(kat_key, t,
                         "enc: value has format version 2, but this envproxy reads "
                         "version 1 only");
    free(t);
    t = tampered(0, 0x01, 0); /* version 0 */
    expect_decrypt_error(kat_key, t, "enc: value has format version 0");
    free(t);
}

static void test_malformed(void)
{
    static const struct {
        const char *enc, *want;
    } cases[] = {
        {"hunter2", "not an enc: value"},
        {"ENC:" KAT_ENC, "not an enc: value"},
        {"", "not an enc: value"},
        {"enc:", "enc: value is too short"},
        {"enc:AQ==", "enc: value is too short"},
        /* 28 bytes: version, nonce and a tag, one byte short of the least there can be. */
        {"enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1A==", "enc: value is too short"},
        /* 29 bytes: long enough to be read, so only the tag check can refuse it. */
        {"enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1Eg=", DAMAGED},
        {"enc:!!!!", "enc: value is not valid base64"},
        /* One '=' too many, a space inside, a trailing newline. */
        {"enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1Ei5irujFJOwtwDofDY==", NOT_B64},
        {"enc:AaChoqOkpaanqKmqq45tElkgu TCfMiX0oLmG1Ei5irujFJOwtwDofDY=", NOT_B64},
        {"enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1Ei5irujFJOwtwDofDY=\n", NOT_B64},
        /* Spare bits that are not zero ('Z' instead of 'Y'), '=' inside, 4n+1 characters. */
        {"enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1Ei5irujFJOwtwDofDZ=", NOT_B64},
        {"enc:AaCh=qOkpaanqKmqq45tElkguTCfMiX0oLmG1Ei5irujFJOwtwDofDY=", NOT_B64},
        {"enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1Ei5irujFJOwtwDof", NOT_B64},
        {"enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1Ei5irujFJOwtwDofD==", NOT_B64},
        /* The URL-safe alphabet is for keys only. */
        {"enc:AaChoqOkpaanqKmqq45tElkgu-CfMiX0oLmG1Ei5irujFJOwtwDofDY=", NOT_B64},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_decrypt_error(kat_key, cases[i].enc, cases[i].want);

    /* Unpadded base64 of the right bytes decrypts. */
    char *plain = NULL, err[256] = "";
    CHECK_INT(secret_decrypt(kat_key, "enc:AaChoqOkpaanqKmqq45tElkguTCfMiX0oLmG1Ei5irujFJOwtwDofDY",
                             &plain, err, sizeof err),
              0);
    CHECK_STR(plain, KAT_PLAIN);
    secret_free(plain);

    /* Far too long to be a password. */
    char *huge = malloc(20000);
    strcpy(huge, "enc:");
    memset(huge + 4, 'A', 19000);
    huge[19004] = '\0';
    expect_decrypt_error(kat_key, huge, "enc: value is too long");
    free(huge);
}

static void expect_key(const char *text, const uint8_t *want)
{
    uint8_t key[SECRET_KEY_LEN];
    char err[256] = "";
    memset(key, 0xee, sizeof key);
    int rc = secret_parse_key(text, strlen(text), key, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  key \"%s\": %s\n", text, err);
    CHECK_INT(rc, 0);
    CHECK(memcmp(key, want, SECRET_KEY_LEN) == 0);
}

static void expect_bad_key(const char *text)
{
    uint8_t key[SECRET_KEY_LEN];
    char err[256] = "";
    CHECK_INT(secret_parse_key(text, strlen(text), key, err, sizeof err), -1);
    CHECK(err[0] != '\0');
    if (strlen(text) >= 8) {
        char head[9];
        memcpy(head, text, 8);
        head[8] = '\0';
        CHECK(strstr(err, head) == NULL);
    }
    CHECK(strstr(err, "openssl rand -hex 32") != NULL);
}

static void test_parse_key(void)
{
    uint8_t fb[SECRET_KEY_LEN];
    memset(fb, 0xfb, sizeof fb);

    expect_key(KEY_HEX, kat_key);
    expect_key(KEY_HEX "\n", kat_key);
    expect_key(KEY_HEX "\r\n", kat_key);
    expect_key("  " KEY_HEX " \n\n", kat_key);
    expect_key("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", kat_key);
    expect_key(KEY_B64, kat_key);
    expect_key(KEY_B64 "\n", kat_key);
    expect_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", kat_key); /* unpadded */
    expect_key("+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=", fb);
    expect_key("-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s=", fb); /* URL-safe */

    expect_bad_key("");
    expect_bad_key("\n");
    expect_bad_key("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e");   /* 31 */
    expect_bad_key(KEY_HEX "20");                                                       /* 33 */
    expect_bad_key("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g"); /* g */
    expect_bad_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==");                     /* 31 */
    expect_bad_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g");                     /* 33 */
    expect_bad_key("AAECAwQF BgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    expect_bad_key("+_v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s="); /* mixed alphabets */
    expect_bad_key("correct horse battery staple");
}

static char *write_key_file(const char *name, const char *content, mode_t mode)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", tmpdir, name) < 0)
        abort();
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(content, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static void test_load_key(void)
{
    uint8_t key[SECRET_KEY_LEN], fb[SECRET_KEY_LEN];
    char err[512] = "";
    memset(fb, 0xfb, sizeof fb);
    unsetenv(SECRET_KEY_ENV);

    /* No key anywhere. */
    CHECK_INT(secret_load_key(NULL, key, err, sizeof err), -1);
    CHECK(strstr(err, "no secret key") != NULL);
    CHECK(strstr(err, SECRET_KEY_ENV) != NULL);
    CHECK(strstr(err, "secret_key_file") != NULL);
    CHECK(strstr(err, "openssl rand -hex 32") != NULL);

    /* A key file readable by its owner only. */
    char *good = write_key_file("good.key", KEY_HEX "\n", 0600);
    memset(key, 0, sizeof key);
    CHECK_INT(secret_load_key(good, key, err, sizeof err), 0);
    CHECK(memcmp(key, kat_key, sizeof key) == 0);
    char *ro = write_key_file("ro.key", KEY_B64 "\n", 0400);
    memset(key, 0, sizeof key);
    CHECK_INT(secret_load_key(ro, key, err, sizeof err), 0);
    CHECK(memcmp(key, kat_key, sizeof key) == 0);

    /* Any access for group or others is refused, with the fix in the message. */
    static const mode_t bad_modes[] = {0644, 0640, 0604, 0620, 0602, 0610, 0601, 0666};
    char *loose = write_key_file("loose.key", KEY_HEX "\n", 0644);
    for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
        chmod(loose, bad_modes[i]);
        CHECK_INT(secret_load_key(loose, key, err, sizeof err), -1);
        char want[64];
        snprintf(want, sizeof want, "(mode %04o)", (unsigned)bad_modes[i]);
        CHECK(strstr(err, want) != NULL);
        CHECK(strstr(err, "chmod 600") != NULL);
        CHECK(strstr(err, loose) != NULL);
        check_clean(err, NULL);
    }

    /* A bad key in a file: the message names the file, not the content. */
    char *wrong = write_key_file("wrong.key", "0011223344556677\n", 0600);
    CHECK_INT(secret_load_key(wrong, key, err, sizeof err), -1);
    CHECK(strncmp(err, "key file ", 9) == 0);
    CHECK(strstr(err, "not a valid key") != NULL);
    CHECK(strstr(err, "0011223344556677") == NULL);

    /* Not a file, missing, too large. */
    CHECK_INT(secret_load_key(tmpdir, key, err, sizeof err), -1);
    CHECK(strstr(err, "not a regular file") != NULL);
    char *missing = NULL;
    if (asprintf(&missing, "%s/missing.key", tmpdir) < 0)
        abort();
    CHECK_INT(secret_load_key(missing, key, err, sizeof err), -1);
    CHECK(strstr(err, "cannot open: No such file or directory") != NULL);
    char *large = malloc(10000);
    memset(large, 'a', 9999);
    large[9999] = '\0';
    char *big = write_key_file("big.key", large, 0600);
    CHECK_INT(secret_load_key(big, key, err, sizeof err), -1);
    CHECK(strstr(err, "too large") != NULL);
    free(large);

    /* The environment variable wins over the file; an empty one counts as unset. */
    setenv(SECRET_KEY_ENV, "+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=", 1);
    CHECK_INT(secret_load_key(good, key, err, sizeof err), 0);
    CHECK(memcmp(key, fb, sizeof key) == 0);
    CHECK_INT(secret_load_key(loose, key, err, sizeof err), 0); /* the file is not even read */
    setenv(SECRET_KEY_ENV, "", 1);
    CHECK_INT(secret_load_key(good, key, err, sizeof err), 0);
    CHECK(memcmp(key, kat_key, sizeof key) == 0);
    setenv(SECRET_KEY_ENV, "not-a-key-at-all", 1);
    CHECK_INT(secret_load_key(good, key, err, sizeof err), -1);
    CHECK(strncmp(err, SECRET_KEY_ENV ": not a valid key", strlen(SECRET_KEY_ENV) + 17) == 0);
    CHECK(strstr(err, "not-a-key-at-all") == NULL);
    unsetenv(SECRET_KEY_ENV);

    char *files[] = {good, ro, loose, wrong, big, missing};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        unlink(files[i]);
        free(files[i]);
    }
}

int main(void)
{
    for (int i = 0; i < SECRET_KEY_LEN; i++)
        kat_key[i] = (uint8_t)i;
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_known_answer();
    test_round_trip();
    test_wrong_key_and_tampering();
    test_malformed();
    test_parse_key();
    test_load_key();
    rmdir(tmpdir);
    return unit_report("secret");
}
