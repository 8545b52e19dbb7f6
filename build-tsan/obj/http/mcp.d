build-tsan/obj/http/mcp.o: src/http/mcp.c include/http_api.h \
 include/json.h include/packet.h include/http_sql.h include/envproxy.h \
 include/accounts.h include/config.h include/grants.h include/router.h \
 include/sqlpolicy.h /usr/include/mariadb/mysql.h \
 /usr/include/mariadb/mariadb_com.h \
 /usr/include/mariadb/mariadb_version.h /usr/include/mariadb/ma_list.h \
 /usr/include/mariadb/mariadb_ctype.h /usr/include/mariadb/mariadb_stmt.h \
 include/http_api.h include/log.h include/mcp.h
include/http_api.h:
include/json.h:
include/packet.h:
include/http_sql.h:
include/envproxy.h:
include/accounts.h:
include/config.h:
include/grants.h:
include/router.h:
include/sqlpolicy.h:
/usr/include/mariadb/mysql.h:
/usr/include/mariadb/mariadb_com.h:
/usr/include/mariadb/mariadb_version.h:
/usr/include/mariadb/ma_list.h:
/usr/include/mariadb/mariadb_ctype.h:
/usr/include/mariadb/mariadb_stmt.h:
include/http_api.h:
include/log.h:
include/mcp.h:
