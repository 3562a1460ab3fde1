// A LoRA adapter cut to one rank's part of a tensor-parallel model, as LoRAX
// shards them: for the column-parallel projections (query_key_value,
// dense_h_to_4h) B keeps this rank's outputs; for the row-parallel ones
// (dense, dense_4h_to_h) A keeps this rank's inputs, so each rank's low-rank
// product is a partial sum that the layer's all-reduce completes.
#pragma once

#include <memory>

#include "distributed/shard.h"
#include "io/model_config.h"
#include "lora/lora_adapter.h"

namespace flashneox {

// Same uid and name; weights in the adapter's dtype, sliced bit for bit.
std::shared_ptr<const LoraAdapter> shard_lora_adapter(const LoraAdapter& full, const ModelConfig& config,
                                                      const Shard& shard);

}  // namespace flashneox
