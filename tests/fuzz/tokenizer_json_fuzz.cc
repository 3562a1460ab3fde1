// libFuzzer target: any bytes as tokenizer.json. Loads or throws Error; a
// loaded tokenizer encodes and decodes a fixed text without crashing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto t = flashneox::Tokenizer::from_json_text(std::string(reinterpret_cast<const char*>(data), size),
                                                        "tokenizer.json");
    const auto ids = t->encode("Hello, world! <|endoftext|> 123 \xc3\xa9");
    t->decode(ids);
  } catch (const flashneox::Error&) {
  }
  return 0;
}
