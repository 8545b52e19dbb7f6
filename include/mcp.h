/* mcp.h: `envproxy mcp`, a Model Context Protocol server (JSON-RPC 2.0 over stdio) whose
 * tools run SQL as an ordinary MySQL client of a running envproxy. */
#ifndef ENVPROXY_MCP_H
#define ENVPROXY_MCP_H

/* Runs the server until stdin ends. argv[0] is "mcp", the options follow. Returns the exit
 * code: 0 at the end of input, 2 for a bad command line, 1 when stdout is gone. */
int mcp_main(int argc, char **argv);

#endif
