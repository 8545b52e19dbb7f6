build-tsan/obj/prompt.o: src/prompt.c include/prompt.h
include/prompt.h:
