build-tsan/obj/accounts.o: src/accounts.c include/accounts.h \
 include/acct_history.h include/accounts.h include/json.h
include/accounts.h:
include/acct_history.h:
include/accounts.h:
include/json.h:
