build-tsan/obj/rewrite.o: src/rewrite.c include/rewrite.h \
 include/router.h include/accounts.h include/config.h include/sqlpolicy.h
include/rewrite.h:
include/router.h:
include/accounts.h:
include/config.h:
include/sqlpolicy.h:
