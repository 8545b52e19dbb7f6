build-tsan/obj/resolve.o: src/resolve.c include/resolve.h include/log.h
include/resolve.h:
include/log.h:
