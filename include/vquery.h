/* vquery.h: reads and runs the small SQL envproxy answers itself over in-memory tables (pure). */
#ifndef ENVPROXY_VQUERY_H
#define ENVPROXY_VQUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Status ----------------------------------------------------------------------------- */

/* What vq_parse, vq_execute and the other functions return. Each error comes with a message
 * in the caller's buffer; vq_error_code() and vq_error_sqlstate() give the MySQL error to send. */
typedef enum {
    VQ_OK = 0,
    VQ_ERR_SYNTAX,      /* 1064 (42000): the text is not SQL this module can read */
    VQ_ERR_UNSUPPORTED, /* 1235 (42000): valid SQL beyond what virtual tables answer */
    VQ_ERR_READONLY,    /* 1036 (HY000): a write to a virtual table or schema */
    VQ_ERR_NO_TABLE,    /* 1146 (42S02): an unknown table (see vq_error_no_table) */
    VQ_ERR_NO_COLUMN,   /* 1054 (42S22): an unknown column */
    VQ_ERR_PARAM,       /* 1210 (HY000): a missing or misused __compare parameter */
    VQ_ERR_NOMEM        /* 1037 (HY001): out of memory */
} vq_status;

/* The MySQL error number and SQLSTATE for a vq_status (unknown values: 1105, "HY000"). */
unsigned vq_error_code(int status);
const char *vq_error_sqlstate(int status);

/* Writes MySQL's "Table 'schema.table' doesn't exist" (schema may be NULL) and returns
 * VQ_ERR_NO_TABLE, for a caller that finds no table under the name a query gives. */
int vq_error_no_table(const char *schema, const char *table, char *err, size_t errlen);

/* ---- Tables ----------------------------------------------------------------------------- */

typedef enum {
    VQ_STRING,
    VQ_INT, /* int64 */
    VQ_DOUBLE,
    VQ_DATETIME /* text 'YYYY-MM-DD HH:MM:SS' */
} vq_type;

typedef struct {
    const char *name;
    vq_type type;
} vq_column;

/* One cell. Every non-NULL value carries all three forms, whatever its column's type: s/len is
 * the text a client receives (NUL-terminated, owned by the table), i and d the value as a
 * number (MySQL's reading of the text for strings). The column's type decides which form is
 * compared. */
typedef struct {
    bool is_null;
    int64_t i;
    double d;
    const char *s;
    size_t len;
} vq_value;

struct vq_chunk;

/* An in-memory table. rows holds n_rows * n_columns values, row-major. Strings and names live
 * in the table's own memory until vq_table_free. */
typedef struct {
    const char *schema;
    const char *name;
    vq_column *columns;
    bool *binary; /* per column: a VQ_STRING of bytes (binary character set); all false at first */
    size_t n_columns;
    vq_value *rows;
    size_t n_rows;
    size_t cap_rows;      /* private */
    struct vq_chunk *mem; /* private */
} vq_table;

/* A new empty table; names are copied (schema and name may be NULL: ""). NULL when out of
 * memory. */
vq_table *vq_table_new(const char *schema, const char *name, const vq_column *cols, size_t n);

/* Appends a row of NULLs; returns its index, or -1 when out of memory. */
long vq_table_add_row(vq_table *t);

/* Set one cell; the text is copied. A NULL s sets SQL NULL. A double that is not finite is
 * stored as NULL. Each returns 0, or -1 for a row or column out of range or out of memory. */
int vq_set_str(vq_table *t, size_t row, size_t col, const char *s);
int vq_set_strn(vq_table *t, size_t row, size_t col, const char *s, size_t len);
int vq_set_int(vq_table *t, size_t row, size_t col, int64_t v);
int vq_set_double(vq_table *t, size_t row, size_t col, double v);
int vq_set_null(vq_table *t, size_t row, size_t col);

/* The cell at (row, col); NULL when out of range. */
const vq_value *vq_table_value(const vq_table *t, size_t row, size_t col);

void vq_table_free(vq_table *t);

/* ---- Queries ---------------------------------------------------------------------------- */

typedef enum {
    VQ_SELECT,
    VQ_SHOW_TABLES,   /* answered with vq_show_tables */
    VQ_DESCRIBE,      /* DESCRIBE / DESC / EXPLAIN table: answered with vq_describe */
    VQ_SHOW_COLUMNS,  /* SHOW [FULL] COLUMNS|FIELDS: answered with vq_describe */
    VQ_SHOW_DATABASES /* answered with vq_show_databases */
} vq_kind;

struct vq_select;

/* A parsed statement. The public fields are read-only for callers; strings live in the
 * query's memory until vq_query_free. */
typedef struct {
    vq_kind kind;
    const char *schema;    /* as written; NULL when absent (the caller's current database) */
    const char *table;     /* NULL for SHOW TABLES and SHOW DATABASES */
    bool full;             /* SHOW FULL TABLES / SHOW FULL COLUMNS */
    const char *like;      /* SHOW ... LIKE 'pat', or DESCRIBE t pat; NULL when absent */
    struct vq_select *sel; /* private */
    struct vq_chunk *mem;  /* private */
} vq_query;

/* Parses one statement of the forms below (case-insensitive, comments anywhere, executable
 * comments read as code, optional trailing ';', identifiers plain or `quoted`):
 *   SELECT <* | t.* | col [[AS] alias] | COUNT(*|col) [[AS] alias], ...> FROM [schema.]table
 *       [[AS] alias] [WHERE expr] [ORDER BY col|alias|position [ASC|DESC], ...]
 *       [LIMIT n [OFFSET m] | LIMIT m, n]
 *   SHOW [FULL] TABLES [FROM|IN schema] [LIKE 'pat' | WHERE expr]
 *   SHOW [FULL] COLUMNS|FIELDS FROM|IN [schema.]table [FROM|IN schema] [LIKE 'pat' | WHERE expr]
 *   DESCRIBE|DESC|EXPLAIN [schema.]table [column | 'pat']
 *   SHOW DATABASES|SCHEMAS [LIKE 'pat' | WHERE expr]
 * WHERE takes column or literal operands compared with = <> != < <= > >= <=>, [NOT] IN (list),
 * [NOT] LIKE 'pat' [ESCAPE 'c'], [NOT] BETWEEN a AND b, IS [NOT] NULL|TRUE|FALSE|UNKNOWN, a
 * bare operand as a truth value, combined with NOT / AND (&&) / OR (||) and parentheses
 * (at most 64 levels deep). Writes (INSERT, UPDATE, DELETE, REPLACE, TRUNCATE, DROP, ALTER,
 * CREATE, RENAME, LOAD) return VQ_ERR_READONLY naming their target; other valid SQL
 * (joins, functions, GROUP BY, subqueries, DISTINCT, UNION, ...) VQ_ERR_UNSUPPORTED with a
 * message that says what is supported. Column names are checked later, by vq_execute.
 * Returns VQ_OK and fills *q (free with vq_query_free), or an error with a message in err
 * (err may be NULL) and *q left empty. */
int vq_parse(const char *sql, size_t len, vq_query *q, char *err, size_t errlen);

void vq_query_free(vq_query *q);

vq_kind vq_query_kind(const vq_query *q);
const char *vq_query_schema(const vq_query *q);
const char *vq_query_table(const vq_query *q);

/* Takes the parameters of a __compare table from the WHERE of a parsed SELECT: equality tests
 * name = literal (or literal = name) ANDed at the top level. names lists the n parameter names
 * the table takes; a name ending in '?' ("key?") is optional. On VQ_OK values[i] points to the
 * value of names[i] (owned by q), or is NULL for an absent optional one, and those tests are no
 * longer applied as row filters by vq_execute; the other conditions still are, and an unknown
 * column among them is reported with the parameters the table takes. Errors (VQ_ERR_PARAM): a
 * missing required parameter, one given twice, or one used otherwise (under OR or NOT, with
 * another operator, compared with NULL or a column); each message names the parameters. */
int vq_where_params(vq_query *q, const char *const *names, int n, const char **values, char *err,
                    size_t errlen);

/* True if the statement names __envs or __compare (any case) as an identifier, plain or
 * `quoted`, anywhere: USE __envs, SHOW TABLES FROM __envs, SELECT ... FROM __envs.x,
 * INSERT INTO __compare.query ... Strings and comments do not count; executable comments do.
 * Reads the text with the server's default sql_mode (a "quoted" name is a string). */
bool vq_mentions_virtual(const char *sql, size_t len);

/* MySQL's LIKE: % and _ (one UTF-8 character), backslash escapes, ASCII case-insensitive. */
bool vq_like(const char *s, size_t slen, const char *pat, size_t plen);

/* ---- Results ---------------------------------------------------------------------------- */

typedef struct {
    const char *name;     /* what the client sees: the alias, or the column as written */
    const char *org_name; /* the table's column; "" for COUNT */
    vq_type type;
    bool binary; /* the table column's binary flag */
} vq_result_column;

/* A result set. values holds n_rows * n_columns values, row-major: copies of the table's
 * vq_value structs whose strings stay in the table, so a result must not outlive the table it
 * came from (the query may be freed first). */
typedef struct {
    const char *schema; /* the table's, for column definitions */
    const char *table;
    vq_result_column *columns;
    size_t n_columns;
    vq_value *values;
    size_t n_rows;
    struct vq_chunk *mem; /* private */
    vq_table *owned;      /* private: the table built by vq_describe / vq_show_* */
} vq_result;

/* Runs a parsed SELECT over t (the table the query names): keeps the rows whose WHERE is true,
 * sorts them (stable; NULLs first ascending and last descending; strings ASCII
 * case-insensitively with trailing spaces ignored), applies LIMIT/OFFSET, and projects the
 * columns. COUNT gives one row. Returns VQ_OK with *out filled (free with vq_result_free), or
 * VQ_ERR_NO_COLUMN ("Unknown column 'x' in 'where clause'"), VQ_ERR_NO_TABLE (t.* with an
 * unknown t), VQ_ERR_UNSUPPORTED (not a SELECT) or VQ_ERR_NOMEM, with *out empty. */
int vq_execute(const vq_query *q, const vq_table *t, vq_result *out, char *err, size_t errlen);

/* DESCRIBE / SHOW COLUMNS of t: columns Field, Type (varchar(255), bigint, double, datetime),
 * Null ('YES'), Key (''), Default (NULL), Extra (''); with FULL: Field, Type, Collation
 * (utf8mb4_general_ci for strings, else NULL), Null, Key, Default, Extra, Privileges
 * ('select'), Comment (''). q may be NULL (plain DESCRIBE); else its LIKE pattern or WHERE
 * filters the rows. Same returns as vq_execute. */
int vq_describe(const vq_query *q, const vq_table *t, vq_result *out, char *err, size_t errlen);

/* SHOW TABLES of one schema (the query's, or the caller's current database): one column
 * Tables_in_<schema> ("Tables_in_<schema> (pat)" with LIKE) listing names in the order given;
 * FULL adds Table_type, always 'SYSTEM VIEW' as MySQL reports its own in-memory schemas
 * (information_schema), so that tools neither offer to edit them nor show them as views with
 * a definition. */
int vq_show_tables(const vq_query *q, const char *schema, const char *const *names, size_t n,
                   vq_result *out, char *err, size_t errlen);

/* SHOW DATABASES over the given names (the caller adds __envs and __compare): one column
 * Database ("Database (pat)" with LIKE), filtered by the query's LIKE or WHERE. */
int vq_show_databases(const vq_query *q, const char *const *names, size_t n, vq_result *out,
                      char *err, size_t errlen);

/* The cell at (row, col) of a result; NULL when out of range. */
const vq_value *vq_result_value(const vq_result *r, size_t row, size_t col);

void vq_result_free(vq_result *r);

#endif
