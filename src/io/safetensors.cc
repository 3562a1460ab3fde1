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

namespace flashneox {

using nlohmann::json;

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

}  // namespace flashneox
