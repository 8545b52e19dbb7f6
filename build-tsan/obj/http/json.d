build-tsan/obj/http/json.o: src/http/json.c include/http_api.h \
 include/json.h include/packet.h include/accounts.h include/config.h \
 include/sqlpolicy.h
include/http_api.h:
include/json.h:
include/packet.h:
include/accounts.h:
include/config.h:
include/sqlpolicy.h:
