// safetensors checkpoints, memory-mapped and validated: one file or a sharded
// set with model.safetensors.index.json. Tensors are views into the mapping.
#pragma once

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

// One .safetensors file. The constructor checks the whole header: its length,
// the JSON, every dtype and shape, and that the data ranges match the shapes,
// stay inside the file and do not overlap.
class SafetensorsFile : public TensorFile {
 public:
  explicit SafetensorsFile(const std::string& path);
};

// Opens a tensor file by its name: *.safetensors, else torch.save's format (*.bin).
std::unique_ptr<TensorFile> open_tensor_file(const std::string& path);

// All tensors of a checkpoint directory, whichever way it is sharded:
// model.safetensors, model.safetensors.index.json, pytorch_model.bin or
// pytorch_model.bin.index.json (first found wins).
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);
  // A single file (adapters use this).
  static Checkpoint from_file(const std::string& path);

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws naming the tensor when it is missing or of a dtype we cannot use.
  const TensorView& get(const std::string& name) const;
  // get() plus a shape check; throws naming the tensor and both shapes.
  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) const;
  // Any tensor, whatever its dtype (for listing and prefetching).
  const TensorView& view(const std::string& name) const { return *index_.at(name); }
  std::vector<std::string> names() const;
  size_t total_bytes() const;
  // Drops a tensor's pages from resident memory (see MappedFile::drop_pages).
  void drop_pages(const TensorView& view) const;
  const std::string& location() const { return location_; }

 private:
  Checkpoint() = default;
  void add(std::unique_ptr<TensorFile> file);

  std::string location_;
  std::vector<std::unique_ptr<TensorFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

}  // namespace flashneox
