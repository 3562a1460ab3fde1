// The GPT-NeoX forward, written once against the Backend seam (DESIGN §1–§2).
#pragma once

#include <deque>
#include <map>
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

  // Tensor parallelism: this process's part of the model (one rank of
  // several), or the whole (rank 0 of 1). Heads, MLP units and the LM head's
  // vocabulary are split; the KV cache holds this rank's heads only.
  const Shard& shard() const { return shard_; }
  bool tensor_parallel() const { return shard_.ranks > 1; }
  int local_heads() const { return config_.num_heads / shard_.ranks; }
  // With tensor parallelism: seconds in forward() and, of them, in MPI
  // (the batch's broadcast, all-reduces, the logits' gather), on this rank.
  struct ParallelTimes {
    int64_t forwards = 0;
    double forward_seconds = 0, communication_seconds = 0;
  };
  const ParallelTimes& parallel_times() const { return times_; }

  // Tensor parallelism: LoRA adapters cut to this rank's shard, by uid. Rank 0
  // cuts (and sends) each the first time a forward uses it; the other ranks
  // take them here. Every rank keeps the same ones (the newest kShardAdapters,
  // and any the current batch uses).
  static constexpr size_t kShardAdapters = 256;
  void add_shard_adapter(const LoraAdapter& full);
  const LoraAdapter* shard_adapter(uint64_t uid) const;  // throws Error when unknown

  // A KV cache shaped for this model (this rank's heads).
  std::unique_ptr<KvCache> make_cache(int num_blocks, int block_size, DType dtype = DType::F32) const;

  // Runs one batch: writes each new token's K/V into its slot, attends over
  // the cached prefix plus the new tokens, and returns the kept rows.
  // Throws Error on a malformed batch (ids, slots or block tables out of range).
  // With tensor parallelism every rank calls it with the same batch: rank 0
  // first sends the batch to the others (so they need not be told), each
  // rank embeds its slice of the vocabulary (an all-reduce joins them), the
  // partial sums meet in an all-reduce per layer (two with a sequential
  // residual), and the logits are gathered on rank 0 (empty elsewhere).
  // Activations live in `workspace` (grown to the batch if it is smaller);
  // without one, a workspace for this call alone.
  ForwardOutput forward(const ForwardBatch& batch, KvCache& cache, ForwardWorkspace* workspace = nullptr);

 private:
  GptNeoxModel(std::string dir, ModelConfig config, ModelWeights weights,
               std::unique_ptr<Backend> backend, Shard shard, Communicator* tensor_parallel);
  // The forward itself (forward() validates, and sends the batch to the other ranks).
  ForwardOutput run(const ForwardBatch& batch, KvCache& cache, const std::vector<int32_t>& cu_q,
                    ForwardWorkspace* workspace);
  void validate(const ForwardBatch& batch, const KvCache& cache,
                const std::vector<int32_t>& cu_q) const;
  // cos/sin [tokens, rotary_dims / 2] for every token at its position.
  void rotary_tables(const ForwardBatch& batch, const std::vector<int32_t>& cu_q,
                     std::vector<float>& cos, std::vector<float>& sin) const;

  std::string dir_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Backend> backend_;
  Shard shard_;
  Communicator* tp_ = nullptr;  // set when shard_.ranks > 1
  uint64_t tp_cache_serial_ = 0;  // rank 0: the newest cache the other ranks mirror
  ParallelTimes times_;
  std::map<uint64_t, std::shared_ptr<const LoraAdapter>> shard_adapters_;
  std::deque<uint64_t> shard_adapter_order_;  // oldest first
  void keep_shard_adapters(const ForwardBatch& batch);
};

}  // namespace flashneox
