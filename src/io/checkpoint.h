// All tensors of a checkpoint, whichever files and format hold them.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/tensor_file.h"

namespace flashneox {

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
