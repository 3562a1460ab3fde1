#include "io/torch_file.h"

#include <limits>

#include "core/error.h"
#include "io/torch_pickle.h"
#include "io/zip_archive.h"

namespace flashneox {

TorchFile::TorchFile(const std::string& path) {
  file_ = std::make_unique<MappedFile>(path);
  if (!looks_like_zip(*file_)) {
    if (file_->size() >= 2 && file_->data()[0] == 0x80)
      throw Error(concat(path, ": a legacy (pre-zip) torch checkpoint; load it in Python and re-save it with "
                               "torch.save(state_dict, path) from torch >= 1.6, or convert it to safetensors"));
    throw Error(concat(path, ": neither a torch.save zip archive nor a safetensors file"));
  }
  const auto entries = read_zip_entries(*file_);
  // Every entry sits under one top folder, whatever torch.save named it.
  std::string prefix;
  for (const auto& [name, entry] : entries)
    if (name.ends_with("/data.pkl") && name.find('/') == name.size() - 9) prefix = name.substr(0, name.size() - 8);
  if (prefix.empty()) throw Error(concat(path, ": the archive has no <folder>/data.pkl (not written by torch.save)"));
  const ZipEntry& pickle = entries.at(prefix + "data.pkl");
  if (!pickle.stored) throw Error(concat(path, ": data.pkl is compressed; torch.save never writes that"));
  for (const auto& named : unpickle_state_dict(pickle.data, pickle.size, path)) {
    const std::string& name = named.first;  // (not a structured binding: the lambda below captures it)
    const TorchTensorRef& ref = named.second;
    auto fail = [&](const std::string& why) { return Error(concat(path, ": tensor '", name, "': ", why)); };
    const auto entry = entries.find(prefix + "data/" + ref.storage_key);
    if (entry == entries.end()) throw fail(concat("its storage data/", ref.storage_key, " is not in the archive"));
    if (!entry->second.stored) throw fail("its storage is compressed; torch.save never writes that");
    const uint64_t storage_bytes = static_cast<uint64_t>(ref.storage_numel) * ref.element_bytes;
    if (entry->second.size != storage_bytes)
      throw fail(concat("its storage holds ", entry->second.size, " bytes, not the ", storage_bytes, " that ",
                        ref.storage_numel, " elements of ", ref.dtype_text, " need"));
    TensorView view;
    view.name = name;
    view.file = path;
    view.dtype_text = ref.dtype_text;
    view.usable = ref.dtype_text == "F32" || ref.dtype_text == "F16" || ref.dtype_text == "BF16";
    if (view.usable) view.dtype = parse_safetensors_dtype(ref.dtype_text);
    view.shape = ref.shape;
    // Only row-major tensors are views of their storage as they stand.
    uint64_t numel = 1;
    int64_t expected_stride = 1;
    for (size_t d = ref.shape.size(); d-- > 0;) {
      if (ref.shape[d] != 1 && ref.stride[d] != expected_stride)
        throw fail(concat("is not contiguous (stride ", ref.stride[d], " in dimension ", d, "); save t.contiguous()"));
      if (ref.shape[d] != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / static_cast<uint64_t>(ref.shape[d]))
        throw fail("shape is too large");
      expected_stride *= ref.shape[d];
      numel *= static_cast<uint64_t>(ref.shape[d]);
    }
    if (static_cast<uint64_t>(ref.offset) > static_cast<uint64_t>(ref.storage_numel) ||
        numel > static_cast<uint64_t>(ref.storage_numel) - static_cast<uint64_t>(ref.offset))
      throw fail(concat("shape ", view.shape_string(), " at offset ", ref.offset, " runs past its storage of ",
                        ref.storage_numel, " elements"));
    view.data = entry->second.data + static_cast<uint64_t>(ref.offset) * ref.element_bytes;
    view.nbytes = numel * ref.element_bytes;
    if (!tensors_.emplace(name, std::move(view)).second) throw fail("appears twice in the state dict");
  }
  check_no_overlaps(/*allow_shared=*/true);
}

}  // namespace flashneox
