// config.json of a GPTNeoXForCausalLM checkpoint, in both the legacy Pythia
// form (rotary_pct, rotary_emb_base, rope_scaling.type) and the transformers 5
// form (rope_parameters / rope_theta / partial_rotary_factor).
#pragma once

#include <string>

namespace flashneox {

enum class Activation { GeluErf, GeluTanh };
enum class RopeScaling { None, Linear, Dynamic };

struct ModelConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int num_heads = 0;
  int num_layers = 0;
  int intermediate_size = 0;
  int head_size = 0;       // hidden_size / num_heads
  int rotary_dims = 0;     // int(head_size * rotary_pct), even
  double rotary_base = 10000.0;
  RopeScaling rope_scaling = RopeScaling::None;
  double rope_factor = 1.0;
  int max_position_embeddings = 2048;
  double layer_norm_eps = 1e-5;
  bool parallel_residual = true;
  bool tie_word_embeddings = false;
  bool attention_bias = true;
  Activation activation = Activation::GeluErf;
  std::string activation_name = "gelu";
  int bos_token_id = 0;
  int eos_token_id = 0;

  // Parses and validates; throws Error naming the file and the field.
  static ModelConfig from_json_text(const std::string& text, const std::string& origin);
  static ModelConfig from_file(const std::string& path);
};

}  // namespace flashneox
