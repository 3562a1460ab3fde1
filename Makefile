# The user's commands. `make test` and `make build` install what is missing first.
BUILD ?= build
SAN_BUILD ?= build-sanitize
JOBS ?= $(shell nproc)

.PHONY: deps build test test-venv test-wheel test-sanitize test-tsan test-aarch64 clean fuzz fuzz-api bench-tokenizer bench-grammar serve bench-peers bench-race bench-q4 soak

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Tests run one at a time: each already uses every core (the thread pool), and two
# multi-threaded processes on two cores stall each other at every barrier.
# The build for the tests also makes the Python package's extension, for the
# venv's Python (tests/python imports it from $(BUILD)/python).
test: deps test-venv
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFLASHNEOX_PYTHON=ON \
	  -DPython_EXECUTABLE=$(CURDIR)/$(TEST_VENV)/bin/python >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && ctest --output-on-failure

# Python clients for the server tests, in a virtual environment in the build folder.
TEST_VENV = $(BUILD)/test-venv
test-venv: $(TEST_VENV)/.installed
$(TEST_VENV)/.installed: tests/server/requirements.txt
	@python3 -m venv $(TEST_VENV)
	@$(TEST_VENV)/bin/pip install -q --disable-pip-version-check -r tests/server/requirements.txt
	@touch $@

# `pip install .` into a fresh venv (after `make test`, reusing its build's objects: the
# same CMake project, configured as pyproject.toml says) and the Python API's
# tests against the installed package.
WHEEL_VENV = $(BUILD)/wheel-venv
test-wheel: deps test-venv
	@rm -rf $(WHEEL_VENV) && python3 -m venv $(WHEEL_VENV)
	@CMAKE_GENERATOR="Unix Makefiles" $(WHEEL_VENV)/bin/pip install -q --disable-pip-version-check . \
	  -C build-dir=$(BUILD) -C cmake.define.FLASHNEOX_BUILD_TESTS=ON -C cmake.define.FLASHNEOX_BUILD_BENCH=ON
	@$(WHEEL_VENV)/bin/pip install -q --disable-pip-version-check pytest==9.2.0
	@cd /tmp && FLASHNEOX_BINARY=$(CURDIR)/$(BUILD)/flashneox $(CURDIR)/$(WHEEL_VENV)/bin/python -m pytest -q \
	  -p no:cacheprovider $(CURDIR)/tests/python
	@$(WHEEL_VENV)/bin/python -c "import flashneox, os; assert '$(WHEEL_VENV)' in flashneox.__file__, flashneox.__file__"
	@# The build folder back to the test venv's Python, for the next `make build` or `make test`.
	@cmake -S . -B $(BUILD) -DPython_EXECUTABLE=$(CURDIR)/$(TEST_VENV)/bin/python >/dev/null

# Sanitizer builds at -O1 with line tables only: Boost.Beast's templates under
# ASan+UBSan at -O2 -g take minutes a file, and the tests barely notice.
SAN_FLAGS = -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DFLASHNEOX_BUILD_BENCH=OFF

# The unit tests again, built with AddressSanitizer and UBSan. The code whose
# speed they do not notice (HTTP, JSON, command line, parsing, the tests' own)
# at -O0: the build takes 7.5 minutes on two cores instead of 12, the tests 6.5 instead of 5.7.
# The kernels at -O2, where GCC vectorises (at -O1 GELU alone was a third of a model test).
SAN_OPT_LEVELS = "-DFLASHNEOX_UNOPTIMIZED=server;cli;io;lora;distributed;tests" -DFLASHNEOX_OPTIMIZED=kernels
test-sanitize: deps
	@cmake -S . -B $(SAN_BUILD) $(SAN_FLAGS) -DFLASHNEOX_SANITIZE=ON $(SAN_OPT_LEVELS) >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS) --target unit_tests
	@cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L unit

# The engine tests and the server's end-to-end tests again, built with
# ThreadSanitizer, with two compute threads (the thread pool is ours, so TSan
# sees its hand-offs too). Any report fails the run.
TSAN_BUILD ?= build-tsan
# (Timing-bound cases are left out: under TSan one token takes ~10x as long.
# Of structured output, the mixed batch: the rest is one thread's work.)
# The long batch-invariance and prefix-caching cases take minutes under TSan
# and show it nothing the others do not (the same forwards on the same pool;
# the engine's bookkeeping is one thread's).
TSAN_ENGINE_SKIP = Engine.BatchInvariant*:Engine.AdaptersStayBatchInvariant*:Engine.Prefix*:Engine.ABurst*:Engine.CancellationAndPreemption*
# (The sanitizer builds have no MPI: the tensor-parallel server tests run in `make test`.)
# Nor the four whose minutes under TSan go to the model's arithmetic (prefix
# caching, speculation, adapters against the CLI and merged adapters against
# numpy): their requests reach the engine as every other test's do.
TSAN_SERVER_TESTS = not playground and not slow_connections and not memory_stays_flat and not connection_limit \
  and not sigterm_lets_short_requests and not schemathesis and not tensor_parallel \
  and not prefix_caching_reuses and not speculation_keeps and not adapters_match_the_cli \
  and not every_strategy_matches and (not test_structured_output or constrained_and_free)
test-tsan: deps test-venv
	@cmake -S . -B $(TSAN_BUILD) $(SAN_FLAGS) -DFLASHNEOX_TSAN=ON -DFLASHNEOX_OPTIMIZED=kernels >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target flashneox engine_test parallel_test
	@rm -rf $(TSAN_BUILD)/tsan-reports && mkdir -p $(TSAN_BUILD)/tsan-reports
	@export OMP_NUM_THREADS=2 TSAN_OPTIONS="log_path=$(CURDIR)/$(TSAN_BUILD)/tsan-reports/report second_deadlock_stack=1"; \
	  $(TSAN_BUILD)/tests/parallel_test --gtest_brief=1 && \
	  $(TSAN_BUILD)/tests/engine_test --gtest_brief=1 --gtest_filter=-$(TSAN_ENGINE_SKIP) && \
	  FLASHNEOX_BINARY=$(CURDIR)/$(TSAN_BUILD)/flashneox $(TEST_VENV)/bin/python -m pytest -q -p no:cacheprovider \
	    tests/server -k "$(TSAN_SERVER_TESTS)"
	@if ls $(TSAN_BUILD)/tsan-reports/report* >/dev/null 2>&1; then cat $(TSAN_BUILD)/tsan-reports/report*; \
	  echo "ThreadSanitizer reported the races above" >&2; exit 1; fi
	@echo "ThreadSanitizer: no reports"

# The aarch64 cross build (Debian's g++-aarch64-linux-gnu and arm64 libraries)
# and, under qemu-user, the tests whose results depend on the architecture:
# kernels, thread pool, dtypes, file parsing, tokenizer, model parity, LoRA
# and the engine, on the portable kernels (the HTTP, grammar and command-line
# tests hold nothing architecture-specific and run natively). The long engine
# batch-invariance and prefix-caching cases are left out (architecture-
# independent scheduling, many minutes under emulation); CI also trims the parity tests to one
# batching mode per fixture (AARCH64_EXCLUDE in .ci/run). The server and the command line, which
# no test here runs, are compiled at -O0.
AARCH64_BUILD ?= build-aarch64
AARCH64_EXCLUDE ?= BatchInvariant|Engine.Prefix|Engine.ABurst|Engine.CancellationAndPreemption
AARCH64_TESTS = dtype_test config_test safetensors_test torch_checkpoint_test kernels_test parallel_test \
  kv_cache_test parity_test lora_test tokenizer_test engine_test
test-aarch64: deps
	@./scripts/install-deps.sh --aarch64
	@cmake -S . -B $(AARCH64_BUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
	  -DFLASHNEOX_MIMALLOC=OFF -DFLASHNEOX_BUILD_BENCH=OFF "-DFLASHNEOX_UNOPTIMIZED=server;cli;distributed" >/dev/null
	@cmake --build $(AARCH64_BUILD) -j $(JOBS) --target flashneox $(AARCH64_TESTS)
	@file $(AARCH64_BUILD)/flashneox | grep -q "ARM aarch64" || { echo "not an aarch64 binary" >&2; exit 1; }
	@# (Tests of executables not built register as unlabelled *_NOT_BUILT placeholders: -L unit skips them.)
	@cd $(AARCH64_BUILD) && ctest --output-on-failure -L unit -E "$(AARCH64_EXCLUDE)"

# The long soak (10 minutes, 1,000 connections); `make test` runs 60 s of it.
SOAK_SECONDS ?= 600
soak: build test-venv
	$(TEST_VENV)/bin/python bench/soak.py --seconds $(SOAK_SECONDS) --connections 1000

# schemathesis against a live server from GET /openapi.json, longer than the
# run in `make test` (API_FUZZ_EXAMPLES examples per operation and phase).
API_FUZZ_EXAMPLES ?= 300
fuzz-api: build test-venv
	@FLASHNEOX_API_FUZZ_EXAMPLES=$(API_FUZZ_EXAMPLES) FLASHNEOX_BINARY=$(CURDIR)/$(BUILD)/flashneox \
	  $(TEST_VENV)/bin/python -m pytest -q -s -p no:cacheprovider tests/server/test_openapi.py

# What constrained decoding costs per token against a free decode step (bundled model).
bench-grammar: build
	./$(BUILD)/bench/grammar_bench models/neox-shakespeare 41

# Serves the bundled model on http://127.0.0.1:8080 (playground at /).
serve: build
	./$(BUILD)/flashneox serve $(SERVE_ARGS)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)

# Coverage-guided fuzzing (libFuzzer, clang) of every parser a user's bytes
# reach: tokenizer, safetensors header and index, config.json, tokenizer.json,
# request bodies of /generate and the OpenAI routes, chat templates, regular
# expressions and JSON schemas (grammar_fuzz).
# FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 20
fuzz: deps
	@BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/run-fuzzers.sh

# Side-by-side benchmark of the tokenizer against Hugging Face tokenizers.
# llama-cpp-python builds llama.cpp for this CPU, without its multimodal
# library (LLAVA_BUILD: hundreds of files, an hour on two cores, unused here).
BENCH_VENV ?= $(HOME)/.cache/flashneox/bench-venv
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=ON -DLLAVA_BUILD=OFF
$(BENCH_VENV)/bin/python:
	python3 -m venv $(BENCH_VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt

bench-tokenizer: build $(BENCH_VENV)/bin/python
	$(BENCH_VENV)/bin/python bench/tokenizer_compare.py

# flashneox against llama.cpp and CTranslate2 on random Pythia-160M and -410M weights.
bench-peers: build $(BENCH_VENV)/bin/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt -r bench/requirements-torch.txt
	$(BENCH_VENV)/bin/python bench/compare_peers.py --config bench/configs/pythia-160m.json
	$(BENCH_VENV)/bin/python bench/compare_peers.py --config bench/configs/pythia-410m.json

# flashneox against llama.cpp by context length (batch 1; 1,984 + 64 new fill
# the 2,048 positions) and by batch (prompt
# 128), Pythia-160M shape, f16 and 8-bit; RACE_ROUNDS alternating rounds.
RACE_ROUNDS ?= 2
RACE = $(BENCH_VENV)/bin/python bench/compare_peers.py --config bench/configs/pythia-160m.json --rounds $(RACE_ROUNDS) --new 64
bench-race: build $(BENCH_VENV)/bin/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt
	for p in 128 512 1984; do $(RACE) --prompt $$p --engines flashneox-f16,llama-f16,flashneox-int8,llama-q8; done
	for b in 8 32; do $(RACE) --prompt 128 --batch $$b --engines flashneox-f16,llama-f16; done

# 4-bit: flashneox q4 against llama.cpp Q4_0 (gguf-py, every matrix Q4_0) and
# Q4_K_M (llama.cpp's quantizer), Pythia-160M, -410M and -1B shapes, prompt 512.
bench-q4: build $(BENCH_VENV)/bin/python
	for c in 160m 410m 1b; do $(BENCH_VENV)/bin/python bench/compare_peers.py --config bench/configs/pythia-$$c.json \
	  --rounds $(RACE_ROUNDS) --new 64 --prompt 512 --engines flashneox-q4,llama-q4,llama-q4km; done
