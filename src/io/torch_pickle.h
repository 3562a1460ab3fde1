// A restricted unpickler for torch.save's data.pkl of a state dict. It knows
// the opcodes pickle protocols 2-4 use for dicts, tuples, strings and
// numbers, and exactly these globals: collections.OrderedDict,
// torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the
// torch.*Storage types. Anything else (another global, an opcode outside that
// set) is refused with a message naming it, before anything runs: nothing in
// a checkpoint is ever called.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace flashneox {

// One tensor of the state dict: where its elements are in the archive.
struct TorchTensorRef {
  std::string storage_key;   // data/<key> in the archive
  std::string dtype_text;    // "F32", "F16", "BF16", "BOOL", "I64", ... (safetensors' names)
  size_t element_bytes = 0;
  int64_t storage_numel = 0;
  int64_t offset = 0;        // in elements
  std::vector<int64_t> shape, stride;
};

// The (name, tensor) pairs of the top-level dict, in file order. Throws
// Error (prefixed with `where`) for anything else.
std::vector<std::pair<std::string, TorchTensorRef>> unpickle_state_dict(const unsigned char* data, size_t size,
                                                                       const std::string& where);

}  // namespace flashneox
