/* lex_driver.c: the proxy's lexer and policy check on stdin lines, for integration tests that
 * compare them with a real server.
 *
 * Each input line is "lex CHARSET HEX [MODE]" or "check CHARSET HEX [MODE]" (HEX: the text,
 * two hex digits a byte; CHARSET: a name as SET NAMES takes it; MODE: a sql_mode value such
 * as ANSI_QUOTES,NO_BACKSLASH_ESCAPES, default none). "lex" answers one line of tokens, each
 * "KIND:START:LEN" with KIND one of W Q S N U V P ; (word, quoted name, string, number, user
 * variable, system variable, punctuation, semicolon), ending with "END" or "ERR". "check"
 * answers "ALLOW N" (N statements) or "REFUSE what". */
#include "sqlpolicy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int main(void)
{
    static char line[1 << 20];
    static char text[1 << 19];
    static const char kinds[] = {'E', 'W', 'Q', 'S', 'N', 'U', 'V', 'P', ';', 'X'};
    while (fgets(line, sizeof line, stdin)) {
        char op[16], cs[64];
        int off = 0;
        if (sscanf(line, "%15s %63s %n", op, cs, &off) < 2) {
            puts("BAD");
            fflush(stdout);
            continue;
        }
        size_t n = 0;
        const char *h = line + off;
        while (hexval(h[0]) >= 0 && hexval(h[1]) >= 0 && n < sizeof text) {
            text[n++] = (char)(hexval(h[0]) * 16 + hexval(h[1]));
            h += 2;
        }
        sql_mode_flags mode = {false, false, false, false};
        while (*h == ' ')
            h++;
        size_t mlen = strcspn(h, "\r\n");
        sqlpolicy_mode_from_string(h, mlen, &mode);
        sql_charset charset = sqlpolicy_charset(cs);
        if (strcmp(op, "check") == 0) {
            policy_session ps = {charset, SQL_FLAVOR_MARIADB, NULL, NULL};
            policy_verdict v;
            if (sqlpolicy_check(text, n, &mode, &ps, &v))
                printf("ALLOW %d\n", v.n_statements);
            else
                printf("REFUSE %s\n", v.what);
        } else {
            sql_lexer lx;
            sqllex_init(&lx, text, n, &mode);
            lx.charset = charset;
            for (size_t k = 0; k <= n + 1; k++) {
                sql_token t = sqllex_next(&lx);
                if (t.kind == SQLTOK_END) {
                    fputs("END", stdout);
                    break;
                }
                if (t.kind == SQLTOK_ERROR) {
                    fputs("ERR", stdout);
                    break;
                }
                printf("%c:%zu:%zu ", kinds[t.kind], t.start, t.len);
            }
            putchar('\n');
        }
        fflush(stdout);
    }
    return 0;
}
