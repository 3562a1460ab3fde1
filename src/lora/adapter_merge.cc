#include "lora/adapter_merge.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "core/error.h"

namespace flashneox {

namespace {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int sign(double v) { return (v > 0) - (v < 0); }

// One tensor of each part that has it, in PEFT's layout, pruned as the
// strategy says.
struct Stack {
  std::vector<std::vector<float>> tensors;
  std::vector<double> weights;
};

void prune_by_magnitude(std::vector<float>& t, double density) {
  if (density >= 1) return;
  const auto keep = static_cast<size_t>(density * static_cast<double>(t.size()));
  std::vector<size_t> order(t.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Largest magnitudes first; equal magnitudes by position, so it is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return std::fabs(t[x]) > std::fabs(t[y]); });
  for (size_t i = keep; i < order.size(); ++i) t[order[i]] = 0.0f;
}

std::vector<float> merge_stack(const Stack& s, const MergeSpec& spec) {
  const size_t n = s.tensors[0].size();
  std::vector<float> out(n, 0.0f);
  const bool ties = spec.strategy == "ties" || spec.strategy == "dare_ties";
  for (size_t k = 0; k < n; ++k) {
    if (!ties) {
      double sum = 0;
      for (size_t i = 0; i < s.tensors.size(); ++i) sum += s.weights[i] * s.tensors[i][k];
      out[k] = static_cast<float>(sum);
      continue;
    }
    double votes = 0;
    for (const auto& t : s.tensors) votes += spec.majority_sign_method == "total" ? t[k] : sign(t[k]);
    const int majority = votes >= 0 ? 1 : -1;
    double sum = 0;
    int agreeing = 0;
    for (size_t i = 0; i < s.tensors.size(); ++i)
      if (sign(s.tensors[i][k]) == majority) {
        sum += s.weights[i] * s.tensors[i][k];
        ++agreeing;
      }
    out[k] = static_cast<float>(sum / std::max(agreeing, 1));
  }
  return out;
}

}  // namespace

bool dare_keeps(int part, int layer, LoraModule module, int tensor, uint64_t index, double density) {
  const uint64_t id = (static_cast<uint64_t>(part) << 56) ^ (static_cast<uint64_t>(layer) << 44) ^
                      (static_cast<uint64_t>(module) << 42) ^ (static_cast<uint64_t>(tensor) << 40) ^ index;
  return static_cast<double>(splitmix64(id) >> 11) < density * 9007199254740992.0;  // u < density · 2^53
}

std::shared_ptr<const LoraAdapter> merge_adapters(const std::vector<std::shared_ptr<const LoraAdapter>>& parts,
                                                  const MergeSpec& spec, const std::string& name) {
  spec.validate();
  if (parts.size() != spec.ids.size()) throw Error("merge_adapters: one adapter per id is needed");
  const bool dare = spec.strategy == "dare_linear" || spec.strategy == "dare_ties";
  const bool magnitude = spec.strategy == "ties";
  auto merged = std::make_shared<LoraAdapter>();
  merged->name = name;
  merged->layers.resize(parts[0]->layers.size());
  merged->config_scale = parts[0]->config_scale;
  // Kept like its parts are (each is f32 or f16 beside the same base).
  DType dtype = DType::F32;
  for (const auto& part : parts)
    for (const auto& layer : part->layers)
      for (const auto& w : layer)
        if (w) dtype = w->dtype;
  for (size_t l = 0; l < merged->layers.size(); ++l) {
    for (int mi = 0; mi < kLoraModules; ++mi) {
      const LoraModule m = static_cast<LoraModule>(mi);
      Stack a, b;
      int rank = 0, out = 0;
      for (size_t i = 0; i < parts.size(); ++i) {
        const LoraWeights* w = parts[i]->find(static_cast<int>(l), m);
        if (!w) continue;
        if (rank != 0 && w->rank != rank)
          throw Error(concat("cannot merge '", spec.ids[0], "' and '", spec.ids[i], "': layer ", l, " ",
                             lora_module_name(m), " has rank ", rank, " in one and ", w->rank, " in the other"));
        rank = w->rank;
        const std::vector<float> b_t = w->b_f32();
        out = static_cast<int>(b_t.size() / static_cast<size_t>(rank));
        std::vector<float> b_peft(b_t.size());  // [out, r], PEFT's layout
        for (int o = 0; o < out; ++o)
          for (int j = 0; j < rank; ++j)
            b_peft[static_cast<size_t>(o) * rank + j] = b_t[static_cast<size_t>(j) * out + o];
        std::vector<float> a_peft = w->a_f32();
        if (dare && spec.density < 1) {
          const float rescale = static_cast<float>(1.0 / spec.density);
          int tensor = 0;
          for (std::vector<float>* t : {&a_peft, &b_peft}) {
            for (size_t k = 0; k < t->size(); ++k)
              (*t)[k] = dare_keeps(static_cast<int>(i), static_cast<int>(l), m, tensor, k, spec.density)
                            ? (*t)[k] * rescale : 0.0f;
            ++tensor;
          }
        }
        if (magnitude) {
          prune_by_magnitude(a_peft, spec.density);
          prune_by_magnitude(b_peft, spec.density);
        }
        const double weight = spec.weights.empty() ? 1.0 : spec.weights[i];
        a.tensors.push_back(std::move(a_peft));
        b.tensors.push_back(std::move(b_peft));
        a.weights.push_back(weight);
        b.weights.push_back(weight);
      }
      if (rank == 0) continue;
      LoraWeights w;
      w.rank = rank;
      w.scale = merged->config_scale[l][static_cast<size_t>(mi)];
      w.a = merge_stack(a, spec);
      const std::vector<float> b_peft = merge_stack(b, spec);
      w.b.resize(b_peft.size());
      for (int o = 0; o < out; ++o)
        for (int j = 0; j < rank; ++j) w.b[static_cast<size_t>(j) * out + o] = b_peft[static_cast<size_t>(o) * rank + j];
      w.store_as(dtype);
      merged->bytes += w.bytes();
      merged->layers[l][static_cast<size_t>(mi)] = std::move(w);
    }
  }
  return merged;
}

}  // namespace flashneox
