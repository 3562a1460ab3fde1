// The GPT-NeoX forward, written once against the Backend seam (DESIGN §1–§2).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cache/kv_cache.h"
#include "io/model_config.h"
#include "kernels/backend.h"
#include "model/forward_batch.h"
#include "model/forward_workspace.h"
#include "model/gpt_neox_weights.h"

namespace flashneox {

class GptNeoxModel {
 public:
  // Loads config.json and the safetensors weights of a checkpoint directory.
  static std::unique_ptr<GptNeoxModel> load(const std::string& dir,
                                            std::unique_ptr<Backend> backend = nullptr,
                                            const LoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  Backend& backend() { return *backend_; }
  const char* backend_name() const { return backend_->name(); }
  const std::string& directory() const { return dir_; }

  // A KV cache shaped for this model.
  std::unique_ptr<KvCache> make_cache(int num_blocks, int block_size, DType dtype = DType::F32) const;

  // Runs one batch: writes each new token's K/V into its slot, attends over
  // the cached prefix plus the new tokens, and returns the kept rows.
  // Throws Error on a malformed batch (ids, slots or block tables out of range).
  // Activations live in `workspace` (grown to the batch if it is smaller);
  // without one, a workspace for this call alone.
  ForwardOutput forward(const ForwardBatch& batch, KvCache& cache, ForwardWorkspace* workspace = nullptr);

 private:
  GptNeoxModel(std::string dir, ModelConfig config, ModelWeights weights,
               std::unique_ptr<Backend> backend);
  void validate(const ForwardBatch& batch, const KvCache& cache,
                const std::vector<int32_t>& cu_q) const;
  // cos/sin [tokens, rotary_dims / 2] for every token at its position.
  void rotary_tables(const ForwardBatch& batch, const std::vector<int32_t>& cu_q,
                     std::vector<float>& cos, std::vector<float>& sin) const;

  std::string dir_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Backend> backend_;
};

}  // namespace flashneox
