// torch.save's checkpoint format (pytorch_model.bin): a zip archive holding
// data.pkl (the state dict, read by the restricted unpickler of
// torch_pickle.h, which never runs anything) and one data/<key> entry per
// storage; tensors are views into the mapped archive, checked like
// safetensors (dtype, shape against storage, truncation, overlaps). The
// legacy pre-1.6 format is refused with a way to convert it.
#pragma once

#include <string>

#include "io/tensor_file.h"

namespace flashneox {

class TorchFile : public TensorFile {
 public:
  explicit TorchFile(const std::string& path);  // throws Error naming the file and what is wrong
};

}  // namespace flashneox
