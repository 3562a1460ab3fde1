// safetensors files, memory-mapped and validated; tensors are views into the
// mapping.
#pragma once

#include <string>

#include "io/tensor_file.h"

namespace flashneox {

// One .safetensors file. The constructor checks the whole header: its length,
// the JSON, every dtype and shape, and that the data ranges match the shapes,
// stay inside the file and do not overlap.
class SafetensorsFile : public TensorFile {
 public:
  explicit SafetensorsFile(const std::string& path);
};

}  // namespace flashneox
