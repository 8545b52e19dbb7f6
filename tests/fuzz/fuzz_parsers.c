/* libFuzzer target: the parsers every logged-in account reaches with text it chooses, apart
 * from the policy check (fuzz_sqlpolicy.c): the virtual schemas' SQL (parse, then run over a
 * small table of every column type, describe, WHERE parameters), routing hints and USE
 * targets, the statement rewrites (db@env names, SCHEMATA, USER(), LOAD DATA LOCAL, the
 * transaction classifier) in every quoting mode, and the JSON reader of the HTTP door.
 *
 * The first byte picks the quoting mode and is skipped; the rest is the text. What is
 * checked: no crash, no read or write out of bounds, no leak, no undefined behaviour (the
 * sanitizers), and a few invariants of the answers (a rewrite's output has a length within
 * the input's, a parsed hint ends inside the text). */

#include "accounts.h"
#include "config.h"
#include "json.h"
#include "rewrite.h"
#include "router.h"
#include "sqlpolicy.h"
#include "vquery.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* router.c's lookups of environments and grants are not reached from the parsers; these
 * stand in for config.c and accounts.c, which would bring libyaml and sqlite3 along. */
const cfg_env *config_find_env(const config *c, const char *name)
{
    (void)c;
    (void)name;
    abort();
}

grant_level acct_grant_for(const account *a, const char *env)
{
    (void)a;
    (void)env;
    abort();
}

static vq_table *sample_table(void)
{
    static const vq_column cols[] = {
        {"name", VQ_STRING}, {"n", VQ_INT}, {"d", VQ_DOUBLE}, {"status", VQ_STRING}};
    vq_table *t = vq_table_new("__envs", "environments", cols, 4);
    if (!t)
        abort();
    const char *names[] = {"dev", "prod", "ü\xf0\x9f\x98\x80", ""};
    for (int r = 0; r < 4; r++) {
        long row = vq_table_add_row(t);
        vq_set_str(t, (size_t)row, 0, names[r]);
        vq_set_int(t, (size_t)row, 1, r == 3 ? INT64_MIN : r * 7 - 3);
        vq_set_double(t, (size_t)row, 2, r == 2 ? 1e308 : r / 3.0);
        if (r != 1)
            vq_set_str(t, (size_t)row, 3, r ? "up" : "down");
    }
    return t;
}

static void fuzz_vquery(const char *sql, size_t len, vq_table *t)
{
    char err[256];
    vq_query q;
    if (vq_parse(sql, len, &q, err, sizeof(err)) != 0)
        return;
    vq_result r;
    if (vq_execute(&q, t, &r, err, sizeof(err)) == 0)
        vq_result_free(&r);
    if (vq_describe(&q, t, &r, err, sizeof(err)) == 0)
        vq_result_free(&r);
    static const char *const names[] = {"envs", "sql", "key?", "db?"};
    const char *vals[4];
    vq_where_params(&q, names, 4, vals, err, sizeof(err));
    static const char *const dbs[] = {"__envs", "__compare", "shop"};
    if (vq_show_databases(&q, dbs, 3, &r, err, sizeof(err)) == 0)
        vq_result_free(&r);
    static const char *const tables[] = {"environments", "databases", "session"};
    if (vq_show_tables(&q, "__envs", tables, 3, &r, err, sizeof(err)) == 0)
        vq_result_free(&r);
    vq_query_free(&q);
}

static void fuzz_route(const char *sql, size_t len)
{
    char err[256];
    route_hint h;
    if (route_parse_hint(sql, len, &h, err, sizeof(err)) == 0 && h.present && h.end > len)
        abort();
    route_target t;
    route_parse_target(sql, len, &t, err, sizeof(err));
    char name[ROUTE_NAME_MAX + 1];
    route_parse_use(sql, len, name, sizeof(name), err, sizeof(err));
}

static void fuzz_rewrite(const char *sql, size_t len, const sql_mode_flags *mode)
{
    static const char *const envs[] = {"dev", "prod"};
    rewrite_envs re = {envs, 2};
    char *out = NULL;
    size_t out_len = 0;
    char env[ROUTE_NAME_MAX + 1], db[ROUTE_NAME_MAX + 1], err[256];
    if (rewrite_schema_names(sql, len, mode, &re, &out, &out_len, env, db, err, sizeof(err)) == 1) {
        if (out_len > len)
            abort(); /* it only removes "@env" */
        free(out);
    }
    out = NULL;
    if (rewrite_schemata_virtual(sql, len, mode, &out, &out_len) == 1)
        free(out);
    out = NULL;
    if (rewrite_user_calls(sql, len, mode, "alice@127.0.0.1", "alice@%", &out, &out_len) == 1)
        free(out);
    rewrite_is_schemata_list(sql, len);
    rewrite_has_load_local(sql, len);
    char file[256];
    size_t file_len;
    rewrite_load_local_file(sql, len, file, sizeof(file), &file_len);
    txn_classify(sql, len, mode);
    txn_words_kind(sql, len);
    vq_mentions_virtual(sql, len);
}

static void fuzz_json(const char *text, size_t len)
{
    char err[256];
    json *v = json_parse(text, len, 32, err, sizeof(err));
    if (!v)
        return;
    json *c = json_clone(v);
    if (!json_equal(v, c))
        abort();
    json_free(c);
    json_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static vq_table *table;
    if (!table)
        table = sample_table();
    if (size < 1)
        return 0;
    sql_mode_flags mode = {0};
    mode.ansi_quotes = data[0] & 1;
    mode.no_backslash_escapes = (data[0] >> 1) & 1;
    mode.unknown = (data[0] >> 2) & 1;
    /* An exact-size copy, so that a read one byte past the text is caught. */
    size_t len = size - 1;
    char *sql = malloc(len ? len : 1);
    if (!sql)
        abort();
    memcpy(sql, data + 1, len);
    fuzz_vquery(sql, len, table);
    fuzz_route(sql, len);
    fuzz_rewrite(sql, len, &mode);
    fuzz_json(sql, len);
    free(sql);
    return 0;
}
