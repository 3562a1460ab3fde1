// libFuzzer target: any bytes as a regular expression or a JSON schema (the
// first byte picks), then text to follow with it. Compiling gives a grammar
// or a GrammarError; a grammar follows any text, and every token its mask
// allows from where the text leads really keeps it alive.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "structured/grammar.h"
#include "tokenizer/tokenizer.h"

namespace {
const flashneox::Tokenizer& tokenizer() {
  static const auto t = flashneox::Tokenizer::from_file(FLASHNEOX_FUZZ_TOKENIZER);
  return *t;
}
const flashneox::TokenTrie& trie() {
  static const flashneox::TokenTrie t(tokenizer(), tokenizer().vocab_size());
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t split = rest.find('\0');
  const std::string source = rest.substr(0, split);
  const std::string text = split == std::string::npos ? "" : rest.substr(split + 1);
  std::shared_ptr<flashneox::Grammar> g;
  try {
    if (data[0] % 2 == 0) {
      g = flashneox::Grammar::from_regex(source);
    } else {
      const auto schema = nlohmann::ordered_json::parse(source, nullptr, /*allow_exceptions=*/false);
      if (schema.is_discarded()) return 0;
      g = flashneox::Grammar::from_json_schema(schema);
    }
    const int32_t state = g->advance(g->start(), text);
    if (state == flashneox::Grammar::kDead) return 0;
    if (data[0] % 8 < 2) {  // masks cost a vocabulary walk: a quarter of the inputs
      const std::vector<uint64_t>& allowed = g->allowed_tokens(state, trie());
      for (int32_t id = 0; id < trie().vocab(); id += 97)
        if ((allowed[static_cast<size_t>(id) / 64] >> (id % 64)) & 1)
          if (g->advance(state, tokenizer().token_bytes(id)) == flashneox::Grammar::kDead) std::abort();
      if (!g->accepting(state) && !g->can_continue(state)) std::abort();  // live states can always finish
    }
  } catch (const flashneox::GrammarError&) {
  }
  return 0;
}
