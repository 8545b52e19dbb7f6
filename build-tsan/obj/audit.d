build-tsan/obj/audit.o: src/audit.c include/audit.h include/redact.h \
 include/log.h
include/audit.h:
include/redact.h:
include/log.h:
