/* grants.h: reads SHOW GRANTS output and tells whether the account can change anything
 * (pure: no event loop, no server). */
#ifndef ENVPROXY_GRANTS_H
#define ENVPROXY_GRANTS_H

#include <stdbool.h>
#include <stddef.h>

#define GRANTS_MAX_ROLES 16
#define GRANTS_NAME_MAX 200

/* What the lines seen so far say about one account. */
typedef struct {
    bool writable;  /* some privilege (or a line not understood) can change something */
    bool unknown;   /* something could not be read (a role's grants): not proven read-only */
    /* SELECT (or ALL) on *.*, mysql.* or mysql.proc, or SHOW_ROUTINE / SHOW CREATE ROUTINE:
     * the server shows the account every stored routine (SHOW FUNCTION/PROCEDURE STATUS,
     * SHOW CREATE), not only its own. */
    bool reads_routines;
    /* TRIGGER (or ALL) on some object: without it anywhere, the server shows no trigger. */
    bool reads_triggers;
    char what[256]; /* the privileges that can, "INSERT ON `shop`.*, GRANT OPTION, ..." */
    /* Roles granted to a grantee seen, as `name` or `name`@`host`, ready for SHOW GRANTS FOR. */
    char roles[GRANTS_MAX_ROLES][GRANTS_NAME_MAX];
    int n_roles;
    bool roles_overflow; /* more roles than fit: counted as unknown */
    /* Grantees whose privileges appeared (MariaDB expands the active role's grants). */
    char seen[GRANTS_MAX_ROLES + 1][GRANTS_NAME_MAX];
    int n_seen;
} grants_info;

void grants_init(grants_info *g);
/* Adds one row of SHOW GRANTS (or SHOW GRANTS FOR a role). */
void grants_add_line(grants_info *g, const char *line, size_t len);
/* Whether privilege name (as SHOW GRANTS prints it, any case) only reads. */
bool grants_privilege_reads_only(const char *name, size_t len);
/* Whether role i still needs SHOW GRANTS FOR: no line granted anything to it yet. */
bool grants_role_pending(const grants_info *g, int i);
/* Notes something that could not be read (why goes into what). */
void grants_note_unknown(grants_info *g, const char *why);
/* "no", "yes" or "unknown" for the whole account. */
const char *grants_verdict(const grants_info *g);

#endif
