/* test_accounts.c: hashing, scramble verification and the SQLite account store. */
#include "accounts.h"
#include "unit.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* The expected values below were computed independently with Python's hashlib, and the
 * client responses were checked against PyMySQL's own client code
 * (pymysql._auth.scramble_native_password and scramble_caching_sha2), which gave the same
 * bytes. */

/* SHA1(SHA1("secret")), SHA256(SHA256("secret")) */
static const char *SECRET_SHA1_STAGE2 = "14e65567abdb5135d0cfd9a70b3032c179a49ee7";
static const char *SECRET_SHA256_STAGE2 =
    "3881219d087dd9c634373fd33dfa33a2cb6bfc6c520b64b8bb60ef2ceb534ae7";
/* The same of the empty string. */
static const char *EMPTY_SHA1_STAGE2 = "be1bdec0aa74b4dcb079943e70528096cca985f8";
static const char *EMPTY_SHA256_STAGE2 =
    "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456";

/* Nonce 01 02 ... 14 and password "secret". */
static const char *SECRET_NATIVE_RESP = "b32bb3a583e1340c0a1108d58b1be49781ad8c2f";
static const char *SECRET_SHA2_RESP =
    "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9";

/* Password "pässwörd" (UTF-8) and a nonce with high, quote and NUL bytes. */
static const uint8_t NONCE2[20] = {0x7f, 0x80, 0xff, 0x41, 0x3a, 0x5c, 0x27, 0x22, 0x01, 0x10,
                                   0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x00, 0x2f, 0x60, 0x7e};
static const char *UTF8_PASSWORD = "p\xc3\xa4ssw\xc3\xb6rd";
static const char *UTF8_SHA1_STAGE2 = "0225ec5004abb0b8cb557541fe53de1a5d8cc825";
static const char *UTF8_SHA256_STAGE2 =
    "e2cd1a228188f0703ba30ffe5e1bc013f0ae431d6213e97a9d2b42f78079ceab";
static const char *UTF8_NATIVE_RESP = "e57fbf60f09beb6df43275feedcc144be220d1b2";
static const char *UTF8_SHA2_RESP =
    "e11054aa2a405f9a0ae5c2cf65717edad0ea3b7d6198ec131a4ccb9300acb024";

static char tmpdir[] = "/tmp/envproxy-test-accounts-XXXXXX";

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = 0;
}

static size_t from_hex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;

    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void test_names(void)
{
    char long_name[66];

    CHECK(acct_valid_name("alice"));
    CHECK(acct_valid_name("a.b-c_D9"));
    CHECK(!acct_valid_name(""));
    CHECK(!acct_valid_name(NULL));
    CHECK(!acct_valid_name("al ice"));
    CHECK(!acct_valid_name("alice'"));
    CHECK(!acct_valid_name("al@ice"));
    CHECK(!acct_valid_name("\xc3\xa4"));
    memset(long_name, 'x', 64);
    long_name[64] = 0;
    CHECK(acct_valid_name(long_name));
    CHECK(acct_valid_env_name(long_name));
    long_name[64] = 'x';
    long_name[65] = 0;
    CHECK(!acct_valid_name(long_name));
    CHECK(!acct_valid_env_name(long_name));

    CHECK(acct_valid_env_name("dev"));
    CHECK(acct_valid_env_name("uat_2-b"));
    CHECK(!acct_valid_env_name("dev.eu"));
    CHECK(!acct_valid_env_name(""));
    CHECK(!acct_valid_env_name("prod*"));
    CHECK(!acct_valid_env_name(NULL));
}

static void test_hashing(void)
{
    uint8_t h1[20], h256[32];
    char hex[65];

    acct_hash_password("secret", h1, h256);
    to_hex(h1, 20, hex);
    CHECK_STR(hex, SECRET_SHA1_STAGE2);
    to_hex(h256, 32, hex);
    CHECK_STR(hex, SECRET_SHA256_STAGE2);

    acct_hash_password("", h1, h256);
    to_hex(h1, 20, hex);
    CHECK_STR(hex, EMPTY_SHA1_STAGE2);
    to_hex(h256, 32, hex);
    CHECK_STR(hex, EMPTY_SHA256_STAGE2);

    acct_hash_password(UTF8_PASSWORD, h1, h256);
    to_hex(h1, 20, hex);
    CHECK_STR(hex, UTF8_SHA1_STAGE2);
    to_hex(h256, 32, hex);
    CHECK_STR(hex, UTF8_SHA256_STAGE2);
}

static void test_verify(void)
{
    uint8_t nonce[20], resp[32], other[20];
    uint8_t h1[20], h256[32], e1[20], e256[32];
    static const uint8_t nul = 0;

    for (int i = 0; i < 20; i++)
        nonce[i] = (uint8_t)(i + 1);
    acct_hash_password("secret", h1, h256);
    acct_hash_password("", e1, e256);

    /* The right password. */
    CHECK_INT(from_hex(SECRET_NATIVE_RESP, resp), 20);
    CHECK(acct_verify_native(h1, nonce, resp, 20));
    CHECK_INT(from_hex(SECRET_SHA2_RESP, resp), 32);
    CHECK(acct_verify_sha2(h256, nonce, resp, 32));

    /* Truncated or overlong responses. */
    from_hex(SECRET_NATIVE_RESP, resp);
    CHECK(!acct_verify_native(h1, nonce, resp, 19));
    CHECK(!acct_verify_native(h1, nonce, resp, 1));
    CHECK(!acct_verify_native(h1, nonce, resp, 21));
    from_hex(SECRET_SHA2_RESP, resp);
    CHECK(!acct_verify_sha2(h256, nonce, resp, 31));
    CHECK(!acct_verify_sha2(h256, nonce, resp, 20));

    /* One flipped bit: a wrong password. */
    from_hex(SECRET_NATIVE_RESP, resp);
    resp[7] ^= 0x01;
    CHECK(!acct_verify_native(h1, nonce, resp, 20));
    from_hex(SECRET_SHA2_RESP, resp);
    resp[31] ^= 0x80;
    CHECK(!acct_verify_sha2(h256, nonce, resp, 32));

    /* The right response for another nonce (a replay). */
    memcpy(other, nonce, 20);
    other[0] ^= 0xff;
    from_hex(SECRET_NATIVE_RESP, resp);
    CHECK(!acct_verify_native(h1, other, resp, 20));
    from_hex(SECRET_SHA2_RESP, resp);
    CHECK(!acct_verify_sha2(h256, other, resp, 32));

    /* The response of "secret" checked against another account's hashes. */
    from_hex(SECRET_NATIVE_RESP, resp);
    CHECK(!acct_verify_native(e1, nonce, resp, 20));
    from_hex(SECRET_SHA2_RESP, resp);
    CHECK(!acct_verify_sha2(e256, nonce, resp, 32));

    /* A UTF-8 password and a nonce with NUL, quote and high bytes. */
    acct_hash_password(UTF8_PASSWORD, h1, h256);
    from_hex(UTF8_NATIVE_RESP, resp);
    CHECK(acct_verify_native(h1, NONCE2, resp, 20));
    from_hex(UTF8_SHA2_RESP, resp);
    CHECK(acct_verify_sha2(h256, NONCE2, resp, 32));
    CHECK(!acct_verify_sha2(h256, nonce, resp, 32));

    /* Empty responses: only for the empty password. A single NUL is what
     * caching_sha2_password clients send for an empty password. */
    acct_hash_password("secret", h1, h256);
    CHECK(!acct_verify_native(h1, nonce, NULL, 0));
    CHECK(!acct_verify_sha2(h256, nonce, NULL, 0));
    CHECK(!acct_verify_sha2(h256, nonce, &nul, 1));
    CHECK(acct_verify_native(e1, nonce, NULL, 0));
    CHECK(acct_verify_sha2(e256, nonce, NULL, 0));
    CHECK(acct_verify_sha2(e256, nonce, &nul, 1));
    CHECK(acct_verify_native(e1, nonce, &nul, 1));

    /* A missing nonce never verifies a non-empty response. */
    from_hex(SECRET_NATIVE_RESP, resp);
    CHECK(!acct_verify_native(h1, NULL, resp, 20));
}

static void path_in_tmp(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static char *list_text(acct_store *s)
{
    char *buf = NULL, err[256] = "";
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = acct_list(s, f, err, sizeof err);

    fclose(f);
    CHECK_INT(rc, 0);
    return buf;
}

/* Runs one SQL text directly against a store file. */
static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);

    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;

    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_store(void)
{
    char path[512], err[256];
    struct stat sb;
    mode_t old_umask;
    acct_store *s;
    char *text;

    path_in_tmp(path, sizeof path, "store.db");

    /* The file is created 0600 even with a permissive umask. */
    old_umask = umask(0);
    err[0] = 0;
    s = acct_open(path, err, sizeof err);
    umask(old_umask);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "acct_open: %s\n", err);
        return;
    }
    CHECK_INT(stat(path, &sb), 0);
    CHECK_INT(sb.st_mode & 0777, 0600);
    CHECK_INT(raw_int(path, "PRAGMA user_version"), 2);

    /* An empty store lists only the header. */
    text = list_text(s);
    CHECK_STR(text, "USER  DEFAULT_ENV  GRANTS  LIMITS\n");
    free(text);

    CHECK_INT(acct_user_add(s, "alice", "secret", "dev", err, sizeof err), 0);
    CHECK_INT(acct_user_add(s, "bob", "hunter2", NULL, err, sizeof err), 0);
    CHECK_INT(acct_user_add(s, "alice", "other", NULL, err, sizeof err), -1);
    CHECK_STR(err, "user 'alice' already exists");
    CHECK(strstr(err, "other") == NULL);

    /* Invalid names are refused before any SQL runs. */
    CHECK_INT(acct_user_add(s, "bad name", "x", NULL, err, sizeof err), -1);
    CHECK(strstr(err, "invalid user name") != NULL);
    CHECK_INT(acct_user_add(s, "carol", "x", "dev.eu", err, sizeof err), -1);
    CHECK(strstr(err, "invalid environment name") != NULL);
    CHECK_INT(acct_user_add(s, "x'; DROP TABLE accounts; --", "x", NULL, err, sizeof err), -1);
    CHECK_INT(acct_grant_set(s, "alice", "de v", GRANT_READ, err, sizeof err), -1);
    CHECK_INT(acct_grant_set(s, "alice", "dev", GRANT_NONE, err, sizeof err), -1);
    CHECK(strstr(err, "invalid grant level") != NULL);

    /* Grants: set, upgrade, refuse for unknown users, revoke. */
    CHECK_INT(acct_grant_set(s, "alice", "dev", GRANT_READ, err, sizeof err), 0);
    CHECK_INT(acct_grant_set(s, "alice", "dev", GRANT_WRITE, err, sizeof err), 0);
    CHECK_INT(acct_grant_set(s, "alice", "prod", GRANT_READ, err, sizeof err), 0);
    CHECK_INT(acct_grant_set(s, "alice", "sit", GRANT_READ, err, sizeof err), 0);
    CHECK_INT(acct_grant_set(s, "bob", "prod", GRANT_READ, err, sizeof err), 0);
    CHECK_INT(acct_grant_set(s, "nobody", "dev", GRANT_READ, err, sizeof err), -1);
    CHECK_STR(err, "user 'nobody' does not exist");
    CHECK_INT(acct_grant_revoke(s, "alice", "sit", err, sizeof err), 0);
    CHECK_INT(acct_grant_revoke(s, "alice", "sit", err, sizeof err), -1);
    CHECK_STR(err, "user 'alice' has no grant on 'sit'");
    CHECK_INT(acct_grant_revoke(s, "nobody", "dev", err, sizeof err), -1);
    CHECK_STR(err, "user 'nobody' does not exist");

    text = list_text(s);
    CHECK_STR(text, "USER   DEFAULT_ENV  GRANTS               LIMITS\n"
                    "alice  dev          dev=write,prod=read  -\n"
                    "bob    -            prod=read            -\n");
    free(text);

    /* Limit overrides: set, change, remove, refuse for unknown users, listed. */
    CHECK_INT(acct_limits_set(s, "bob", 0, err, sizeof err), 0);
    CHECK_INT(acct_limits_set(s, "alice", 5, err, sizeof err), 0);
    CHECK_INT(acct_limits_set(s, "alice", 7, err, sizeof err), 0);
    CHECK_INT(acct_limits_set(s, "nobody", 0, err, sizeof err), -1);
    CHECK_STR(err, "user 'nobody' does not exist");
    CHECK_INT(raw_int(path, "SELECT count(*) FROM account_limits"), 2);
    {
        acct_snapshot *snap = acct_snapshot_load(s, err, sizeof err);
        CHECK(snap != NULL);
        if (snap) {
            CHECK(acct_find(snap, "alice")->max_rows == 7);
            CHECK(acct_find(snap, "bob")->max_rows == 0);
            acct_snapshot_free(snap);
        }
    }
    text = list_text(s);
    CHECK_STR(text, "USER   DEFAULT_ENV  GRANTS               LIMITS\n"
                    "alice  dev          dev=write,prod=read  max_rows=7\n"
                    "bob    -            prod=read            max_rows=0\n");
    free(text);
    CHECK_INT(acct_limits_set(s, "alice", -1, err, sizeof err), 0);
    CHECK_INT(acct_limits_set(s, "alice", -1, err, sizeof err), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM account_limits"), 1);
    {
        acct_snapshot *snap = acct_snapshot_load(s, err, sizeof err);
        CHECK(snap != NULL);
        if (snap) {
            CHECK(acct_find(snap, "alice")->max_rows == -1);
            acct_snapshot_free(snap);
        }
    }

    /* statement_timeout overrides: their own table, beside max_rows in the list. */
    CHECK_INT(acct_timeout_set(s, "bob", 0, err, sizeof err), 0);
    CHECK_INT(acct_timeout_set(s, "alice", 90000, err, sizeof err), 0);
    CHECK_INT(acct_timeout_set(s, "nobody", 0, err, sizeof err), -1);
    CHECK_STR(err, "user 'nobody' does not exist");
    {
        acct_snapshot *snap = acct_snapshot_load(s, err, sizeof err);
        CHECK(snap != NULL);
        if (snap) {
            CHECK(acct_find(snap, "alice")->statement_timeout_ms == 90000);
            CHECK(acct_find(snap, "bob")->statement_timeout_ms == 0);
            CHECK(acct_find(snap, "bob")->max_rows == 0);
            acct_snapshot_free(snap);
        }
    }
    text = list_text(s);
    CHECK(strstr(text, "bob    -            prod=read            max_rows=0,statement_timeout=0ms\n") != NULL);
    CHECK(strstr(text, "alice  dev          dev=write,prod=read  statement_timeout=90000ms\n") != NULL);
    free(text);
    CHECK_INT(acct_timeout_set(s, "alice", -1, err, sizeof err), 0);
    CHECK_INT(acct_timeout_set(s, "bob", -1, err, sizeof err), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM account_timeouts"), 0);

    /* passwd replaces both hashes. */
    CHECK_INT(acct_user_passwd(s, "bob", "secret", err, sizeof err), 0);
    CHECK_INT(acct_user_passwd(s, "nobody", "secret", err, sizeof err), -1);
    CHECK_STR(err, "user 'nobody' does not exist");

    {
        acct_snapshot *snap = acct_snapshot_load(s, err, sizeof err);
        const account *a, *b;
        uint8_t h1[20], h256[32], nonce[20], resp[32];

        CHECK(snap != NULL);
        if (snap) {
            CHECK_INT(snap->n, 2);
            a = acct_find(snap, "alice");
            b = acct_find(snap, "bob");
            CHECK(a != NULL && b != NULL);
            CHECK(acct_find(snap, "carol") == NULL);
            CHECK(acct_find(snap, "Alice") == NULL);
            CHECK(acct_find(snap, "") == NULL);
            if (a && b) {
                CHECK_STR(a->name, "alice");
                CHECK_STR(a->default_env, "dev");
                CHECK(b->default_env == NULL);
                CHECK_INT(a->n_grants, 2);
                CHECK_INT(acct_grant_for(a, "dev"), GRANT_WRITE);
                CHECK_INT(acct_grant_for(a, "prod"), GRANT_READ);
                CHECK_INT(acct_grant_for(a, "sit"), GRANT_NONE);
                CHECK_INT(acct_grant_for(a, "DEV"), GRANT_NONE);
                CHECK_INT(acct_grant_for(b, "prod"), GRANT_READ);
                CHECK_INT(acct_grant_for(b, "dev"), GRANT_NONE);
                CHECK_INT(acct_grant_for(NULL, "dev"), GRANT_NONE);

                acct_hash_password("secret", h1, h256);
                CHECK(memcmp(a->sha1_stage2, h1, 20) == 0);
                CHECK(memcmp(a->sha256_stage2, h256, 32) == 0);
                CHECK(memcmp(b->sha1_stage2, h1, 20) == 0);
                CHECK(memcmp(b->sha256_stage2, h256, 32) == 0);

                /* The loaded hashes verify what a real client sends. */
                for (int i = 0; i < 20; i++)
                    nonce[i] = (uint8_t)(i + 1);
                from_hex(SECRET_NATIVE_RESP, resp);
                CHECK(acct_verify_native(a->sha1_stage2, nonce, resp, 20));
                from_hex(SECRET_SHA2_RESP, resp);
                CHECK(acct_verify_sha2(a->sha256_stage2, nonce, resp, 32));
            }
            acct_snapshot_free(snap);
        }
    }

    /* Deleting a user deletes its grants. */
    CHECK_INT(raw_int(path, "SELECT count(*) FROM grants WHERE account = 'alice'"), 2);
    CHECK_INT(acct_limits_set(s, "alice", 3, err, sizeof err), 0);
    CHECK_INT(acct_user_del(s, "alice", err, sizeof err), 0);
    CHECK_INT(acct_user_del(s, "alice", err, sizeof err), -1);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM account_limits WHERE account = 'alice'"), 0);
    CHECK_STR(err, "user 'alice' does not exist");
    CHECK_INT(raw_int(path, "SELECT count(*) FROM grants WHERE account = 'alice'"), 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM grants"), 1);
    /* Re-adding the name starts without grants. */
    CHECK_INT(acct_user_add(s, "alice", "secret", NULL, err, sizeof err), 0);
    text = list_text(s);
    CHECK_STR(text, "USER   DEFAULT_ENV  GRANTS     LIMITS\n"
                    "alice  -            -          -\n"
                    "bob    -            prod=read  max_rows=0\n");
    free(text);
    acct_close(s);

    /* Reopening keeps everything and does not migrate again. */
    s = acct_open(path, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
        acct_snapshot *snap = acct_snapshot_load(s, err, sizeof err);
        CHECK(snap != NULL && snap->n == 2);
        acct_snapshot_free(snap);
        acct_close(s);
    }
}

static void test_data_version(void)
{
    char path[512], err[256];
    acct_store *watcher, *writer;
    long long v1, v2, v3;

    path_in_tmp(path, sizeof path, "version.db");
    watcher = acct_open(path, err, sizeof err);
    writer = acct_open(path, err, sizeof err);
    CHECK(watcher != NULL && writer != NULL);
    if (watcher && writer) {
        v1 = acct_data_version(watcher);
        CHECK(v1 >= 0);
        CHECK_INT(acct_data_version(watcher), v1);
        CHECK_INT(acct_user_add(writer, "dave", "pw", NULL, err, sizeof err), 0);
        v2 = acct_data_version(watcher);
        CHECK(v2 >= 0 && v2 != v1);
        CHECK_INT(acct_grant_set(writer, "dave", "dev", GRANT_READ, err, sizeof err), 0);
        v3 = acct_data_version(watcher);
        CHECK(v3 >= 0 && v3 != v2);
        /* A refused change commits nothing. */
        CHECK_INT(acct_user_add(writer, "dave", "pw", NULL, err, sizeof err), -1);
        CHECK_INT(acct_data_version(watcher), v3);
    }
    acct_close(watcher);
    acct_close(writer);
    CHECK_INT(acct_data_version(NULL), -1);
}

static void test_schema_versions(void)
{
    char path[512], err[256];
    acct_store *s;
    struct stat sb;

    /* A store from a newer envproxy is refused and left alone. */
    path_in_tmp(path, sizeof path, "future.db");
    s = acct_open(path, err, sizeof err);
    CHECK(s != NULL);
    acct_close(s);
    CHECK_INT(raw_exec(path, "PRAGMA user_version = 7"), SQLITE_OK);
    err[0] = 0;
    s = acct_open(path, err, sizeof err);
    CHECK(s == NULL);
    acct_close(s);
    CHECK(strstr(err, "has schema version 7; this envproxy knows up to 2") != NULL);
    CHECK(strstr(err, path) != NULL);
    CHECK_INT(raw_int(path, "PRAGMA user_version"), 7);

    /* A version 1 store (before API tokens and named queries) is upgraded in place. */
    path_in_tmp(path, sizeof path, "v1.db");
    s = acct_open(path, err, sizeof err);
    CHECK(s != NULL);
    CHECK_INT(acct_user_add(s, "old", "pw", NULL, err, sizeof err), 0);
    acct_close(s);
    CHECK_INT(raw_exec(path, "DROP TABLE api_tokens; DROP TABLE named_queries; "
                             "PRAGMA user_version = 1"),
              SQLITE_OK);
    s = acct_open(path, err, sizeof err);
    CHECK(s != NULL);
    CHECK_INT(raw_int(path, "PRAGMA user_version"), 2);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM accounts WHERE name = 'old'"), 1);
    char tok[64];
    CHECK(acct_token_add(s, "old", 0, tok, sizeof tok, err, sizeof err) > 0);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM api_tokens"), 1);
    acct_close(s);
    /* A store written before account_limits existed gets the table on open, keeps its
     * version and its accounts, and the override works. */
    path_in_tmp(path, sizeof path, "nolimits.db");
    s = acct_open(path, err, sizeof err);
    CHECK(s != NULL);
    CHECK_INT(acct_user_add(s, "erin", "pw", NULL, err, sizeof err), 0);
    acct_close(s);
    CHECK_INT(raw_exec(path, "DROP TABLE account_limits"), SQLITE_OK);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'account_limits'"), 0);
    s = acct_open(path, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
        CHECK_INT(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'account_limits'"),
                  1);
        CHECK_INT(raw_int(path, "PRAGMA user_version"), 2);
        CHECK_INT(acct_limits_set(s, "erin", 0, err, sizeof err), 0);
        acct_close(s);
    }
    CHECK_INT(raw_int(path, "SELECT max_rows FROM account_limits WHERE account = 'erin'"), 0);

    /* An existing empty file (version 0) is migrated; its mode is the user's choice. */
    path_in_tmp(path, sizeof path, "empty.db");
    fclose(fopen(path, "w"));
    chmod(path, 0640);
    s = acct_open(path, err, sizeof err);
    CHECK(s != NULL);
    acct_close(s);
    CHECK_INT(raw_int(path, "PRAGMA user_version"), 2);
    CHECK_INT(stat(path, &sb), 0);
    CHECK_INT(sb.st_mode & 0777, 0640);

    /* Another application's database is not taken over. */
    path_in_tmp(path, sizeof path, "foreign.db");
    CHECK_INT(raw_exec(path, "CREATE TABLE notes (t TEXT)"), SQLITE_OK);
    err[0] = 0;
    s = acct_open(path, err, sizeof err);
    CHECK(s == NULL);
    acct_close(s);
    CHECK(strstr(err, "did not create") != NULL);
    CHECK_INT(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'accounts'"), 0);

    /* A file that is not a database at all. */
    path_in_tmp(path, sizeof path, "text.db");
    {
        FILE *f = fopen(path, "w");
        fputs("this is not an SQLite database, just some text that is long enough\n", f);
        fclose(f);
    }
    err[0] = 0;
    s = acct_open(path, err, sizeof err);
    CHECK(s == NULL);
    acct_close(s);
    CHECK(strstr(err, "text.db") != NULL);

    /* A directory that does not exist. */
    path_in_tmp(path, sizeof path, "missing/dir/store.db");
    err[0] = 0;
    s = acct_open(path, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "No such file or directory") != NULL);
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[512];

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        path_in_tmp(path, sizeof path, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    test_names();
    test_hashing();
    test_verify();
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_store();
    test_data_version();
    test_schema_versions();
    remove_tmpdir();
    return unit_report("accounts");
}
