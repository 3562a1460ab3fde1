#include "lora/random_adapter.h"

#include <random>
#include <string>

namespace flashneox {

std::shared_ptr<const LoraAdapter> random_lora_adapter(const ModelConfig& c, int rank, uint32_t seed, float stddev,
                                                       DType dtype) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> value(0.0f, stddev);
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  const std::pair<int64_t, int64_t> shapes[kLoraModules] = {{h, 3 * h}, {h, h}, {h, inter}, {inter, h}};
  auto a = std::make_shared<LoraAdapter>();
  a->name = "random-" + std::to_string(seed);
  a->layers.resize(static_cast<size_t>(c.num_layers));
  a->config_scale.assign(static_cast<size_t>(c.num_layers), {2.0f, 2.0f, 2.0f, 2.0f});
  for (auto& layer : a->layers)
    for (int m = 0; m < kLoraModules; ++m) {
      LoraWeights w;
      w.rank = rank;
      w.scale = 2.0f;
      w.a.resize(static_cast<size_t>(rank * shapes[m].first));
      w.b.resize(static_cast<size_t>(shapes[m].second * rank));
      for (float& v : w.a) v = value(rng);
      for (float& v : w.b) v = value(rng);
      w.store_as(dtype);
      a->bytes += w.bytes();
      layer[static_cast<size_t>(m)] = std::move(w);
    }
  return a;
}

}  // namespace flashneox
