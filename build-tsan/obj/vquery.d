build-tsan/obj/vquery.o: src/vquery.c include/vquery.h \
 include/sqlpolicy.h
include/vquery.h:
include/sqlpolicy.h:
