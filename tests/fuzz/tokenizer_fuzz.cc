// libFuzzer target: any bytes through encode, and any ids through decode and
// the stream decoder. Built by `make fuzz` with clang's -fsanitize=fuzzer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {
const flashneox::Tokenizer& tokenizer() {
  static const auto t = flashneox::Tokenizer::from_file(FLASHNEOX_FUZZ_TOKENIZER);
  return *t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const flashneox::Tokenizer& t = tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto ids = t.encode(text);
    if (t.decode(ids) != flashneox::normalize(text, flashneox::Normalization::NFC)) std::abort();
  } catch (const flashneox::Error&) {
    if (flashneox::find_invalid_utf8(text) == std::string::npos) std::abort();  // valid text must encode
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 <= size; i += 2)
    ids.push_back(static_cast<int32_t>((data[i] | (data[i + 1] << 8)) % t.vocab_size()));
  flashneox::StreamDecoder stream(t);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  streamed += stream.finish();
  if (streamed != t.decode(ids)) std::abort();
  return 0;
}
