// Writes float32 tensors as a .safetensors file (for `flashneox logits`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flashneox {

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors);

}  // namespace flashneox
