# Convenience entry points; the scripts do the work (and install what is missing).
.PHONY: all build test bench demo clean
all: build
build:
	./scripts/build.sh
test:
	./scripts/test.sh
bench:
	./scripts/install-deps.sh && ./scripts/build.sh && cmake --build build --target bench && bench/hub_bench.sh && bench/pg_bench.sh && bench/hub_scale_bench.sh
demo:
	./scripts/demo.sh
clean:
	rm -rf build demo-out
