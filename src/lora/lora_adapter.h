// PEFT LoRA adapters as they are saved (adapter_config.json +
// adapter_model.safetensors), checked against the base model they will run
// on: W' = W + scale · B · A beside each targeted projection, never merged.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/model_config.h"

namespace flashneox {

// The four GPT-NeoX projections an adapter may target, in PEFT's names.
enum class LoraModule { Qkv = 0, Dense = 1, FcIn = 2, FcOut = 3 };
constexpr int kLoraModules = 4;
const char* lora_module_name(LoraModule m);  // "query_key_value", ...

// Kept in f32, or in f16 beside 16-bit and int8 base weights: decode reads
// every distinct adapter's A and B each step, so halving them is what keeps
// a batch of many adapters near the base model's speed.
struct LoraWeights {
  int rank = 0;
  float scale = 0.0f;           // lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora
  DType dtype = DType::F32;     // F32: a and b hold the values; F16: a_f16 and b_f16 do
  std::vector<float> a;         // [rank, in]  (lora_A.weight)
  std::vector<float> b;         // [rank, out]: lora_B.weight ([out, rank]) transposed, for the kernels
  std::vector<uint16_t> a_f16, b_f16;

  const void* a_data() const { return dtype == DType::F16 ? static_cast<const void*>(a_f16.data()) : a.data(); }
  const void* b_data() const { return dtype == DType::F16 ? static_cast<const void*>(b_f16.data()) : b.data(); }
  std::vector<float> a_f32() const;
  std::vector<float> b_f32() const;
  size_t bytes() const { return (a.size() + b.size()) * sizeof(float) + (a_f16.size() + b_f16.size()) * 2; }
  // Converts to `dtype` (F32 or F16) in place.
  void store_as(DType dtype);
};

// The dtype adapters are kept in beside base weights of `base`: f32 with an
// f32 base (exact), f16 otherwise.
DType lora_dtype_for(DType base);

// A number no other adapter made by this process has: what the prefix cache
// keys an adapter's K/V by (a name can be evicted and loaded again from new files).
uint64_t new_adapter_uid();

struct LoraAdapter {
  uint64_t uid = new_adapter_uid();
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
  // The weights are kept in `dtype` (F32 or F16).
  static std::shared_ptr<const LoraAdapter> load(const std::string& dir, const std::string& name,
                                                 const ModelConfig& base, DType dtype = DType::F32);
};

}  // namespace flashneox
