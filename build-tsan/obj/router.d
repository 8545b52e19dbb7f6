build-tsan/obj/router.o: src/router.c include/router.h include/accounts.h \
 include/config.h
include/router.h:
include/accounts.h:
include/config.h:
