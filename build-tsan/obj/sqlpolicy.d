build-tsan/obj/sqlpolicy.o: src/sqlpolicy.c include/sqlpolicy.h
include/sqlpolicy.h:
