/* test_router.c: routing hints, `db@env` targets, USE recognition and the routing decision,
 * against a configuration and accounts built in memory. */
#include "router.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static char err[512];

/* ---- hints ----------------------------------------------------------------------------- */

/* Parses s (its whole length); returns route_parse_hint's result. */
static int hint(const char *s, route_hint *h)
{
    err[0] = '\0';
    return route_parse_hint(s, strlen(s), h, err, sizeof(err));
}

/* s must be an ordinary statement: no hint, no error. */
static void expect_no_hint(const char *s, int line)
{
    route_hint h;
    int rc = hint(s, &h);
    if (rc == 0 && !h.present && h.end == 0 && h.n_envs == 0 && !h.all_envs && !h.has_db) {
        unit_passed++;
    } else {
        unit_failed++;
        fprintf(stderr, "%s:%d: \"%s\": rc %d present %d, want no hint\n", __FILE__, line, s, rc,
                h.present);
    }
}

/* s must be a malformed hint: -1 with a message containing want. */
static void expect_bad_hint(const char *s, const char *want, int line)
{
    route_hint h;
    int rc = hint(s, &h);
    if (rc == -1 && err[0] && strstr(err, want)) {
        unit_passed++;
    } else {
        unit_failed++;
        fprintf(stderr, "%s:%d: \"%s\": rc %d err \"%s\", want -1 with \"%s\"\n", __FILE__, line, s,
                rc, err, want);
    }
}

static void test_hint_basic(void)
{
    route_hint h;
    const char *s = "/* env=prod */ SELECT 1";
    CHECK_INT(hint(s, &h), 0);
    CHECK(h.present);
    CHECK_INT(h.n_envs, 1);
    CHECK_STR(h.envs[0], "prod");
    CHECK(!h.all_envs);
    CHECK(!h.has_db);
    CHECK_INT(h.n_compare, 0);
    CHECK(!h.has_key);
    CHECK_INT(h.end, strlen("/* env=prod */"));
    CHECK_STR(s + h.end, " SELECT 1");

    /* Leading white space and newlines; end counts them. */
    s = " \t\r\n\n  /* env=prod */\nSELECT 1";
    CHECK_INT(hint(s, &h), 0);
    CHECK(h.present);
    CHECK_STR(h.envs[0], "prod");
    CHECK_STR(s + h.end, "\nSELECT 1");

    s = "/* env=prod db=shop */ SELECT * FROM t";
    CHECK_INT(hint(s, &h), 0);
    CHECK(h.present);
    CHECK_INT(h.n_envs, 1);
    CHECK_STR(h.envs[0], "prod");
    CHECK(h.has_db);
    CHECK_STR(h.db, "shop");
    CHECK_STR(s + h.end, " SELECT * FROM t");

    /* Order does not matter; white space inside the comment is free. */
    s = "/*\n  db=shop\tenv=prod\n*/SELECT 1";
    CHECK_INT(hint(s, &h), 0);
    CHECK(h.present);
    CHECK_STR(h.envs[0], "prod");
    CHECK_STR(h.db, "shop");
    CHECK_STR(s + h.end, "SELECT 1");

    /* No spaces at all. */
    s = "/*env=prod*/SELECT 1";
    CHECK_INT(hint(s, &h), 0);
    CHECK(h.present);
    CHECK_STR(h.envs[0], "prod");
    CHECK_INT(h.end, 12);

    /* Keys are case-insensitive; values keep their case. */
    s = "/* ENV=Prod DB=Shop */ SELECT 1";
    CHECK_INT(hint(s, &h), 0);
    CHECK(h.present);
    CHECK_STR(h.envs[0], "Prod");
    CHECK_STR(h.db, "Shop");
    CHECK_INT(hint("/* Env=prod */ SELECT 1", &h), 0);
    CHECK(h.present);

    /* Only db=: stays in the session's environment. */
    CHECK_INT(hint("/* db=shop */ SELECT 1", &h), 0);
    CHECK(h.present);
    CHECK_INT(h.n_envs, 0);
    CHECK(h.has_db);

    /* A hint with nothing after it. */
    s = "/* env=prod */";
    CHECK_INT(hint(s, &h), 0);
    CHECK(h.present);
    CHECK_INT(h.end, strlen(s));

    /* The length given is respected: the comment must end inside it. */
    s = "/* env=prod */ SELECT 1";
    CHECK_INT(route_parse_hint(s, 13, &h, err, sizeof(err)), 0);
    CHECK(!h.present);
    CHECK_INT(route_parse_hint(s, 14, &h, err, sizeof(err)), 0);
    CHECK(h.present);
    CHECK_INT(h.end, 14);

    /* Names with '-' and '_' and digits. */
    CHECK_INT(hint("/* env=prod-eu_2 */ SELECT 1", &h), 0);
    CHECK_STR(h.envs[0], "prod-eu_2");
}

static void test_hint_lists(void)
{
    route_hint h;
    CHECK_INT(hint("/* env=dev,prod */ SELECT 1", &h), 0);
    CHECK(h.present);
    CHECK_INT(h.n_envs, 2);
    CHECK_STR(h.envs[0], "dev");
    CHECK_STR(h.envs[1], "prod");
    CHECK(!h.all_envs);

    CHECK_INT(hint("/* env=* */ SELECT 1", &h), 0);
    CHECK(h.present);
    CHECK(h.all_envs);
    CHECK_INT(h.n_envs, 0);

    CHECK_INT(hint("/* compare=dev,prod key=id */ SELECT id FROM t", &h), 0);
    CHECK(h.present);
    CHECK_INT(h.n_compare, 2);
    CHECK_STR(h.compare[0], "dev");
    CHECK_STR(h.compare[1], "prod");
    CHECK(h.has_key);
    CHECK_STR(h.key, "id");
    CHECK_INT(h.n_envs, 0);

    /* Exactly ROUTE_MAX_ENVS names are accepted. */
    char buf[1024];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "/* env=");
    for (int i = 0; i < ROUTE_MAX_ENVS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%se%d", i ? "," : "", i);
    snprintf(buf + n, sizeof(buf) - n, " */ SELECT 1");
    CHECK_INT(hint(buf, &h), 0);
    CHECK_INT(h.n_envs, ROUTE_MAX_ENVS);
    CHECK_STR(h.envs[ROUTE_MAX_ENVS - 1], "e31");

    /* One more is refused. */
    n = (size_t)snprintf(buf, sizeof(buf), "/* env=");
    for (int i = 0; i <= ROUTE_MAX_ENVS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%se%d", i ? "," : "", i);
    snprintf(buf + n, sizeof(buf) - n, " */ SELECT 1");
    expect_bad_hint(buf, "more than", __LINE__);

    /* Names of exactly ROUTE_NAME_MAX bytes pass; one more does not. */
    char name[ROUTE_NAME_MAX + 2];
    memset(name, 'n', ROUTE_NAME_MAX);
    name[ROUTE_NAME_MAX] = '\0';
    snprintf(buf, sizeof(buf), "/* env=%s db=%s */ SELECT 1", name, name);
    CHECK_INT(hint(buf, &h), 0);
    CHECK_STR(h.envs[0], name);
    CHECK_STR(h.db, name);
    name[ROUTE_NAME_MAX] = 'n';
    name[ROUTE_NAME_MAX + 1] = '\0';
    snprintf(buf, sizeof(buf), "/* env=%s */ SELECT 1", name);
    expect_bad_hint(buf, "too long", __LINE__);
    snprintf(buf, sizeof(buf), "/* env=prod db=%s */ SELECT 1", name);
    expect_bad_hint(buf, "too long", __LINE__);
    snprintf(buf, sizeof(buf), "/* compare=dev,prod key=%s */ SELECT 1", name);
    expect_bad_hint(buf, "too long", __LINE__);
}

static void test_hint_not_hints(void)
{
    expect_no_hint("SELECT 1", __LINE__);
    expect_no_hint("", __LINE__);
    expect_no_hint("   ", __LINE__);
    expect_no_hint("/* hello */ SELECT 1", __LINE__);
    expect_no_hint("/* hello env=prod */ SELECT 1", __LINE__); /* the first word decides */
    expect_no_hint("/**/ SELECT 1", __LINE__);
    expect_no_hint("/* */ SELECT 1", __LINE__);
    expect_no_hint("/* env */ SELECT 1", __LINE__);
    expect_no_hint("/* environment=prod */ SELECT 1", __LINE__);
    expect_no_hint("/* envx=prod */ SELECT 1", __LINE__);
    /* Executable comments and optimizer hints are SQL, not routing. */
    expect_no_hint("/*! env=prod */ SELECT 1", __LINE__);
    expect_no_hint("/*!40101 env=prod */ SELECT 1", __LINE__);
    expect_no_hint("/*M! env=prod */ SELECT 1", __LINE__);
    expect_no_hint("/*+ env=prod */ SELECT 1", __LINE__);
    expect_no_hint("/*+ MAX_EXECUTION_TIME(1000) */ SELECT 1", __LINE__);
    /* Not at the start. */
    expect_no_hint("SELECT /* env=prod */ 1", __LINE__);
    expect_no_hint("SELECT 1 /* env=prod */", __LINE__);
    expect_no_hint("-- env=prod\nSELECT 1", __LINE__);
    expect_no_hint("# env=prod\nSELECT 1", __LINE__);
    /* Unterminated: not a hint, and no error. */
    expect_no_hint("/* env=prod SELECT 1", __LINE__);
    expect_no_hint("/* env=prod *", __LINE__);
    expect_no_hint("/*", __LINE__);
    expect_no_hint("/", __LINE__);
    expect_no_hint("/*/", __LINE__);
}

static void test_hint_malformed(void)
{
    expect_bad_hint("/* env= */ SELECT 1", "no value", __LINE__);
    expect_bad_hint("/* env=prod db= */ SELECT 1", "no value", __LINE__);
    expect_bad_hint("/* env=prod bogus */ SELECT 1", "bogus", __LINE__);
    expect_bad_hint("/* env=prod key */ SELECT 1", "key", __LINE__);
    expect_bad_hint("/* env=pr@d */ SELECT 1", "pr@d", __LINE__);
    expect_bad_hint("/* env=pr.d */ SELECT 1", "invalid", __LINE__);
    expect_bad_hint("/* env=prod env=dev */ SELECT 1", "twice", __LINE__);
    expect_bad_hint("/* env=* env=dev */ SELECT 1", "twice", __LINE__);
    expect_bad_hint("/* env=prod ENV=prod */ SELECT 1", "twice", __LINE__);
    expect_bad_hint("/* env=prod db=a db=b */ SELECT 1", "twice", __LINE__);
    expect_bad_hint("/* env=dev, */ SELECT 1", "empty", __LINE__);
    expect_bad_hint("/* env=,dev */ SELECT 1", "empty", __LINE__);
    expect_bad_hint("/* env=dev,,prod */ SELECT 1", "empty", __LINE__);
    expect_bad_hint("/* env=dev,* */ SELECT 1", "invalid", __LINE__);
    expect_bad_hint("/* compare=dev key=id */ SELECT 1", "two environments", __LINE__);
    expect_bad_hint("/* compare=dev,prod,qa key=id */ SELECT 1", "more than", __LINE__);
    expect_bad_hint("/* compare=dev,prod compare=dev,prod */ SELECT 1", "twice", __LINE__);
    expect_bad_hint("/* compare=dev,prod key=a key=b */ SELECT 1", "twice", __LINE__);

    /* A failed parse leaves no half-filled hint behind. */
    route_hint h;
    CHECK_INT(hint("/* env=prod bogus */ SELECT 1", &h), -1);
    CHECK(!h.present);
}

/* ---- targets --------------------------------------------------------------------------- */

static int target(const char *s, route_target *t)
{
    err[0] = '\0';
    return route_parse_target(s, strlen(s), t, err, sizeof(err));
}

static void test_target(void)
{
    route_target t;
    CHECK_INT(target("shop@prod", &t), 0);
    CHECK(t.has_db);
    CHECK_STR(t.db, "shop");
    CHECK(t.has_env);
    CHECK_STR(t.env, "prod");

    CHECK_INT(target("@prod", &t), 0);
    CHECK(!t.has_db);
    CHECK(t.has_env);
    CHECK_STR(t.env, "prod");

    CHECK_INT(target("shop", &t), 0);
    CHECK(t.has_db);
    CHECK_STR(t.db, "shop");
    CHECK(!t.has_env);

    /* The last '@' separates: database names may hold '@'. */
    CHECK_INT(target("a@b@prod", &t), 0);
    CHECK_STR(t.db, "a@b");
    CHECK_STR(t.env, "prod");
    CHECK_INT(target("my db-1@prod-eu_2", &t), 0);
    CHECK_STR(t.db, "my db-1");
    CHECK_STR(t.env, "prod-eu_2");

    CHECK_INT(target("shop@", &t), -1);
    CHECK(err[0] != '\0');
    CHECK_INT(target("@", &t), -1);
    CHECK(err[0] != '\0');
    CHECK_INT(target("", &t), -1);
    CHECK(err[0] != '\0');
    CHECK_INT(target("a@b@", &t), -1);
    CHECK_INT(target("shop@pr.od", &t), -1);
    CHECK(strstr(err, "invalid") != NULL);
    CHECK_INT(target("shop@pr od", &t), -1);
    CHECK_INT(target("shop@prod;", &t), -1);
    CHECK_INT(target("shop@pr\303\266d", &t), -1);

    /* Lengths: ROUTE_NAME_MAX bytes pass, one more fails, on either side. */
    char name[ROUTE_NAME_MAX + 2], buf[256];
    memset(name, 'x', ROUTE_NAME_MAX);
    name[ROUTE_NAME_MAX] = '\0';
    snprintf(buf, sizeof(buf), "%s@%s", name, name);
    CHECK_INT(target(buf, &t), 0);
    CHECK_STR(t.db, name);
    CHECK_STR(t.env, name);
    CHECK_INT(target(name, &t), 0);
    name[ROUTE_NAME_MAX] = 'x';
    name[ROUTE_NAME_MAX + 1] = '\0';
    CHECK_INT(target(name, &t), -1);
    snprintf(buf, sizeof(buf), "%s@prod", name);
    CHECK_INT(target(buf, &t), -1);
    snprintf(buf, sizeof(buf), "shop@%s", name);
    CHECK_INT(target(buf, &t), -1);

    /* A NUL byte anywhere is refused (the length is explicit). */
    CHECK_INT(route_parse_target("sh\0p@prod", 9, &t, err, sizeof(err)), -1);
    CHECK(strstr(err, "NUL") != NULL);
    CHECK_INT(route_parse_target("shop@pr\0d", 9, &t, err, sizeof(err)), -1);
    CHECK_INT(route_parse_target("\0", 1, &t, err, sizeof(err)), -1);

    /* Only len bytes are read. */
    CHECK_INT(route_parse_target("shop@prodXYZ", 9, &t, err, sizeof(err)), 0);
    CHECK_STR(t.env, "prod");
    CHECK_INT(route_parse_target("shop@prod", 4, &t, err, sizeof(err)), 0);
    CHECK_STR(t.db, "shop");
    CHECK(!t.has_env);
}

/* ---- USE ------------------------------------------------------------------------------- */

/* sql must be a USE of want. */
static void expect_use(const char *sql, const char *want, int line)
{
    char name[ROUTE_NAME_MAX * 2 + 2];
    err[0] = '\0';
    memset(name, '?', sizeof(name));
    int rc = route_parse_use(sql, strlen(sql), name, sizeof(name), err, sizeof(err));
    if (rc == 1 && strcmp(name, want) == 0) {
        unit_passed++;
    } else {
        unit_failed++;
        fprintf(stderr, "%s:%d: \"%s\": rc %d name \"%.*s\" err \"%s\", want 1 \"%s\"\n", __FILE__,
                line, sql, rc, rc == 1 ? (int)strlen(name) : 0, name, err, want);
    }
}

/* sql must give rc (0: not a USE; -1: a USE that cannot be read, with a message). */
static void expect_use_rc(const char *sql, int want, int line)
{
    char name[ROUTE_NAME_MAX * 2 + 2];
    err[0] = '\0';
    int rc = route_parse_use(sql, strlen(sql), name, sizeof(name), err, sizeof(err));
    if (rc == want && (want != -1 || err[0])) {
        unit_passed++;
    } else {
        unit_failed++;
        fprintf(stderr, "%s:%d: \"%s\": rc %d err \"%s\", want %d\n", __FILE__, line, sql, rc, err,
                want);
    }
}

static void test_use(void)
{
    expect_use("USE shop", "shop", __LINE__);
    expect_use("use shop", "shop", __LINE__);
    expect_use("UsE shop", "shop", __LINE__);
    expect_use("use shop@prod", "shop@prod", __LINE__);
    expect_use("use @prod", "@prod", __LINE__);
    expect_use("use `shop@prod`", "shop@prod", __LINE__);
    expect_use("USE \"x\"", "x", __LINE__);
    expect_use("USE `my db`", "my db", __LINE__);
    expect_use("USE shop;", "shop", __LINE__);
    expect_use("USE shop ;", "shop", __LINE__);
    expect_use("USE shop ; -- c", "shop", __LINE__);
    expect_use("USE shop -- c\n", "shop", __LINE__);
    expect_use("USE shop; # c", "shop", __LINE__);
    expect_use("USE shop /* c */ ;", "shop", __LINE__);
    expect_use("/* c */ USE shop", "shop", __LINE__);
    expect_use("  \n/* a */ /* b */\tUSE shop", "shop", __LINE__);
    expect_use("USE\tshop", "shop", __LINE__);
    expect_use("USE\nshop\n", "shop", __LINE__);
    expect_use("USE/* c */shop", "shop", __LINE__);
    expect_use("USE`shop`", "shop", __LINE__);
    expect_use("USE `a``b`", "a`b", __LINE__);
    expect_use("USE \"a\"\"b\"", "a\"b", __LINE__);
    expect_use("USE `a\"b`", "a\"b", __LINE__);
    expect_use("USE ``````", "``", __LINE__);
    expect_use("USE shop#c", "shop", __LINE__);
    expect_use("USE shop/* c */", "shop", __LINE__);

    /* Other statements. */
    expect_use_rc("SELECT 1", 0, __LINE__);
    expect_use_rc("SELECT USER()", 0, __LINE__);
    expect_use_rc("USER()", 0, __LINE__);
    expect_use_rc("useful", 0, __LINE__);
    expect_use_rc("USES shop", 0, __LINE__);
    expect_use_rc("US", 0, __LINE__);
    expect_use_rc("", 0, __LINE__);
    expect_use_rc("   ", 0, __LINE__);
    expect_use_rc("/*!40101 USE shop */", 0, __LINE__);
    expect_use_rc("USE_x = 1", 0, __LINE__);

    /* USE statements that cannot be taken. */
    expect_use_rc("USE", -1, __LINE__);
    expect_use_rc("USE   ", -1, __LINE__);
    expect_use_rc("USE ;", -1, __LINE__);
    expect_use_rc("USE a b", -1, __LINE__);
    expect_use_rc("USE shop; SELECT 1", -1, __LINE__);
    expect_use_rc("USE shop;;", -1, __LINE__);
    expect_use_rc("USE `shop", -1, __LINE__);
    expect_use_rc("USE \"shop", -1, __LINE__);
    expect_use_rc("USE `a``", -1, __LINE__);
    expect_use_rc("USE 'shop'", -1, __LINE__);
    expect_use_rc("USE sh`op", -1, __LINE__);
    expect_use_rc("USE `a` b", -1, __LINE__);
    expect_use_rc("USE ``", -1, __LINE__);

    /* The name must fit in cap bytes with its NUL. */
    char name[8];
    err[0] = '\0';
    CHECK_INT(route_parse_use("USE abcdefg", 11, name, sizeof(name), err, sizeof(err)), 1);
    CHECK_STR(name, "abcdefg");
    err[0] = '\0';
    CHECK_INT(route_parse_use("USE abcdefgh", 12, name, sizeof(name), err, sizeof(err)), -1);
    CHECK(strstr(err, "too long") != NULL);
    err[0] = '\0';
    CHECK_INT(route_parse_use("USE `abcdefgh`", 14, name, sizeof(name), err, sizeof(err)), -1);
    CHECK(strstr(err, "too long") != NULL);
    CHECK_INT(route_parse_use("USE `abcdefg`", 13, name, sizeof(name), err, sizeof(err)), 1);
    CHECK_STR(name, "abcdefg");

    /* Only len bytes are read. */
    CHECK_INT(route_parse_use("USE shop; SELECT 1", 9, name, sizeof(name), err, sizeof(err)), 1);
    CHECK_STR(name, "shop");
}

/* ---- the routing decision ---------------------------------------------------------------- */

static cfg_env ENVS[4];
static config CFG;

/* dev (read_write, db app_dev), staging (read_write, no default db), prod (read_only,
 * db app), qa (read_write, db qa_db); default_environment staging. */
static void setup_config(void)
{
    memset(ENVS, 0, sizeof(ENVS));
    memset(&CFG, 0, sizeof(CFG));
    ENVS[0].name = "dev";
    ENVS[0].database = "app_dev";
    ENVS[0].access = ACCESS_READ_WRITE;
    ENVS[1].name = "staging";
    ENVS[1].database = NULL;
    ENVS[1].access = ACCESS_READ_WRITE;
    ENVS[2].name = "prod";
    ENVS[2].database = "app";
    ENVS[2].access = ACCESS_READ_ONLY;
    ENVS[3].name = "qa";
    ENVS[3].database = "qa_db";
    ENVS[3].access = ACCESS_READ_WRITE;
    CFG.envs = ENVS;
    CFG.n_envs = 4;
    CFG.default_environment = "staging";
}

static account make_account(const char *name, const char *default_env, acct_grant *grants, int n)
{
    account a;
    memset(&a, 0, sizeof(a));
    a.name = (char *)name;
    a.default_env = (char *)default_env;
    a.grants = grants;
    a.n_grants = n;
    return a;
}

static void test_env_for(void)
{
    acct_grant g[] = {{"dev", GRANT_WRITE}, {"prod", GRANT_READ}, {"ghost", GRANT_WRITE}};
    account a = make_account("alice", NULL, g, 3);
    grant_level lvl = GRANT_WRITE;

    CHECK(route_env_for(&CFG, &a, "dev", &lvl) == &ENVS[0]);
    CHECK_INT(lvl, GRANT_WRITE);
    CHECK(route_env_for(&CFG, &a, "prod", &lvl) == &ENVS[2]);
    CHECK_INT(lvl, GRANT_READ);
    CHECK(route_env_for(&CFG, &a, "prod", NULL) == &ENVS[2]);
    /* Not granted, or not configured: both NULL. */
    CHECK(route_env_for(&CFG, &a, "staging", &lvl) == NULL);
    CHECK_INT(lvl, GRANT_NONE);
    CHECK(route_env_for(&CFG, &a, "ghost", &lvl) == NULL);
    CHECK(route_env_for(&CFG, &a, "nowhere", &lvl) == NULL);
    CHECK(route_env_for(&CFG, &a, "PROD", &lvl) == NULL);
    CHECK(route_env_for(&CFG, NULL, "dev", &lvl) == NULL);
    CHECK_INT(lvl, GRANT_NONE);
    acct_grant none[] = {{"dev", GRANT_NONE}};
    account b = make_account("bob", NULL, none, 1);
    CHECK(route_env_for(&CFG, &b, "dev", &lvl) == NULL);
}

static void test_initial_env(void)
{
    /* The account's default, when granted. */
    acct_grant g1[] = {{"dev", GRANT_WRITE}, {"staging", GRANT_READ}, {"prod", GRANT_READ}};
    account a = make_account("alice", "prod", g1, 3);
    CHECK(route_initial_env(&CFG, &a) == &ENVS[2]);

    /* Its default not granted: the configured default_environment. */
    a.default_env = "qa";
    CHECK(route_initial_env(&CFG, &a) == &ENVS[1]);
    /* Its default not configured at all: the same. */
    a.default_env = "nowhere";
    CHECK(route_initial_env(&CFG, &a) == &ENVS[1]);
    a.default_env = NULL;
    CHECK(route_initial_env(&CFG, &a) == &ENVS[1]);

    /* default_environment not granted: the first granted one in configuration order, not in
     * grant order. */
    acct_grant g2[] = {{"qa", GRANT_READ}, {"prod", GRANT_READ}};
    account b = make_account("bob", NULL, g2, 2);
    CHECK(route_initial_env(&CFG, &b) == &ENVS[2]);
    CFG.default_environment = NULL;
    CHECK(route_initial_env(&CFG, &b) == &ENVS[2]);
    CFG.default_environment = "staging";

    /* Nothing granted (or only unknown environments). */
    account c = make_account("carol", "dev", NULL, 0);
    CHECK(route_initial_env(&CFG, &c) == NULL);
    acct_grant g3[] = {{"ghost", GRANT_WRITE}};
    account d = make_account("dave", "ghost", g3, 1);
    CHECK(route_initial_env(&CFG, &d) == NULL);
}

static int resolve(const account *a, const char *session_env, const char *session_db,
                   const char *hint_sql, route_result *out)
{
    route_hint h;
    const route_hint *hp = NULL;
    if (hint_sql) {
        CHECK_INT(route_parse_hint(hint_sql, strlen(hint_sql), &h, err, sizeof(err)), 0);
        hp = &h;
    }
    err[0] = '\0';
    int rc = route_resolve(&CFG, a, session_env, session_db, hp, out, err, sizeof(err));
    /* The database may point into the hint; copy it before h goes away. */
    static char db_copy[ROUTE_NAME_MAX + 1];
    if (rc == 0 && out->db && hp && out->db == hp->db) {
        snprintf(db_copy, sizeof(db_copy), "%s", hp->db);
        out->db = db_copy;
    }
    return rc;
}

static void test_resolve_grants(void)
{
    acct_grant g[] = {{"dev", GRANT_WRITE}, {"staging", GRANT_READ}, {"prod", GRANT_WRITE}};
    account a = make_account("alice", "dev", g, 3);
    route_result r;

    /* write on read_write */
    CHECK_INT(resolve(&a, "dev", NULL, NULL, &r), 0);
    CHECK(r.env == &ENVS[0]);
    CHECK_INT(r.grant, GRANT_WRITE);
    CHECK(!r.read_only);

    /* read on read_write */
    CHECK_INT(resolve(&a, "staging", NULL, NULL, &r), 0);
    CHECK(r.env == &ENVS[1]);
    CHECK_INT(r.grant, GRANT_READ);
    CHECK(r.read_only);

    /* write on read_only */
    CHECK_INT(resolve(&a, "prod", NULL, NULL, &r), 0);
    CHECK(r.env == &ENVS[2]);
    CHECK_INT(r.grant, GRANT_WRITE);
    CHECK(r.read_only);

    /* The same through a hint. */
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=prod */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[2]);
    CHECK(r.read_only);
    CHECK_INT(resolve(&a, "prod", NULL, "/* env=dev */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[0]);
    CHECK(!r.read_only);

    /* No grant: 1044 with the environment in the message; unknown looks the same. */
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=qa */ SELECT 1", &r), 1044);
    CHECK_STR(err, "Access denied for user 'alice' to environment 'qa'");
    CHECK(r.env == NULL);
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=nowhere */ SELECT 1", &r), 1044);
    CHECK_STR(err, "Access denied for user 'alice' to environment 'nowhere'");
    CHECK_INT(resolve(&a, "qa", NULL, NULL, &r), 1044);
    CHECK_STR(err, "Access denied for user 'alice' to environment 'qa'");

    /* A session with no environment and no hint. */
    CHECK_INT(resolve(&a, NULL, NULL, NULL, &r), 1044);
    CHECK(strstr(err, "'alice'") != NULL);

    /* A read grant on a read_only environment. */
    acct_grant rg[] = {{"prod", GRANT_READ}};
    account b = make_account("bob", NULL, rg, 1);
    CHECK_INT(resolve(&b, "prod", NULL, NULL, &r), 0);
    CHECK_INT(r.grant, GRANT_READ);
    CHECK(r.read_only);
    CHECK_INT(resolve(&b, "prod", NULL, "/* env=dev */ SELECT 1", &r), 1044);
    CHECK_STR(err, "Access denied for user 'bob' to environment 'dev'");
}

static void test_resolve_database(void)
{
    acct_grant g[] = {{"dev", GRANT_WRITE}, {"staging", GRANT_WRITE}, {"prod", GRANT_READ}};
    account a = make_account("alice", "dev", g, 3);
    route_result r;

    /* The hint's db= wins over everything. */
    CHECK_INT(resolve(&a, "dev", "shop", "/* env=prod db=orders */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[2]);
    CHECK_STR(r.db, "orders");
    CHECK_INT(resolve(&a, "dev", "shop", "/* db=orders */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[0]);
    CHECK_STR(r.db, "orders");
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=dev db=orders */ SELECT 1", &r), 0);
    CHECK_STR(r.db, "orders");

    /* Then the session's database, in its environment or across a hint. */
    CHECK_INT(resolve(&a, "dev", "shop", NULL, &r), 0);
    CHECK(r.env == &ENVS[0]);
    CHECK_STR(r.db, "shop");
    CHECK_INT(resolve(&a, "dev", "shop", "/* env=prod */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[2]);
    CHECK_STR(r.db, "shop");
    CHECK_INT(resolve(&a, "dev", "shop", "/* env=dev */ SELECT 1", &r), 0);
    CHECK_STR(r.db, "shop");
    CHECK_INT(resolve(&a, "dev", "shop", "/* hello */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[0]);
    CHECK_STR(r.db, "shop");

    /* No database in the session: a hint that moves takes the environment's default. */
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=prod */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[2]);
    CHECK_STR(r.db, "app");
    CHECK_INT(resolve(&a, "prod", NULL, "/* env=dev */ SELECT 1", &r), 0);
    CHECK_STR(r.db, "app_dev");
    /* ... which may have none. */
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=staging */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[1]);
    CHECK(r.db == NULL);

    /* No session environment at all: the hint's environment and its default. */
    CHECK_INT(resolve(&a, NULL, NULL, "/* env=prod */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[2]);
    CHECK_STR(r.db, "app");

    /* Staying put without a database: none (the session chose to have none). */
    CHECK_INT(resolve(&a, "dev", NULL, NULL, &r), 0);
    CHECK(r.env == &ENVS[0]);
    CHECK(r.db == NULL);
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=dev */ SELECT 1", &r), 0);
    CHECK(r.db == NULL);
    CHECK_INT(resolve(&a, "dev", NULL, "/* hello */ SELECT 1", &r), 0);
    CHECK(r.db == NULL);

    /* Fan-out hints do not move the single-statement decision. */
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=dev,prod */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[0]);
    CHECK_INT(resolve(&a, "dev", NULL, "/* env=* */ SELECT 1", &r), 0);
    CHECK(r.env == &ENVS[0]);
}

int main(void)
{
    setup_config();
    test_hint_basic();
    test_hint_lists();
    test_hint_not_hints();
    test_hint_malformed();
    test_target();
    test_use();
    test_env_for();
    test_initial_env();
    test_resolve_grants();
    test_resolve_database();
    return unit_report("router");
}
