#include "lora/lora_shard.h"

#include "core/error.h"

namespace flashneox {
namespace {

// Columns [begin, end) of each of `rows` rows of width `width`.
template <typename T>
std::vector<T> columns(const std::vector<T>& m, int64_t rows, int64_t width, int64_t begin, int64_t end) {
  if (m.empty()) return {};
  if (static_cast<int64_t>(m.size()) != rows * width) throw Error("LoRA weights of an unexpected shape");
  std::vector<T> out;
  out.reserve(static_cast<size_t>(rows * (end - begin)));
  for (int64_t r = 0; r < rows; ++r) out.insert(out.end(), m.begin() + r * width + begin, m.begin() + r * width + end);
  return out;
}

}  // namespace

std::shared_ptr<const LoraAdapter> shard_lora_adapter(const LoraAdapter& full, const ModelConfig& c,
                                                      const Shard& shard) {
  auto out = std::make_shared<LoraAdapter>();
  out->uid = full.uid;
  out->name = full.name;
  out->dir = full.dir;
  out->config_scale = full.config_scale;
  out->layers.resize(full.layers.size());
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  const int64_t heads_begin = shard.begin(c.num_heads) * c.head_size, heads_end = shard.end(c.num_heads) * c.head_size;
  for (size_t l = 0; l < full.layers.size(); ++l) {
    for (int m = 0; m < kLoraModules; ++m) {
      const auto& w = full.layers[l][static_cast<size_t>(m)];
      if (!w) continue;
      LoraWeights cut = *w;
      const int64_t r = w->rank;
      switch (static_cast<LoraModule>(m)) {
        case LoraModule::Qkv:  // B: [rank, 3h], this rank's heads' rows of the [heads, 3, head_size] output
          cut.b = columns(w->b, r, 3 * h, 3 * heads_begin, 3 * heads_end);
          cut.b_f16 = columns(w->b_f16, r, 3 * h, 3 * heads_begin, 3 * heads_end);
          break;
        case LoraModule::FcIn:  // B: [rank, intermediate], this rank's units
          cut.b = columns(w->b, r, inter, shard.begin(inter), shard.end(inter));
          cut.b_f16 = columns(w->b_f16, r, inter, shard.begin(inter), shard.end(inter));
          break;
        case LoraModule::Dense:  // A: [rank, h], the columns of this rank's heads
          cut.a = columns(w->a, r, h, heads_begin, heads_end);
          cut.a_f16 = columns(w->a_f16, r, h, heads_begin, heads_end);
          break;
        case LoraModule::FcOut:  // A: [rank, intermediate], this rank's units
          cut.a = columns(w->a, r, inter, shard.begin(inter), shard.end(inter));
          cut.a_f16 = columns(w->a_f16, r, inter, shard.begin(inter), shard.end(inter));
          break;
      }
      out->bytes += cut.bytes();
      out->layers[l][static_cast<size_t>(m)] = std::move(cut);
    }
  }
  return out;
}

}  // namespace flashneox
