/* compare.h: differences between two environments' answers (__compare). */
#ifndef ENVPROXY_COMPARE_H
#define ENVPROXY_COMPARE_H

#include "vquery.h"

#include <stddef.h>

/* Rows of l and r (same columns) that differ, as a table (_diff, _env, columns...): with
 * key (comma-separated column names) rows are matched on it and _diff is only_left,
 * only_right or changed (a changed row twice, left then right); without, whole rows are
 * compared as multisets. NULL with err when the columns differ or the key is unknown. */
vq_table *compare_rows(const vq_table *l, const vq_table *r, const char *lname,
                       const char *rname, const char *key, char *err, size_t errlen);

/* The statement whose answer compare_schema() compares: every table, column, index, foreign
 * key, view, trigger, routine and event of db as (object_type, table_name, object_name,
 * definition); the definition is NULL where the backend account may not read it. */
void compare_schema_sql(const char *db, char *out, size_t cap);

/* __compare.schema rows (database, table_name, object_type, object_name, _diff,
 * left_definition, right_definition) from two answers of compare_schema_sql(). */
vq_table *compare_schema(const vq_table *l, const vq_table *r, const char *db, char *err,
                         size_t errlen);

#endif
