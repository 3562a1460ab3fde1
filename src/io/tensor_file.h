// A named tensor inside a memory-mapped weights file, and such a file
// (safetensors, or torch.save's zip): the common ground of the loaders.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace flashneox {

struct TensorView {
  std::string name;
  std::string file;             // where it came from, for error messages
  DType dtype = DType::F32;     // meaningful only when `usable`
  bool usable = true;           // false for dtypes flashneox does not compute with (BOOL, I64, ...)
  std::string dtype_text;       // as the file spells it
  std::vector<int64_t> shape;
  const void* data = nullptr;   // inside the mapping; any alignment
  size_t nbytes = 0;

  int64_t numel() const;
  std::string shape_string() const;  // "[3, 4]"
};

// A mapped file of named tensors (safetensors, or torch.save's zip).
class TensorFile {
 public:
  virtual ~TensorFile() = default;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::string& path() const { return file_->path(); }
  const MappedFile& mapping() const { return *file_; }

 protected:
  // Throws naming both tensors when two data ranges overlap (with
  // allow_shared, two tensors may be the very same bytes: torch's tied weights).
  void check_no_overlaps(bool allow_shared = false) const;
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace flashneox
