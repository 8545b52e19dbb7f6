/* fuzz_sqlpolicy.c: libFuzzer target for the SQL lexer and the read-only classifier.
 *
 * Build and run from the repository root (new inputs go to the first directory, so keep the
 * seeds read-only by listing them second):
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
 *       tests/fuzz/fuzz_sqlpolicy.c src/sqllex.c src/sqlpolicy.c -o /tmp/fuzz_sqlpolicy
 *   mkdir -p /tmp/fuzz_sqlpolicy.work
 *   /tmp/fuzz_sqlpolicy -max_total_time=60 /tmp/fuzz_sqlpolicy.work tests/fuzz/corpus
 *
 * Besides memory errors it checks that the lexer always ends, that tokens lie inside the
 * text in order, that a verdict's text is printable, and that a text allowed under an unknown
 * sql_mode is allowed under each known one. */
#include "sqlpolicy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_check_what(const policy_verdict *v)
{
    size_t n = strnlen(v->what, sizeof v->what);
    if (n == sizeof v->what)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v->what[i] < 0x20 || (unsigned char)v->what[i] > 0x7E)
            abort();
    if (v->allowed && n != 0)
        abort();
    if (!v->allowed && n == 0)
        abort();
}

static void fuzz_lex(const char *sql, size_t len, const sql_mode_flags *mode)
{
    sql_lexer lx;
    size_t last_end = 0;
    sqllex_init(&lx, sql, len, mode);
    for (size_t steps = 0;; steps++) {
        sql_token t = sqllex_next(&lx);
        if (steps > len + 1)
            abort(); /* every token but the last consumes a byte */
        if (t.kind == SQLTOK_END || t.kind == SQLTOK_ERROR)
            break;
        if (t.len == 0 || t.start < last_end || t.start + t.len > len)
            abort();
        last_end = t.start + t.len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *sql = (const char *)data;
    policy_verdict v;
    bool all_known = true;
    for (int combo = 0; combo < 4; combo++) {
        sql_mode_flags m = {(combo & 1) != 0, (combo & 2) != 0, false, false};
        fuzz_lex(sql, size, &m);
        bool ok = sqlpolicy_check_readonly(sql, size, &m, &v);
        fuzz_check_what(&v);
        all_known = all_known && ok;
        sqlpolicy_track_sql_mode(sql, size, &m);
    }
    /* Every supported character set and flavor: the verdict stays well formed. */
    for (int cs = SQL_CS_UNSUPPORTED; cs <= SQL_CS_BINARY; cs++) {
        for (int fl = SQL_FLAVOR_UNKNOWN; fl <= SQL_FLAVOR_MYSQL; fl++) {
            policy_session ps = {(sql_charset)cs, (sql_flavor)fl, "mysql", NULL};
            sqlpolicy_check(sql, size, NULL, &ps, &v);
            fuzz_check_what(&v);
            sqlpolicy_check_secrets(sql, size, NULL, &ps, &v);
            fuzz_check_what(&v);
        }
    }
    sql_mode_flags unknown = {false, false, true, false};
    bool ok = sqlpolicy_check_readonly(sql, size, &unknown, &v);
    fuzz_check_what(&v);
    if (ok && !all_known)
        abort();
    sqlpolicy_track_sql_mode(sql, size, &unknown);
    sql_mode_flags from;
    sqlpolicy_mode_from_string(sql, size, &from);
    if (size > 0 && size < 64) {
        char name[64];
        memcpy(name, data, size);
        name[size] = 0;
        (void)sqlpolicy_charset(name);
        (void)sqlpolicy_flavor(name);
    }
    return 0;
}
