build-tsan/obj/sqllex.o: src/sqllex.c include/sqlpolicy.h
include/sqlpolicy.h:
