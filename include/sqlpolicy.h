/* sqlpolicy.h: a MySQL/MariaDB SQL lexer and the read-only statement classifier (pure). */
#ifndef ENVPROXY_SQLPOLICY_H
#define ENVPROXY_SQLPOLICY_H

#include <stdbool.h>
#include <stddef.h>

/* The parts of a session's sql_mode that change how SQL text is read.
 *
 * unknown: a SET sql_mode value could not be worked out statically (sql_mode = @x,
 *   sql_mode = DEFAULT, a number, a function other than CONCAT of @@sql_mode and literals,
 *   a SET inside a version-dependent executable comment, ...). The two flags above are then
 *   meaningless. Rather than refusing everything, sqlpolicy_check_readonly() reads the text
 *   under all four combinations of ANSI_QUOTES and NO_BACKSLASH_ESCAPES and allows it only
 *   when every reading allows it. While the mode is unknown, '[' and ']' outside strings
 *   and comments are refused too, because the mode might be MSSQL.
 * unreadable: the mode is known to be MariaDB's ORACLE or MSSQL, which read SQL differently
 *   ('[' quoting, PL/SQL blocks): every statement is refused until the mode is set back. */
typedef struct {
    bool ansi_quotes;
    bool no_backslash_escapes;
    bool unknown;
    bool unreadable;
} sql_mode_flags;

/* The client character sets a read-only session may use: those whose bytes the lexer reads
 * exactly as the server does. Every other character set (cp1250, hp8, macroman, gbk, sjis,
 * ...) is SQL_CS_UNSUPPORTED: its bytes 0x80-0xFF can be spaces, control characters or parts
 * of multibyte characters that hide a quote, so a read-only session in it is refused. */
typedef enum {
    SQL_CS_UNSUPPORTED = 0,
    SQL_CS_UTF8,   /* utf8mb4, utf8mb3 and utf8 (read alike: see sqllex.c) */
    SQL_CS_LATIN1, /* latin1 (the server's latin1 is cp1252) */
    SQL_CS_ASCII,
    SQL_CS_BINARY
} sql_charset;

typedef enum {
    STMT_OTHER,
    STMT_SELECT,
    STMT_SHOW,
    STMT_DESCRIBE,
    STMT_EXPLAIN,
    STMT_USE,
    STMT_SET,
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_EMPTY
} stmt_kind;

typedef struct {
    bool allowed;         /* true: safe for a read-only environment */
    char what[96];        /* when refused: what was refused, e.g. "DELETE", "SELECT ... INTO
                             OUTFILE", "function SLEEP()", "SET GLOBAL", "unterminated string",
                             "NUL byte", "character set gbk"; used as "<what> is not allowed" */
    int n_statements;     /* statements in the packet (empty ones between ';' not counted) */
    stmt_kind first_kind; /* kind of the first statement */
    bool charset_set;     /* the text sets the client character set (SET NAMES, ...) */
    sql_charset charset_after; /* ... to this one, as read (SQL_CS_UNSUPPORTED when readings
                                  disagree or the value is not a supported name) */
} policy_verdict;

/* The server software behind an environment: which names are built-in functions. */
typedef enum { SQL_FLAVOR_UNKNOWN = 0, SQL_FLAVOR_MARIADB, SQL_FLAVOR_MYSQL } sql_flavor;

/* A sorted set of lower-case names (stored functions and UDFs of a backend). */
typedef struct {
    const char *const *names;
    size_t n;
} sql_name_set;

/* What the check needs to know about the backend session besides its sql_mode. */
typedef struct {
    sql_charset charset;        /* character_set_client; SQL_CS_UNSUPPORTED refuses every
                                   statement */
    sql_flavor flavor;          /* SQL_FLAVOR_UNKNOWN: only names built-in on both servers */
    const char *db;             /* the session's current database; NULL or "" for none */
    const sql_name_set *stored; /* stored functions and UDFs of the backend, or NULL */
} policy_session;

/* Classifies every statement of one COM_QUERY (or COM_STMT_PREPARE) text for read-only use.
 * A packet with several statements is allowed only if every statement is; a SET sql_mode
 * or SET NAMES inside the packet changes how the statements after it are read, as on the
 * server. Text the lexer cannot read (unterminated quote or comment, NUL byte, a byte that
 * the session's character set does not allow there, ...) is refused. Executable comments
 * are code; a statement whose comments only some server versions run is checked with and
 * without them. Reads of the server's credential stores are refused too (see
 * sqlpolicy_check_secrets). mode may be NULL (the server default: neither flag). Returns
 * v->allowed. Allocates only for a statement of more than 256 tokens or with
 * version-dependent comments, and frees before returning; a failed allocation refuses. */
bool sqlpolicy_check(const char *sql, size_t len, const sql_mode_flags *mode,
                     const policy_session *ps, policy_verdict *v);

/* sqlpolicy_check() for a utf8mb4 session of unknown flavor, no database and no stored
 * functions known: for texts on connections whose character set the proxy chose itself. */
bool sqlpolicy_check_readonly(const char *sql, size_t len, const sql_mode_flags *mode,
                              policy_verdict *v);

/* The kind of a fixed transaction text (BEGIN, BEGIN WORK, START TRANSACTION [READ ONLY],
 * COMMIT [WORK], ROLLBACK [WORK]: ASCII letters in either case, single spaces, nothing
 * else), or STMT_OTHER. The checks above allow such a text without lexing it when the mode
 * is known and neither ORACLE nor MSSQL and the character set is supported. */
stmt_kind sqlpolicy_fixed_text(const char *sql, size_t len);

/* sqlpolicy_fixed_text for a session in sql_mode mode: STMT_OTHER as well when the mode is
 * unknown, ORACLE or MSSQL (which read BEGIN as the start of a block). */
stmt_kind sqlpolicy_fixed_text_in(const char *sql, size_t len, const sql_mode_flags *mode);

/* The check by the lexer alone, without the fixed-text shortcut: sqlpolicy_check (classify)
 * or sqlpolicy_check_secrets (!classify). For tests that the shortcut agrees. */
bool sqlpolicy_check_lexed(const char *sql, size_t len, const sql_mode_flags *mode,
                           const policy_session *ps, bool classify, policy_verdict *v);

/* The credential-store rule alone, for sessions that may write: refuses reads of
 * mysql.user, mysql.global_priv, mysql.password_history and the other tables that hold
 * password hashes or other servers' passwords, SHOW GRANTS for another account and SHOW
 * CREATE USER. Text the lexer cannot read is allowed here (a writer is not held to the
 * read-only rules). Returns v->allowed. */
bool sqlpolicy_check_secrets(const char *sql, size_t len, const sql_mode_flags *mode,
                             const policy_session *ps, policy_verdict *v);

/* Follows the SET statements in sql (sql_mode = ..., SESSION / LOCAL / @@session. / @@local.
 * / @@ forms, := as well as =, several assignments in one SET, several statements in one
 * packet) and updates *mode as the server would. String values are parsed as comma lists of
 * mode names ('ANSI' and the other combination modes that include ANSI_QUOTES count);
 * CONCAT(@@sql_mode, '...') and CONCAT('...', @@sql_mode) add to the current flags; any other
 * value sets mode->unknown. SET GLOBAL and SET STATEMENT ... FOR do not change the session's
 * mode and are ignored. Call it after the server accepted the statement. */
void sqlpolicy_track_sql_mode(const char *sql, size_t len, sql_mode_flags *mode);

/* Sets *mode from a sql_mode value as the server reports it (SELECT @@sql_mode), e.g.
 * "STRICT_TRANS_TABLES,ANSI_QUOTES". Unknown mode names are ignored. */
void sqlpolicy_mode_from_string(const char *modes, size_t len, sql_mode_flags *mode);

/* The character set of a character set or collation name as SET NAMES, SET CHARACTER SET,
 * character_set_client or collation_connection take it ("utf8mb4", "latin1_swedish_ci",
 * "utf8_general_ci", case-insensitive), or SQL_CS_UNSUPPORTED. NULL is unsupported. */
sql_charset sqlpolicy_charset(const char *name);

/* The flavor of a server from its version string ("10.11.6-MariaDB-log", "8.0.36"). */
sql_flavor sqlpolicy_flavor(const char *version);

/* ---- The lexer, for the classifier and for other modules that need to read SQL ---- */

typedef enum {
    SQLTOK_END,       /* end of the text */
    SQLTOK_WORD,      /* an unquoted identifier or keyword */
    SQLTOK_QIDENT,    /* `quoted` identifier, or "quoted" under ANSI_QUOTES */
    SQLTOK_STRING,    /* '...', or "..." without ANSI_QUOTES; a prefix (N, X, _utf8mb4) is a
                         WORD of its own before it */
    SQLTOK_NUMBER,    /* 12, 1.5, .5e-3, 0x1F, 0b101 */
    SQLTOK_USERVAR,   /* @name, @'name', @"name", @`name` (a lone '@' too) */
    SQLTOK_SYSVAR,    /* "@@"; the variable's name follows as WORD/QIDENT tokens */
    SQLTOK_PUNCT,     /* one byte of punctuation or operator, or ":=" */
    SQLTOK_SEMICOLON, /* ';' outside quotes and comments */
    SQLTOK_ERROR      /* the text cannot be read on: sql_lexer.error says why */
} sql_token_kind;

typedef struct {
    sql_token_kind kind;
    bool spaced;   /* whitespace or a comment came right before the token */
    unsigned cond; /* 0, or the number (1, 2, ...) of the version-dependent executable comment
                      the token is in: one some servers run and others skip */
    size_t start;  /* offset of the token's first byte (quotes included) */
    size_t len;    /* length in bytes */
} sql_token;

/* Comments are skipped, except that the contents of executable comments are read as SQL
 * whatever the version (written here with a space after the slash: / *! ... * /,
 * / *!50001 ... * /, / *M! ... * /, / *M!100100 ... * /). Those that not every server runs
 * (a version of 50700 or more, and every / *M!) mark their tokens with a cond number so that
 * a caller can also read the text without them. Text whose reading would depend on the
 * version in other ways (a quote or line comment that hides the comment's end, a ';' inside,
 * a nested executable comment, a version of six digits after / *!) is an error. Optimizer
 * hints (/ *+ ... * /) are comments. */
typedef struct {
    const char *sql;
    size_t len;
    size_t pos;
    sql_mode_flags mode;  /* ansi_quotes and no_backslash_escapes are used; may be changed
                             between tokens (after a SET sql_mode statement) */
    sql_charset charset;  /* how bytes 0x80-0xFF are read (SQL_CS_UTF8 after sqllex_init);
                             SQL_CS_UNSUPPORTED refuses them outside quotes and comments */
    bool strict_brackets; /* refuse '[' and ']' outside quotes (see sql_mode_flags.unknown) */
    bool in_exec;         /* inside an executable comment */
    bool exec_cond;       /* ... one that not every server runs */
    unsigned cond_count;  /* version-dependent executable comments seen so far */
    int after_dot;        /* 1: an identifier ended right before '.', 2: that '.' was read:
                             what follows is an identifier even if it starts with digits */
    const char *error;    /* with SQLTOK_ERROR: a static description, e.g. "unterminated
                             string" */
    char error_buf[48];   /* storage for errors that name a byte */
} sql_lexer;

void sqllex_init(sql_lexer *lx, const char *sql, size_t len, const sql_mode_flags *mode);

/* Reads the next token. After SQLTOK_END or SQLTOK_ERROR it keeps returning the same kind. */
sql_token sqllex_next(sql_lexer *lx);

/* Whether token t of sql is the unquoted word w (any case). */
bool sqllex_is_word(const char *sql, sql_token t, const char *w);

/* The four readings of the quoting flags (ANSI_QUOTES, NO_BACKSLASH_ESCAPES off and on): a
 * check that must hold whatever the session's sql_mode reads a text in each of them. */
extern const sql_mode_flags SQL_QUOTING_MODES[4];

#endif
