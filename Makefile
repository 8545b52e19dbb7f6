# envproxy: a MySQL wire-protocol proxy for many environments.
#
#   make            build build/envproxy
#   make test       install missing packages, then unit and integration tests
#   make asan       the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo       two MariaDB servers (dev, prod) and the proxy on 127.0.0.1:3307
#   make unit       unit tests only;  make integration   integration tests only
#   make compat-gui Adminer and phpMyAdmin in headless Chromium (installs them; slow)
#   make fuzz       libFuzzer on the SQL policy and parsers, FUZZ_SECONDS (60) each
#   make robust     the robustness suite in full (its quick part runs in make test)
#   make audit-load 1,000,000 statements through 64 clients, every one found in the audit log
#   make install    PREFIX=/usr/local: the binary, the systemd unit, the example config
#   V=1             show the commands

BUILD    ?= build
CC       ?= cc
PKGS     := libevent libevent_pthreads libevent_openssl openssl libmariadb yaml-0.1 sqlite3
# Computed when first used in a recipe, not when the Makefile is read: on a fresh machine
# the build-deps step below installs the -dev packages first, and flags read before that
# would be empty (mysql.h not found).
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS) 2>/dev/null))$(PKG_LIBS)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter
CFLAGS   ?= -O2 -g
SANITIZE ?=
ALL_CFLAGS = -std=gnu11 $(CFLAGS) $(SANITIZE) $(WARN) -Iinclude $(PKG_CFLAGS) -D_GNU_SOURCE -MMD -MP
LDLIBS    = $(PKG_LIBS) -lpthread -lm
PYTHON   ?= /usr/bin/python3

SRCS      := $(wildcard src/*.c src/http/*.c)
# The web console (web/): bundled by esbuild, then made into a C source compiled into the binary.
CONSOLE_OBJ := $(BUILD)/obj/gen/console_assets.o
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(CONSOLE_OBJ)
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all test unit integration asan demo demo-stop deps build-deps clean fuzz install robust \
        compat-gui audit-load

all: $(BUILD)/envproxy

$(BUILD)/envproxy: $(OBJS)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(LDLIBS)

# The libraries' -dev packages, installed when pkg-config cannot find them (the only thing
# `make` does outside build/, and only on a machine that lacks them).
build-deps:
	@{ pkg-config --exists $(PKGS) 2>/dev/null && command -v node >/dev/null && \
	   command -v npm >/dev/null; } || scripts/install-deps.sh --build

# The console's npm packages, exactly as web/package-lock.json pins them (npm ci), installed
# again only when the lock file changes.
web/node_modules/.installed: web/package-lock.json | build-deps
	@echo "  NPM   web/node_modules"
	$(Q)cd web && npm ci --no-audit --no-fund --loglevel=error
	$(Q)touch $@

WEB_SRCS := $(wildcard web/src/*) web/index.html web/build.mjs web/tsconfig.json
$(BUILD)/web/.built: $(WEB_SRCS) web/node_modules/.installed
	@mkdir -p $(dir $@)
	@echo "  WEB   $(BUILD)/web"
	$(Q)node web/build.mjs $(BUILD)/web
	$(Q)touch $@

$(BUILD)/gen/console_assets.c: $(BUILD)/web/.built web/embed.mjs
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	$(Q)node web/embed.mjs $@ $(BUILD)/web

$(CONSOLE_OBJ): $(BUILD)/gen/console_assets.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: src/%.c | build-deps
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJS) $(LDLIBS)

deps:
	@scripts/install-deps.sh

unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

# A Connector/C client that drives the prepared-statement API for the integration tests.
$(BUILD)/tests/stmt_driver: tests/integration/stmt_driver.c | build-deps
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

# The lexer and policy check on stdin lines, compared with a real server by the tests.
$(BUILD)/tests/lex_driver: tests/integration/lex_driver.c src/sqllex.c src/sqlpolicy.c include/sqlpolicy.h
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ tests/integration/lex_driver.c src/sqllex.c src/sqlpolicy.c

integration: $(BUILD)/envproxy $(BUILD)/tests/stmt_driver $(BUILD)/tests/lex_driver
	ENVPROXY_BIN=$(abspath $(BUILD)/envproxy) STMT_DRIVER=$(abspath $(BUILD)/tests/stmt_driver) \
	    LEX_DRIVER=$(abspath $(BUILD)/tests/lex_driver) \
	    $(PYTHON) -m pytest -q tests/integration tests/compat $(PYTEST_ARGS)

# The robustness suite (tests/robust/robust.py) with full sizes and durations against a
# proxy of its own; the same script runs against a live proxy (docs/testing.md).
robust: $(BUILD)/envproxy $(BUILD)/tests/stmt_driver
	ROBUST_FULL=1 ENVPROXY_BIN=$(abspath $(BUILD)/envproxy) \
	    STMT_DRIVER=$(abspath $(BUILD)/tests/stmt_driver) \
	    $(PYTHON) -m pytest -q -s tests/integration/test_robust.py $(PYTEST_ARGS)
# The audit log's no-loss test at full size (make test sends 50,000 statements).
audit-load: $(BUILD)/envproxy
	AUDIT_LOAD_STATEMENTS=1000000 ENVPROXY_BIN=$(abspath $(BUILD)/envproxy) \
	    $(PYTHON) -m pytest -q tests/integration/test_audit_load.py \
	    -k test_no_statement_lost_with_64_clients $(PYTEST_ARGS)
# GUI tools driven in headless Chromium (slow, and large packages): not part of `make test`.
compat-gui: $(BUILD)/envproxy
	@scripts/install-deps.sh --gui
	ENVPROXY_BIN=$(abspath $(BUILD)/envproxy) $(PYTHON) -m pytest -q tests/gui $(PYTEST_ARGS)

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration

asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	    SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all unit integration

demo: deps
	$(MAKE) all
	@scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop


# libFuzzer on the SQL lexer and classifier (clang from Debian), on the lexer against an
# independent reading of quotes, comments and statement ends (fuzz_lexdiff.c), and on the
# other parsers a logged-in account reaches (fuzz_parsers.c). FUZZ_SECONDS bounds each run.
FUZZ_SECONDS ?= 60
fuzz:
	@mkdir -p build-fuzz/work build-fuzz/work-diff
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
	    tests/fuzz/fuzz_sqlpolicy.c src/sqllex.c src/sqlpolicy.c -o build-fuzz/fuzz_sqlpolicy
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
	    tests/fuzz/fuzz_lexdiff.c src/sqllex.c src/sqlpolicy.c -o build-fuzz/fuzz_lexdiff
	build-fuzz/fuzz_sqlpolicy -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    build-fuzz/work tests/fuzz/corpus
	build-fuzz/fuzz_lexdiff -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    build-fuzz/work-diff tests/fuzz/corpus
	@mkdir -p build-fuzz/work-parsers
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
	    tests/fuzz/fuzz_parsers.c src/vquery.c src/json.c src/router.c src/rewrite.c \
	    src/sqllex.c src/sqlpolicy.c -lm -o build-fuzz/fuzz_parsers
	build-fuzz/fuzz_parsers -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    build-fuzz/work-parsers tests/fuzz/corpus-parsers

PREFIX  ?= /usr/local
DESTDIR ?=
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/envproxy \
	    $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(BUILD)/envproxy $(DESTDIR)$(PREFIX)/bin/envproxy
	install -m 0644 proxy.example.yaml $(DESTDIR)$(PREFIX)/share/envproxy/proxy.example.yaml
	sed 's#/usr/local/bin/envproxy#$(PREFIX)/bin/envproxy#' scripts/envproxy.service \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/envproxy.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/envproxy.service

clean:
	rm -rf build build-asan build-fuzz

-include $(OBJS:.o=.d) $(UNIT_BINS:%=%.d)
