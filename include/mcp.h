/* mcp.h: `envproxy mcp`, a Model Context Protocol server (JSON-RPC 2.0 over stdio) whose
 * tools run SQL as an ordinary MySQL client of a running envproxy. */
#ifndef ENVPROXY_MCP_H
#define ENVPROXY_MCP_H

/* Runs the server until stdin ends. argv[0] is "mcp", the options follow. Returns the exit
 * code: 0 at the end of input, 2 for a bad command line, 1 when stdout is gone. */
int mcp_main(int argc, char **argv);

/* The same server for MCP over Streamable HTTP (http/mcp.c): its tools connect to the proxy
 * at host:port as user with password (an internal ticket), over TLS with the certificate
 * pinned to tls_fp (the SHA-1 fingerprint of the proxy's own, in hex), blocking: call it
 * from a thread of its own, never from an event loop. */
struct json;
typedef struct mcp_server mcp_server;
mcp_server *mcp_server_new(const char *host, unsigned port, const char *user,
                           const char *password, const char *tls_fp, long long max_rows);
/* The reply to a message or a batch (NULL: nothing to answer); the caller frees it. */
struct json *mcp_server_handle(mcp_server *s, const struct json *msg);
/* The proxy's id of the tools' connection (for KILL QUERY), 0 when not connected. */
unsigned long mcp_server_connection_id(mcp_server *s);
/* Offers the named queries of defs (a JSON array of definitions; s takes it) as tools
 * "nq_NAME", replacing the earlier ones. */
void mcp_server_set_named(mcp_server *s, struct json *defs);
void mcp_server_free(mcp_server *s);

#endif
