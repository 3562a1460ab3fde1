// PEFT LoRA adapters as they are saved (adapter_config.json +
// adapter_model.safetensors), checked against the base model they will run
// on: W' = W + scale · B · A beside each targeted projection, never merged.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/model_config.h"

namespace flashneox {

// The four GPT-NeoX projections an adapter may target, in PEFT's names.
enum class LoraModule { Qkv = 0, Dense = 1, FcIn = 2, FcOut = 3 };
constexpr int kLoraModules = 4;
const char* lora_module_name(LoraModule m);  // "query_key_value", ...

struct LoraWeights {
  int rank = 0;
  float scale = 0.0f;           // lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora
  std::vector<float> a;         // [rank, in]  (lora_A.weight)
  std::vector<float> b;         // [rank, out]: lora_B.weight ([out, rank]) transposed, for the kernels
};

struct LoraAdapter {
  std::string name;
  std::string dir;
  // [layer][module]: empty where the adapter does not touch that projection.
  std::vector<std::array<std::optional<LoraWeights>, kLoraModules>> layers;
  size_t bytes = 0;             // memory the weights take
  // [layer][module]: the scale adapter_config.json gives each projection,
  // targeted or not (a merge takes its first adapter's, as LoRAX does).
  std::vector<std::array<float, kLoraModules>> config_scale;

  const LoraWeights* find(int layer, LoraModule m) const {
    const auto& w = layers[static_cast<size_t>(layer)][static_cast<size_t>(m)];
    return w ? &*w : nullptr;
  }

  // Loads `dir`, refusing (Error naming the field, tensor or shape) anything
  // this engine cannot apply exactly: DoRA, LoRA biases, modules_to_save,
  // other PEFT types, shapes that do not fit `base`, damaged files.
  static std::shared_ptr<const LoraAdapter> load(const std::string& dir, const std::string& name,
                                                 const ModelConfig& base);
};

}  // namespace flashneox
