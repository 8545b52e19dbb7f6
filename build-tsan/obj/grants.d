build-tsan/obj/grants.o: src/grants.c include/grants.h
include/grants.h:
