#include "io/tensor_file.h"

#include <algorithm>

#include "core/error.h"

namespace flashneox {

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

}  // namespace flashneox
