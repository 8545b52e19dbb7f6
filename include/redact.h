/* redact.h: credentials taken out of statement texts before they are written to a log. */
#ifndef ENVPROXY_REDACT_H
#define ENVPROXY_REDACT_H

#include <stddef.h>

/* Room redact_sql may need beyond the text's own length. */
#define REDACT_EXTRA 16

/* Whether sql may hold a credential: the bytes IDENTIFIED or PASSWORD, in any case. A text
 * without them is never changed (the cheap test run first). */
int redact_may_hold(const char *sql, size_t len);

/* Writes sql into out (cap >= len + REDACT_EXTRA) with the rest of each statement after the
 * word IDENTIFIED, PASSWORD or a word ending in _PASSWORD (OLD_PASSWORD('x'), SET PASSWORD =
 * ..., MASTER_PASSWORD = ..., CREATE SERVER ... OPTIONS (PASSWORD ...), also backquoted)
 * replaced by " <secret>", as MySQL's own logs rewrite them. The text is read with
 * backslash escapes on, so that a string never looks shorter than in any sql_mode; a text
 * the lexer cannot read is cut after the first such word instead. Returns the new length,
 * or 0 when nothing was replaced (out is then unspecified). */
size_t redact_sql(const char *sql, size_t len, char *out, size_t cap);

#endif
