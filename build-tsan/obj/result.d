build-tsan/obj/result.o: src/result.c include/envproxy.h \
 include/accounts.h include/config.h include/grants.h include/packet.h \
 include/router.h include/sqlpolicy.h /usr/include/mariadb/mysql.h \
 /usr/include/mariadb/mariadb_com.h \
 /usr/include/mariadb/mariadb_version.h /usr/include/mariadb/ma_list.h \
 /usr/include/mariadb/mariadb_ctype.h /usr/include/mariadb/mariadb_stmt.h
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
