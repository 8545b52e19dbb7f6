/* test_config.c: unit tests of the configuration loader, run from the repository root. */
#include "config.h"
#include "unit.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIGS "tests/unit/configs/"

/* The absolute form of the directory rel (which must exist); caller frees. */
static char *abs_dir(const char *rel)
{
    char *p = realpath(rel, NULL);
    CHECK(p != NULL);
    return p ? p : strdup("/nonexistent");
}

static char *join(const char *a, const char *b)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s", a, b) < 0)
        abort();
    return s;
}

/* Loads path, which must fail with exactly the diagnostics in want (NULL-terminated). */
static void expect_errors(const char *path, const char *const *want)
{
    cfg_diags d;
    cfg_diags_init(&d);
    config *c = config_load(path, &d);
    CHECK(c == NULL);
    int n = 0;
    while (want[n])
        n++;
    CHECK_INT(d.n, n);
    for (int i = 0; i < n && i < d.n; i++)
        CHECK_STR(d.msgs[i], want[i]);
    for (int i = n; i < d.n; i++)
        fprintf(stderr, "  unexpected: %s\n", d.msgs[i]);
    config_free(c);
    cfg_diags_free(&d);
}

/* Loads path, which must succeed without diagnostics. Caller frees the model. */
static config *expect_ok(const char *path)
{
    cfg_diags d;
    cfg_diags_init(&d);
    config *c = config_load(path, &d);
    CHECK(c != NULL);
    CHECK_INT(d.n, 0);
    cfg_diags_print(&d, stderr);
    cfg_diags_free(&d);
    return c;
}

static void test_durations(void)
{
    CHECK_INT(config_parse_duration_ms("0"), 0);
    CHECK_INT(config_parse_duration_ms("500ms"), 500);
    CHECK_INT(config_parse_duration_ms("30s"), 30000);
    CHECK_INT(config_parse_duration_ms("2m"), 120000);
    CHECK_INT(config_parse_duration_ms("1h"), 3600000);
    CHECK_INT(config_parse_duration_ms("45"), 45000);
    CHECK_INT(config_parse_duration_ms("0ms"), 0);
    CHECK_INT(config_parse_duration_ms(""), -1);
    CHECK_INT(config_parse_duration_ms(NULL), -1);
    CHECK_INT(config_parse_duration_ms("s"), -1);
    CHECK_INT(config_parse_duration_ms("-1s"), -1);
    CHECK_INT(config_parse_duration_ms("1.5s"), -1);
    CHECK_INT(config_parse_duration_ms("10 s"), -1);
    CHECK_INT(config_parse_duration_ms(" 10s"), -1);
    CHECK_INT(config_parse_duration_ms("10sec"), -1);
    CHECK_INT(config_parse_duration_ms("10S"), -1);
    CHECK_INT(config_parse_duration_ms("1d"), -1);
    CHECK_INT(config_parse_duration_ms("99999999999999999999"), -1);
    CHECK_INT(config_parse_duration_ms("9223372036854775807h"), -1);
}

static void test_sizes(void)
{
    CHECK_INT(config_parse_size("0"), 0);
    CHECK_INT(config_parse_size("1024"), 1024);
    CHECK_INT(config_parse_size("64k"), 64 * 1024);
    CHECK_INT(config_parse_size("64K"), 64 * 1024);
    CHECK_INT(config_parse_size("2KiB"), 2048);
    CHECK_INT(config_parse_size("16m"), 16LL << 20);
    CHECK_INT(config_parse_size("16M"), 16LL << 20);
    CHECK_INT(config_parse_size("16MiB"), 16LL << 20);
    CHECK_INT(config_parse_size("1g"), 1LL << 30);
    CHECK_INT(config_parse_size("1G"), 1LL << 30);
    CHECK_INT(config_parse_size("3GiB"), 3LL << 30);
    CHECK_INT(config_parse_size(""), -1);
    CHECK_INT(config_parse_size(NULL), -1);
    CHECK_INT(config_parse_size("k"), -1);
    CHECK_INT(config_parse_size("-1"), -1);
    CHECK_INT(config_parse_size("1.5M"), -1);
    CHECK_INT(config_parse_size("16 MiB"), -1);
    CHECK_INT(config_parse_size("16mib"), -1);
    CHECK_INT(config_parse_size("16MB"), -1);
    CHECK_INT(config_parse_size("1T"), -1);
    CHECK_INT(config_parse_size("99999999999999999999"), -1);
    CHECK_INT(config_parse_size("9223372036854775807G"), -1);
}

/* Every key set, includes, ${VAR} forms, aliases, relative paths and limits inheritance. */
static void test_full(void)
{
    setenv("TEST_DEV_HOST", "dev.local", 1);
    unsetenv("TEST_DEV_PORT");
    setenv("TEST_DEV_PASSWORD", "s3cret", 1);
    unsetenv("TEST_PROD_USER");
    setenv("TEST_EMPTY", "", 1);

    config *c = expect_ok(CONFIGS "full/proxy.yaml");
    if (!c)
        return;
    char *dir = abs_dir(CONFIGS "full");
    char *parent = abs_dir(CONFIGS);
    char *want;

    CHECK_STR(c->path, CONFIGS "full/proxy.yaml");
    CHECK_INT(c->n_listen, 2);
    CHECK_STR(c->listen[0].host, "127.0.0.1");
    CHECK_INT(c->listen[0].port, 3307);
    CHECK_STR(c->listen[1].host, "::1");
    CHECK_INT(c->listen[1].port, 3308);
    CHECK_INT(c->threads, 3);
    want = join(dir, "data/envproxy.db");
    CHECK_STR(c->accounts, want);
    free(want);
    CHECK_STR(c->default_environment, "prod");
    want = join(dir, "certs/server.pem");
    CHECK_STR(c->tls_cert, want);
    free(want);
    CHECK_STR(c->tls_key, "/etc/envproxy/server-key.pem");
    CHECK(c->tls_require);
    CHECK_INT(c->limits.max_rows, 2000);
    CHECK_INT(c->limits.statement_timeout_ms, 60000);
    want = join(parent, "logs/audit.jsonl");
    CHECK_STR(c->audit_log, want);
    free(want);
    CHECK(c->http != NULL);
    if (c->http) {
        CHECK_STR(c->http->host, "127.0.0.1");
        CHECK_INT(c->http->port, 9307);
    }
    CHECK_INT(c->max_packet_size, 16LL << 20);
    CHECK_INT(c->handshake_timeout_ms, 500);
    CHECK_INT(c->health_interval_ms, 2000);
    CHECK_INT(c->shutdown_timeout_ms, 0);
    CHECK_INT(c->client_write_timeout_ms, 45000);
    CHECK_INT(c->log_level, 3);

    /* Definition order: main file first, then proxy.d/ in lexical order. */
    CHECK_INT(c->n_envs, 4);
    if (c->n_envs == 4) {
        CHECK_STR(c->envs[0].name, "dev");
        CHECK_STR(c->envs[1].name, "prod");
        CHECK_STR(c->envs[2].name, "uat");
        CHECK_STR(c->envs[3].name, "sit");
    }

    const cfg_env *e = config_find_env(c, "dev");
    CHECK(e != NULL);
    if (e) {
        CHECK_STR(e->description, "Development");
        CHECK_STR(e->host, "dev.local");
        CHECK_INT(e->port, 3310);
        CHECK_STR(e->user, "app");
        CHECK_STR(e->password, "s3cret");
        CHECK_STR(e->database, "shop");
        CHECK_INT(e->access, ACCESS_READ_WRITE);
        CHECK_INT(e->limits.max_rows, 500);
        CHECK_INT(e->limits.statement_timeout_ms, 60000); /* inherited from the top level */
        CHECK_INT(e->pool.max, 5);
        CHECK_INT(e->pool.min, 1);
        CHECK_INT(e->pool.idle_timeout_ms, 3600000);
        CHECK_INT(e->pool.connect_timeout_ms, 250);
        CHECK_INT(e->pool.wait_timeout_ms, 3000);
        CHECK_INT(e->tls_mode, BTLS_VERIFY_CA);
        want = join(dir, "certs/ca.pem");
        CHECK_STR(e->tls_ca, want);
        free(want);
        CHECK_STR(e->mark.file, CONFIGS "full/proxy.yaml");
        CHECK_INT(e->mark.line, 24);
        CHECK_INT(e->mark.col, 3);
    }

    e = config_find_env(c, "prod");
    CHECK(e != NULL);
    if (e) {
        CHECK_STR(e->description, "");
        CHECK_STR(e->host, "db.prod.example");
        CHECK_INT(e->port, 3306);
        CHECK_STR(e->user, "reader");                        /* ${VAR:-x}, VAR unset */
        CHECK_STR(e->password, "cost$5 fallback-dev.local"); /* $$, empty VAR, two refs */
        CHECK(e->database == NULL);
        CHECK_INT(e->access, ACCESS_READ_ONLY);
        CHECK_INT(e->limits.max_rows, 2000);
        CHECK_INT(e->limits.statement_timeout_ms, 60000);
        CHECK_INT(e->pool.max, 5); /* from the *small_pool alias */
        CHECK_INT(e->pool.wait_timeout_ms, 3000);
        CHECK_INT(e->tls_mode, BTLS_PREFERRED);
        CHECK(e->tls_ca == NULL);
    }

    e = config_find_env(c, "uat");
    CHECK(e != NULL);
    if (e) {
        CHECK_STR(e->password, "enc:QUJDRA==");
        CHECK_INT(e->tls_mode, BTLS_REQUIRED);
        want = join(dir, "proxy.d/ca/uat.pem"); /* relative to the included file */
        CHECK_STR(e->tls_ca, want);
        free(want);
        CHECK_INT(e->limits.max_rows, 2000);
        CHECK_INT(e->limits.statement_timeout_ms, 0);
        CHECK_STR(e->mark.file, CONFIGS "full/proxy.d/10-uat.yaml");
        CHECK_INT(e->mark.line, 2);
        CHECK_INT(e->mark.col, 3);
        CHECK_INT(e->pool.max, 20);
    }
    CHECK(config_find_env(c, "sit") != NULL);
    CHECK(config_find_env(c, "nope") == NULL);
    CHECK(config_find_env(NULL, "dev") == NULL);

    CHECK_INT(c->n_files, 3);
    if (c->n_files == 3) {
        CHECK_STR(c->files[0], CONFIGS "full/proxy.yaml");
        CHECK_STR(c->files[1], CONFIGS "full/proxy.d/10-uat.yaml");
        CHECK_STR(c->files[2], CONFIGS "full/proxy.d/20-sit.yaml");
    }

    free(dir);
    free(parent);
    config_free(c);
}

/* Only the required keys: everything else takes its default. */
static void test_defaults(void)
{
    config *c = expect_ok(CONFIGS "minimal.yaml");
    if (!c)
        return;
    char *dir = abs_dir(CONFIGS);
    char *want = join(dir, "envproxy.db");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    CHECK_INT(c->n_listen, 1);
    CHECK_STR(c->listen[0].host, "127.0.0.1");
    CHECK_INT(c->listen[0].port, 3307);
    CHECK_INT(c->threads, cpus < 1 ? 1 : cpus);
    CHECK_STR(c->accounts, want);
    CHECK_STR(c->default_environment, "only");
    CHECK(c->tls_cert == NULL);
    CHECK(c->tls_key == NULL);
    CHECK(!c->tls_require);
    CHECK_INT(c->limits.max_rows, 10000);
    CHECK_INT(c->limits.statement_timeout_ms, 30000);
    CHECK(c->audit_log == NULL);
    CHECK(c->secret_key_file == NULL);
    CHECK(c->http == NULL);
    CHECK(!c->http_tls);
    CHECK_INT(c->max_packet_size, 64LL << 20);
    CHECK_INT(c->handshake_timeout_ms, 10000);
    CHECK_INT(c->health_interval_ms, 5000);
    CHECK_INT(c->health_timeout_ms, 2000);
    CHECK_INT(c->shutdown_timeout_ms, 10000);
    CHECK_INT(c->client_write_timeout_ms, 60000);
    CHECK_INT(c->log_level, 2);
    CHECK_INT(c->max_client_connections, 0);
    CHECK_INT(c->max_connections_per_host, 0);
    CHECK_INT(c->max_connections_per_account, 0);
    CHECK_INT(c->max_handshake_packet_size, 16 * 1024);
    CHECK_INT(c->max_pipelined_input, 1024 * 1024);
    CHECK_INT(c->audit_buffer, 4 << 20);
    CHECK_INT(c->client_idle_timeout_ms, 0);
    CHECK_INT(c->n_envs, 1);
    CHECK_INT(c->n_files, 1);

    const cfg_env *e = config_find_env(c, "only");
    CHECK(e != NULL);
    if (e) {
        CHECK_STR(e->description, "");
        CHECK_STR(e->host, "127.0.0.1");
        CHECK_INT(e->port, 3306);
        CHECK_STR(e->user, "root");
        CHECK_STR(e->password, "");
        CHECK(e->database == NULL);
        CHECK_INT(e->access, ACCESS_READ_ONLY);
        CHECK_INT(e->limits.max_rows, 10000);
        CHECK_INT(e->limits.statement_timeout_ms, 30000);
        CHECK_INT(e->limits.idle_transaction_timeout_ms, 60000); /* read_only: on */
        CHECK_INT(e->pool.max, 20);
        CHECK_INT(e->pool.min, 0);
        CHECK_INT(e->pool.idle_timeout_ms, 300000);
        CHECK_INT(e->pool.connect_timeout_ms, 2000);
        CHECK_INT(e->pool.wait_timeout_ms, 5000);
        CHECK_INT(e->tls_mode, BTLS_PREFERRED);
        CHECK(e->tls_ca == NULL);
    }
    free(want);
    free(dir);
    config_free(c);

    /* A NULL diagnostics list is allowed. */
    c = config_load(CONFIGS "minimal.yaml", NULL);
    CHECK(c != NULL);
    config_free(c);
    CHECK(config_load(CONFIGS "errors.yaml", NULL) == NULL);
}

/* Many problems in one file: all of them are reported, in order. */
static void test_errors(void)
{
#define F CONFIGS "errors.yaml"
    static const char *const want[] = {
        F ":1:9: listen: expected an address such as 127.0.0.1:3307 or [::1]:3307, got "
          "'127.0.0.1:99999'",
        F ":2:10: threads: expected an integer from 1 to 1024, got 'many'",
        F ":4:13: limits.max_rows: expected an integer >= 0 (0 = no cap), got '-5'",
        F ":5:22: limits.statement_timeout: expected a duration such as 500ms, 30s, 2m or 1h "
          "(0 = none), got '10 minutes'",
        F ":7:12: tls.require: expected true or false, got 'maybe'",
        F ":8:3: unknown key 'certificate' in tls (allowed: cert, key, require)",
        F ":9:18: max_packet_size: expected a size from 1KiB to 1GiB such as 65536, 64k, 16MiB "
          "or 1G, got '512'",
        F ":10:20: handshake_timeout: expected a duration above 0 such as 500ms, 30s, 2m or 1h, "
          "got '0'",
        F ":11:12: log_level: expected one of error, warn, info, debug, got 'verbose'",
        F ":12:1: unknown key 'colour' (allowed: listen, threads, accounts, default_environment, "
          "include, tls, limits, audit_log, secret_key_file, http, max_packet_size, "
          "handshake_timeout, health_interval, shutdown_timeout, log_level, environments, "
          "login_throttle, client_write_timeout, max_client_connections, max_connections_per_host, "
          "max_connections_per_account, "
          "max_handshake_packet_size, max_pipelined_input, client_idle_timeout, health_timeout, "
          "audit_buffer)",
        F ":16:11: port: expected an integer from 1 to 65535, got 'abc'",
        F ":18:13: access: expected read_only or read_write, got 'rw'",
        F ":19:18: pool.max: expected an integer >= 1, got '0'",
        F ":19:29: unknown key 'idle' in pool (allowed: max, min, idle_timeout, "
          "connect_timeout, wait_timeout, multiplex)",
        F ":20:18: tls.mode: expected one of disabled, preferred, required, verify_ca, "
          "verify_full, got 'strict'",
        F ":21:5: unknown key 'hots' in environment 'dev' (allowed: description, host, port, "
          "user, password, database, access, limits, pool, tls)",
        F ":22:3: invalid environment name 'bad name': use 1 to 64 letters, digits, '_' or '-'",
        F ":25:3: environment 'noauth': missing required key 'host'",
        F ":25:3: environment 'noauth': missing required key 'user'",
        F ":27:3: environment 'dev' is already defined at " F ":14:3",
        F ":32:5: key 'host' is already defined at " F ":31:5",
        F ":37:26: pool.min (5) must not be greater than pool.max (2)",
        F ":38:22: default_environment: unknown environment 'staging' (defined: dev, noauth, "
          "twice, minmax)",
        NULL};
#undef F
    expect_errors(CONFIGS "errors.yaml", want);
}

/* A mapping or list where a scalar belongs, and the other way round. */
static void test_types(void)
{
#define F CONFIGS "types.yaml"
    static const char *const want[] = {
        F ":1:9: listen: expected an address such as 127.0.0.1:3307 or [::1]:3307, or a list of "
          "addresses, got a mapping",
        F ":2:10: threads: expected an integer from 1 to 1024, got a list",
        F ":4:8: environment 'dev': expected a mapping of settings, got 'just a string'",
        F ":6:11: host: expected a non-empty string, got a list",
        F ":8:13: limits: expected a mapping, got '5'",
        NULL};
#undef F
    expect_errors(CONFIGS "types.yaml", want);
}

static void test_syntax(void)
{
    static const char *const want[] = {
        CONFIGS "syntax.yaml:5:4: YAML syntax error: did not find expected key (while parsing a "
                "block mapping started at 3:3)",
        NULL};
    expect_errors(CONFIGS "syntax.yaml", want);
}

/* ${VAR} problems, reported at the value; no password text ever appears. */
static void test_vars(void)
{
    unsetenv("TEST_UNSET_LISTEN");
    unsetenv("TEST_UNSET_A");
    unsetenv("TEST_UNSET_B");
    unsetenv("TEST_UNSET_C");
    unsetenv("TEST_UNSET_SECRET");
    setenv("TEST_BAD_PORT", "99x", 1);
#define F CONFIGS "vars.yaml"
    static const char *const want[] = {
        F ":1:9: listen: environment variable 'TEST_UNSET_LISTEN' is not set",
        F ":4:11: host: environment variable 'TEST_UNSET_A' is not set",
        F ":4:11: host: environment variable 'TEST_UNSET_B' is not set",
        F ":6:15: password: unterminated '${' (write '$$' for a literal '$')",
        F ":7:15: database: a '${...}' reference needs a variable name of letters, digits and "
          "'_' (write '$$' for a literal '$')",
        F ":8:11: port: expected an integer from 1 to 65535, got '99x'",
        F ":12:15: password: environment variable 'TEST_UNSET_SECRET' is not set",
        NULL};
#undef F
    expect_errors(CONFIGS "vars.yaml", want);

    cfg_diags d;
    cfg_diags_init(&d);
    CHECK(config_load(CONFIGS "vars.yaml", &d) == NULL);
    for (int i = 0; i < d.n; i++)
        CHECK(strstr(d.msgs[i], "hunter2") == NULL);
    cfg_diags_free(&d);
}

static void test_no_environments(void)
{
    static const char *const none[] = {CONFIGS "noenvs.yaml:2:1: no environments are defined",
                                       NULL};
    expect_errors(CONFIGS "noenvs.yaml", none);
    static const char *const empty[] = {CONFIGS "empty.yaml:1:1: no environments are defined",
                                        NULL};
    expect_errors(CONFIGS "empty.yaml", empty);
}

static void test_missing_main(void)
{
    static const char *const missing[] = {
        CONFIGS "does-not-exist.yaml: cannot open: No such file or directory", NULL};
    expect_errors(CONFIGS "does-not-exist.yaml", missing);
    static const char *const dir[] = {"tests/unit/configs: cannot open: Is a directory", NULL};
    expect_errors("tests/unit/configs", dir);
}

/* A missing named include, a glob matching nothing (fine), and an included file with more than
 * environments in it. */
static void test_include_errors(void)
{
    static const char *const want[] = {
        CONFIGS "incl/proxy.yaml:2:5: include: cannot open '" CONFIGS
                "incl/missing.yaml': No such file or directory",
        CONFIGS "incl/bad.d/10-listen.yaml:1:1: only 'environments' may appear in an included "
                "file",
        CONFIGS "incl/bad.d/10-listen.yaml:2:1: only 'environments' may appear in an included "
                "file",
        NULL};
    expect_errors(CONFIGS "incl/proxy.yaml", want);
}

/* The same environment in two included files, and one included file repeating the main file. */
static void test_duplicate_across_files(void)
{
    static const char *const want[] = {
        CONFIGS "dup/d/20-b.yaml:2:3: environment 'qa' is already defined at " CONFIGS
                "dup/d/10-a.yaml:2:3",
        CONFIGS "dup/d/20-b.yaml:5:3: environment 'main' is already defined at " CONFIGS
                "dup/proxy.yaml:3:3",
        NULL};
    expect_errors(CONFIGS "dup/proxy.yaml", want);
}

/* Writes text to dir/name and returns the file's path (caller frees). */
static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path = join(dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

/* secret_key_file: a path like the others; enc: passwords stay as written. */
static void test_secret_key_file(void)
{
    char tmpl[] = "/tmp/envproxy-config-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    char *dir = abs_dir(tmp);
    char *path, *want;
    config *c;

    path = write_file(tmp, "rel.yaml",
                      "secret_key_file: keys/../keys/secret.key\n"
                      "environments:\n"
                      "  dev: { host: h, user: u, password: \"enc:QUJDRA==\" }\n");
    c = expect_ok(path);
    if (c) {
        want = join(dir, "keys/secret.key");
        CHECK_STR(c->secret_key_file, want);
        free(want);
        CHECK_STR(c->envs[0].password, "enc:QUJDRA==");
    }
    config_free(c);
    unlink(path);
    free(path);

    setenv("TEST_KEY_DIR", "/etc/envproxy", 1);
    path = write_file(tmp, "abs.yaml",
                      "secret_key_file: ${TEST_KEY_DIR}/secret.key\n"
                      "environments: { dev: { host: h, user: u } }\n");
    c = expect_ok(path);
    if (c)
        CHECK_STR(c->secret_key_file, "/etc/envproxy/secret.key");
    config_free(c);
    unlink(path);
    free(path);

    path = write_file(tmp, "empty.yaml",
                      "secret_key_file:\n"
                      "environments: { dev: { host: h, user: u } }\n");
    c = expect_ok(path);
    if (c)
        CHECK(c->secret_key_file == NULL);
    config_free(c);
    unlink(path);
    free(path);

    path = write_file(tmp, "bad.yaml",
                      "secret_key_file: [a.key, b.key]\n"
                      "environments:\n"
                      "  dev: { host: h, user: u }\n");
    char *w1 = NULL;
    if (asprintf(&w1, "%s:1:18: secret_key_file: expected a file path, got a list", path) < 0)
        abort();
    const char *const want_list[] = {w1, NULL};
    expect_errors(path, want_list);
    free(w1);
    unlink(path);
    free(path);

    path = write_file(tmp, "map.yaml",
                      "environments:\n"
                      "  dev: { host: h, user: u }\n"
                      "secret_key_file: { path: a.key }\n");
    if (asprintf(&w1, "%s:3:18: secret_key_file: expected a file path, got a mapping", path) < 0)
        abort();
    const char *const want_map[] = {w1, NULL};
    expect_errors(path, want_map);
    free(w1);
    unlink(path);
    free(path);

    free(dir);
    rmdir(tmp);
}

/* The client-side bounds: values, and their ranges. */
static void test_client_bounds(void)
{
    char tmpl[] = "/tmp/envproxy-config-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    char *dir = abs_dir(tmp);
    char *ok = write_file(dir, "ok.yaml",
                          "max_client_connections: 500\n"
                          "max_connections_per_host: 20\n"
                          "max_connections_per_account: 7\n"
                          "max_handshake_packet_size: 4KiB\n"
                          "max_pipelined_input: 256k\n"
                          "client_idle_timeout: 15m\n"
                          "audit_buffer: 256KiB\n"
                          "environments: { dev: { host: h, user: u } }\n");
    config *c = expect_ok(ok);
    if (c) {
        CHECK_INT(c->max_client_connections, 500);
        CHECK_INT(c->max_connections_per_host, 20);
        CHECK_INT(c->max_connections_per_account, 7);
        CHECK_INT(c->max_handshake_packet_size, 4096);
        CHECK_INT(c->max_pipelined_input, 256 * 1024);
        CHECK_INT(c->client_idle_timeout_ms, 15 * 60 * 1000);
        CHECK_INT(c->audit_buffer, 256 * 1024);
        config_free(c);
    }
    char *bad = write_file(dir, "bad.yaml",
                           "max_client_connections: -1\n"
                           "max_connections_per_host: lots\n"
                           "max_handshake_packet_size: 2MiB\n"
                           "max_pipelined_input: 1k\n"
                           "client_idle_timeout: soon\n"
                           "audit_buffer: 4k\n"
                           "environments: { dev: { host: h, user: u } }\n");
    char want0[512], want1[512], want2[512], want3[512], want4[512], want5[512];
    snprintf(want0, sizeof want0,
             "%s:1:25: max_client_connections: expected an integer from 0 (derived from the "
             "descriptor limit) to 10000000, got '-1'",
             bad);
    snprintf(want1, sizeof want1,
             "%s:2:27: max_connections_per_host: expected an integer from 0 (no limit) to "
             "10000000, got 'lots'",
             bad);
    snprintf(want2, sizeof want2,
             "%s:3:28: max_handshake_packet_size: expected a size from 1KiB to 1MiB such as "
             "16KiB, got '2MiB'",
             bad);
    snprintf(want3, sizeof want3,
             "%s:4:22: max_pipelined_input: expected a size from 16KiB to 1GiB such as 1MiB, "
             "got '1k'",
             bad);
    snprintf(want4, sizeof want4,
             "%s:5:22: client_idle_timeout: expected a duration such as 500ms, 30s, 2m or 1h "
             "(0 = none), got 'soon'",
             bad);
    snprintf(want5, sizeof want5,
             "%s:6:15: audit_buffer: expected a size from 64KiB to 1GiB such as 4MiB, got '4k'",
             bad);
    const char *const want[] = {want0, want1, want2, want3, want4, want5, NULL};
    expect_errors(bad, want);
    unlink(ok);
    unlink(bad);
    rmdir(tmp);
    free(ok);
    free(bad);
    free(dir);
}

/* The shipped example loads cleanly with the two variables it needs. */
/* http: as a mapping: listen and tls. (Its errors: tests/integration/test_http_tls.py.) */
static void test_http_mapping(void)
{
    config *c = expect_ok(CONFIGS "http_tls.yaml");
    if (!c)
        return;
    CHECK(c->http != NULL);
    if (c->http) {
        CHECK_STR(c->http->host, "::1");
        CHECK_INT(c->http->port, 9443);
    }
    CHECK(c->http_tls);
    config_free(c);
}

static void test_example(void)
{
    setenv("DEV_DB_PASSWORD", "dev-pass", 1);
    setenv("PROD_DB_PASSWORD", "prod-pass", 1);
    unsetenv("UAT_DB_PASSWORD");
    unsetenv("SIT_DB_PASSWORD");
    config *c = expect_ok("proxy.example.yaml");
    if (!c)
        return;
    CHECK_INT(c->n_envs, 4);
    if (c->n_envs == 4) {
        CHECK_STR(c->envs[0].name, "dev");
        CHECK_STR(c->envs[1].name, "prod");
        CHECK_STR(c->envs[2].name, "uat");
        CHECK_STR(c->envs[3].name, "sit");
        CHECK_STR(c->envs[0].password, "dev-pass");
        CHECK_STR(c->envs[1].password, "prod-pass");
        CHECK_STR(c->envs[2].password, "");
    }
    CHECK_STR(c->default_environment, "dev");
    config_free(c);

    unsetenv("PROD_DB_PASSWORD");
    cfg_diags d;
    cfg_diags_init(&d);
    CHECK(config_load("proxy.example.yaml", &d) == NULL);
    CHECK_INT(d.n, 1);
    if (d.n == 1)
        CHECK(strstr(d.msgs[0], "environment variable 'PROD_DB_PASSWORD' is not set") != NULL);
    cfg_diags_free(&d);
}

/* limits.idle_transaction_timeout: on by default only where the environment is read-only;
 * a top-level value reaches every environment, an environment's own value wins; and
 * health_timeout. */
static void test_idle_transaction_timeout(void)
{
    char tmpl[] = "/tmp/envproxy-config-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    char *path = write_file(tmp, "itt.yaml",
                            "environments:\n"
                            "  ro: { host: h, user: u }\n"
                            "  rw: { host: h, user: u, access: read_write }\n");
    config *c = config_load(path, NULL);
    CHECK(c != NULL);
    if (c) {
        CHECK_INT(config_find_env(c, "ro")->limits.idle_transaction_timeout_ms, 60000);
        CHECK_INT(config_find_env(c, "rw")->limits.idle_transaction_timeout_ms, 0);
        config_free(c);
    }
    unlink(path);
    free(path);
    path = write_file(tmp, "itt2.yaml",
                      "limits: { idle_transaction_timeout: 5s }\n"
                      "health_timeout: 700ms\n"
                      "environments:\n"
                      "  ro: { host: h, user: u, limits: { idle_transaction_timeout: 0 } }\n"
                      "  rw: { host: h, user: u, access: read_write }\n");
    c = config_load(path, NULL);
    CHECK(c != NULL);
    if (c) {
        CHECK_INT(config_find_env(c, "ro")->limits.idle_transaction_timeout_ms, 0);
        CHECK_INT(config_find_env(c, "rw")->limits.idle_transaction_timeout_ms, 5000);
        CHECK_INT(c->health_timeout_ms, 700);
        config_free(c);
    }
    unlink(path);
    free(path);
    path = write_file(tmp, "itt3.yaml",
                      "health_timeout: 0\n"
                      "environments:\n"
                      "  ro: { host: h, user: u, limits: { idle_transaction_timeout: soon } }\n");
    cfg_diags d;
    cfg_diags_init(&d);
    CHECK(config_load(path, &d) == NULL);
    CHECK_INT(d.n, 2);
    cfg_diags_free(&d);
    unlink(path);
    free(path);
    rmdir(tmp);
}

int main(void)
{
    test_durations();
    test_sizes();
    test_full();
    test_defaults();
    test_errors();
    test_types();
    test_syntax();
    test_vars();
    test_no_environments();
    test_missing_main();
    test_include_errors();
    test_duplicate_across_files();
    test_secret_key_file();
    test_client_bounds();
    test_idle_transaction_timeout();
    test_http_mapping();
    test_example();
    return unit_report("config");
}
