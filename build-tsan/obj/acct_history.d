build-tsan/obj/acct_history.o: src/acct_history.c include/acct_history.h \
 include/accounts.h include/json.h
include/acct_history.h:
include/accounts.h:
include/json.h:
