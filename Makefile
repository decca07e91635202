# retl - reverse ETL exporter.  See README.md.
#
#   make          build ./retl
#   make deps     install the Debian packages retl needs (when missing)
#   make test     deps + build + unit tests (ASan+UBSan) + integration tests
#   make demo     deps + build + a throwaway PostgreSQL and example syncs
#   make bench    the 1M-row benchmark (never part of make test)
#   make soak     the invariant scenarios on random seeds (SOAK_SECONDS, default 600)

CC      ?= cc
PYTHON  ?= /usr/bin/python3
CSTD     = -std=c17 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
PG_INC  := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
CPPFLAGS = -Isrc -Idestinations -I$(PG_INC)
CFLAGS  ?= -O2 -g
LIBS     = -lpq -lcurl -ljansson -lpcre2-8 -lsqlite3 -lxxhash -lcrypto -lmicrohttpd -lm

SRC      = $(wildcard src/*.c) $(wildcard destinations/*.c)
LIB_SRC  = $(filter-out src/main.c,$(SRC))
OBJ      = $(SRC:%.c=build/rel/%.o)
ASAN_OBJ = $(LIB_SRC:%.c=build/asan/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=build/asan/%)
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

DEB_PKGS = build-essential pkg-config libpq-dev libcurl4-openssl-dev libjansson-dev \
           libpcre2-dev libsqlite3-dev libxxhash-dev libssl-dev postgresql \
           postgresql-contrib python3 python3-pytest sqlite3 libmicrohttpd-dev
# Node.js and npm for Prism: Debian's, unless a Node.js with its own npm is
# there already (NodeSource's nodejs conflicts with Debian's npm package)
NODE_PKGS = nodejs npm
# the request-validating mock of the conformance test (tests/conformance)
PRISM_VERSION = 5.14.2
PRISM = build/prism/node_modules/.bin/prism
# every request retl sends to the emulators, replayed by the conformance test
REQUEST_LOG = build/requests.jsonl

.PHONY: all deps test unit integration demo bench soak prism clean retl-asan
# keep the ASan objects between runs (they are not throwaway intermediates)
.SECONDARY:
all: retl

retl: $(OBJ)
	$(CC) $(CFLAGS) -o $@ $(OBJ) $(LIBS)

build/rel/%.o: %.c $(wildcard src/*.h destinations/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

build/asan/%.o: %.c $(wildcard src/*.h destinations/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CPPFLAGS) -O1 -g $(SAN) -c -o $@ $<

build/asan/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CPPFLAGS) -O1 -g $(SAN) -o $@ $< $(ASAN_OBJ) $(LIBS)

# the binary under ASan+UBSan, for running the integration suite against it:
#   make retl-asan && RETL_BIN=build/asan/retl make integration
build/asan/retl: $(ASAN_OBJ) build/asan/src/main.o
	$(CC) $(CSTD) -O1 -g $(SAN) -o $@ $(ASAN_OBJ) build/asan/src/main.o $(LIBS)

retl-asan: build/asan/retl

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing $(NODE_PKGS)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t; done

$(PRISM):
	npm install --no-audit --no-fund --prefix build/prism @stoplight/prism-cli@$(PRISM_VERSION)

prism: $(PRISM)

integration: retl $(PRISM)
	rm -f $(REQUEST_LOG)
	RETL_REQUEST_LOG=$(CURDIR)/$(REQUEST_LOG) $(PYTHON) -m pytest -q tests/integration tests/emulators
	RETL_REQUEST_LOG=$(CURDIR)/$(REQUEST_LOG) $(PYTHON) -m pytest -q tests/conformance

test: deps
	$(MAKE) retl
	$(MAKE) unit
	$(MAKE) integration

demo: deps
	$(MAKE) retl
	$(PYTHON) tests/demo/demo.py

bench: deps
	$(MAKE) retl
	$(PYTHON) tests/bench/bench.py
	$(PYTHON) tests/bench/bench_hubspot.py
	$(PYTHON) tests/bench/bench_mailchimp.py
	$(PYTHON) tests/bench/bench_airtable.py

soak: deps
	$(MAKE) retl
	$(PYTHON) tests/soak.py

clean:
	rm -rf build retl
