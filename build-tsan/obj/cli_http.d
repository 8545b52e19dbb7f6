build-tsan/obj/cli_http.o: src/cli_http.c include/accounts.h \
 include/cli_user.h include/config.h include/http_api.h include/json.h \
 include/packet.h include/json.h include/prompt.h
include/accounts.h:
include/cli_user.h:
include/config.h:
include/http_api.h:
include/json.h:
include/packet.h:
include/json.h:
include/prompt.h:
