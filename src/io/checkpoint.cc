#include "io/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"
#include "io/safetensors.h"
#include "io/torch_file.h"

namespace flashneox {

using nlohmann::json;

std::unique_ptr<TensorFile> open_tensor_file(const std::string& path) {
  if (path.ends_with(".safetensors")) return std::make_unique<SafetensorsFile>(path);
  return std::make_unique<TorchFile>(path);
}

Checkpoint::Checkpoint(const std::string& dir) : location_(dir) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  fs::path single, index;
  for (const char* stem : {"model.safetensors", "pytorch_model.bin"}) {
    if (fs::exists(root / stem)) {
      single = root / stem;
      break;
    }
    if (fs::exists(root / (std::string(stem) + ".index.json"))) {
      index = root / (std::string(stem) + ".index.json");
      break;
    }
  }
  if (!single.empty()) {
    add(open_tensor_file(single.string()));
    return;
  }
  if (index.empty())
    throw Error(concat(dir, ": no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                            "pytorch_model.bin.index.json"));
  json parsed;
  try {
    parsed = json::parse(read_regular_file(index.string(), 64 << 20));
  } catch (const json::exception& e) {
    throw Error(concat(index.string(), ": not valid JSON (", e.what(), ")"));
  }
  if (!parsed.contains("weight_map") || !parsed["weight_map"].is_object())
    throw Error(concat(index.string(), ": no weight_map object"));
  std::map<std::string, std::string> expected;  // tensor -> shard
  std::vector<std::string> shards;
  for (auto it = parsed["weight_map"].begin(); it != parsed["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw Error(concat(index.string(), ": weight_map entry '", it.key(), "' is not a file name"));
    const std::string shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos)
      throw Error(concat(index.string(), ": shard name '", shard, "' leaves the directory"));
    expected[it.key()] = shard;
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  }
  for (const std::string& shard : shards) add(open_tensor_file((root / shard).string()));
  for (const auto& [name, shard] : expected) {
    auto it = index_.find(name);
    if (it == index_.end())
      throw Error(concat(index.string(), ": tensor '", name, "' is listed in shard ", shard,
                         " but that shard does not contain it"));
  }
}

Checkpoint Checkpoint::from_file(const std::string& path) {
  Checkpoint checkpoint;
  checkpoint.location_ = path;
  checkpoint.add(std::make_unique<SafetensorsFile>(path));
  return checkpoint;
}

void Checkpoint::add(std::unique_ptr<TensorFile> file) {
  for (const auto& [name, view] : file->tensors()) {
    if (index_.count(name))
      throw Error(concat(file->path(), ": tensor '", name, "' also appears in ",
                         index_[name]->file));
    index_[name] = &view;
  }
  files_.push_back(std::move(file));
}

const TensorView& Checkpoint::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(concat(location_, ": missing tensor '", name, "'"));
  const TensorView& view = *it->second;
  if (!view.usable)
    throw Error(concat(view.file, ": tensor '", name, "': unsupported tensor dtype '",
                       view.dtype_text, "' (supported: F32, F16, BF16)"));
  return view;
}

const TensorView& Checkpoint::get(const std::string& name,
                                  const std::vector<int64_t>& shape) const {
  const TensorView& view = get(name);
  if (view.shape != shape) {
    TensorView wanted;
    wanted.shape = shape;
    throw Error(concat(view.file, ": tensor '", name, "' has shape ", view.shape_string(),
                       ", expected ", wanted.shape_string()));
  }
  return view;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, view] : index_) out.push_back(name);
  return out;
}

void Checkpoint::drop_pages(const TensorView& view) const {
  for (const auto& file : files_)
    if (file->path() == view.file) file->mapping().drop_pages(view.data, view.nbytes);
}

size_t Checkpoint::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, view] : index_) total += view->nbytes;
  return total;
}

}  // namespace flashneox
