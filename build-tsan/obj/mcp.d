build-tsan/obj/mcp.o: src/mcp.c include/mcp.h include/envproxy.h \
 include/accounts.h include/config.h include/grants.h include/packet.h \
 include/router.h include/sqlpolicy.h /usr/include/mariadb/mysql.h \
 /usr/include/mariadb/mariadb_com.h \
 /usr/include/mariadb/mariadb_version.h /usr/include/mariadb/ma_list.h \
 /usr/include/mariadb/mariadb_ctype.h /usr/include/mariadb/mariadb_stmt.h \
 include/http_api.h include/json.h include/json.h include/router.h \
 /usr/include/mariadb/errmsg.h
include/mcp.h:
include/envproxy.h:
include/accounts.h:
include/config.h:
include/grants.h:
include/packet.h:
include/router.h:
include/sqlpolicy.h:
/usr/include/mariadb/mysql.h:
/usr/include/mariadb/mariadb_com.h:
/usr/include/mariadb/mariadb_version.h:
/usr/include/mariadb/ma_list.h:
/usr/include/mariadb/mariadb_ctype.h:
/usr/include/mariadb/mariadb_stmt.h:
include/http_api.h:
include/json.h:
include/json.h:
include/router.h:
/usr/include/mariadb/errmsg.h:
