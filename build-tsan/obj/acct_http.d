build-tsan/obj/acct_http.o: src/acct_http.c include/accounts.h \
 include/http_api.h include/json.h include/packet.h include/json.h
include/accounts.h:
include/http_api.h:
include/json.h:
include/packet.h:
include/json.h:
