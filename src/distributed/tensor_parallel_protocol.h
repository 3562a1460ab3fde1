// What rank 0 tells the other ranks of a tensor-parallel job: load a model
// (with a fingerprint they check theirs against), take this LoRA adapter, run
// this forward on that cache, stop. Each message is one broadcast of bytes; rank 0's scheduler,
// sampler and HTTP server never leave it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "lora/lora_adapter.h"
#include "model/forward_batch.h"

namespace flashneox {

enum class TensorParallelCommand : uint8_t { Load = 1, Forward = 2, Stop = 3, Adapter = 4 };

struct TensorParallelLoad {
  std::string dir;           // the same path on every machine
  int weight_dtype = -1;     // a DType, or -1: as stored
  bool check_weights = false;
  int threads = 0;
  std::string fingerprint;   // rank 0's model_fingerprint()
};

// What the other ranks need besides the batch itself.
struct TensorParallelStep {
  uint64_t cache_serial = 0;  // which of rank 0's caches: a new one starts a new cache everywhere
  int num_blocks = 0, block_size = 0;
  DType kv_dtype = DType::F32;
  std::vector<uint64_t> adapter_uids;  // [num_seqs], 0: none; empty when no sequence has one
};

struct TensorParallelForward {
  TensorParallelStep step;
  ForwardBatch batch;  // its adapters travel as step.adapter_uids (sent before, by Adapter messages)
};

std::vector<char> encode(const TensorParallelLoad& load);
// The batch is encoded where it lies (rank 0 sends one every step).
std::vector<char> encode(const TensorParallelStep& step, const ForwardBatch& batch);
std::vector<char> encode_stop();
// A whole adapter (every rank cuts its own part), sent once before the first
// forward that uses it.
std::vector<char> encode(const LoraAdapter& adapter);
std::shared_ptr<LoraAdapter> decode_adapter(const std::vector<char>& message);
// Throws Error on a message that is not one of the above.
TensorParallelCommand command_of(const std::vector<char>& message);
TensorParallelLoad decode_load(const std::vector<char>& message);
TensorParallelForward decode_forward(const std::vector<char>& message);

// What every rank must agree on to run one model together: the program (its
// version and a hash of its own file), the world size and the model folder's
// config.json.
std::string model_fingerprint(const std::string& dir, int world_size);

}  // namespace flashneox
