/* router.c: routing hints, `db@env` targets and the routing decision. */
#include "router.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool valid_env_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/* Copies a comma-separated list of environment names into dst. */
static int parse_env_list(const char *v, size_t n, char (*dst)[ROUTE_NAME_MAX + 1], int max,
                          int *count, char *err, size_t errlen)
{
    size_t i = 0;
    *count = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t len = j - i;
        if (len == 0 || len > ROUTE_NAME_MAX) {
            snprintf(err, errlen, "routing hint: empty or too long environment name");
            return -1;
        }
        for (size_t k = i; k < j; k++) {
            if (!valid_env_char(v[k])) {
                snprintf(err, errlen, "routing hint: invalid environment name '%.*s'", (int)len,
                         v + i);
                return -1;
            }
        }
        if (*count == max) {
            snprintf(err, errlen, "routing hint: more than %d environments", max);
            return -1;
        }
        memcpy(dst[*count], v + i, len);
        dst[*count][len] = '\0';
        (*count)++;
        i = j + 1;
    }
    return 0;
}

static bool word_is(const char *w, size_t n, const char *key)
{
    size_t k = strlen(key);
    return n > k && strncasecmp(w, key, k) == 0 && w[k] == '=';
}

int route_parse_hint(const char *sql, size_t len, route_hint *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    size_t i = 0;
    while (i < len && is_space(sql[i]))
        i++;
    if (i + 2 > len || sql[i] != '/' || sql[i + 1] != '*')
        return 0;
    /* Executable comments and optimizer hints are code, never routing hints. */
    if (i + 2 < len && (sql[i + 2] == '!' || sql[i + 2] == '+' || sql[i + 2] == 'M'))
        return 0;
    size_t body = i + 2, end = body;
    while (end + 1 < len && !(sql[end] == '*' && sql[end + 1] == '/'))
        end++;
    if (end + 1 >= len)
        return 0; /* unterminated: not ours; the server (or the policy) will reject it */

    size_t p = body;
    bool first = true;
    while (p < end) {
        while (p < end && is_space(sql[p]))
            p++;
        if (p >= end)
            break;
        size_t q = p;
        while (q < end && !is_space(sql[q]))
            q++;
        const char *w = sql + p;
        size_t wn = q - p;
        bool known = word_is(w, wn, "env") || word_is(w, wn, "db") ||
                     word_is(w, wn, "compare") || word_is(w, wn, "key");
        if (first && !known)
            return 0; /* an ordinary comment */
        first = false;
        if (!known) {
            snprintf(err, errlen,
                     "routing hint: unknown word '%.*s' (expected env=, db=, compare=, key=)",
                     (int)(wn > 40 ? 40 : wn), w);
            return -1;
        }
        const char *eq = memchr(w, '=', wn);
        const char *v = eq + 1;
        size_t vn = wn - (size_t)(v - w);
        if (vn == 0) {
            snprintf(err, errlen, "routing hint: '%.*s' has no value", (int)(eq - w), w);
            return -1;
        }
        if (word_is(w, wn, "env")) {
            if (h->n_envs || h->all_envs) {
                snprintf(err, errlen, "routing hint: env= given twice");
                return -1;
            }
            if (vn == 1 && v[0] == '*')
                h->all_envs = true;
            else if (parse_env_list(v, vn, h->envs, ROUTE_MAX_ENVS, &h->n_envs, err, errlen))
                return -1;
        } else if (word_is(w, wn, "db")) {
            if (h->has_db || vn > ROUTE_NAME_MAX) {
                snprintf(err, errlen, "routing hint: db= given twice or too long");
                return -1;
            }
            memcpy(h->db, v, vn);
            h->db[vn] = '\0';
            h->has_db = true;
        } else if (word_is(w, wn, "compare")) {
            if (h->n_compare) {
                snprintf(err, errlen, "routing hint: compare= given twice");
                return -1;
            }
            if (parse_env_list(v, vn, h->compare, 2, &h->n_compare, err, errlen))
                return -1;
            if (h->n_compare != 2) {
                snprintf(err, errlen, "routing hint: compare= takes two environments");
                return -1;
            }
        } else {
            if (h->has_key || vn > ROUTE_NAME_MAX) {
                snprintf(err, errlen, "routing hint: key= given twice or too long");
                return -1;
            }
            memcpy(h->key, v, vn);
            h->key[vn] = '\0';
            h->has_key = true;
        }
        p = q;
    }
    h->present = !first;
    h->end = h->present ? end + 2 : 0;
    return 0;
}

int route_parse_target(const char *s, size_t len, route_target *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    const char *at = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '@')
            at = s + i;
    size_t db_len = at ? (size_t)(at - s) : len;
    if (db_len > ROUTE_NAME_MAX) {
        snprintf(err, errlen, "database name '%.*s...' is too long", 32, s);
        return -1;
    }
    if (memchr(s, '\0', len)) {
        snprintf(err, errlen, "database name contains a NUL byte");
        return -1;
    }
    if (db_len) {
        memcpy(t->db, s, db_len);
        t->db[db_len] = '\0';
        t->has_db = true;
    }
    if (at) {
        size_t env_len = len - db_len - 1;
        if (env_len == 0 || env_len > ROUTE_NAME_MAX) {
            snprintf(err, errlen, "'%.*s': an environment name must follow '@'",
                     (int)(len > 80 ? 80 : len), s);
            return -1;
        }
        for (size_t i = 0; i < env_len; i++) {
            if (!valid_env_char(at[1 + i])) {
                snprintf(err, errlen, "'%.*s': invalid environment name",
                         (int)(len > 80 ? 80 : len), s);
                return -1;
            }
        }
        memcpy(t->env, at + 1, env_len);
        t->env[env_len] = '\0';
        t->has_env = true;
    }
    if (!t->has_db && !t->has_env) {
        snprintf(err, errlen, "empty database name");
        return -1;
    }
    return 0;
}

/* Skips white space and comments (not executable ones). Returns the new offset. */
static size_t skip_blank(const char *s, size_t len, size_t i)
{
    for (;;) {
        while (i < len && is_space(s[i]))
            i++;
        if (i + 1 < len && s[i] == '/' && s[i + 1] == '*' &&
            !(i + 2 < len && (s[i + 2] == '!' || s[i + 2] == 'M' || s[i + 2] == '+'))) {
            size_t j = i + 2;
            while (j + 1 < len && !(s[j] == '*' && s[j + 1] == '/'))
                j++;
            if (j + 1 >= len)
                return i;
            i = j + 2;
        } else if (i < len && (s[i] == '#' ||
                               (i + 2 < len && s[i] == '-' && s[i + 1] == '-' &&
                                (is_space(s[i + 2]) || (unsigned char)s[i + 2] < 32)))) {
            while (i < len && s[i] != '\n')
                i++;
        } else {
            return i;
        }
    }
}

int route_parse_use(const char *sql, size_t len, char *name, size_t cap, char *err,
                    size_t errlen)
{
    size_t i = skip_blank(sql, len, 0);
    if (i + 3 > len || strncasecmp(sql + i, "use", 3) != 0)
        return 0;
    i += 3;
    if (i < len && !is_space(sql[i]) && sql[i] != '`' && sql[i] != '"' && sql[i] != '/' &&
        sql[i] != '#')
        return 0; /* USER(), USEFUL ... */
    i = skip_blank(sql, len, i);
    size_t n = 0;
    if (i < len && (sql[i] == '`' || sql[i] == '"')) {
        char q = sql[i++];
        for (;;) {
            if (i >= len) {
                snprintf(err, errlen, "USE: unterminated quoted name");
                return -1;
            }
            if (sql[i] == q) {
                if (i + 1 < len && sql[i + 1] == q) {
                    i++;
                } else {
                    i++;
                    break;
                }
            }
            if (n + 1 >= cap) {
                snprintf(err, errlen, "USE: name is too long");
                return -1;
            }
            name[n++] = sql[i++];
        }
    } else {
        while (i < len && !is_space(sql[i]) && sql[i] != ';' && sql[i] != '#' &&
               !(sql[i] == '/' && i + 1 < len && sql[i + 1] == '*')) {
            if (sql[i] == '`' || sql[i] == '"' || sql[i] == '\'') {
                snprintf(err, errlen, "USE: cannot read the name");
                return -1;
            }
            if (n + 1 >= cap) {
                snprintf(err, errlen, "USE: name is too long");
                return -1;
            }
            name[n++] = sql[i++];
        }
    }
    name[n] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "USE: a database name is required");
        return -1;
    }
    i = skip_blank(sql, len, i);
    if (i < len && sql[i] == ';')
        i = skip_blank(sql, len, i + 1);
    if (i != len) {
        snprintf(err, errlen, "USE must be the only statement in its packet");
        return -1;
    }
    return 1;
}

const cfg_env *route_env_for(const config *c, const account *a, const char *name,
                             grant_level *grant)
{
    const cfg_env *e = config_find_env(c, name);
    grant_level g = a ? acct_grant_for(a, name) : GRANT_NONE;
    if (grant)
        *grant = g;
    return e && g != GRANT_NONE ? e : NULL;
}

const cfg_env *route_initial_env(const config *c, const account *a)
{
    const cfg_env *e;
    if (a->default_env && (e = route_env_for(c, a, a->default_env, NULL)))
        return e;
    if (c->default_environment && (e = route_env_for(c, a, c->default_environment, NULL)))
        return e;
    for (int i = 0; i < c->n_envs; i++)
        if ((e = route_env_for(c, a, c->envs[i].name, NULL)))
            return e;
    return NULL;
}

int route_resolve(const config *c, const account *a, const char *session_env,
                  const char *session_db, const route_hint *h, route_result *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *env_name = session_env;
    bool moved = false;
    if (h && h->present && h->n_envs == 1) {
        env_name = h->envs[0];
        moved = !session_env || strcmp(env_name, session_env) != 0;
    }
    if (!env_name) {
        snprintf(err, errlen, "Access denied for user '%s': no environment is granted",
                 a->name);
        return 1044;
    }
    grant_level g;
    const cfg_env *e = route_env_for(c, a, env_name, &g);
    if (!e) {
        snprintf(err, errlen, "Access denied for user '%s' to environment '%s'", a->name,
                 env_name);
        return 1044;
    }
    out->env = e;
    out->grant = g;
    out->read_only = e->access != ACCESS_READ_WRITE || g != GRANT_WRITE;
    if (h && h->present && h->has_db)
        out->db = h->db;
    else if (session_db)
        out->db = session_db;
    else
        out->db = moved || !session_env ? e->database : NULL;
    return 0;
}
