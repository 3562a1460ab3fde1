#include "io/random_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "io/model_config.h"

namespace flashneox {

namespace {

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  enum Fill { Random, Ones, Zeros } fill;
};

std::vector<Spec> tensor_specs(const ModelConfig& c) {
  const int64_t h = c.hidden_size, i = c.intermediate_size, v = c.vocab_size;
  std::vector<Spec> specs = {{"gpt_neox.embed_in.weight", {v, h}, Spec::Random},
                             {"gpt_neox.final_layer_norm.weight", {h}, Spec::Ones},
                             {"gpt_neox.final_layer_norm.bias", {h}, Spec::Zeros}};
  if (!c.tie_word_embeddings) specs.push_back({"embed_out.weight", {v, h}, Spec::Random});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    for (const char* ln : {"input_layernorm", "post_attention_layernorm"}) {
      specs.push_back({p + ln + ".weight", {h}, Spec::Ones});
      specs.push_back({p + ln + ".bias", {h}, Spec::Zeros});
    }
    specs.push_back({p + "attention.query_key_value.weight", {3 * h, h}, Spec::Random});
    specs.push_back({p + "attention.dense.weight", {h, h}, Spec::Random});
    if (c.attention_bias) {
      specs.push_back({p + "attention.query_key_value.bias", {3 * h}, Spec::Zeros});
      specs.push_back({p + "attention.dense.bias", {h}, Spec::Zeros});
    }
    specs.push_back({p + "mlp.dense_h_to_4h.weight", {i, h}, Spec::Random});
    specs.push_back({p + "mlp.dense_h_to_4h.bias", {i}, Spec::Zeros});
    specs.push_back({p + "mlp.dense_4h_to_h.weight", {h, i}, Spec::Random});
    specs.push_back({p + "mlp.dense_4h_to_h.bias", {h}, Spec::Zeros});
  }
  return specs;
}

}  // namespace

void write_random_checkpoint(const std::string& config_path, const std::string& dir, DType storage,
                             uint64_t seed) {
  namespace fs = std::filesystem;
  const ModelConfig config = ModelConfig::from_file(config_path);
  fs::create_directories(dir);
  fs::copy_file(config_path, fs::path(dir) / "config.json", fs::copy_options::overwrite_existing);
  const std::vector<Spec> specs = tensor_specs(config);
  const size_t elem = dtype_size(storage);
  const char* dtype = storage == DType::F32 ? "F32" : storage == DType::F16 ? "F16" : "BF16";
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const Spec& s : specs) {
    uint64_t n = 1;
    for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
    header[s.name] = {{"dtype", dtype}, {"shape", s.shape}, {"data_offsets", {offset, offset + n * elem}}};
    offset += n * elem;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  const std::string path = (fs::path(dir) / "model.safetensors").string();
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(concat("cannot write ", path));
  const uint64_t len = text.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  std::vector<unsigned char> buffer;
  for (const Spec& s : specs) {
    uint64_t n = 1;
    for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
    buffer.resize(n * elem);
    for (uint64_t k = 0; k < n; ++k) {
      float value = s.fill == Spec::Ones ? 1.0f : 0.0f;
      if (s.fill == Spec::Random) {  // xorshift64*: fast, and plenty for benchmarks
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        const double u = static_cast<double>((state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
        value = static_cast<float>((u * 2.0 - 1.0) * 0.0346);
      }
      unsigned char* dst = buffer.data() + k * elem;
      if (storage == DType::F32) {
        std::memcpy(dst, &value, 4);
      } else {
        const uint16_t bits = storage == DType::F16 ? f32_to_f16(value) : f32_to_bf16(value);
        std::memcpy(dst, &bits, 2);
      }
    }
    out.write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(buffer.size()));
  }
  if (!out) throw Error(concat("failed writing ", path));
}

}  // namespace flashneox
