/* grants.c: reads SHOW GRANTS output and tells whether the account can change anything.
 *
 * The rule is an allowlist: a privilege that only reads (SELECT, SHOW VIEW, ...) is fine;
 * every other privilege, on any object, counts as able to change something, and so does a
 * privilege name this file does not know, a line it cannot read, GRANT OPTION and a role's
 * ADMIN OPTION. Roles granted to the account are followed (the caller runs SHOW GRANTS FOR
 * each one whose grants did not appear yet), because a session can SET ROLE at any time. */
#include "grants.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Privileges that cannot change data, schema, users, server state or other sessions.
 * PROCESS shows other sessions' statements (a read); the monitor privileges read status. */
static const char *const read_only_privileges[] = {
    "USAGE",
    "SELECT",
    "SHOW VIEW",
    "SHOW DATABASES",
    "PROCESS",
    "REPLICATION CLIENT",
    "BINLOG MONITOR",
    "SLAVE MONITOR",
    "REPLICA MONITOR",
    "SHOW_ROUTINE",
    "SHOW CREATE ROUTINE",
};

void grants_init(grants_info *g)
{
    memset(g, 0, sizeof(*g));
}

static void append_what(grants_info *g, const char *text, size_t len)
{
    size_t cur = strlen(g->what);
    if (cur >= 3 && strcmp(g->what + cur - 3, "...") == 0)
        return; /* full already */
    /* The same item twice (a role's grants read again) is said once. */
    for (const char *at = g->what; *at;) {
        if (strncmp(at, text, len) == 0 && (at[len] == '\0' || strncmp(at + len, ", ", 2) == 0))
            return;
        const char *next = strstr(at, ", ");
        if (!next)
            break;
        at = next + 2;
    }
    const char *sep = cur ? ", " : "";
    size_t need = strlen(sep) + len;
    if (cur + need + 4 >= sizeof(g->what)) {
        snprintf(g->what + cur, sizeof(g->what) - cur, "%s...", sep);
        return;
    }
    snprintf(g->what + cur, sizeof(g->what) - cur, "%s%.*s", sep, (int)len, text);
}

void grants_note_unknown(grants_info *g, const char *why)
{
    g->unknown = true;
    append_what(g, why, strlen(why));
}

static void note_writable(grants_info *g, const char *text, size_t len)
{
    g->writable = true;
    append_what(g, text, len);
}

bool grants_privilege_reads_only(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(read_only_privileges) / sizeof(read_only_privileges[0]); i++) {
        const char *p = read_only_privileges[i];
        if (strlen(p) == len && strncasecmp(p, name, len) == 0)
            return true;
    }
    return false;
}

/* Index just past the quoted text that starts at s[i] (a quote), doubled quotes and, in
 * '...' and "...", backslash escapes included; len when it does not end. */
static size_t skip_quoted(const char *s, size_t len, size_t i)
{
    char q = s[i++];
    while (i < len) {
        if (s[i] == '\\' && q != '`' && i + 1 < len) {
            i += 2;
            continue;
        }
        if (s[i] == q) {
            if (i + 1 < len && s[i + 1] == q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i++;
    }
    return len;
}

static bool is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* The first top-level (outside quotes and parentheses) occurrence of the word kw in
 * s[from, len), or -1. */
static long find_word(const char *s, size_t len, size_t from, const char *kw)
{
    size_t kl = strlen(kw);
    int depth = 0;
    for (size_t i = from; i < len;) {
        char c = s[i];
        if (c == '`' || c == '\'' || c == '"') {
            i = skip_quoted(s, len, i);
            continue;
        }
        if (c == '(')
            depth++;
        else if (c == ')' && depth > 0)
            depth--;
        else if (depth == 0 && i + kl <= len && strncasecmp(s + i, kw, kl) == 0 &&
                 (i == 0 || !is_word_char(s[i - 1])) && (i + kl == len || !is_word_char(s[i + kl])))
            return (long)i;
        i++;
    }
    return -1;
}

static void trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* Whether s is a grantee or role as the server prints it: `name`, `name`@`host`, or a
 * plain word, quotes doubled inside. Only such text goes back into SHOW GRANTS FOR. */
static bool well_formed_name(const char *s, size_t len)
{
    size_t i = 0;
    for (int part = 0; part < 2; part++) {
        if (i < len && s[i] == '`') {
            /* `...`, a doubled backtick inside; it must close. */
            for (i++;; i++) {
                if (i >= len)
                    return false;
                if (s[i] != '`')
                    continue;
                if (i + 1 < len && s[i + 1] == '`') {
                    i++;
                    continue;
                }
                i++;
                break;
            }
        } else {
            size_t start = i;
            while (i < len && is_word_char(s[i]))
                i++;
            if (i == start)
                return false;
        }
        if (i == len)
            return true;
        if (part == 0 && s[i] == '@')
            i++;
        else
            return false;
    }
    return i == len;
}

/* The grantee after TO: up to the first top-level space. */
static size_t grantee_len(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && !isspace((unsigned char)s[i])) {
        if (s[i] == '`' || s[i] == '\'' || s[i] == '"')
            i = skip_quoted(s, len, i);
        else
            i++;
    }
    return i;
}

static void note_seen(grants_info *g, const char *name, size_t len)
{
    for (int i = 0; i < g->n_seen; i++)
        if (strlen(g->seen[i]) == len && memcmp(g->seen[i], name, len) == 0)
            return;
    if (g->n_seen < (int)(sizeof(g->seen) / sizeof(g->seen[0])) && len < GRANTS_NAME_MAX) {
        memcpy(g->seen[g->n_seen], name, len);
        g->seen[g->n_seen][len] = '\0';
        g->n_seen++;
    }
}

static void note_role(grants_info *g, const char *name, size_t len)
{
    if (!well_formed_name(name, len) || len >= GRANTS_NAME_MAX) {
        grants_note_unknown(g, "a role whose name could not be read");
        return;
    }
    for (int i = 0; i < g->n_roles; i++)
        if (strlen(g->roles[i]) == len && memcmp(g->roles[i], name, len) == 0)
            return;
    if (g->n_roles == GRANTS_MAX_ROLES) {
        if (!g->roles_overflow) {
            g->roles_overflow = true;
            grants_note_unknown(g, "more roles than are checked");
        }
        return;
    }
    memcpy(g->roles[g->n_roles], name, len);
    g->roles[g->n_roles][len] = '\0';
    g->n_roles++;
}

bool grants_role_pending(const grants_info *g, int i)
{
    for (int k = 0; k < g->n_seen; k++)
        if (strcmp(g->seen[k], g->roles[i]) == 0)
            return false;
    return true;
}

/* "GRANT priv[, priv ...] ON object TO grantee [...]": each privilege that does more than
 * read counts, with its object. */
/* Whether a grant's object covers mysql.proc: *.*, mysql.*, mysql.proc, quoted or not. */
static bool routines_object(const char *o, size_t n)
{
    char buf[40];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (o[i] == '`')
            continue;
        if (k + 1 >= sizeof(buf))
            return false;
        buf[k++] = (char)tolower((unsigned char)o[i]);
    }
    buf[k] = '\0';
    return strcmp(buf, "*.*") == 0 || strcmp(buf, "mysql.*") == 0 || strcmp(buf, "mysql.proc") == 0;
}

static void privilege_line(grants_info *g, const char *s, size_t on, size_t to, size_t len)
{
    const char *obj = s + on + 2;
    size_t obj_len = to - (on + 2);
    trim(&obj, &obj_len);
    size_t i = 0;
    while (i < on) {
        /* One item: up to the next top-level comma. */
        size_t start = i, name_end = (size_t)-1;
        int depth = 0;
        while (i < on) {
            char c = s[i];
            if (c == '`' || c == '\'' || c == '"') {
                i = skip_quoted(s, on, i);
                continue;
            }
            if (c == '(') {
                if (depth == 0 && name_end == (size_t)-1)
                    name_end = i; /* a column list follows the name */
                depth++;
            } else if (c == ')' && depth > 0) {
                depth--;
            } else if (c == ',' && depth == 0) {
                break;
            }
            i++;
        }
        const char *name = s + start;
        size_t nlen = (name_end == (size_t)-1 ? i : name_end) - start;
        trim(&name, &nlen);
        if (nlen && routines_object(obj, obj_len) &&
            ((nlen == 6 && strncasecmp(name, "SELECT", 6) == 0) ||
             (nlen >= 3 && strncasecmp(name, "ALL", 3) == 0 &&
              (nlen == 3 || strncasecmp(name, "ALL PRIVILEGES", nlen) == 0))))
            g->reads_routines = true;
        if ((nlen == 7 && strncasecmp(name, "TRIGGER", 7) == 0) ||
            (nlen >= 3 && strncasecmp(name, "ALL", 3) == 0 &&
             (nlen == 3 || strncasecmp(name, "ALL PRIVILEGES", nlen) == 0)))
            g->reads_triggers = true;
        /* MySQL 8's SHOW_ROUTINE, MariaDB 11.3's SHOW CREATE ROUTINE (on any object: the
         * refusal in client.c is for accounts proven blind to routines, never a guess). */
        if ((nlen == 12 && strncasecmp(name, "SHOW_ROUTINE", 12) == 0) ||
            (nlen == 19 && strncasecmp(name, "SHOW CREATE ROUTINE", 19) == 0))
            g->reads_routines = true;
        if (nlen && !grants_privilege_reads_only(name, nlen)) {
            char buf[200];
            int n = snprintf(buf, sizeof(buf), "%.*s ON %.*s", (int)(nlen > 60 ? 60 : nlen), name,
                             (int)(obj_len > 100 ? 100 : obj_len), obj);
            note_writable(g, buf, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
        }
        i++; /* past the comma */
    }
    const char *who = s + to + 2;
    size_t who_max = len - (to + 2);
    while (who_max && isspace((unsigned char)*who)) {
        who++;
        who_max--;
    }
    note_seen(g, who, grantee_len(who, who_max));
}

void grants_add_line(grants_info *g, const char *line, size_t len)
{
    const char *s = line;
    trim(&s, &len);
    if (len == 0)
        return;
    if (len >= 16 && strncasecmp(s, "SET DEFAULT ROLE", 16) == 0)
        return; /* names a role that a GRANT line lists too */
    if (len >= 7 && strncasecmp(s, "REVOKE ", 7) == 0)
        return; /* MySQL's partial revokes only take privileges away */
    if (len < 6 || strncasecmp(s, "GRANT ", 6) != 0) {
        note_writable(g, "a SHOW GRANTS line envproxy cannot read", 39);
        return;
    }
    s += 6;
    len -= 6;
    long to = find_word(s, len, 0, "TO");
    if (to < 0) {
        note_writable(g, "a SHOW GRANTS line envproxy cannot read", 39);
        return;
    }
    long on = find_word(s, (size_t)to, 0, "ON");
    if (on >= 0) {
        privilege_line(g, s, (size_t)on, (size_t)to, len);
    } else {
        /* "GRANT role[, role] TO grantee": the roles' grants count too. */
        size_t i = 0;
        while (i < (size_t)to) {
            size_t start = i;
            while (i < (size_t)to && s[i] != ',') {
                if (s[i] == '`' || s[i] == '\'' || s[i] == '"')
                    i = skip_quoted(s, (size_t)to, i);
                else
                    i++;
            }
            const char *r = s + start;
            size_t rl = i - start;
            trim(&r, &rl);
            if (rl)
                note_role(g, r, rl);
            i++;
        }
    }
    /* GRANT OPTION (privileges) and ADMIN OPTION (roles) hand rights to others. */
    long with = find_word(s, len, (size_t)to, "WITH");
    if (with >= 0) {
        long grant = find_word(s, len, (size_t)with, "GRANT");
        long admin = find_word(s, len, (size_t)with, "ADMIN");
        if (grant >= 0 && find_word(s, len, (size_t)grant, "OPTION") >= 0)
            note_writable(g, "GRANT OPTION", 12);
        if (admin >= 0 && find_word(s, len, (size_t)admin, "OPTION") >= 0)
            note_writable(g, "ADMIN OPTION", 12);
    }
}

const char *grants_verdict(const grants_info *g)
{
    if (g->writable)
        return "yes";
    return g->unknown ? "unknown" : "no";
}
