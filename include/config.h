/* config.h: the typed configuration model and its YAML loader (pure: no event loop). */
#ifndef ENVPROXY_CONFIG_H
#define ENVPROXY_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { ACCESS_READ_ONLY = 0, ACCESS_READ_WRITE = 1 } env_access;

typedef enum {
    BTLS_DISABLED = 0,
    BTLS_PREFERRED,
    BTLS_REQUIRED,
    BTLS_VERIFY_CA,
    BTLS_VERIFY_FULL
} backend_tls_mode;

/* Per-environment limits. In the loaded model every environment's limits are resolved:
 * its own value, else the top-level value, else the built-in default. */
typedef struct {
    long long max_rows;             /* 0 = no cap; default 10000 */
    long long statement_timeout_ms; /* 0 = none; default 30000 */
    /* A session idle this long inside a transaction loses its backend session (rolled
     * back). 0 = none; default 60 s in read_only environments, none in read_write ones. */
    long long idle_transaction_timeout_ms;
} cfg_limits;

typedef struct {
    int max;                      /* default 20, >= 1 */
    int min;                      /* default 0, <= max */
    long long idle_timeout_ms;    /* default 300 s */
    long long connect_timeout_ms; /* default 2 s */
    long long wait_timeout_ms;    /* default 5 s */
    bool multiplex; /* default true: a session's connection goes back after each statement
                       unless the session holds state that pins it */
} cfg_pool;

/* Where a value came from, for diagnostics. */
typedef struct {
    const char *file; /* points into config.files[] */
    int line, col;    /* 1-based */
} cfg_mark;

typedef struct {
    char *name;        /* [A-Za-z0-9_-]{1,64} */
    size_t name_len;   /* strlen(name), for the audit log */
    char *description; /* "" when absent */
    char *host;        /* required */
    int port;          /* default 3306 */
    char *user;        /* required */
    char *password;    /* "" when absent; ${VAR} already substituted; may start with "enc:" */
    char *database;    /* default database; NULL when absent */
    env_access access; /* default ACCESS_READ_ONLY */
    cfg_limits limits;
    cfg_pool pool;
    backend_tls_mode tls_mode; /* default BTLS_PREFERRED */
    char *tls_ca;              /* NULL when absent; absolute path */
    cfg_mark mark;             /* where the environment's name was written */
    int slot;                  /* the proxy's pool/health/metrics slot for this name */
} cfg_env;

typedef struct {
    char *host; /* "127.0.0.1", "::1", "0.0.0.0" */
    int port;
} cfg_addr;

typedef struct config {
    char *path; /* the main file as given */

    cfg_addr *listen; /* default one entry 127.0.0.1:3307 */
    int n_listen;
    int threads;               /* default: number of online CPUs */
    char *accounts;            /* absolute path; default <config dir>/envproxy.db */
    char *default_environment; /* default: the first environment defined */
    char *tls_cert, *tls_key;  /* absolute paths or NULL (then a self-signed pair) */
    bool tls_require;
    cfg_limits limits;         /* top-level defaults */
    char *audit_log;           /* absolute path or NULL */
    long long audit_buffer;    /* bytes of each worker's audit ring; default 4 MiB */
    char *secret_key_file;     /* absolute path or NULL: the key for enc: passwords (secret.h) */
    cfg_addr *http;            /* NULL when absent */
    bool http_tls;             /* http.tls: HTTPS with the tls: section's pair */
    long long max_packet_size; /* bytes; default 64 MiB; client packets above close it */
    long long handshake_timeout_ms; /* default 10 s */
    long long health_interval_ms;   /* default 5 s */
    long long health_timeout_ms;    /* one health check's deadline; default 2 s */
    long long shutdown_timeout_ms;  /* default 10 s */
    /* A client that takes none of the output queued for it for this long is disconnected
     * (its statement is killed and its backend connection closed); default 60 s. */
    long long client_write_timeout_ms;
    int log_level;                  /* LOG_ERROR=0 .. LOG_DEBUG=3; default info (2) */
    /* login_throttle: after max_failures failed logins from one address within window, that
     * address is refused for block. max_failures 0 turns it off. Defaults 10, 60 s, 60 s. */
    int throttle_max_failures;
    long long throttle_window_ms, throttle_block_ms;
    /* Client connections at once; 0 (default): the descriptor limit less what the backend
     * pools may use and a margin. Beyond it a new client gets ERR 1040 and is closed. */
    int max_client_connections;
    int max_connections_per_host;        /* from one address; 0 (default) = no limit */
    int max_connections_per_account;     /* logged in as one account; 0 (default) = no limit */
    long long max_handshake_packet_size; /* largest packet before login; default 16 KiB */
    /* Bytes a client may send ahead while a command runs; reading stops above it until the
     * command ends. Default 1 MiB. */
    long long max_pipelined_input;
    long long client_idle_timeout_ms; /* logged-in client with no command; 0 (default) = none */
    /* Sessions still using this configuration (the proxy frees a replaced one at 0). */
    atomic_int users;
    /* 0 for the configuration loaded at start, one more for each one a reload installs:
     * unlike the address, never the same for two configurations. */
    unsigned generation;

    cfg_env *envs; /* in definition order: main file first, then included files */
    int n_envs;

    char **files; /* every file read, main first (owned; marks point here) */
    int n_files;
} config;

/* A list of problems found while loading, each "FILE:LINE:COL: message". */
typedef struct {
    char **msgs;
    int n, cap;
} cfg_diags;

void cfg_diags_init(cfg_diags *d);
void cfg_diags_free(cfg_diags *d);
void cfg_diags_print(const cfg_diags *d, FILE *out);

/* When true, a ${VAR} whose variable is not set reads as empty instead of being an error.
 * Set by commands that never connect to a backend (user ...), so that managing accounts
 * does not need the backend passwords in the environment. */
extern bool config_unset_vars_empty;

/* Loads the file at path and its includes. Returns the model, or NULL when d holds at least
 * one error (all errors found are in d, not only the first). The caller frees the model
 * with config_free() and the diagnostics with cfg_diags_free(). */
config *config_load(const char *path, cfg_diags *d);
void config_free(config *c);

const cfg_env *config_find_env(const config *c, const char *name);

/* Parses "30s", "2m", "500ms", "1h", "0", a bare integer (seconds). -1 if malformed. */
long long config_parse_duration_ms(const char *s);
/* Parses "1024", "64k", "16MiB", "1G" (binary multiples). -1 if malformed. */
long long config_parse_size(const char *s);

#endif
