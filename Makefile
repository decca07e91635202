# retl - reverse ETL exporter.  See README.md.
#
#   make          build ./retl
#   make deps     install the Debian packages building and testing need (when
#                 missing), saying which; PostgreSQL's server binaries without
#                 a system cluster
#   make build-deps  only what building ./retl needs (the Dockerfile's build stage)
#   make test     deps + build + unit tests (ASan+UBSan) + the fuzz corpora once
#                 (fuzz-replay) + integration tests
#   make demo     deps + build + a throwaway PostgreSQL, the emulators and the
#                 example project (retl.json + mappings/ at the top level)
#   make rootfs-check  the Docker image's runtime root rebuilt without Docker
#                 (debootstrap) running the example project against every
#                 emulator as the image's user (never part of make test)
#   make fresh-host-check  make deps, retl and demo as root in a fresh
#                 Debian 12 root: no system cluster, nothing left behind
#   make bench    the benchmark at 1M and 5M rows (BENCH_SIZES) against reference
#                 readers and a Python peer (never part of make test); fails
#                 when a printed target is missed
#   make soak     the invariant scenarios on random seeds (SOAK_SECONDS, default 600)
#   make mutate   the mutations of tests/mutations.txt, each against the tests
#                 named to catch it (MUTATE_ONLY="name ..." for some; never
#                 part of make test)
#   make fuzz     every libFuzzer harness of tests/fuzz for FUZZ_SECONDS each
#                 (default 1800; FUZZ_ONLY=<name> for one), see tests/fuzz/README.md

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

# what building ./retl needs: a compiler and the libraries' headers (the
# Dockerfile's build stage installs these and nothing else)
BUILD_PKGS = build-essential pkg-config libpq-dev libcurl4-openssl-dev libjansson-dev \
             libpcre2-dev libsqlite3-dev libxxhash-dev libssl-dev libmicrohttpd-dev
# PostgreSQL's server binaries (initdb, pg_ctl, psql) for tests/pgcluster.py,
# which starts its own throwaway clusters.  Not the `postgresql` package's
# system cluster: before installing, `make deps` puts
# create_main_cluster = false in $(PG_NOCLUSTER) (read through the
# include_dir of postgresql-common's createcluster.conf), so nothing listens
# on port 5432 afterwards.  postgresql-15 is Debian 12's server.
PG_SERVER_PKGS = postgresql-15
PG_NOCLUSTER   = /etc/postgresql-common/createcluster.d/retl-no-main-cluster.conf
# what testing adds: pytest, the sqlite3 shell (test_daemon), clang and
# llvm for the fuzz harnesses (make fuzz-replay)
TEST_PKGS = $(PG_SERVER_PKGS) python3 python3-pytest sqlite3 clang libclang-rt-dev llvm
# what `make bench` alone needs (its Python peer, tests/bench/peer.py); not
# in DEB_PKGS: the test suite must not depend on psycopg2
BENCH_PKGS = python3-psycopg2
# the bench's reference readers and its launcher that measures a command's
# own peak RSS (tests/bench/readers.c, rusage.c)
BENCH_TOOLS = build/bench/readers build/bench/rusage
# Node.js and npm for Prism: Debian's, unless a Node.js with its own npm is
# there already (NodeSource's nodejs conflicts with Debian's npm package)
NODE_PKGS = nodejs npm
# the request-validating mock of the conformance test (tests/conformance)
PRISM_VERSION = 5.14.2
PRISM = build/prism/node_modules/.bin/prism
# every request retl sends to the emulators, replayed by the conformance test
REQUEST_LOG = build/requests.jsonl

# libFuzzer harnesses (tests/fuzz): clang, the product built with coverage
# for the fuzzer and ASan+UBSan into build/fuzz; llvm-symbolizer (llvm)
# names the frames of a finding
FUZZ_CC      ?= clang
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_FLAGS    = -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
                -Wno-unused-parameter -Wno-unused-function $(CPPFLAGS) -O1 -g
FUZZ_SRC      = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES    = $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_OBJ      = $(LIB_SRC:%.c=build/fuzz/%.o)
FUZZ_BIN      = $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
FUZZ_SECONDS ?= 1800
FUZZ_ONLY    ?= $(FUZZ_NAMES)
FUZZ_FINDINGS = build/fuzz/findings
# per input: a schedule search, a cache probe or a decode that takes longer
# is a hang (timeout-*); more memory is a finding too (oom)
FUZZ_OPTS     = -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
# scratch projects and files of the harnesses: under build/, where a
# crashed harness's leftovers are cleaned by make clean
FUZZ_ENV      = ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                TMPDIR=$(CURDIR)/build/fuzz/tmp

.PHONY: all deps build-deps rootfs-check fresh-host-check test unit integration demo bench soak prism clean retl-asan \
        fuzz fuzz-build fuzz-replay mutate
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

build/fuzz/%.o: %.c $(wildcard src/*.h destinations/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h tests/unit/*.h) $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Itests/fuzz -Itests/unit $(FUZZ_SAN) -fsanitize=fuzzer \
	  -o $@ $< $(FUZZ_OBJ) $(LIBS)

build/asan/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CPPFLAGS) -O1 -g $(SAN) -o $@ $< $(ASAN_OBJ) $(LIBS)

# the binary under ASan+UBSan, for running the integration suite against it:
#   make retl-asan && RETL_BIN=build/asan/retl make integration
build/asan/retl: $(ASAN_OBJ) build/asan/src/main.o
	$(CC) $(CSTD) -O1 -g $(SAN) -o $@ $(ASAN_OBJ) build/asan/src/main.o $(LIBS)

retl-asan: build/asan/retl

# installs those of the Debian packages $(1) that are missing and says which
# (or that none is); $(2) is shell that may add more to $$missing; $(3) is
# shell run (as root, with $$SUDO) before the install
define apt_install_missing
@missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
done; \
$(2) \
if [ -z "$$missing" ]; then \
  echo "$@: all present:$(strip $(1))"; \
else \
  echo "$@: installing:$$missing"; \
  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
  $(3) \
  $$SUDO apt-get update -q && \
  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
fi
endef

# no main cluster when the PostgreSQL server is installed here (see
# PG_SERVER_PKGS); an existing cluster is left alone
define pg_no_main_cluster
case " $$missing " in *" $(PG_SERVER_PKGS) "*) \
  echo "$@: $(PG_SERVER_PKGS) without a system cluster: create_main_cluster = false in $(PG_NOCLUSTER)"; \
  $$SUDO mkdir -p $(dir $(PG_NOCLUSTER)) && \
  printf '%s\n' '# written by make deps (retl): no PostgreSQL cluster on port 5432' \
    'create_main_cluster = false' | $$SUDO tee $(PG_NOCLUSTER) >/dev/null || exit 1;; \
esac;
endef

build-deps:
	$(call apt_install_missing,$(BUILD_PKGS),,)

deps: build-deps
	$(call apt_install_missing,$(TEST_PKGS),command -v npm >/dev/null 2>&1 || missing="$$missing $(NODE_PKGS)";,$(pg_no_main_cluster))

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t; done

$(PRISM):
	npm install --no-audit --no-fund --prefix build/prism @stoplight/prism-cli@$(PRISM_VERSION)

prism: $(PRISM)

integration: retl $(PRISM)
	rm -f $(REQUEST_LOG)
	RETL_REQUEST_LOG=$(CURDIR)/$(REQUEST_LOG) $(PYTHON) -m pytest -q --durations=15 tests/integration tests/emulators
	# the sync tests again, every model read through a server-side cursor
	# (the path for warehouses without COPY ... TO STDOUT, README "Warehouses")
	RETL_TEST_READ=cursor RETL_REQUEST_LOG=$(CURDIR)/$(REQUEST_LOG) $(PYTHON) -m pytest -q tests/integration/test_sync.py
	# the sync and run-state tests again (kills at every commit point
	# included), every project's state in a PostgreSQL database (README
	# "The state store", PostgreSQL)
	RETL_TEST_STATE=postgresql $(PYTHON) -m pytest -q tests/integration/test_sync.py tests/integration/test_run_states.py
	RETL_REQUEST_LOG=$(CURDIR)/$(REQUEST_LOG) $(PYTHON) -m pytest -q tests/conformance

test: deps
	$(MAKE) retl
	$(MAKE) unit
	$(MAKE) fuzz-replay
	$(MAKE) integration

fuzz-build: $(FUZZ_BIN)

# every harness once over its seed corpus and saved regressions (seconds)
fuzz-replay: fuzz-build
	@mkdir -p build/fuzz/tmp; failed=""; for n in $(FUZZ_NAMES); do \
	  files=$$(find tests/fuzz/corpus/$$n tests/fuzz/regressions/$$n -type f 2>/dev/null | sort); \
	  [ -n "$$files" ] || { echo "fuzz-replay: no corpus for $$n"; failed="$$failed $$n"; continue; }; \
	  echo "== fuzz_$$n: $$(echo "$$files" | wc -l) inputs"; \
	  $(FUZZ_ENV) build/fuzz/fuzz_$$n $(FUZZ_OPTS) $$files >build/fuzz/replay_$$n.log 2>&1 || \
	    { grep -E 'FUZZ FINDING|ERROR|SUMMARY|^Running' build/fuzz/replay_$$n.log | tail -n 6; \
	      failed="$$failed $$n"; }; \
	done; \
	[ -z "$$failed" ] || { echo "fuzz-replay failed:$$failed (logs: build/fuzz/replay_<name>.log)"; exit 1; }

# each harness for FUZZ_SECONDS on a working copy of its corpus (new inputs
# stay in build/fuzz/work/<name>); findings go to build/fuzz/findings and
# fail the target
fuzz: deps
	$(MAKE) fuzz-build
	@mkdir -p $(FUZZ_FINDINGS) build/fuzz/tmp; fail=0; \
	for n in $(FUZZ_ONLY); do \
	  mkdir -p build/fuzz/work/$$n; \
	  echo "== fuzz_$$n for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_ENV) build/fuzz/fuzz_$$n $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
	    -dict=tests/fuzz/fuzz.dict -artifact_prefix=$(FUZZ_FINDINGS)/$$n- \
	    build/fuzz/work/$$n tests/fuzz/corpus/$$n \
	    >build/fuzz/fuzz_$$n.log 2>&1 || fail=1; \
	  grep -E '^(stat::|#[0-9]+.*DONE)' build/fuzz/fuzz_$$n.log | tail -n 8; \
	done; \
	ls $(FUZZ_FINDINGS)/* 2>/dev/null && { echo "fuzz: findings in $(FUZZ_FINDINGS) (logs: build/fuzz/fuzz_<name>.log)"; fail=1; }; \
	exit $$fail

build/bench/readers: tests/bench/readers.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -I$(PG_INC) -O2 -o $@ $< -lpq

build/bench/rusage: tests/bench/rusage.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -o $@ $<

demo: deps
	$(MAKE) retl
	$(PYTHON) tests/demo/demo.py

# the Docker image's runtime root rebuilt with debootstrap, the example
# project run in it as the image's user (tests/rootfs/check.sh; root only)
rootfs-check: deps
	$(call apt_install_missing,debootstrap,,)
	$(MAKE) retl
	sh tests/rootfs/check.sh

# make deps, make retl and make demo as root in a fresh Debian 12 root
# (debootstrap): no system PostgreSQL cluster, nothing left behind
# (tests/rootfs/fresh_host.sh; root only; not deps: it tests that)
fresh-host-check:
	$(call apt_install_missing,debootstrap,,)
	sh tests/rootfs/fresh_host.sh

# every script runs (each is long and measures something else); the target
# fails at the end when one missed a target or failed
bench: deps
	$(call apt_install_missing,$(BENCH_PKGS),,)
	$(MAKE) retl $(BENCH_TOOLS)
	@failed=""; for s in bench bench_hubspot bench_webhook bench_mailchimp bench_airtable bench_connect bench_state bench_whdiff; do \
	  $(PYTHON) tests/bench/$$s.py || failed="$$failed $$s"; \
	done; \
	[ -z "$$failed" ] || { echo "bench: missed a target or failed:$$failed"; exit 1; }

soak: deps
	$(MAKE) retl
	$(PYTHON) tests/soak.py

# builds and mutates its own copy of the tree (build/mutate/tree), so the
# working tree is never left mutated, even when interrupted
mutate: deps
	$(PYTHON) tests/mutate.py $(MUTATE_ONLY)

clean:
	rm -rf build retl
