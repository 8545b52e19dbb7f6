/* cli_user.c: the `envproxy -c FILE user ...` subcommands that manage the account store. */
#include "cli_user.h"
#include "config.h"
#include "prompt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "accounts.h"

/* Longest password accepted, in bytes (MySQL clients send far less in practice). */
#define PW_MAX 1024

static const char usage_text[] =
    "usage: envproxy -c FILE user add NAME [--password-stdin] [--default-env ENV]\n"
    "       envproxy -c FILE user passwd NAME [--password-stdin]\n"
    "       envproxy -c FILE user grant NAME ENV read|write\n"
    "       envproxy -c FILE user revoke NAME ENV\n"
    "       envproxy -c FILE user limits NAME [--max-rows N|default]\n"
    "                                         [--statement-timeout DURATION|default]\n"
    "       envproxy -c FILE user del NAME\n"
    "       envproxy -c FILE user list\n"
    "Without --password-stdin the password is asked for twice on the terminal.\n"
    "With it, the first line of standard input is the password.\n"
    "user limits: N replaces limits.max_rows of every environment for this account's\n"
    "sessions (0 = no cap); DURATION (30s, 10m, 2h, 0 = none) replaces\n"
    "limits.statement_timeout; default removes an override.\n";

/* ---- reading passwords -------------------------------------------------------------------- */

/* Fills pw from standard input or the terminal. Returns 0, or 1 after reporting an error. */
static int get_password(bool from_stdin, char *pw, size_t size)
{
    const char *why = NULL;
    if (prompt_password(from_stdin, "Password: ", pw, size, &why) < 0)
        return cli_fail(why);
    if (pw[0] == 0)
        return cli_fail("an empty password is not allowed");
    return 0;
}

/* ---- subcommands ------------------------------------------------------------------------- */

typedef struct {
    const char *sub;
    const char *pos[3]; /* positional words */
    int n_pos;
    bool password_stdin;
    const char *default_env;
    const char *max_rows; /* user limits --max-rows */
    const char *timeout;  /* user limits --statement-timeout */
} user_args;

/* Splits the words after the subcommand into positionals and options. Returns 0 or the
 * usage-error exit code. */
static int parse_args(int argc, char **argv, user_args *a)
{
    bool options_done = false;

    for (int i = 2; i < argc; i++) {
        const char *w = argv[i];

        if (!options_done && strcmp(w, "--") == 0) {
            options_done = true;
        } else if (!options_done && strcmp(w, "--password-stdin") == 0) {
            a->password_stdin = true;
        } else if (!options_done && strcmp(w, "--default-env") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(usage_text, "--default-env needs an environment name");
            a->default_env = argv[++i];
        } else if (!options_done && strncmp(w, "--default-env=", 14) == 0) {
            a->default_env = w + 14;
        } else if (!options_done && strcmp(w, "--max-rows") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(usage_text, "--max-rows needs a number or 'default'");
            a->max_rows = argv[++i];
        } else if (!options_done && strncmp(w, "--max-rows=", 11) == 0) {
            a->max_rows = w + 11;
        } else if (!options_done && strcmp(w, "--statement-timeout") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(usage_text,
                                       "--statement-timeout needs a duration or 'default'");
            a->timeout = argv[++i];
        } else if (!options_done && strncmp(w, "--statement-timeout=", 20) == 0) {
            a->timeout = w + 20;
        } else if (!options_done &&
                   (strncmp(w, "--password", 10) == 0 || strncmp(w, "-p", 2) == 0)) {
            /* Someone used to `mysql -pSECRET`: refuse without echoing the word. */
            return cli_usage_error(usage_text, "passwords are read from the terminal or with --password-stdin, "
                               "never from the command line");
        } else if (!options_done && w[0] == '-' && w[1] != 0) {
            return cli_usage_error(usage_text, "unknown option '%s'", w);
        } else {
            if (a->n_pos == 3)
                return cli_usage_error(usage_text, "too many arguments for 'user %s'", a->sub);
            a->pos[a->n_pos++] = w;
        }
    }
    return 0;
}

static int check_user_name(const char *name)
{
    if (acct_valid_name(name))
        return 0;
    fprintf(stderr, "envproxy: invalid user name '%s': use 1 to 64 of A-Z a-z 0-9 _ . -\n", name);
    return 1;
}

static int check_env_name(const char *env)
{
    if (acct_valid_env_name(env))
        return 0;
    fprintf(stderr, "envproxy: invalid environment name '%s': use 1 to 64 of A-Z a-z 0-9 _ -\n",
            env);
    return 1;
}

/* Whether the store holds an account named name: 1 yes, 0 no, -1 after reporting an error. */
static int user_exists(acct_store *s, const char *name)
{
    char err[512];
    acct_snapshot *snap = acct_snapshot_load(s, err, sizeof err);
    int found;

    if (!snap) {
        cli_fail(err);
        return -1;
    }
    found = acct_find(snap, name) != NULL;
    acct_snapshot_free(snap);
    return found;
}

/* user add / user passwd: the existence check comes before the prompt, so nobody types a
 * password only to learn that the name was wrong. */
static int cmd_set_password(acct_store *s, const user_args *a, bool add)
{
    char pw[PW_MAX + 1], err[512];
    const char *name = a->pos[0];
    int exists = user_exists(s, name), rc;

    if (exists < 0)
        return 1;
    if (add && exists) {
        fprintf(stderr, "envproxy: user '%s' already exists\n", name);
        return 1;
    }
    if (!add && !exists) {
        fprintf(stderr, "envproxy: user '%s' does not exist\n", name);
        return 1;
    }
    if (get_password(a->password_stdin, pw, sizeof pw) != 0)
        return 1;
    if (add)
        rc = acct_user_add(s, name, pw, a->default_env, err, sizeof err);
    else
        rc = acct_user_passwd(s, name, pw, err, sizeof err);
    OPENSSL_cleanse(pw, sizeof pw);
    if (rc < 0)
        return cli_fail(err);
    if (!add) {
        printf("password changed for user '%s'\n", name);
        return 0;
    }
    printf("user '%s' added\n", name);
    if (a->default_env)
        printf("note: '%s' has no grant on '%s' yet: user grant %s %s read|write\n", name,
               a->default_env, name, a->default_env);
    return 0;
}

/* Reads --max-rows: a decimal integer >= 0, or "default" (-1: remove the override).
 * Returns 0, or the usage-error exit code. */
static int parse_max_rows(const char *text, long long *out)
{
    char *end;

    if (strcmp(text, "default") == 0) {
        *out = -1;
        return 0;
    }
    errno = 0;
    *out = text[0] >= '0' && text[0] <= '9' ? strtoll(text, &end, 10) : -1;
    if (*out < 0 || errno != 0 || *end != 0)
        return cli_usage_error(usage_text,
                               "--max-rows must be an integer >= 0 (0 = no cap) or 'default', "
                               "not '%s'",
                               text);
    return 0;
}

/* Reads --statement-timeout: a duration as in the configuration ("30s", "10m", "0"), or
 * "default" (-1: remove the override). Returns 0, or the usage-error exit code. */
static int parse_timeout(const char *text, long long *out)
{
    *out = strcmp(text, "default") == 0 ? -1 : config_parse_duration_ms(text);
    if (*out < 0 && strcmp(text, "default") != 0)
        return cli_usage_error(usage_text,
                               "--statement-timeout must be a duration such as 30s, 10m or 0 "
                               "(none), or 'default', not '%s'",
                               text);
    return 0;
}

static int run_command(acct_store *s, const user_args *a, grant_level level, long long max_rows,
                       long long timeout_ms)
{
    char err[512];
    const char *name = a->pos[0];

    if (strcmp(a->sub, "add") == 0)
        return cmd_set_password(s, a, true);
    if (strcmp(a->sub, "passwd") == 0)
        return cmd_set_password(s, a, false);
    if (strcmp(a->sub, "grant") == 0) {
        if (acct_grant_set(s, name, a->pos[1], level, err, sizeof err) < 0)
            return cli_fail(err);
        printf("granted %s on '%s' to '%s'\n", level == GRANT_WRITE ? "write" : "read", a->pos[1],
               name);
        return 0;
    }
    if (strcmp(a->sub, "revoke") == 0) {
        if (acct_grant_revoke(s, name, a->pos[1], err, sizeof err) < 0)
            return cli_fail(err);
        printf("revoked the grant on '%s' from '%s'\n", a->pos[1], name);
        return 0;
    }
    if (strcmp(a->sub, "limits") == 0) {
        if (a->max_rows) {
            if (acct_limits_set(s, name, max_rows, err, sizeof err) < 0)
                return cli_fail(err);
            if (max_rows < 0)
                printf("user '%s' now has the environments' max_rows\n", name);
            else if (max_rows == 0)
                printf("user '%s' now has no max_rows cap in any environment\n", name);
            else
                printf("user '%s' now has max_rows %lld in every environment\n", name,
                       max_rows);
        }
        if (a->timeout) {
            if (acct_timeout_set(s, name, timeout_ms, err, sizeof err) < 0)
                return cli_fail(err);
            if (timeout_ms < 0)
                printf("user '%s' now has the environments' statement_timeout\n", name);
            else if (timeout_ms == 0)
                printf("user '%s' now has no statement_timeout in any environment\n", name);
            else
                printf("user '%s' now has statement_timeout %lld ms in every environment\n",
                       name, timeout_ms);
        }
        return 0;
    }
    if (strcmp(a->sub, "del") == 0) {
        if (acct_user_del(s, name, err, sizeof err) < 0)
            return cli_fail(err);
        printf("user '%s' deleted\n", name);
        return 0;
    }
    /* list */
    if (acct_list(s, stdout, err, sizeof err) < 0)
        return cli_fail(err);
    return 0;
}

int cli_user(const char *accounts_path, int argc, char **argv)
{
    static const struct {
        const char *sub;
        int n_pos;
        bool password_opts; /* --password-stdin allowed */
        bool env_opt;       /* --default-env allowed */
        bool limit_opts;    /* --max-rows, --statement-timeout allowed (one required) */
    } subs[] = {
        {"add", 1, true, true, false},      {"passwd", 1, true, false, false},
        {"grant", 3, false, false, false},  {"revoke", 2, false, false, false},
        {"del", 1, false, false, false},    {"list", 0, false, false, false},
        {"limits", 1, false, false, true},
    };
    long long max_rows = -1, timeout_ms = -1;
    user_args a = {0};
    grant_level level = GRANT_NONE;
    char err[512];
    acct_store *s;
    int spec = -1, rc;

    if (argc < 2)
        return cli_usage_error(usage_text, "'user' needs a subcommand");
    a.sub = argv[1];
    if (strcmp(a.sub, "help") == 0 || strcmp(a.sub, "--help") == 0 || strcmp(a.sub, "-h") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(a.sub, subs[i].sub) == 0)
            spec = (int)i;
    }
    if (spec < 0)
        return cli_usage_error(usage_text, "unknown user subcommand '%s'", a.sub);
    rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    if (a.n_pos != subs[spec].n_pos)
        return cli_usage_error(usage_text, "wrong number of arguments for 'user %s'", a.sub);
    if (a.password_stdin && !subs[spec].password_opts)
        return cli_usage_error(usage_text, "'user %s' takes no --password-stdin", a.sub);
    if (a.default_env && !subs[spec].env_opt)
        return cli_usage_error(usage_text, "'user %s' takes no --default-env", a.sub);
    if (a.max_rows && !subs[spec].limit_opts)
        return cli_usage_error(usage_text, "'user %s' takes no --max-rows", a.sub);
    if (a.timeout && !subs[spec].limit_opts)
        return cli_usage_error(usage_text, "'user %s' takes no --statement-timeout", a.sub);
    if (subs[spec].limit_opts && !a.max_rows && !a.timeout)
        return cli_usage_error(usage_text,
                               "'user %s' needs --max-rows N|default or --statement-timeout "
                               "DURATION|default",
                               a.sub);
    if (a.max_rows) {
        rc = parse_max_rows(a.max_rows, &max_rows);
        if (rc != 0)
            return rc;
    }
    if (a.timeout) {
        rc = parse_timeout(a.timeout, &timeout_ms);
        if (rc != 0)
            return rc;
    }

    /* Check every word before touching the store. */
    if (a.n_pos >= 1 && check_user_name(a.pos[0]) != 0)
        return 1;
    if (a.n_pos >= 2 && check_env_name(a.pos[1]) != 0)
        return 1;
    if (a.default_env && check_env_name(a.default_env) != 0)
        return 1;
    if (a.n_pos == 3) {
        if (strcasecmp(a.pos[2], "read") == 0)
            level = GRANT_READ;
        else if (strcasecmp(a.pos[2], "write") == 0)
            level = GRANT_WRITE;
        else
            return cli_usage_error(usage_text, "grant level must be read or write, not '%s'", a.pos[2]);
    }

    s = acct_open(accounts_path, err, sizeof err);
    if (!s)
        return cli_fail(err);
    rc = run_command(s, &a, level, max_rows, timeout_ms);
    acct_close(s);
    if (fflush(stdout) != 0 && rc == 0)
        rc = cli_fail("cannot write to standard output");
    return rc;
}
