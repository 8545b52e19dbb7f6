build-tsan/obj/cli_secret.o: src/cli_secret.c include/prompt.h \
 include/secret.h
include/prompt.h:
include/secret.h:
