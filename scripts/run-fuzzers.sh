#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan + UBSan) and runs each
# for FUZZ_SECONDS over its saved corpus and the inputs that once crashed it
# (tests/fuzz/regressions/<target>). Fails on the first finding; the input is
# left in BUILD/fuzz/crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}/fuzz
seconds=${FUZZ_SECONDS:-20}
targets=(tokenizer_fuzz safetensors_fuzz torch_file_fuzz config_fuzz tokenizer_json_fuzz request_fuzz chat_template_fuzz grammar_fuzz)
cmake -S tests/fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j "$(nproc)"
total=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  seeds=()
  [ -d "tests/fuzz/regressions/$t" ] && seeds=("tests/fuzz/regressions/$t")
  log="$build/$t.log"
  if ! "$build/$t" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 -artifact_prefix="$build/" \
      "$build/corpus/$t" "${seeds[@]}" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t found a failure (input saved under $build/)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  total=$((total + ${runs:-0}))
  echo "fuzz: $t: ${runs:-0} executions in ${seconds} s, no findings"
done
echo "fuzz: ${#targets[@]} targets, $total executions, no findings"
