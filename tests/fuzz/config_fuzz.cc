// libFuzzer target: any bytes as config.json. Loads or throws Error; a loaded
// config is self-consistent (the forward relies on these).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "io/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const flashneox::ModelConfig c =
        flashneox::ModelConfig::from_json_text(std::string(reinterpret_cast<const char*>(data), size), "config.json");
    if (c.hidden_size <= 0 || c.num_heads <= 0 || c.head_size * c.num_heads != c.hidden_size) std::abort();
    if (c.rotary_dims < 2 || c.rotary_dims > c.head_size || c.rotary_dims % 2) std::abort();
    if (c.max_position_embeddings <= 0 || c.eos_token_id < 0 || c.eos_token_id >= c.vocab_size) std::abort();
  } catch (const flashneox::Error&) {
  }
  return 0;
}
