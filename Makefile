# Every target sets itself up: a fresh machine needs only python3 (with venv) and a C compiler.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
SOURCES := $(shell find csrc engine -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.pyx' 2>/dev/null) setup.py pyproject.toml

.PHONY: all build test test-quick sim bench bench-light bench-smoke bench-check demo lint clean sanitize \
	test-crash test-faults mutate mutate-broad soak bench-sync bench-prune

all: build

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(VENV)/bin/python $(SOURCES)
	$(PIP) install --quiet setuptools wheel "Cython>=3.0" "pybind11>=2.11" "numpy>=1.26"
	$(PIP) install --quiet --no-build-isolation -e ".[test]"
	$(PY) setup.py -q build_ext --inplace
	touch $(STAMP)

build: $(STAMP)

# The full suite, benchmark smoke runs included (they are ordinary tests marked bench_smoke).
test: build
	$(PY) -m pytest -q tests bench -p no:cacheprovider

test-quick: build
	$(PY) -m pytest -q -x tests -m "not slow"

# Kernels and end-to-end TPS (README "Benchmarks"): JSON reports and PNG plots in bench/results/.
# BENCH_DURATION / BENCH_RATE set the TPS run; `engine bench compare` gates on the JSON files.
BENCH_DURATION ?= 30
BENCH_RATE ?= max
# The sm2-sm3 TPS run (its ed25519-blake3 baseline runs at the same rate, in the same run).
BENCH_SM_RATE ?= 2000
bench: build
	mkdir -p bench/results
	$(PY) -m pytest bench --benchmark-enable --benchmark-only -s -q \
		--benchmark-json=bench/results/pytest-benchmark.json
	$(PY) -m engine bench kernels --json bench/results/kernels.json
	$(PY) -m engine bench light --json bench/results/light.json
	$(PY) -m engine bench tps --validators 4 --duration $(BENCH_DURATION) --tx-bytes 250 \
		--rate $(BENCH_RATE) --json bench/results/tps.json --plot bench/results/tps.png
	$(PY) -m engine bench tps --validators 4 --duration $(BENCH_DURATION) --tx-bytes 250 \
		--rate $(BENCH_SM_RATE) --crypto sm2-sm3 --json bench/results/tps-sm2-sm3.json

# The light-client figures alone (README "Verifying another chain"), ~1 min.
bench-light: build
	mkdir -p bench/results
	$(PY) -m engine bench light --json bench/results/light.json

bench-smoke: build
	$(PY) -m pytest -q bench -m bench_smoke
	$(PY) -m pytest -q tests/bench_cli

# Joining and pruning (README "Joining and pruning"): state sync vs block sync from genesis vs
# the verify+apply+store ceiling on a chain of BENCH_SYNC_BLOCKS blocks and BENCH_SYNC_KEYS
# keys (~4 min), then bench-prune. `make test` runs a tiny smoke of both (bench/test_bench_sync.py).
BENCH_SYNC_BLOCKS ?= 2000
BENCH_SYNC_KEYS ?= 100000
bench-sync: build
	mkdir -p bench/results
	$(PY) -m engine bench sync --blocks $(BENCH_SYNC_BLOCKS) --keys $(BENCH_SYNC_KEYS) \
		--json bench/results/sync.json
	$(MAKE) bench-prune

# Store file size under a steady load with retain_blocks = 100 for PRUNE_DURATION s (10 min).
PRUNE_DURATION ?= 600
bench-prune: build
	mkdir -p bench/results
	$(PY) -m engine bench prune --duration $(PRUNE_DURATION) --rate 500 --retain-blocks 100 \
		--json bench/results/prune.json --plot bench/results/prune.png

# Performance thresholds (README "Benchmarks", engine/benchmarks/targets.py), outside `make
# test`: `engine bench kernels` once per native path this CPU supports (BENCH_CHECK_ISAS="avx2
# portable" to choose), then every kernel against its threshold for that path; exits 1 naming
# each kernel below it. A few minutes per path.
bench-check: build
	mkdir -p bench/results
	isas="$${BENCH_CHECK_ISAS:-$$($(PY) -c 'import engine; print(" ".join(engine.native_info()["isa_supported"]))')}"; \
	for isa in $$isas; do \
		ENGINE_FORCE_ISA=$$isa $(PY) -m engine bench kernels --json bench/results/kernels-$$isa.json || exit 1; \
	done; \
	$(PY) -m engine.benchmarks.targets $$(for isa in $$isas; do echo bench/results/kernels-$$isa.json; done)

# Mutation check (docs/mutation.md), outside `make test`: each deliberate bug in tools/mutate.py
# must make at least one of its tests fail; exits 1 if one survives.
mutate: build
	$(PY) tools/mutate.py

# Broader run with cosmic-ray over MUTATE_MODULES (default: the mempool; engine/consensus and
# engine/store take hours). Results in .cosmic-ray/; survivors judged in docs/mutation.md.
# MUTATE_ARGS="--sample 300 --seed 19" runs a fixed-seed sample of each module's mutants.
MUTATE_MODULES ?= engine/mempool.py
MUTATE_ARGS ?=
mutate-broad: build
	$(PIP) install --quiet "cosmic-ray>=8.3"
	$(PY) tools/mutate_broad.py $(MUTATE_ARGS) $(MUTATE_MODULES)

# 10,000 seeds each for 4, 7 and 10 validators with the most Byzantine power below 1/3.
# ENGINE_SIM_SEED=S make sim replays one seed; ENGINE_SIM_SEEDS=N changes the count.
sim: build
	for vb in 4:1 7:2 10:3; do $(PY) -m engine sim --validators $${vb%:*} --byzantine $${vb#*:} \
		--seeds $${ENGINE_SIM_SEEDS:-10000} --jobs 2 || exit 1; done
	# ... and with validator-set changes (joins, leaves, power shifts, a removed validator
	# that keeps sending): 3 changes in 8 heights per seed.
	for vb in 4:1 7:2; do $(PY) -m engine sim --validators $${vb%:*} --byzantine $${vb#*:} \
		--heights 8 --valset-changes 3 --seeds $${ENGINE_SIM_SEEDS:-10000} --jobs 2 \
		|| exit 1; done

# CRYPTO=sm2-sm3 make demo: the same network on the SM2/SM3 suite.
demo: build
	$(PY) -m engine demo $(if $(CRYPTO),--crypto $(CRYPTO))

# 4 validators under load for SOAK_DURATION s (default 20 min) with kills, pauses and the
# attacks of issue 13; RSS and open fds per node in soak-results/soak.{csv,png} (README
# "Security notes"). Not part of `make test`. CRYPTO=sm2-sm3 make soak: on the SM2/SM3 suite.
SOAK_DURATION ?= 1200
soak: build
	$(PY) -m engine.faults.soak --duration $(SOAK_DURATION) --out soak-results \
		$(if $(CRYPTO),--crypto $(CRYPTO))

lint: build
	$(PY) -m pip install --quiet ruff mypy
	$(PY) -m ruff check engine tests bench
	$(PY) -m mypy engine

# Native code under AddressSanitizer + UBSan (see README, "Memory safety").
sanitize: build
	ENGINE_SANITIZE=1 $(PY) setup.py -q build_ext --inplace --force
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
		$(PY) -m pytest -q -x tests -m "not slow" -p no:cacheprovider; rc=$$?; \
		$(PY) setup.py -q build_ext --inplace --force; exit $$rc

# Storage crash and corruption trials, extended (make test runs 20 kills and 150 flips).
test-crash: build
	ENGINE_CRASH_TRIALS=$${ENGINE_CRASH_TRIALS:-200} ENGINE_CORRUPTION_TRIALS=$${ENGINE_CORRUPTION_TRIALS:-1000} \
		$(PY) -m pytest -q -s tests/store/test_crash.py tests/store/test_corruption.py \
		tests/node/test_sync_crash.py -p no:cacheprovider

# Every fault-injection scenario in tests/scenarios/ (README "Fault injection"; make test runs
# the quick ones). Namespace scenarios need root, ip and nft (.ci/run installs them).
test-faults: build
	ENGINE_FAULTS_ALL=1 $(PY) -m pytest -q -rxs tests/faults -p no:cacheprovider

clean:
	rm -rf build *.egg-info engine/*.so engine/**/*.so .pytest_cache
