build-tsan/obj/redact.o: src/redact.c include/redact.h \
 include/sqlpolicy.h
include/redact.h:
include/sqlpolicy.h:
