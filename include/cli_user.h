/* cli_user.h: the `envproxy -c FILE user ...` subcommands that manage the account store. */
#ifndef ENVPROXY_CLI_USER_H
#define ENVPROXY_CLI_USER_H

/* Runs one user subcommand against the account store at accounts_path. argv[0] is "user",
 * the rest are the subcommand's words, e.g. {"user", "grant", "alice", "dev", "write"}.
 * Passwords come from standard input (--password-stdin) or a prompt on the terminal, never
 * from argv. Prints a confirmation on stdout. Returns the process exit code: 0 on success,
 * 1 on an error (one line on stderr starting "envproxy: "), 2 on a usage error (the usage
 * of the user subcommands on stderr). Checking that an ENV names an environment of the
 * configuration is left to the caller. */
int cli_user(const char *accounts_path, int argc, char **argv);

/* cli_http.c: `user token NAME [--expires D] | list [NAME] | revoke ID` (argv[0] "user",
 * argv[1] "token") and `query add|list|show|del` (argv[0] "query"). Exit codes as above. */
struct config;
int cli_token(const char *accounts_path, int argc, char **argv);
int cli_query(const struct config *cfg, int argc, char **argv);

#endif
