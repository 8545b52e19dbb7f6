build-tsan/obj/cli_user.o: src/cli_user.c include/cli_user.h \
 include/prompt.h include/accounts.h
include/cli_user.h:
include/prompt.h:
include/accounts.h:
