// GPT-NeoX weights, loaded from a Hugging Face checkpoint directory. The
// projection matrices are handed to the backend, which repacks them into its
// own layout in the stored dtype (or the one asked for: f32, f16, bf16, int8);
// the mapped pages they came from are then dropped, so resident memory is
// about one copy of the weights. The input embedding stays mapped (rows are
// read on demand); biases and layer norms are widened to f32.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/checkpoint.h"
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

// Which part of the model a rank holds (DESIGN §6, as the seed's TP layers
// split it): whole heads of query_key_value and the matching columns of
// dense, a slice of dense_h_to_4h's rows and dense_4h_to_h's columns, a slice
// of the vocabulary's LM-head rows. Row-parallel biases live on rank 0 only.
struct Shard {
  int rank = 0, ranks = 1;
  int64_t begin(int64_t n) const { return n * rank / ranks; }  // even splits (checked at load)
  int64_t end(int64_t n) const { return n * (rank + 1) / ranks; }
  // The vocabulary need not divide: ceil-sized pieces, the last one shorter.
  int64_t vocab_begin(int64_t v) const { return std::min(v, (v + ranks - 1) / ranks * rank); }
  int64_t vocab_end(int64_t v) const { return std::min(v, (v + ranks - 1) / ranks * (rank + 1)); }
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
