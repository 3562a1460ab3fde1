# The user's commands. `make test` and `make build` install what is missing first.
BUILD ?= build
SAN_BUILD ?= build-sanitize
JOBS ?= $(shell nproc)

.PHONY: deps build test test-venv test-sanitize clean fuzz bench-tokenizer serve bench-peers

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Tests run one at a time: each already uses every core (OpenMP), and two
# multi-threaded processes on two cores stall each other at every barrier.
test: build test-venv
	@cd $(BUILD) && ctest --output-on-failure

# Python clients for the server tests, in a virtual environment in the build folder.
TEST_VENV = $(BUILD)/test-venv
test-venv: $(TEST_VENV)/.installed
$(TEST_VENV)/.installed: tests/server/requirements.txt
	@python3 -m venv $(TEST_VENV)
	@$(TEST_VENV)/bin/pip install -q --disable-pip-version-check -r tests/server/requirements.txt
	@touch $@

# The unit tests again, built with AddressSanitizer and UBSan.
test-sanitize: deps
	@cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLASHNEOX_SANITIZE=ON -DFLASHNEOX_BUILD_BENCH=OFF >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS)
	@cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L unit

# Serves the bundled model on http://127.0.0.1:8080 (playground at /).
serve: build
	./$(BUILD)/flashneox serve $(SERVE_ARGS)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)

# Coverage-guided fuzzing of the tokenizer with libFuzzer (clang), for FUZZ_SECONDS.
FUZZ_SECONDS ?= 20
TOKENIZER_SOURCES = src/tokenizer/unicode.cc src/tokenizer/byte_level.cc src/tokenizer/bpe.cc src/tokenizer/tokenizer.cc
fuzz: deps
	@mkdir -p $(BUILD)/fuzz/corpus
	clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -Isrc \
	  -DFLASHNEOX_FUZZ_TOKENIZER='"$(CURDIR)/tests/data/gpt-neox-20b-tokenizer.json"' \
	  tests/fuzz/tokenizer_fuzz.cc $(TOKENIZER_SOURCES) $$(pkg-config --cflags --libs libutf8proc) \
	  -o $(BUILD)/fuzz/tokenizer_fuzz
	$(BUILD)/fuzz/tokenizer_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=256 -print_final_stats=1 $(BUILD)/fuzz/corpus

# Side-by-side benchmark of the tokenizer against Hugging Face tokenizers.
BENCH_VENV ?= $(HOME)/.cache/flashneox/bench-venv
$(BENCH_VENV)/bin/python:
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt

bench-tokenizer: build $(BENCH_VENV)/bin/python
	$(BENCH_VENV)/bin/python bench/tokenizer_compare.py

# flashneox against llama.cpp and CTranslate2 on random Pythia-160M and -410M weights.
bench-peers: build $(BENCH_VENV)/bin/python
	CMAKE_ARGS="-DGGML_NATIVE=ON" $(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt -r bench/requirements-torch.txt
	$(BENCH_VENV)/bin/python bench/compare_peers.py --config bench/configs/pythia-160m.json
	$(BENCH_VENV)/bin/python bench/compare_peers.py --config bench/configs/pythia-410m.json
