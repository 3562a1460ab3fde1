// libFuzzer target: any bytes as the body of POST /generate, /v1/completions
// or /v1/chat/completions (the first byte picks), through the same parsing
// the server does. Each body becomes a valid engine request or an ApiError
// with a 4xx status: never a crash, a 5xx or a request the engine refuses.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/api_error.h"
#include "server/generate_params.h"
#include "server/openai_params.h"

namespace {
const flashneox::Tokenizer& tokenizer() {
  static const auto t = flashneox::Tokenizer::from_file(FLASHNEOX_FUZZ_TOKENIZER);
  return *t;
}
const flashneox::ModelChatTemplate& chat() {
  static const flashneox::ModelChatTemplate t = [] {
    flashneox::ModelChatTemplate m;
    m.tmpl = std::make_unique<flashneox::ChatTemplate>(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{% endif %}");
    return m;
  }();
  return t;
}
void check(const flashneox::SamplingParams& p) { p.validate(); }  // must not throw for an accepted request
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int route = data[0] % 3;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if (route == 0) {
      check(flashneox::parse_generate_body(body, tokenizer()).request.params);
    } else if (route == 1) {
      check(flashneox::parse_completions_body(body, tokenizer()).request.params);
    } else {
      check(flashneox::parse_chat_body(body, tokenizer(), chat()).request.params);
    }
  } catch (const flashneox::ApiError& e) {
    if (e.status() < 400 || e.status() >= 500) std::abort();
  }
  return 0;
}
