/* queries_sql.h: named queries from SQL (__queries.queries, CALL __queries.NAME(...)). */
#ifndef ENVPROXY_QUERIES_SQL_H
#define ENVPROXY_QUERIES_SQL_H

#include "envproxy.h"

/* For a COM_QUERY whose hint h was read: 0 when it is not about __queries; 1 when it was
 * answered (rows or an error; the command is finished); 2 when a CALL __queries.NAME(...)
 * was rewritten into c->cmd as the named query's statement, to be handled from the start. */
int queries_statement(client *c, const route_hint *h, const char *sql, size_t len);

#endif
