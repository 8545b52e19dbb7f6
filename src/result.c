/* result.c: result sets that the proxy answers itself (SHOW WARNINGS after a cap, local
 * answers), in the text protocol or, for a prepared statement, the binary one. */
#include "envproxy.h"

#include <stdlib.h>
#include <string.h>

void result_send(client *c, const result_col *cols, int ncols, const char *const *cells,
                 int nrows, uint16_t warnings)
{
    uint8_t *types = malloc(ncols > 0 ? (size_t)ncols : 1);
    if (!types)
        abort();
    for (int i = 0; i < ncols; i++) {
        types[i] = cols[i].type;
        /* In the binary protocol a column is sent as its type only if every value fits. */
        for (int r = 0; c->binary_rows && r < nrows; r++) {
            const char *v = cells[(size_t)r * (size_t)ncols + (size_t)i];
            if (v && !pkt_binary_value_fits(types[i], v, strlen(v)))
                types[i] = PKT_TYPE_VAR_STRING;
        }
    }
    pbuf b;
    pbuf_init(&b);
    size_t start = pkt_begin(&b);
    pbuf_lenenc(&b, (uint64_t)ncols);
    pkt_end(&b, start, &c->seq);
    for (int i = 0; i < ncols; i++) {
        bool text = types[i] == PKT_TYPE_VAR_STRING || types[i] == PKT_TYPE_DATETIME;
        /* utf8mb4_general_ci (45) for text, binary (63) for numbers, as servers do. */
        pkt_build_column(&b, &c->seq, "", "", cols[i].name, text ? 45 : 63,
                         text ? 1024 : 21, types[i], text ? 0 : 0x80 /* BINARY */,
                         types[i] == PKT_TYPE_DOUBLE ? 31 : 0, c->ext_meta);
    }
    if (!(c->caps & CAP_DEPRECATE_EOF))
        pkt_build_eof(&b, &c->seq, 0, 0, ST_AUTOCOMMIT);
    for (int r = 0; r < nrows; r++) {
        const char *const *row = cells + (size_t)r * (size_t)ncols;
        if (c->binary_rows)
            pkt_build_binary_row(&b, &c->seq, ncols, types, row, NULL);
        else
            pkt_build_text_row(&b, &c->seq, ncols, row, NULL);
    }
    free(types);
    pkt_build_eof(&b, &c->seq, c->caps, warnings, ST_AUTOCOMMIT);
    client_send(c, &b);
}
