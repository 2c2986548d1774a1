# brokerd: the commands the README shows.
SWIFT        ?= swift
PYTHON       ?= python3
HOST         ?= 127.0.0.1
PORT         ?= 4222
ARGS         ?=
BROKERD_BIN  ?= $(CURDIR)/.build/debug/brokerd
BENCH_ARGS   ?=
IMAGE        ?= brokerd:dev

.PHONY: all build release run test unit-test integration-test bench microbench lint fmt clean image push

all: build

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release --product brokerd

## Run brokerd on 127.0.0.1:4222 (override with HOST=, PORT=, ARGS="-m 8222 -D").
run: release
	.build/release/brokerd -a $(HOST) -p $(PORT) $(ARGS)

## Unit tests (swift test), then the integration suite against brokerd and nats-server.
test: unit-test integration-test

unit-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

integration-test: build
	BROKERD_BIN=$(BROKERD_BIN) $(PYTHON) -m pytest Tests/Integration -q

## Side-by-side end-to-end benchmark against nats-server (BENCH_ARGS="--quick" for a one-minute smoke run).
bench:
	$(SWIFT) build -c release --product brokerd
	$(SWIFT) build -c release --product brokerd-bench
	$(PYTHON) Benchmarks/run_bench.py $(BENCH_ARGS)

## Micro-benchmarks (ordo-one/benchmark): parser, encoder and router, allocations per operation.
microbench:
	BROKERD_BENCHMARKS=1 $(SWIFT) package --disable-sandbox benchmark

lint:
	$(SWIFT) build -Xswiftc -warnings-as-errors

fmt:
	$(SWIFT) format --in-place --recursive Sources Tests Benchmarks

clean:
	rm -rf .build

## Container image (Dockerfile; deploy/ and docs/falco.md use it): make image push IMAGE=registry.example.com/brokerd:0.1
image:
	docker build -t $(IMAGE) .

push:
	docker push $(IMAGE)
