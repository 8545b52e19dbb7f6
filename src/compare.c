/* compare.c: the differences between two environments' answers, for __compare.query and
 * __compare.schema. Values are compared exactly in their text form; NULL equals only NULL. */
#include "envproxy.h"
#include "log.h"
#include "compare.h"
#include "vquery.h"

#include <stdlib.h>
#include <string.h>

static bool same_value(const vq_value *a, const vq_value *b)
{
    if (a->is_null || b->is_null)
        return a->is_null && b->is_null;
    return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static bool same_cols(const vq_table *t, size_t ra, const vq_table *u, size_t rb,
                      const int *cols, int n)
{
    for (int i = 0; i < n; i++)
        if (!same_value(vq_table_value(t, ra, (size_t)cols[i]), vq_table_value(u, rb, (size_t)cols[i])))
            return false;
    return true;
}

static bool same_row(const vq_table *t, size_t ra, const vq_table *u, size_t rb)
{
    for (size_t i = 0; i < t->n_columns; i++)
        if (!same_value(vq_table_value(t, ra, i), vq_table_value(u, rb, i)))
            return false;
    return true;
}

/* Appends row r of src to out as (_diff, _env, values...). */
static void emit(vq_table *out, const char *diff, const char *env, const vq_table *src, size_t r)
{
    size_t o = (size_t)vq_table_add_row(out);
    vq_set_str(out, o, 0, diff);
    vq_set_str(out, o, 1, env);
    for (size_t i = 0; i < src->n_columns; i++) {
        const vq_value *v = vq_table_value(src, r, i);
        if (!v->is_null)
            vq_set_strn(out, o, i + 2, v->s, v->len);
    }
}

/* Rows of a that no row of b matches, one for one (multisets): marks used rows of b. */
static void only_in(vq_table *out, const char *diff, const char *env, const vq_table *a,
                    const vq_table *b, bool *used_b)
{
    for (size_t i = 0; i < a->n_rows; i++) {
        bool found = false;
        for (size_t k = 0; k < b->n_rows && !found; k++) {
            if (!used_b[k] && same_row(a, i, b, k)) {
                used_b[k] = true;
                found = true;
            }
        }
        if (!found)
            emit(out, diff, env, a, i);
    }
}

/* The differences of two results with the same columns. key: comma-separated column names,
 * or NULL for a multiset comparison of whole rows. */
vq_table *compare_rows(const vq_table *l, const vq_table *r, const char *lname,
                       const char *rname, const char *key, char *err, size_t errlen)
{
    if (l->n_columns != r->n_columns) {
        snprintf(err, errlen, "the statement's columns differ between '%s' and '%s'", lname,
                 rname);
        return NULL;
    }
    for (size_t i = 0; i < l->n_columns; i++) {
        if (strcmp(l->columns[i].name, r->columns[i].name) != 0) {
            snprintf(err, errlen, "the statement's columns differ between '%s' and '%s'",
                     lname, rname);
            return NULL;
        }
    }
    vq_column *cols = calloc(l->n_columns + 2, sizeof(*cols));
    if (!cols)
        abort();
    cols[0] = (vq_column){"_diff", VQ_STRING};
    cols[1] = (vq_column){"_env", VQ_STRING};
    for (size_t i = 0; i < l->n_columns; i++)
        cols[i + 2] = l->columns[i];
    vq_table *out = vq_table_new("__compare", "query", cols, l->n_columns + 2);
    free(cols);
    if (!out)
        abort();
    for (size_t i = 0; i < l->n_columns; i++)
        out->binary[i + 2] = l->binary[i] || r->binary[i]; /* bytes on either side */

    if (!key) {
        bool *used_r = calloc(r->n_rows + 1, 1), *used_l = calloc(l->n_rows + 1, 1);
        if (!used_r || !used_l)
            abort();
        only_in(out, "only_left", lname, l, r, used_r);
        only_in(out, "only_right", rname, r, l, used_l);
        free(used_r);
        free(used_l);
        return out;
    }

    int keys[16], nk = 0;
    char kbuf[ROUTE_NAME_MAX + 1];
    snprintf(kbuf, sizeof(kbuf), "%s", key);
    char *save = NULL;
    for (char *k = strtok_r(kbuf, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        while (*k == ' ')
            k++;
        int found = -1;
        for (size_t i = 0; i < l->n_columns; i++)
            if (strcasecmp(l->columns[i].name, k) == 0)
                found = (int)i;
        if (found < 0 || nk == 16) {
            snprintf(err, errlen, "key column '%s' is not among the statement's columns", k);
            vq_table_free(out);
            return NULL;
        }
        keys[nk++] = found;
    }
    bool *matched_r = calloc(r->n_rows + 1, 1);
    if (!matched_r)
        abort();
    for (size_t i = 0; i < l->n_rows; i++) {
        size_t k;
        for (k = 0; k < r->n_rows; k++)
            if (!matched_r[k] && same_cols(l, i, r, k, keys, nk))
                break;
        if (k == r->n_rows) {
            emit(out, "only_left", lname, l, i);
            continue;
        }
        matched_r[k] = true;
        if (!same_row(l, i, r, k)) {
            emit(out, "changed", lname, l, i);
            emit(out, "changed", rname, r, k);
        }
    }
    for (size_t k = 0; k < r->n_rows; k++)
        if (!matched_r[k])
            emit(out, "only_right", rname, r, k);
    free(matched_r);
    return out;
}

/* The schema statement: one row per table, column, index and foreign key of db, as
 * (object_type, table_name, object_name, definition). db is checked by the caller. */
void compare_schema_sql(const char *db, char *out, size_t cap)
{
    snprintf(out, cap,
             "SELECT 'table', TABLE_NAME, TABLE_NAME, CONCAT(TABLE_TYPE, ' ', IFNULL(ENGINE, '')) "
             "FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' "
             "UNION ALL SELECT 'column', TABLE_NAME, COLUMN_NAME, CONCAT(COLUMN_TYPE, "
             "IF(IS_NULLABLE = 'YES', ' NULL', ' NOT NULL'), IFNULL(CONCAT(' DEFAULT ', "
             "COLUMN_DEFAULT), '')) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s' "
             "UNION ALL SELECT 'index', TABLE_NAME, INDEX_NAME, CONCAT(IF(NON_UNIQUE = 0, "
             "'UNIQUE ', ''), '(', GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX), ')') FROM "
             "information_schema.STATISTICS WHERE TABLE_SCHEMA = '%s' GROUP BY TABLE_NAME, "
             "INDEX_NAME, NON_UNIQUE "
             "UNION ALL SELECT 'foreign_key', TABLE_NAME, CONSTRAINT_NAME, CONCAT('(', "
             "GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION), ') REFERENCES ', "
             "REFERENCED_TABLE_NAME, '(', GROUP_CONCAT(REFERENCED_COLUMN_NAME ORDER BY "
             "ORDINAL_POSITION), ')') FROM information_schema.KEY_COLUMN_USAGE WHERE "
             "TABLE_SCHEMA = '%s' AND REFERENCED_TABLE_NAME IS NOT NULL GROUP BY TABLE_NAME, "
             "CONSTRAINT_NAME, REFERENCED_TABLE_NAME "
             /* The code of views, triggers, routines and events: NULL (shown as 'unreadable')
              * where the backend account may not read it. */
             "UNION ALL SELECT 'view', TABLE_NAME, TABLE_NAME, NULLIF(VIEW_DEFINITION, '') FROM "
             "information_schema.VIEWS WHERE TABLE_SCHEMA = '%s' "
             "UNION ALL SELECT 'trigger', EVENT_OBJECT_TABLE, TRIGGER_NAME, CONCAT(ACTION_TIMING, "
             "' ', EVENT_MANIPULATION, ' ', ACTION_STATEMENT) FROM information_schema.TRIGGERS "
             "WHERE TRIGGER_SCHEMA = '%s' "
             "UNION ALL SELECT LOWER(ROUTINE_TYPE), '', ROUTINE_NAME, IF(ROUTINE_DEFINITION IS "
             "NULL, NULL, CONCAT(IFNULL(DTD_IDENTIFIER, ''), ' ', ROUTINE_DEFINITION)) FROM "
             "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '%s' "
             "UNION ALL SELECT 'event', '', EVENT_NAME, CONCAT(IFNULL(EXECUTE_AT, ''), IFNULL("
             "CONCAT('EVERY ', INTERVAL_VALUE, ' ', INTERVAL_FIELD), ''), ' ', STATUS, ' ', "
             "EVENT_DEFINITION) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '%s'",
             db, db, db, db, db, db, db, db);
}

/* __compare.schema rows from the two environments' schema statements. */
vq_table *compare_schema(const vq_table *l, const vq_table *r, const char *db, char *err,
                         size_t errlen)
{
    static const vq_column cols[] = {
        {"database", VQ_STRING},    {"table_name", VQ_STRING}, {"object_type", VQ_STRING},
        {"object_name", VQ_STRING}, {"_diff", VQ_STRING},      {"left_definition", VQ_STRING},
        {"right_definition", VQ_STRING},
    };
    vq_table *out = vq_table_new("__compare", "schema", cols, sizeof(cols) / sizeof(cols[0]));
    if (!out || l->n_columns != 4 || r->n_columns != 4) {
        snprintf(err, errlen, "unexpected answer to the schema statement");
        if (out)
            vq_table_free(out);
        return NULL;
    }
    static const int id[] = {0, 1, 2};
    bool *matched = calloc(r->n_rows + 1, 1);
    if (!matched)
        abort();
    for (int pass = 0; pass < 2; pass++) {
        const vq_table *a = pass == 0 ? l : r, *b = pass == 0 ? r : l;
        for (size_t i = 0; i < a->n_rows; i++) {
            size_t k;
            for (k = 0; k < b->n_rows; k++)
                if (same_cols(a, i, b, k, id, 3))
                    break;
            if (pass == 1 && k < b->n_rows)
                continue; /* seen in the first pass */
            /* A definition the backend account could not read is NULL: never "equal". */
            const vq_value *ad = vq_table_value(a, i, 3);
            const vq_value *bd = k < b->n_rows ? vq_table_value(b, k, 3) : NULL;
            const char *diff = !bd ? (pass == 0 ? "only_left" : "only_right")
                               : ad->is_null || bd->is_null ? "unreadable"
                               : same_value(ad, bd)         ? NULL
                                                            : "changed";
            if (!diff)
                continue;
            size_t o = (size_t)vq_table_add_row(out);
            vq_set_str(out, o, 0, db);
            vq_set_str(out, o, 1, vq_table_value(a, i, 1)->s);
            vq_set_str(out, o, 2, vq_table_value(a, i, 0)->s);
            vq_set_str(out, o, 3, vq_table_value(a, i, 2)->s);
            vq_set_str(out, o, 4, diff);
            const vq_value *av = vq_table_value(a, i, 3);
            const vq_value *bv = k < b->n_rows ? vq_table_value(b, k, 3) : NULL;
            const vq_value *left = pass == 0 ? av : bv, *right = pass == 0 ? bv : av;
            if (left && !left->is_null)
                vq_set_strn(out, o, 5, left->s, left->len);
            if (right && !right->is_null)
                vq_set_strn(out, o, 6, right->s, right->len);
        }
    }
    free(matched);
    return out;
}
