/* Unit tests for redact.c: credentials taken out of statement texts for the audit log. */
#include "redact.h"
#include "unit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The redacted text, or the text itself when nothing is hidden. */
static const char *red(const char *sql)
{
    static char out[8192];
    size_t len = strlen(sql);
    size_t n = redact_sql(sql, len, out, len + REDACT_EXTRA);
    if (!n)
        return sql;
    out[n] = '\0';
    return out;
}

static void test_credentials_hidden(void)
{
    CHECK_STR(red("CREATE USER bob IDENTIFIED BY 'pw'"), "CREATE USER bob IDENTIFIED <secret>");
    CHECK_STR(red("create user 'b'@'%' identified by 'p''w' require ssl"),
              "create user 'b'@'%' identified <secret>");
    CHECK_STR(red("ALTER USER bob IDENTIFIED WITH mysql_native_password AS '*ABC'"),
              "ALTER USER bob IDENTIFIED <secret>");
    CHECK_STR(red("ALTER USER bob IDENTIFIED VIA ed25519 USING PASSWORD('pw')"),
              "ALTER USER bob IDENTIFIED <secret>");
    CHECK_STR(red("GRANT ALL ON *.* TO bob IDENTIFIED BY 'pw'"),
              "GRANT ALL ON *.* TO bob IDENTIFIED <secret>");
    CHECK_STR(red("SET PASSWORD FOR bob = PASSWORD('pw')"), "SET PASSWORD <secret>");
    CHECK_STR(red("SET PASSWORD = 'pw'"), "SET PASSWORD <secret>");
    CHECK_STR(red("SELECT OLD_PASSWORD('pw')"), "SELECT OLD_PASSWORD <secret>");
    CHECK_STR(red("CHANGE MASTER TO MASTER_HOST='h', MASTER_PASSWORD='pw', MASTER_PORT=1"),
              "CHANGE MASTER TO MASTER_HOST='h', MASTER_PASSWORD <secret>");
    CHECK_STR(red("CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD 'pw')"),
              "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD <secret>");
    /* A column named password: what it is compared with may be one. */
    CHECK_STR(red("SELECT id FROM users WHERE `password` = 'pw'"),
              "SELECT id FROM users WHERE `password` <secret>");
    /* Inside an executable comment: read as SQL. */
    CHECK_STR(red("CREATE USER bob /*!100000 IDENTIFIED BY 'pw' */"),
              "CREATE USER bob /*!100000 IDENTIFIED <secret>");
}

static void test_only_the_statement_is_hidden(void)
{
    CHECK_STR(red("CREATE USER a IDENTIFIED BY 'x'; SELECT 1; SET PASSWORD = 'y'; SELECT 2"),
              "CREATE USER a IDENTIFIED <secret>; SELECT 1; SET PASSWORD <secret>; SELECT 2");
    /* A ';' inside the password is not the statement's end. */
    CHECK_STR(red("CREATE USER a IDENTIFIED BY 'x;y'; SELECT 1"),
              "CREATE USER a IDENTIFIED <secret>; SELECT 1");
}

static void test_reading_errs_on_hiding(void)
{
    /* NO_BACKSLASH_ESCAPES session: the server's string is 'a\', then "; x'" follows. Read
     * with escapes on, the string runs on: everything after IDENTIFIED stays hidden. */
    CHECK_STR(red("CREATE USER a IDENTIFIED BY 'a\\'; SELECT 'x'"),
              "CREATE USER a IDENTIFIED <secret>");
    /* The other way round: a backslash-escaped quote never ends the hiding early. */
    CHECK_STR(red("CREATE USER a IDENTIFIED BY 'a\\'; x'; SELECT 1"),
              "CREATE USER a IDENTIFIED <secret>; SELECT 1");
    /* Unreadable (unterminated string, cut text): cut after the first word. */
    CHECK_STR(red("SELECT 'abc PASSWORD('pw')"), "SELECT 'abc PASSWORD <secret>");
    /* Read as a string here, and as such by the server too: nothing to hide. */
    CHECK_STR(red("SELECT 'x; SET PASSWORD = 'pw"), "SELECT 'x; SET PASSWORD = 'pw");
    CHECK_STR(red("CREATE USER a IDENTIFIED BY 'unterminated"), "CREATE USER a IDENTIFIED <secret>");
}

static void test_left_alone(void)
{
    const char *same[] = {
        "SELECT 1",
        "SELECT password_hash FROM users",
        "SELECT 'my password is not a word here'",
        "SELECT * FROM t /* identified */",
        "SELECT passwords FROM t",
        "",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        char out[256];
        CHECK_INT(redact_sql(same[i], strlen(same[i]), out, strlen(same[i]) + REDACT_EXTRA), 0);
    }
    CHECK(!redact_may_hold("SELECT 1", 8));
    CHECK(redact_may_hold("x PassWord", 10));
    /* Too little room: nothing is written. */
    char small[8];
    CHECK_INT(redact_sql("SET PASSWORD = 'x'", 18, small, sizeof(small)), 0);
}

/* Many short statements each growing by " <secret>": the output stays within cap, and no
 * statement after the room ran out is shown. */
static void test_bounded_output(void)
{
    char sql[2000];
    size_t len = 0;
    while (len + 10 < sizeof(sql)) {
        memcpy(sql + len, "password;", 9);
        len += 9;
    }
    char *out = malloc(len + REDACT_EXTRA);
    size_t n = redact_sql(sql, len, out, len + REDACT_EXTRA);
    CHECK(n > 0 && n <= len + REDACT_EXTRA);
    CHECK(n >= 9 && memcmp(out + n - 9, " <secret>", 9) == 0);
    free(out);
    /* Random texts of the words and quotes that matter: never more than cap. */
    static const char *const parts[] = {"password", "IDENTIFIED", " ", "'", "\\", ";", "x",
                                        "`password`", "/*!", "*/", "\"", "PASSWORD(", ")"};
    unsigned seed = 12345;
    for (int round = 0; round < 20000; round++) {
        char text[300];
        size_t tl = 0;
        int k = (int)(seed % 30);
        for (int i = 0; i < k; i++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = parts[(seed >> 16) % (sizeof(parts) / sizeof(parts[0]))];
            size_t pl = strlen(p);
            if (tl + pl >= sizeof(text))
                break;
            memcpy(text + tl, p, pl);
            tl += pl;
        }
        seed = seed * 1103515245u + 12345u;
        char *o = malloc(tl + REDACT_EXTRA);
        size_t got = redact_sql(text, tl, o, tl + REDACT_EXTRA);
        CHECK(got <= tl + REDACT_EXTRA);
        free(o);
    }
}

/* redact_may_hold reads eight bytes at a time: it must find what a byte-by-byte reading
 * finds, wherever the word falls in a word of eight (its first byte, its last, across two,
 * in the tail shorter than eight), in any case, beside bytes that differ from 'i'/'p' only
 * in bit 0x20 or the high bit. */
static bool naive_may_hold(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((i + 10 <= n && strncasecmp(s + i, "identified", 10) == 0) ||
            (i + 8 <= n && strncasecmp(s + i, "password", 8) == 0))
            return true;
    return false;
}

static void test_trigger_found_at_every_offset(void)
{
    static const char *words[] = {"identified", "IDENTIFIED", "IdEnTiFiEd", "password",
                                  "PASSWORD",   "pAsSwOrD",   "identifie",  "passwor"};
    static const char fill[] = {'x', 'i', 'p', 'I', 'P', 'I' ^ 0x80, 'p' ^ 0x80, 0x09, 0x10};
    char buf[64];
    int bad = 0;
    for (size_t w = 0; w < sizeof words / sizeof *words; w++)
        for (size_t f = 0; f < sizeof fill; f++)
            for (size_t off = 0; off < 20; off++)
                for (size_t tail = 0; tail < 12; tail++) {
                    size_t wl = strlen(words[w]);
                    size_t n = off + wl + tail;
                    memset(buf, fill[f], sizeof buf);
                    memcpy(buf + off, words[w], wl);
                    if ((redact_may_hold(buf, n) != 0) != naive_may_hold(buf, n))
                        bad++;
                    /* The word cut by the end of the text is no trigger. */
                    if ((redact_may_hold(buf, off + wl - 1) != 0) !=
                        naive_may_hold(buf, off + wl - 1))
                        bad++;
                }
    CHECK(bad == 0);
    /* Random texts over a small alphabet that makes near misses common. */
    static const char alpha[] = "idpaswordentfIDPASWORDENTF _'";
    unsigned seed = 12345;
    bad = 0;
    for (int t = 0; t < 200000; t++) {
        size_t n = (size_t)(t % 40);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        if ((redact_may_hold(buf, n) != 0) != naive_may_hold(buf, n))
            bad++;
    }
    CHECK(bad == 0);
}

int main(void)
{
    test_trigger_found_at_every_offset();
    test_credentials_hidden();
    test_only_the_statement_is_hidden();
    test_reading_errs_on_hiding();
    test_left_alone();
    test_bounded_output();
    return unit_report("redact");
}
