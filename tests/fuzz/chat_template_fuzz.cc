// libFuzzer target: any bytes as a chat template, parsed and rendered over a
// fixed conversation. Renders or throws Error: never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "server/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::json context = {
      {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
      {"add_generation_prompt", true},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"}};
  try {
    flashneox::ChatTemplate t(std::string(reinterpret_cast<const char*>(data), size));
    t.render(context);
  } catch (const flashneox::Error&) {
  }
  return 0;
}
