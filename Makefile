# Convenience entry points; the scripts do the work (and install what is missing).
.PHONY: all build test bench demo fuzz clean
# Seconds each fuzz target runs under `make fuzz` (docs/fuzzing.md).
FUZZ_SECONDS ?= 60
all: build
build:
	./scripts/build.sh
test:
	./scripts/test.sh
bench:
	./scripts/install-deps.sh && ./scripts/build.sh && cmake --build build --target bench && bench/hub_bench.sh && bench/pg_bench.sh && bench/hub_scale_bench.sh
demo:
	./scripts/demo.sh
fuzz:
	./scripts/install-deps.sh && ./scripts/fuzz.sh all $(FUZZ_SECONDS)
clean:
	rm -rf build build-fuzz demo-out
