/* stmt_driver.c: drives MariaDB Connector/C's prepared-statement API from a line script on
 * standard input, so that integration tests can exercise COM_STMT_* the way C clients do.
 *
 *   stmt_driver HOST PORT USER PASSWORD [DB]
 *   prepare SQL          -> OK <params> <columns> | ERR <code> <message>
 *   exec V1 V2 ...       -> ROWS <n> then "R a|b|..." per row, or AFFECTED <n> | ERR ...
 *                           values: integers, "null", or s:TEXT (\xHH in TEXT is one byte:
 *                           \x20 for a space); parameters are bound on
 *                           the first exec after prepare only, later execs change the values
 *                           (the client then sends no types again)
 *   longdata N TEXT      -> sends TEXT for parameter N with mysql_stmt_send_long_data
 *   reset | close        -> OK | ERR ...
 *   query SQL            -> ROWS/AFFECTED/ERR as above, through the text protocol
 *   thread               -> the connection id the client got in the handshake
 * Every answer is one line (plus rows), flushed at once. */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARAMS 16

static MYSQL *m;
static MYSQL_STMT *st;
static MYSQL_BIND params[MAX_PARAMS];
static long long ints[MAX_PARAMS];
static char texts[MAX_PARAMS][256];
static unsigned long lens[MAX_PARAMS];
static my_bool nulls[MAX_PARAMS];
static int bound;

static void print_stmt_error(void)
{
    printf("ERR %u %s\n", mysql_stmt_errno(st), mysql_stmt_error(st));
}

/* Prints a value with '|', backslash and bytes outside printable ASCII as \\xHH (one line). */
static void print_value(const char *sep, const char *v, unsigned long n)
{
    fputs(sep, stdout);
    for (unsigned long i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < 0x20 || ch == '|' || ch == '\\' || ch >= 0x7F)
            printf("\\x%02X", ch);
        else
            putchar(ch);
    }
}

static void print_rows_stmt(void)
{
    unsigned ncols = mysql_stmt_field_count(st);
    if (ncols == 0) {
        printf("AFFECTED %llu\n", (unsigned long long)mysql_stmt_affected_rows(st));
        return;
    }
    MYSQL_BIND r[64];
    char buf[64][512];
    unsigned long l[64];
    my_bool isnull[64];
    memset(r, 0, sizeof(r));
    for (unsigned i = 0; i < ncols && i < 64; i++) {
        r[i].buffer_type = MYSQL_TYPE_STRING;
        r[i].buffer = buf[i];
        r[i].buffer_length = sizeof(buf[i]);
        r[i].length = &l[i];
        r[i].is_null = &isnull[i];
    }
    mysql_stmt_bind_result(st, r);
    if (mysql_stmt_store_result(st)) {
        print_stmt_error();
        return;
    }
    printf("ROWS %llu\n", (unsigned long long)mysql_stmt_num_rows(st));
    int rc;
    while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
        printf("R ");
        for (unsigned i = 0; i < ncols && i < 64; i++) {
            if (isnull[i])
                printf("%sNULL", i ? "|" : "");
            else
                print_value(i ? "|" : "", buf[i], l[i] < 512 ? l[i] : 512);
        }
        printf("\n");
    }
    if (rc == 1)
        printf("R ERROR %u %s\n", mysql_stmt_errno(st), mysql_stmt_error(st));
    mysql_stmt_free_result(st);
}

static void cmd_exec(char *args)
{
    unsigned n = (unsigned)mysql_stmt_param_count(st);
    char *save = NULL;
    for (unsigned i = 0; i < n && i < MAX_PARAMS; i++) {
        char *v = strtok_r(i == 0 ? args : NULL, " ", &save);
        nulls[i] = 0;
        if (!bound) {
            memset(&params[i], 0, sizeof(params[i]));
            params[i].is_null = &nulls[i];
        }
        if (!v || strcmp(v, "null") == 0) {
            nulls[i] = 1;
            if (!bound) {
                params[i].buffer_type = MYSQL_TYPE_LONGLONG;
                params[i].buffer = &ints[i];
            }
        } else if (strncmp(v, "s:", 2) == 0) {
            size_t k = 0;
            for (const char *q = v + 2; *q && k < sizeof(texts[i]) - 1; q++) {
                unsigned byte;
                if (q[0] == '\\' && q[1] == 'x' && sscanf(q + 2, "%2x", &byte) == 1) {
                    texts[i][k++] = (char)byte;
                    q += 3;
                } else {
                    texts[i][k++] = *q;
                }
            }
            texts[i][k] = '\0';
            lens[i] = k;
            if (!bound) {
                params[i].buffer_type = MYSQL_TYPE_STRING;
                params[i].buffer = texts[i];
                params[i].length = &lens[i];
            }
        } else {
            ints[i] = atoll(v);
            if (!bound) {
                params[i].buffer_type = MYSQL_TYPE_LONGLONG;
                params[i].buffer = &ints[i];
            }
        }
    }
    if (!bound && n > 0) {
        if (mysql_stmt_bind_param(st, params)) {
            print_stmt_error();
            return;
        }
        bound = 1;
    }
    if (mysql_stmt_execute(st)) {
        print_stmt_error();
        return;
    }
    print_rows_stmt();
}

static void cmd_query(const char *sql)
{
    if (mysql_query(m, sql)) {
        printf("ERR %u %s\n", mysql_errno(m), mysql_error(m));
        return;
    }
    MYSQL_RES *res = mysql_store_result(m);
    if (!res) {
        printf("AFFECTED %llu\n", (unsigned long long)mysql_affected_rows(m));
        return;
    }
    printf("ROWS %llu\n", (unsigned long long)mysql_num_rows(res));
    MYSQL_ROW row;
    unsigned nf = mysql_num_fields(res);
    while ((row = mysql_fetch_row(res))) {
        printf("R ");
        unsigned long *fl = mysql_fetch_lengths(res);
        for (unsigned i = 0; i < nf; i++) {
            if (row[i])
                print_value(i ? "|" : "", row[i], fl[i]);
            else
                printf("%sNULL", i ? "|" : "");
        }
        printf("\n");
    }
    mysql_free_result(res);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: stmt_driver HOST PORT USER PASSWORD [DB]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    m = mysql_init(NULL);
    my_bool off = 0;
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &off);
    if (!mysql_real_connect(m, argv[1], argv[3], argv[4], argc > 5 ? argv[5] : NULL,
                            (unsigned)atoi(argv[2]), NULL, CLIENT_MULTI_RESULTS)) {
        printf("ERR %u %s\n", mysql_errno(m), mysql_error(m));
        return 1;
    }
    printf("CONNECTED %lu\n", mysql_thread_id(m));
    char line[8192];
    for (int i = 0; i < 10000 && fgets(line, sizeof(line), stdin); i++) {
        line[strcspn(line, "\n")] = '\0';
        char *sp = strchr(line, ' ');
        char *arg = sp ? sp + 1 : line + strlen(line);
        if (sp)
            *sp = '\0';
        if (strcmp(line, "prepare") == 0) {
            if (st)
                mysql_stmt_close(st);
            st = mysql_stmt_init(m);
            bound = 0;
            if (mysql_stmt_prepare(st, arg, strlen(arg)))
                print_stmt_error();
            else
                printf("OK %lu %u\n", mysql_stmt_param_count(st), mysql_stmt_field_count(st));
        } else if (strcmp(line, "exec") == 0 && st) {
            cmd_exec(arg);
        } else if (strcmp(line, "longdata") == 0 && st) {
            unsigned n = (unsigned)atoi(arg);
            const char *text = strchr(arg, ' ') ? strchr(arg, ' ') + 1 : "";
            if (mysql_stmt_send_long_data(st, n, text, strlen(text)))
                print_stmt_error();
            else
                printf("OK\n");
        } else if (strcmp(line, "reset") == 0 && st) {
            if (mysql_stmt_reset(st))
                print_stmt_error();
            else
                printf("OK\n");
        } else if (strcmp(line, "close") == 0 && st) {
            mysql_stmt_close(st);
            st = NULL;
            printf("OK\n");
        } else if (strcmp(line, "query") == 0) {
            cmd_query(arg);
        } else if (strcmp(line, "thread") == 0) {
            printf("THREAD %lu\n", mysql_thread_id(m));
        } else {
            printf("ERR 0 unknown command %s\n", line);
        }
    }
    if (st)
        mysql_stmt_close(st);
    mysql_close(m);
    return 0;
}
