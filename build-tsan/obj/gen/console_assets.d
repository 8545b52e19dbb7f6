build-tsan/obj/gen/console_assets.o: build-tsan/gen/console_assets.c \
 include/console.h
include/console.h:
