/* result.c: text result sets that the proxy answers itself (SHOW WARNINGS after a cap). */
#include "envproxy.h"

#include <string.h>

void result_send(client *c, const result_col *cols, int ncols, const char *const *cells,
                 int nrows, uint16_t warnings)
{
    pbuf b;
    pbuf_init(&b);
    size_t start = pkt_begin(&b);
    pbuf_lenenc(&b, (uint64_t)ncols);
    pkt_end(&b, start, &c->seq);
    for (int i = 0; i < ncols; i++) {
        bool text = cols[i].type == PKT_TYPE_VAR_STRING || cols[i].type == PKT_TYPE_DATETIME;
        /* utf8mb4_general_ci (45) for text, binary (63) for numbers, as servers do. */
        pkt_build_column(&b, &c->seq, "", "", cols[i].name, text ? 45 : 63,
                         text ? 1024 : 21, cols[i].type, text ? 0 : 0x80 /* BINARY */,
                         cols[i].type == PKT_TYPE_DOUBLE ? 31 : 0);
    }
    if (!(c->caps & CAP_DEPRECATE_EOF))
        pkt_build_eof(&b, &c->seq, 0, 0, ST_AUTOCOMMIT);
    for (int r = 0; r < nrows; r++)
        pkt_build_text_row(&b, &c->seq, ncols, cells + (size_t)r * (size_t)ncols, NULL);
    pkt_build_eof(&b, &c->seq, c->caps, warnings, ST_AUTOCOMMIT);
    client_send(c, &b);
}
