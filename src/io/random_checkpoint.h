// Writes a checkpoint of random weights with the shape of a config.json, for
// benchmarks: speed does not depend on the values, so no download is needed.
#pragma once

#include <string>

#include "core/dtype.h"

namespace flashneox {

// Writes `dir`/config.json (a copy) and `dir`/model.safetensors with weights
// ~ U(-0.035, 0.035) (std 0.02, as transformers initialises), layer-norm
// weights 1 and biases 0, stored as `storage` (F32, F16 or BF16).
void write_random_checkpoint(const std::string& config_path, const std::string& dir, DType storage,
                             uint64_t seed = 1);

}  // namespace flashneox
