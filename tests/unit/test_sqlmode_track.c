/* test_sqlmode_track.c: how a packet's SET statements leave the session's sql_mode
 * (sqlpolicy_track_sql_mode), and that the statements after them in the same packet are
 * read in that mode (sqlpolicy_check_readonly). MariaDB's SET STATEMENT ... FOR puts back
 * only the variables it lists, so a SET of sql_mode after FOR changes the session. */
#include "envproxy.h"
#include "sqlpolicy.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static const sql_mode_flags NONE = {false, false, false, false};

/* The mode sql leaves behind, starting from start. */
static sql_mode_flags after(const char *sql, sql_mode_flags start)
{
    sqlpolicy_track_sql_mode(sql, strlen(sql), &start);
    return start;
}

#define CHECK_MODE(m, aq, nbe, unk)                                                               \
    do {                                                                                          \
        sql_mode_flags m_ = (m);                                                                  \
        CHECK_INT(m_.ansi_quotes, (aq));                                                          \
        CHECK_INT(m_.no_backslash_escapes, (nbe));                                                \
        CHECK_INT(m_.unknown, (unk));                                                             \
    } while (0)

static void test_set_statement_for_set(void)
{
    CHECK_MODE(after("SET STATEMENT max_statement_time = 10 FOR SET sql_mode = "
                     "'NO_BACKSLASH_ESCAPES'", NONE), 0, 1, 0);
    CHECK_MODE(after("SET STATEMENT max_statement_time=10 FOR SET @@session.sql_mode := "
                     "'ANSI_QUOTES'", NONE), 1, 0, 0);
    CHECK_MODE(after("SET STATEMENT max_statement_time = 10, sql_select_limit = 5 FOR "
                     "SET SESSION sql_mode = 'ANSI'", NONE), 1, 0, 0);
    CHECK_MODE(after("set statement max_statement_time = 10 for set @a = 1, sql_mode = "
                     "'NO_BACKSLASH_ESCAPES,ANSI_QUOTES'", NONE), 1, 1, 0);
    /* A value that is not a literal: unknown. */
    CHECK_MODE(after("SET STATEMENT max_statement_time = 10 FOR SET sql_mode = @m", NONE),
               0, 0, 1);
    /* The list names sql_mode too: which one stays depends on the server. */
    CHECK_MODE(after("SET STATEMENT sql_mode = '' FOR SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
                     NONE), 0, 0, 1);
    /* The list's own values last for the statement only. */
    CHECK_MODE(after("SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SELECT 1", NONE), 0, 0, 0);
    CHECK_MODE(after("SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SET @x = 1", NONE), 0, 0, 0);
    /* Inside an executable comment every server runs. */
    CHECK_MODE(after("/*!40101 SET STATEMENT max_statement_time = 10 FOR SET sql_mode = "
                     "'NO_BACKSLASH_ESCAPES' */", NONE), 0, 1, 0);
    /* From NO_BACKSLASH_ESCAPES back to the default. */
    sql_mode_flags nbe = NONE;
    nbe.no_backslash_escapes = true;
    CHECK_MODE(after("SET STATEMENT max_statement_time = 10 FOR SET sql_mode = ''", nbe),
               0, 0, 0);
}

/* The statement after such a SET, in the same packet, is read in the new mode: the SET
 * GLOBAL that the backslash uncovers is seen. */
static void test_same_packet(void)
{
    static const char *const texts[] = {
        "SET STATEMENT max_statement_time = 10 FOR SET sql_mode = 'NO_BACKSLASH_ESCAPES'; "
        "SET @x = 'a\\' , GLOBAL net_read_timeout = 34 -- '",
        "SET STATEMENT max_statement_time=10 FOR SET sql_mode='ANSI_QUOTES'; "
        "SET @x = (SELECT 1 AS \"\\\"), GLOBAL net_read_timeout = 35 -- \")",
        "SET @m = 'NO_BACKSLASH_ESCAPES'; SET STATEMENT max_statement_time = 10 FOR "
        "SET sql_mode = @m; SET @x = 'a\\' , GLOBAL net_read_timeout = 36 -- '",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        policy_verdict v;
        CHECK(!sqlpolicy_check_readonly(texts[i], strlen(texts[i]), &NONE, &v));
    }
    /* Without the SET before it, the same text is one harmless assignment. */
    policy_verdict v;
    const char *alone = "SET @x = 'a\\' , GLOBAL net_read_timeout = 34 -- '";
    CHECK(sqlpolicy_check_readonly(alone, strlen(alone), &NONE, &v));
}

/* The session-state block of an OK packet that reports name = value. */
static void state_block(pbuf *out, const char *name, const char *value)
{
    pbuf entry;
    pbuf_init(&entry);
    pbuf_lenenc_str(&entry, name, strlen(name));
    pbuf_lenenc_str(&entry, value, strlen(value));
    pbuf_u8(out, 0); /* SESSION_TRACK_SYSTEM_VARIABLES */
    pbuf_lenenc_str(out, entry.data, entry.len);
    pbuf_free(&entry);
}

/* A tracked sql_mode of any length sets the backend's mode from its whole value and is
 * recorded whole; a session_track_ change marks the connection for a reset. */
static void test_tracked_values(void)
{
    client c;
    backend b;
    memset(&c, 0, sizeof(c));
    memset(&b, 0, sizeof(b));
    c.job_moves_session = true;
    char mode[2000];
    size_t n = 0;
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(mode + n, sizeof(mode) - n, "%sSTRICT_TRANS_TABLES", i ? "," : "");
    snprintf(mode + n, sizeof(mode) - n, ",NO_BACKSLASH_ESCAPES");
    CHECK(strlen(mode) > 1000);
    pbuf st;
    pbuf_init(&st);
    state_block(&st, "sql_mode", mode);
    session_note_changes(&c, &b, st.data, st.len);
    CHECK(b.mode.no_backslash_escapes);
    CHECK(!b.mode.ansi_quotes && !b.mode.unknown);
    CHECK(c.rl_mode_tracked);
    CHECK_INT(b.n_vars, 1);
    if (b.n_vars == 1)
        CHECK_STR(b.vars[0].value, mode);
    CHECK_INT(c.n_vars, 1);
    if (c.n_vars == 1)
        CHECK_STR(c.vars[0].value, mode);
    CHECK(!b.tainted);

    pbuf_reset(&st);
    state_block(&st, "sql_mode", "ANSI_QUOTES");
    state_block(&st, "session_track_system_variables", "autocommit");
    session_note_changes(&c, &b, st.data, st.len);
    CHECK(b.mode.ansi_quotes && !b.mode.no_backslash_escapes);
    CHECK(b.tainted && b.dirty);
    pbuf_free(&st);

    /* The status flags of any OK or EOF packet. */
    b.mariadb = true;
    session_note_status(&b, ST_NO_BACKSLASH_ESCAPES | ST_AUTOCOMMIT);
    CHECK(b.mode.no_backslash_escapes && !b.mode.ansi_quotes);
    b.mariadb = false; /* MySQL has no ANSI_QUOTES flag: the tracked value stands */
    b.mode.ansi_quotes = true;
    session_note_status(&b, ST_AUTOCOMMIT);
    CHECK(!b.mode.no_backslash_escapes && b.mode.ansi_quotes);

    session_vars_clear(b.vars, &b.n_vars);
    session_vars_clear(c.vars, &c.n_vars);
    CHECK_INT(b.n_vars + c.n_vars, 0);
}

int main(void)
{
    test_tracked_values();
    test_set_statement_for_set();
    test_same_packet();
    return unit_report("sqlmode_track");
}
