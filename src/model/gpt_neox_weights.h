// GPT-NeoX weights, loaded from a Hugging Face checkpoint directory. The
// projection matrices are handed to the backend, which repacks them into its
// own layout in the stored dtype (or the one asked for: f32, f16, bf16, int8);
// the mapped pages they came from are then dropped, so resident memory is
// about one copy of the weights. The input embedding stays mapped (rows are
// read on demand); biases and layer norms are widened to f32.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/checkpoint.h"
#include "distributed/shard.h"
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

class Communicator;

struct LoadOptions {
  std::optional<DType> weight_dtype;  // none: keep each matrix's stored dtype
  bool check_weights = false;         // scan every tensor for NaN/Inf before use
  // Split the model across these ranks (tensor parallelism); null or one rank: whole.
  Communicator* tensor_parallel = nullptr;
};

struct ModelWeights {
  std::unique_ptr<Checkpoint> checkpoint;  // owns the mappings the matrices point into
  WeightMatrix embed_in;                   // [vocab, hidden]
  WeightMatrix embed_out;                  // [vocab, hidden] (embed_in when tied)
  std::vector<float> final_ln_weight, final_ln_bias;  // [hidden]
  std::vector<LayerWeights> layers;
  DType dtype = DType::F32;                // the projection matrices' compute dtype
  size_t parameter_count = 0;
  size_t weight_bytes = 0;

  // Validates every name and shape against the config; throws naming the tensor.
  // With a shard of several ranks, only this rank's slices are packed.
  static ModelWeights load(const std::string& dir, const ModelConfig& config, Backend& backend,
                           const LoadOptions& options = {}, const Shard& shard = {});
};

}  // namespace flashneox
