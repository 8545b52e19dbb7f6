build-tsan/obj/log.o: src/log.c include/log.h
include/log.h:
