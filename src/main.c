/* main.c: the command line: run, check, user, encrypt-secret, mcp, --version, --help. */
#include "cli_user.h"
#include "config.h"
#include "envproxy.h"
#include "log.h"
#include "secret.h"
#include "mcp.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage:\n"
            "  envproxy [-c FILE] [--log-format text|json] [run]\n"
            "                                      run in the foreground (default FILE: "
            "./proxy.yaml)\n"
            "  envproxy -c FILE check [--no-connect]\n"
            "                                      validate FILE and its includes; then ask "
            "each backend\n"
            "                                      whether envproxy's account there can "
            "change things\n"
            "  envproxy -c FILE user add NAME [--password-stdin] [--default-env ENV]\n"
            "  envproxy -c FILE user passwd NAME [--password-stdin]\n"
            "  envproxy -c FILE user grant NAME ENV read|write\n"
            "  envproxy -c FILE user revoke NAME ENV\n"
            "  envproxy -c FILE user limits NAME --max-rows N|default\n"
            "  envproxy -c FILE user del NAME\n"
            "  envproxy -c FILE user list\n"
            "  envproxy -c FILE user token NAME [--expires 30d] | list [NAME] | revoke ID\n"
            "  envproxy -c FILE query add NAME --sql-file F [--param name:type[:default]]...\n"
            "                    [--env ENV]... [--database DB] [--description TEXT]\n"
            "  envproxy -c FILE query list | show NAME | del NAME\n"
            "  envproxy -c FILE encrypt-secret [--stdin]\n"
            "  envproxy mcp [--host H] [--port P] [--user U] [--password-env VAR] "
            "[--database DB@ENV]\n"
            "                                      MCP server on stdio (envproxy mcp --help)\n"
            "  envproxy --version | --help\n");
}

/* Loads the configuration, printing every problem. NULL when there is any. */
static config *load(const char *path)
{
    cfg_diags d;
    cfg_diags_init(&d);
    config *c = config_load(path, &d);
    if (!c)
        cfg_diags_print(&d, stderr);
    cfg_diags_free(&d);
    return c;
}

/* Validates the configuration; then, unless --no-connect, asks each backend what
 * envproxy's account there may do (warnings only: the exit code is about the file). */
static int cmd_check(const char *path, int argc, char **argv)
{
    bool connect = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-connect") == 0) {
            connect = false;
        } else {
            usage(stderr);
            return 2;
        }
    }
    config *c = load(path);
    if (!c)
        return 1;
    printf("%s: OK (%d environment%s)\n", path, c->n_envs, c->n_envs == 1 ? "" : "s");
    fflush(stdout);
    if (connect)
        cli_check_backends(c);
    config_free(c);
    return 0;
}

static int cmd_user(const char *path, int argc, char **argv)
{
    config_unset_vars_empty = true;
    config *c = load(path);
    if (!c)
        return 1;
    /* grant/revoke and --default-env name environments: they must exist in the config. */
    const char *env = NULL;
    if (argc >= 4 && (strcmp(argv[1], "grant") == 0 || strcmp(argv[1], "revoke") == 0))
        env = argv[3];
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--default-env") == 0)
            env = argv[i + 1];
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--default-env=", 14) == 0)
            env = argv[i] + 14;
    if (env && !config_find_env(c, env)) {
        fprintf(stderr, "envproxy: environment '%s' is not defined in %s\n", env, path);
        config_free(c);
        return 1;
    }
    int rc = argc >= 2 && strcmp(argv[1], "token") == 0 ? cli_token(c->accounts, argc, argv)
                                                        : cli_user(c->accounts, argc, argv);
    config_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = "proxy.yaml";
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "envproxy: %s needs a file name\n", argv[i]);
                return 2;
            }
            path = argv[++i];
        } else if (strcmp(argv[i], "--log-format") == 0) {
            if (i + 1 >= argc || (strcmp(argv[i + 1], "json") && strcmp(argv[i + 1], "text"))) {
                fprintf(stderr, "envproxy: --log-format takes json or text\n");
                return 2;
            }
            log_json = strcmp(argv[++i], "json") == 0;
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("envproxy %s\n", ENVPROXY_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "envproxy: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    const char *cmd = i < argc ? argv[i] : "run";
    /* The MCP server is a client of a running envproxy: it needs no configuration. */
    if (strcmp(cmd, "mcp") == 0)
        return mcp_main(argc - i, argv + i);
    if (strcmp(cmd, "run") == 0) {
        if (i + 1 < argc) {
            usage(stderr);
            return 2;
        }
        return proxy_run(path);
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(path, argc - i, argv + i);
    if (strcmp(cmd, "user") == 0)
        return cmd_user(path, argc - i, argv + i);
    if (strcmp(cmd, "query") == 0) {
        config_unset_vars_empty = true;
        config *c = load(path);
        if (!c)
            return 1;
        int rc = cli_query(c, argc - i, argv + i);
        config_free(c);
        return rc;
    }
    if (strcmp(cmd, "encrypt-secret") == 0) {
        config_unset_vars_empty = true; /* no backend password is needed to make one */
        config *c = load(path);
        if (!c)
            return 1;
        int rc = cli_encrypt_secret(c->secret_key_file, argc - i, argv + i);
        config_free(c);
        return rc;
    }
    fprintf(stderr, "envproxy: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
