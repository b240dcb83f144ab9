# Two commands do all set-up on a fresh machine: `make run` and `make test`.
HTTP_ADDR ?= 127.0.0.1:8000
GRPC_ADDR ?= 127.0.0.1:9000
GO ?= go

.PHONY: build run test test-unit test-e2e test-real test-helm test-ui fuzz bench bench-core bench-registry bench-models bench-autoscale vet

build:
	$(GO) build -o bin/sluice ./cmd/sluice

# The platform in one process with an embedded broker, serving the examples;
# examples/greeter is built as its own binary, pushed as a code bundle and
# deployed (scripts/run.sh).
run:
	HTTP_ADDR=$(HTTP_ADDR) GRPC_ADDR=$(GRPC_ADDR) GO=$(GO) scripts/run.sh

# Every test tier: generated code current, the Helm chart rendered and
# validated offline, unit (race detector), short fuzz
# runs, end-to-end on the embedded broker, end-to-end on a real Apache Kafka
# broker over SASL_SSL and a real MinIO over HTTPS, end-to-end on a TLS +
# SCRAM embedded broker, real inference clients against sluice dev, and the
# load generator's smoke run against sluice dev, and the dashboard in a
# headless Chromium.
test:
	scripts/test.sh

vet:
	$(GO) vet ./...

test-unit:
	scripts/test.sh unit

test-e2e:
	scripts/test.sh e2e

test-real:
	scripts/test.sh real

test-helm:
	scripts/test.sh helm

test-ui:
	scripts/test.sh ui

fuzz:
	scripts/test.sh fuzz

# Side by side with Ray Serve: the same load generator (bench/cmd/sluice-load)
# against the same workloads on both. Not part of `make test`.
bench:
	scripts/bench.sh

# Core data-path benchmark (issue #2 figures) on the embedded and a real broker.
bench-core:
	scripts/bench-core.sh

# Registry push/pull of 512 MiB against a real MinIO (issue #4 figures).
bench-registry:
	scripts/bench-registry.sh

# Model serving benchmarks (issue #5 figures): multiplexing and cold start.
bench-models:
	scripts/bench-models.sh

# Autoscaling (issue #6 figures): the simulator against KEDA and Ray Serve
# defaults (plots in docs/img), then wake-up and spike on the embedded broker.
bench-autoscale:
	scripts/bench-autoscale.sh
