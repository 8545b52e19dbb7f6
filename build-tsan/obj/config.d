build-tsan/obj/config.o: src/config.c include/config.h
include/config.h:
