/* rewrite.h: reading statements for where they run: transaction statements (txn_classify)
 * and `db@env` schema names inside SQL text (rewrite_schema_names). Pure. */
#ifndef ENVPROXY_REWRITE_H
#define ENVPROXY_REWRITE_H

#include "router.h"
#include "sqlpolicy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a statement means to a transaction that has not reached a backend yet. */
typedef enum {
    TXN_DATA,     /* changes data (or cannot be read, or several statements): runs in a txn */
    TXN_READ,     /* SELECT / WITH ... SELECT that reads tables, without locking or INTO */
    TXN_NO_DATA,  /* SET, UNLOCK TABLES, SHOW, DESCRIBE, SELECT without FROM: no snapshot */
    TXN_BEGIN,    /* BEGIN [WORK], START TRANSACTION [WITH CONSISTENT SNAPSHOT][, READ ...] */
    TXN_SET_NEXT, /* SET TRANSACTION ... (the next transaction's characteristics) */
    TXN_END,      /* COMMIT [WORK], ROLLBACK [WORK] (no AND CHAIN, RELEASE, TO SAVEPOINT) */
} txn_kind;

/* Classifies one COM_QUERY text (after any routing hint). Only a packet holding exactly one
 * statement (an optional ';' after it) can be anything but TXN_DATA. */
txn_kind txn_classify(const char *sql, size_t len, const sql_mode_flags *mode);
/* A cheap look before txn_classify: false only when sql cannot be TXN_BEGIN, TXN_SET_NEXT or
 * TXN_END in any sql_mode, because it starts (after spaces, tabs and line breaks) with a
 * plain word other than BEGIN, START, COMMIT, ROLLBACK and SET; anything else (a comment, a
 * quote, a parenthesis) is true, for txn_classify to read. Every PREPARE asks, and most are
 * SELECTs. */
bool txn_may_be_control(const char *sql, size_t len);
/* The txn_kind of sql when it is BEGIN, START TRANSACTION, COMMIT or ROLLBACK written in
 * plain words (ASCII letters, spaces, tabs, line ends and commas only: no comment, quote,
 * routing hint, '@', '(' or ';'), else -1. Such a text reads the same in every sql_mode and
 * in every character set the lexer reads (their ASCII bytes are the same in each). */
int txn_words_kind(const char *sql, size_t len);

/* Whether env is a name the rewriter may treat as an environment (one of n names). */
typedef struct {
    const char *const *envs;
    int n_envs;
} rewrite_envs;

#define REWRITE_MAX_OUT (16u * 1024 * 1024) /* statements longer than this are left alone */

/* Finds schema names written as `db@env` (a quoted identifier, "db@env" under ANSI_QUOTES
 * too, used as a schema: before
 * a '.', or after FROM / IN in SHOW, or after SHOW CREATE DATABASE / SCHEMA) and string
 * literals 'db@env' compared with an information_schema schema column (TABLE_SCHEMA,
 * SCHEMA_NAME, ... with =, <=>, !=, <>, LIKE, NOT LIKE, IN (...), NOT IN (...)), where env
 * is one of envs. Other literals (an e-mail 'x@prod' compared with a data column) and
 * names whose env part is not an environment are left alone.
 *
 * Returns 0 when nothing was found; 1 when *out (malloc'd, *out_len bytes) holds the text
 * with "@env" removed from each such name, env (ROUTE_NAME_MAX + 1 bytes) the environment
 * and db (ROUTE_NAME_MAX + 1 bytes) the first database named; -1 with err filled when the
 * names disagree on the environment or the text cannot be read. */
int rewrite_schema_names(const char *sql, size_t len, const sql_mode_flags *mode,
                         const rewrite_envs *envs, char **out, size_t *out_len, char *env,
                         char *db, char *err, size_t errlen);

/* Whether sql is a GUI's list of databases from information_schema: exactly
 * [SET STATEMENT ... FOR] SELECT SCHEMA_NAME FROM information_schema.SCHEMATA
 * [ORDER BY SCHEMA_NAME [ASC]] (names in any case, backquoted or not, an optional ';'). The
 * proxy adds __compare, __envs and __queries to its rows, as to SHOW DATABASES. */
bool rewrite_is_schemata_list(const char *sql, size_t len);

/* A SELECT that reads information_schema.SCHEMATA (as GUIs list databases: phpMyAdmin's
 * navigation tree counts and groups them in subqueries) reads it with a row for each
 * virtual schema (__compare, __envs) added, as SHOW DATABASES lists them: each reference
 * `information_schema.SCHEMATA [alias]` (after FROM, JOIN or ',') becomes a derived table
 * of the same columns, named as the reference was. Returns 1 with *out (malloc'd) the new
 * text, 0 when there is nothing to do or a reference cannot be rewritten (a column named
 * information_schema.SCHEMATA.x, index hints, a version-dependent comment), -1 when out of
 * memory. */
int rewrite_schemata_virtual(const char *sql, size_t len, const sql_mode_flags *mode, char **out,
                             size_t *out_len);

/* USER(), SESSION_USER(), SYSTEM_USER() and CURRENT_USER[()] called in sql (outside quotes
 * and comments, as the lexer reads it in mode) become the string literals user_value and
 * current_value (the envproxy account, not the backend's); a call that is a select-list item
 * of its own keeps its column name (`'v' AS \`USER()\``). Left alone: statements that name
 * accounts or store their text (CREATE, ALTER, GRANT, REVOKE, DROP, RENAME, SHOW, SET
 * PASSWORD / DEFAULT ROLE / ROLE, CALL, HANDLER), DEFINER = CURRENT_USER, db.user(), a table
 * named user, text the lexer cannot read. The values must hold no quote or backslash.
 * Returns 1 with *out (malloc'd), 0 when nothing changed, -1 when out of memory. */
int rewrite_user_calls(const char *sql, size_t len, const sql_mode_flags *mode,
                       const char *user_value, const char *current_value, char **out,
                       size_t *out_len);

/* Whether sql holds a LOAD DATA / LOAD XML ... LOCAL INFILE statement (any of a packet's
 * statements). The backend connections never have the LOCAL capability: this is only for a
 * clear answer. */
bool rewrite_has_load_local(const char *sql, size_t len);

/* The file a LOAD DATA / LOAD XML [LOW_PRIORITY|CONCURRENT] LOCAL INFILE 'name' statement
 * names, so that the backend's request for a local file can be checked against it.
 * LL_NONE: not such a statement. LL_FILE: name (NUL-terminated, name_len bytes, at most
 * cap - 1) is the literal's bytes. LL_UNREADABLE: such a statement whose file name cannot be
 * read for certain (several statements, an executable comment, a prefix or a concatenated
 * literal, a double-quoted name, an escape or a quote inside, empty, too long): refuse it. */
enum { LL_NONE = 0, LL_FILE = 1, LL_UNREADABLE = -1 };
int rewrite_load_local_file(const char *sql, size_t len, char *name, size_t cap, size_t *name_len);

/* Whether a backend's LOCAL INFILE request (payload 0xFB followed by the file name) asks for
 * exactly the file the client's statement named (byte for byte). */
bool rewrite_infile_request_matches(const char *name, size_t name_len, const uint8_t *payload,
                                    size_t len);

#endif
