// GPT-NeoX weights, loaded from a Hugging Face checkpoint directory. Matrices
// stay in the memory mapping in their stored dtype (no copy, no widening);
// the small vectors (biases, layer norms) are widened to f32.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "kernels/backend.h"

namespace flashneox {

struct LayerWeights {
  std::vector<float> ln1_weight, ln1_bias;  // [hidden] input_layernorm
  std::vector<float> ln2_weight, ln2_bias;  // [hidden] post_attention_layernorm
  WeightMatrix qkv;                          // [3 * hidden, hidden], rows as [heads, 3, head_size]
  std::vector<float> qkv_bias;               // [3 * hidden] or empty (attention_bias false)
  WeightMatrix dense;                        // [hidden, hidden]
  std::vector<float> dense_bias;             // [hidden] or empty
  WeightMatrix fc_in;                        // [intermediate, hidden] dense_h_to_4h
  std::vector<float> fc_in_bias;             // [intermediate]
  WeightMatrix fc_out;                       // [hidden, intermediate] dense_4h_to_h
  std::vector<float> fc_out_bias;            // [hidden]
};

struct ModelWeights {
  std::unique_ptr<Checkpoint> checkpoint;  // owns the mappings the matrices point into
  WeightMatrix embed_in;                   // [vocab, hidden]
  WeightMatrix embed_out;                  // [vocab, hidden] (embed_in when tied)
  std::vector<float> final_ln_weight, final_ln_bias;  // [hidden]
  std::vector<LayerWeights> layers;
  DType dtype = DType::F32;                // of the big matrices
  size_t parameter_count = 0;
  size_t weight_bytes = 0;

  // Validates every name and shape against the config; throws naming the tensor.
  static ModelWeights load(const std::string& dir, const ModelConfig& config);
};

}  // namespace flashneox
