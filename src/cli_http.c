/* cli_http.c: `envproxy -c FILE user token ...` (API tokens) and `envproxy -c FILE query ...`
 * (named queries). */
#include "accounts.h"
#include "cli_user.h"
#include "config.h"
#include "http_api.h"
#include "json.h"
#include "prompt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char token_usage[] =
    "usage: envproxy -c FILE user token NAME [--expires 30d|12h|90m]\n"
    "       envproxy -c FILE user token list [NAME]\n"
    "       envproxy -c FILE user token revoke ID\n"
    "The token is printed once, alone on the last line; only its hash is stored.\n";

static const char query_usage[] =
    "usage: envproxy -c FILE query add NAME --sql-file F [--param name:type[:default]]...\n"
    "                 [--env ENV]... [--database DB] [--description TEXT]\n"
    "       envproxy -c FILE query list\n"
    "       envproxy -c FILE query show NAME\n"
    "       envproxy -c FILE query del NAME\n"
    "Types: int decimal string date datetime bool. A parameter with a default is optional.\n";

/* "30d", "12h", "90m", "3600s" to seconds; -1 when malformed. */
static long long parse_duration(const char *s)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || n <= 0 || n > 100000000)
        return -1;
    long long mul = strcmp(end, "d") == 0 ? 86400 : strcmp(end, "h") == 0 ? 3600
                    : strcmp(end, "m") == 0 ? 60 : strcmp(end, "s") == 0 ? 1 : -1;
    return mul < 0 ? -1 : n * mul;
}

int cli_token(const char *accounts_path, int argc, char **argv)
{
    /* argv: "user" "token" ... */
    char err[512];
    if (argc < 3)
        return cli_usage_error(token_usage, "'user token' needs a user name, list or revoke");
    const char *w = argv[2];
    acct_store *s = NULL;
    int rc = 0;
    if (strcmp(w, "list") == 0) {
        if (argc > 4)
            return cli_usage_error(token_usage, "too many arguments for 'user token list'");
        s = acct_open(accounts_path, err, sizeof(err));
        if (!s)
            return cli_fail(err);
        if (acct_token_list(s, argc == 4 ? argv[3] : NULL, stdout, err, sizeof(err)) < 0)
            rc = cli_fail(err);
    } else if (strcmp(w, "revoke") == 0) {
        char *end;
        long long id = argc == 4 ? strtoll(argv[3], &end, 10) : 0;
        if (argc != 4 || *end || id <= 0)
            return cli_usage_error(token_usage, "'user token revoke' takes a token id");
        s = acct_open(accounts_path, err, sizeof(err));
        if (!s)
            return cli_fail(err);
        if (acct_token_revoke(s, id, err, sizeof(err)) < 0)
            rc = cli_fail(err);
        else
            printf("token %lld revoked\n", id);
    } else {
        long long expires = 0;
        for (int i = 3; i < argc; i++) {
            const char *v = NULL;
            if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc)
                v = argv[++i];
            else if (strncmp(argv[i], "--expires=", 10) == 0)
                v = argv[i] + 10;
            else
                return cli_usage_error(token_usage, "unknown argument '%s'", argv[i]);
            long long secs = parse_duration(v);
            if (secs < 0)
                return cli_usage_error(token_usage, "--expires takes a duration such as 30d");
            expires = (long long)time(NULL) + secs;
        }
        if (!acct_valid_name(w)) {
            fprintf(stderr, "envproxy: invalid user name '%s'\n", w);
            return 1;
        }
        s = acct_open(accounts_path, err, sizeof(err));
        if (!s)
            return cli_fail(err);
        char token[64];
        long long id = acct_token_add(s, w, expires, token, sizeof(token), err, sizeof(err));
        if (id < 0) {
            rc = cli_fail(err);
        } else {
            printf("token %lld for user '%s'%s; it is shown once, store it now:\n", id, w,
                   expires ? "" : " (no expiry)");
            printf("%s\n", token);
        }
        memset(token, 0, sizeof(token));
    }
    acct_close(s);
    if (fflush(stdout) != 0 && rc == 0)
        rc = cli_fail("cannot write to standard output");
    return rc;
}

/* Reads a whole file (at most 64 KiB + 1 bytes, so that the check can refuse a longer one). */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65537;
    char *buf = malloc(cap + 1);
    if (!buf)
        abort();
    *len = fread(buf, 1, cap, f);
    buf[*len] = '\0';
    if (f != stdin)
        fclose(f);
    return buf;
}

static int query_add(acct_store *s, const config *cfg, int argc, char **argv)
{
    char err[512];
    if (argc < 3)
        return cli_usage_error(query_usage, "'query add' needs a name");
    json *def = json_new_object();
    json *params = json_new_array();
    json *envs = json_new_array();
    json_object_set(def, "name", json_new_cstr(argv[2]));
    char *sql = NULL;
    int rc = 0;
    for (int i = 3; i < argc && rc == 0; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            rc = cli_usage_error(query_usage, "%s needs a value", o);
            break;
        }
        i++;
        if (strcmp(o, "--sql-file") == 0) {
            size_t len;
            free(sql);
            sql = read_file(v, &len);
            if (!sql) {
                fprintf(stderr, "envproxy: cannot read %s: %s\n", v, strerror(errno));
                rc = 1;
                break;
            }
            json_object_set(def, "sql", json_new_string(sql, len));
        } else if (strcmp(o, "--param") == 0) {
            /* name:type[:default] */
            char buf[512];
            snprintf(buf, sizeof(buf), "%s", v);
            char *type = strchr(buf, ':');
            if (!type) {
                rc = cli_usage_error(query_usage, "--param takes name:type[:default]");
                break;
            }
            *type++ = '\0';
            char *dflt = strchr(type, ':');
            if (dflt)
                *dflt++ = '\0';
            json *pd = json_new_object();
            json_object_set(pd, "name", json_new_cstr(buf));
            json_object_set(pd, "type", json_new_cstr(type));
            if (dflt) {
                json *dv;
                if (strcmp(type, "int") == 0 || strcmp(type, "decimal") == 0 ||
                    strcmp(type, "string") == 0 || strcmp(type, "date") == 0 ||
                    strcmp(type, "datetime") == 0)
                    dv = json_new_cstr(dflt);
                else if (strcmp(dflt, "true") == 0 || strcmp(dflt, "false") == 0)
                    dv = json_new_bool(dflt[0] == 't');
                else
                    dv = json_new_cstr(dflt);
                json_object_set(pd, "default", dv);
            }
            json_array_add(params, pd);
        } else if (strcmp(o, "--env") == 0) {
            json_array_add(envs, json_new_cstr(v));
        } else if (strcmp(o, "--database") == 0) {
            json_object_set(def, "database", json_new_cstr(v));
        } else if (strcmp(o, "--description") == 0) {
            json_object_set(def, "description", json_new_cstr(v));
        } else {
            rc = cli_usage_error(query_usage, "unknown option '%s'", o);
        }
    }
    json_object_set(def, "params", params);
    json_object_set(def, "environments", envs);
    free(sql);
    if (rc == 0 && !json_get(def, "sql"))
        rc = cli_usage_error(query_usage, "'query add' needs --sql-file");
    json *checked = NULL;
    if (rc == 0) {
        checked = hj_query_check(def, "cli", NULL, cfg, err, sizeof(err));
        if (!checked) {
            fprintf(stderr, "envproxy: named query '%s': %s\n", argv[2], err);
            rc = 1;
        }
    }
    if (rc == 0) {
        char *text = json_serialize(checked, NULL);
        if (acct_query_put(s, argv[2], text, false, err, sizeof(err)) < 0)
            rc = cli_fail(err);
        else
            printf("named query '%s' added\n", argv[2]);
        free(text);
    }
    json_free(checked);
    json_free(def);
    return rc;
}

int cli_query(const config *cfg, int argc, char **argv)
{
    /* argv: "query" SUB ... */
    char err[512];
    if (argc < 2)
        return cli_usage_error(query_usage, "'query' needs a subcommand");
    const char *sub = argv[1];
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0) {
        fputs(query_usage, stdout);
        return 0;
    }
    if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "del"))
        return cli_usage_error(query_usage, "unknown query subcommand '%s'", sub);
    if ((strcmp(sub, "show") == 0 || strcmp(sub, "del") == 0) && argc != 3)
        return cli_usage_error(query_usage, "'query %s' takes a name", sub);
    if (strcmp(sub, "list") == 0 && argc != 2)
        return cli_usage_error(query_usage, "'query list' takes no arguments");
    acct_store *s = acct_open(cfg->accounts, err, sizeof(err));
    if (!s)
        return cli_fail(err);
    int rc = 0;
    if (strcmp(sub, "add") == 0) {
        rc = query_add(s, cfg, argc, argv);
    } else if (strcmp(sub, "del") == 0) {
        if (acct_query_del(s, argv[2], err, sizeof(err)) < 0)
            rc = cli_fail(err);
        else
            printf("named query '%s' deleted\n", argv[2]);
    } else {
        acct_snapshot *snap = acct_snapshot_load(s, err, sizeof(err));
        if (!snap) {
            rc = cli_fail(err);
        } else if (strcmp(sub, "list") == 0) {
            for (int i = 0; i < snap->n_queries; i++) {
                const char *d = json_string_value(json_get(snap->queries[i].def, "description"));
                printf("%-30s %s\n", snap->queries[i].name, d ? d : "");
            }
        } else {
            const acct_query *q = acct_query_find(snap, argv[2]);
            if (!q) {
                fprintf(stderr, "envproxy: named query '%s' does not exist\n", argv[2]);
                rc = 1;
            } else {
                char *text = json_serialize(q->def, NULL);
                printf("%s\n", text);
                free(text);
            }
        }
        acct_snapshot_free(snap);
    }
    acct_close(s);
    if (fflush(stdout) != 0 && rc == 0)
        rc = cli_fail("cannot write to standard output");
    return rc;
}
