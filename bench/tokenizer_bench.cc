// Encodes a text file with the flashneox tokenizer, one thread, and prints
// one JSON line: bytes, tokens, best seconds per encode, MB/s and tokens/s.
// Usage: tokenizer_bench TOKENIZER.json TEXT_FILE [REPEATS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER.json TEXT_FILE [REPEATS]\n", argv[0]);
    return 2;
  }
  try {
    const auto tokenizer = flashneox::Tokenizer::from_file(argv[1]);
    std::ifstream in(argv[2], std::ios::binary);
    if (!in) throw flashneox::Error(std::string("cannot open ") + argv[2]);
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 5;
    size_t tokens = tokenizer->encode(text).size();  // warm-up, as the peer gets
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      tokens = tokenizer->encode(text).size();
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      best = std::min(best, took.count());
    }
    std::printf("{\"engine\": \"flashneox\", \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, "
                "\"mb_per_s\": %.3f, \"tokens_per_s\": %.0f}\n",
                text.size(), tokens, best, text.size() / best / 1e6, tokens / best);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
}
