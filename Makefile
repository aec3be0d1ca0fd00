# sluice - build, run, test. `make run` and `make test` work on a fresh Debian 12 machine.
PYTHON   ?= /usr/bin/python3
CC       ?= cc
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_SHA  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

CFLAGS_COMMON := -std=c17 -Wall -Wextra -Werror -Wno-format-truncation -g -D_GNU_SOURCE -Isrc -I/usr/include/postgresql -I$(LLHTTP_INC) -DLLHTTP_STRICT_MODE=1 \
                 -DSLUICE_VERSION='"$(VERSION)"' -DSLUICE_GIT_SHA='"$(GIT_SHA)"'
CFLAGS   ?= -O2
LIBS     := -luv -ljansson -lsqlite3 -lpq -lfyaml -lpcre2-8 -lcurl -lssl -lcrypto -lpthread -lm

SRCS     := $(shell find src -name '*.c' | sort)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LLHTTP_C := $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c $(LLHTTP_SRC)/llhttp.c
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

# Two flavours: build/ (release, -O2) and build/asan/ (AddressSanitizer + UBSan).
define flavour
$(1)/obj/%.o: src/%.c $$(shell find src -name '*.h')
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_COMMON) $(2) -c $$< -o $$@
$(1)/llhttp/%.o: $$(LLHTTP_SRC)/%.c
	@mkdir -p $$(dir $$@)
	$$(CC) -std=c17 -O2 -g -I$$(LLHTTP_INC) -DLLHTTP_STRICT_MODE=1 $(2) -w -c $$< -o $$@
$(1)/sluice: $$(patsubst src/%.c,$(1)/obj/%.o,$$(SRCS)) $$(patsubst $$(LLHTTP_SRC)/%.c,$(1)/llhttp/%.o,$$(LLHTTP_C))
	$$(CC) $(2) -o $$@ $$^ $$(LIBS)
$(1)/libsluice.a: $$(patsubst src/%.c,$(1)/obj/%.o,$$(LIB_SRCS)) $$(patsubst $$(LLHTTP_SRC)/%.c,$(1)/llhttp/%.o,$$(LLHTTP_C))
	rm -f $$@; ar rcsP $$@ $$^
$(1)/tests/%: tests/unit/%.c $(1)/libsluice.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_COMMON) $(2) -Itests/unit -o $$@ $$< $(1)/libsluice.a -lcriterion $$(LIBS)
endef

ASAN_FLAGS := -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
$(eval $(call flavour,build,$(CFLAGS)))
$(eval $(call flavour,build/asan,$(ASAN_FLAGS)))

UNIT_BINS      := $(patsubst tests/unit/%.c,build/tests/%,$(UNIT_SRCS))
UNIT_BINS_ASAN := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRCS))

.PHONY: all deps run test layers unit unit-asan unit-pg e2e e2e-pg e2e-asan asan docs bench clean format format-check fuzz fuzz-smoke
all: build/sluice

deps:
	@sh scripts/install-deps.sh

run: deps build/sluice
	@mkdir -p var
	./build/sluice serve --config examples/sluice.yaml

asan: build/asan/sluice

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t --jobs 2; done

unit-asan: $(UNIT_BINS_ASAN)
	@set -e; for t in $(UNIT_BINS_ASAN); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t --jobs 2; done

# A throwaway PostgreSQL cluster for one command, on a free port (pg_createcluster would
# take 5432, which another run on the same machine may hold).
PG_VIRTUALENV = pg_virtualenv -t -c "-p $$($(PYTHON) -c 'import socket; s = socket.socket(); \
	s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# The PostgreSQL backend's unit tests, against a throwaway cluster that pg_virtualenv
# (postgresql-common) creates and removes around the command.
PG_UNIT_BINS := $(filter build/tests/test_store_pg%,$(UNIT_BINS))
unit-pg: $(PG_UNIT_BINS)
	$(PG_VIRTUALENV) sh -c 'set -e; for t in $(PG_UNIT_BINS); do echo "== $$t (PostgreSQL)"; \
	  SLUICE_TEST_PG="" $$t --jobs 2; done'

# The integration suites run E2E_JOBS tests at a time (pytest-xdist; tests/e2e/conftest.py
# says why that is safe). E2E_JOBS=0 runs them one by one.
E2E_JOBS ?= 2
E2E_PYTEST = $(PYTHON) -m pytest -q -p no:cacheprovider -n $(E2E_JOBS)

e2e: build/sluice
	SLUICE_BIN=$(CURDIR)/build/sluice $(E2E_PYTEST) tests/e2e $(PYTEST_ARGS)

# The same integration suite against PostgreSQL: a throwaway cluster (pg_virtualenv), a fresh
# database per test server (tests/e2e/conftest.py, SLUICE_TEST_STORE=postgres).
e2e-pg: build/sluice
	$(PG_VIRTUALENV) sh -c 'SLUICE_TEST_STORE=postgres SLUICE_BIN=$(CURDIR)/build/sluice \
	  $(E2E_PYTEST) tests/e2e $(PYTEST_ARGS)'

e2e-asan: build/asan/sluice
	SLUICE_BIN=$(CURDIR)/build/asan/sluice SLUICE_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(E2E_PYTEST) tests/e2e $(PYTEST_ARGS)

# Everything: format check, the layer check, unit tests (release and sanitized), a seeded fuzz
# run, integration tests (release and sanitized).
test: deps
	$(MAKE) format-check
	$(MAKE) layers
	$(MAKE) build/sluice build/asan/sluice
	$(MAKE) unit unit-asan
	$(MAKE) unit-pg
	$(MAKE) fuzz-smoke
	$(MAKE) e2e
	$(MAKE) e2e-asan
	$(MAKE) e2e-pg

docs: build/sluice
	./build/sluice config-docs > docs/configuration.md

bench: build/sluice
	sh scripts/install-deps.sh --bench
	bash bench/run.sh

# The layering is checked, not hoped for: the checker's own tests, then src/'s includes against
# the map in docs/architecture.md (its ```layers block).
layers:
	@$(PYTHON) -m unittest -q tests/layers/test_check_layers.py
	@$(PYTHON) scripts/check-layers.py

# Style is checked, not argued: .clang-format (clang-format 14).
format-check:
	@clang-format --dry-run --Werror $(SRCS) $(shell find src -name '*.h') $(UNIT_SRCS) tests/fuzz/*.c
	@echo "format: ok"

format:
	clang-format -i $(SRCS) $(shell find src -name '*.h') $(UNIT_SRCS) tests/fuzz/*.c

clean:
	rm -rf build

# A short, seeded fuzz run of the ingest parsers over the JSONTestSuite files (part of `make test`).
fuzz-smoke: build/fuzz/fuzz_ingest
	@mkdir -p build/fuzz/corpus && cp ../shared/suites/JSONTestSuite/test_parsing/*.json build/fuzz/corpus/ 2>/dev/null || true
	@./build/fuzz/fuzz_ingest -seed=1 -max_total_time=15 -rss_limit_mb=1024 build/fuzz/corpus \
	  > build/fuzz/smoke.log 2>&1 || { tail -40 build/fuzz/smoke.log; exit 1; }
	@tail -1 build/fuzz/smoke.log

# libFuzzer target for the ingest parsers (clang): make fuzz && ./build/fuzz/fuzz_ingest -max_total_time=60
fuzz: build/fuzz/fuzz_ingest
build/fuzz/fuzz_ingest: tests/fuzz/fuzz_ingest.c src/ingest/rows.c src/schema/schema.c src/schema/compile.c src/schema/checks.c src/schema/validate.c src/schema/formats.c src/util/utf8.c src/util/errors.c src/util/mem.c
	@mkdir -p $(dir $@)
	clang -std=c17 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -o $@ $^ -ljansson -lpcre2-8
