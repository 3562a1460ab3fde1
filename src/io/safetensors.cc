#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file_util.h"
#include "io/torch_file.h"

namespace flashneox {

using nlohmann::json;

int64_t TensorView::numel() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

std::string TensorView::shape_string() const {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

namespace {

// Header size guard: real headers are kilobytes; 100 MB means a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

TensorView parse_entry(const std::string& path, const std::string& name, const json& entry,
                       const unsigned char* data, uint64_t data_size) {
  auto fail = [&](const std::string& why) {
    return Error(concat(path, ": tensor '", name, "': ", why));
  };
  if (!entry.is_object()) throw fail("header entry is not an object");
  if (!entry.contains("dtype") || !entry["dtype"].is_string()) throw fail("missing dtype");
  if (!entry.contains("shape") || !entry["shape"].is_array()) throw fail("missing shape");
  if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
      entry["data_offsets"].size() != 2)
    throw fail("missing data_offsets");
  TensorView view;
  view.name = name;
  view.file = path;
  // Every dtype the format defines is parsed (old checkpoints carry BOOL
  // and I64 buffers we skip); only F32/F16/BF16 can be used by the model.
  view.dtype_text = entry["dtype"].get<std::string>();
  static const std::map<std::string, size_t> kElementBytes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
      {"I64", 8},  {"U64", 8}, {"F64", 8}};
  const auto known = kElementBytes.find(view.dtype_text);
  if (known == kElementBytes.end()) throw fail(concat("unknown dtype '", view.dtype_text, "'"));
  const size_t element_bytes = known->second;
  view.usable = view.dtype_text == "F32" || view.dtype_text == "F16" || view.dtype_text == "BF16";
  if (view.usable) view.dtype = parse_safetensors_dtype(view.dtype_text);
  uint64_t numel = 1;
  for (const json& dim : entry["shape"]) {
    if (!dim.is_number_unsigned()) throw fail("shape has a non-integer or negative dimension");
    const uint64_t value = dim.get<uint64_t>();
    if (value != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / value)
      throw fail("shape is too large");
    numel *= value;
    view.shape.push_back(static_cast<int64_t>(value));
  }
  const json& offsets = entry["data_offsets"];
  if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
    throw fail("data_offsets are not non-negative integers");
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  if (begin > end) throw fail("data_offsets run backwards");
  if (end > data_size)
    throw fail(concat("data runs past the end of the file (ends at byte ", end, " of ",
                      data_size, "; the file is truncated or the header lies)"));
  const uint64_t expected = numel * element_bytes;
  if (end - begin != expected)
    throw fail(concat("holds ", end - begin, " bytes but shape ", view.shape_string(), " of ",
                      view.dtype_text, " needs ", expected));
  view.data = data + begin;
  view.nbytes = expected;
  return view;
}

}  // namespace

void TensorFile::check_no_overlaps(bool allow_shared) const {
  std::vector<std::pair<const unsigned char*, const TensorView*>> ranges;
  for (const auto& [name, view] : tensors_)
    if (view.nbytes > 0) ranges.emplace_back(static_cast<const unsigned char*>(view.data), &view);
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const TensorView& prev = *ranges[i - 1].second;
    if (allow_shared && ranges[i - 1].first == ranges[i].first && prev.nbytes == ranges[i].second->nbytes) continue;
    if (ranges[i - 1].first + prev.nbytes > ranges[i].first)
      throw Error(concat(path(), ": tensors '", prev.name, "' and '", ranges[i].second->name, "' overlap in the file"));
  }
}

std::unique_ptr<TensorFile> open_tensor_file(const std::string& path) {
  if (path.ends_with(".safetensors")) return std::make_unique<SafetensorsFile>(path);
  return std::make_unique<TorchFile>(path);
}

SafetensorsFile::SafetensorsFile(const std::string& path) {
  file_ = std::make_unique<MappedFile>(path);
  const uint64_t size = file_->size();
  if (size < 8) throw Error(concat(path, ": not a safetensors file (", size, " bytes)"));
  uint64_t header_len;
  std::memcpy(&header_len, file_->data(), 8);  // little-endian on every target we build for
  if (header_len > kMaxHeaderBytes || header_len > size - 8)
    throw Error(concat(path, ": header length ", header_len, " does not fit in the file (",
                       size, " bytes); the file is truncated or not safetensors"));
  const char* header_text = reinterpret_cast<const char*>(file_->data() + 8);
  json header;
  std::set<std::string> names;  // JSON objects keep the last of two equal keys: refuse that
  try {
    header = json::parse(header_text, header_text + header_len, [&](int depth, json::parse_event_t event, json& value) {
      if (event == json::parse_event_t::key && depth == 1 && !names.insert(value.get<std::string>()).second)
        throw Error(concat(path, ": tensor '", value.get<std::string>(), "' appears twice in the header"));
      if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth > 8)
        throw Error(concat(path, ": header nests deeper than a safetensors header can"));
      return true;
    });
  } catch (const json::exception& e) {
    throw Error(concat(path, ": header is not valid JSON (", e.what(), ")"));
  }
  if (!header.is_object()) throw Error(concat(path, ": header is not a JSON object"));
  const unsigned char* data = file_->data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    TensorView view = parse_entry(path, it.key(), it.value(), data, data_size);
    tensors_.emplace(it.key(), std::move(view));
  }
  check_no_overlaps();
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
