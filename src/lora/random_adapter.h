// Random LoRA adapters of a model's shape on all four projections of every
// layer: for benchmarks, and for tests that need an adapter of a shape no
// fixture has.
#pragma once

#include <cstdint>
#include <memory>

#include "io/model_config.h"
#include "lora/lora_adapter.h"

namespace flashneox {

// A and B drawn from N(0, stddev²), scale alpha / r = 2; the same seed gives the same adapter.
std::shared_ptr<const LoraAdapter> random_lora_adapter(const ModelConfig& config, int rank, uint32_t seed,
                                                       float stddev = 0.01f, DType dtype = DType::F32);

}  // namespace flashneox
