// GCC 12 reports false positives inside <regex> when built with the sanitizers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "lora/lora_adapter.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file_util.h"
#include "io/checkpoint.h"

namespace flashneox {

uint64_t new_adapter_uid() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

using nlohmann::json;

const char* lora_module_name(LoraModule m) {
  switch (m) {
    case LoraModule::Qkv: return "query_key_value";
    case LoraModule::Dense: return "dense";
    case LoraModule::FcIn: return "dense_h_to_4h";
    case LoraModule::FcOut: return "dense_4h_to_h";
  }
  return "?";
}

namespace {

// The full module name PEFT sees, e.g. "gpt_neox.layers.3.attention.dense".
std::string module_path(int layer, LoraModule m) {
  const bool attention = m == LoraModule::Qkv || m == LoraModule::Dense;
  return concat("gpt_neox.layers.", layer, attention ? ".attention." : ".mlp.", lora_module_name(m));
}

// [in, out] of a projection.
std::pair<int64_t, int64_t> module_shape(const ModelConfig& c, LoraModule m) {
  const int64_t h = c.hidden_size, i = c.intermediate_size;
  switch (m) {
    case LoraModule::Qkv: return {h, 3 * h};
    case LoraModule::Dense: return {h, h};
    case LoraModule::FcIn: return {h, i};
    case LoraModule::FcOut: return {i, h};
  }
  return {0, 0};
}

struct Config {
  std::string path;
  json root;

  Error fail(const std::string& field, const std::string& why) const {
    return Error(concat(path, ": `", field, "` ", why));
  }
  const json* get(const char* field) const {
    auto it = root.find(field);
    return it == root.end() || it->is_null() ? nullptr : &*it;
  }
  double number(const char* field, double fallback) const {
    const json* v = get(field);
    if (!v) return fallback;
    if (!v->is_number() || !(v->get<double>() > 0)) throw fail(field, "must be a positive number");
    return v->get<double>();
  }
  bool flag(const char* field) const {
    const json* v = get(field);
    if (!v) return false;
    if (!v->is_boolean()) throw fail(field, "must be true or false");
    return v->get<bool>();
  }
};

// PEFT's rule for rank_pattern / alpha_pattern: the first key K for which
// the module name matches "(.*\.)?K$" decides.
std::optional<double> pattern_value(const Config& cfg, const char* field, const std::string& module) {
  const json* p = cfg.get(field);
  if (!p) return std::nullopt;
  if (!p->is_object()) throw cfg.fail(field, "must be an object");
  for (auto it = p->begin(); it != p->end(); ++it) {
    std::regex re;
    try {
      re = std::regex("(.*\\.)?" + it.key() + "$");
    } catch (const std::regex_error&) {
      throw cfg.fail(field, concat("has a key that is not a regular expression: '", it.key(), "'"));
    }
    if (std::regex_match(module, re)) {
      if (!it.value().is_number() || !(it.value().get<double>() > 0))
        throw cfg.fail(field, concat("'", it.key(), "' must be a positive number"));
      return it.value().get<double>();
    }
  }
  return std::nullopt;
}

}  // namespace

std::vector<float> LoraWeights::a_f32() const {
  if (dtype == DType::F32) return a;
  std::vector<float> out(a_f16.size());
  convert_to_f32(DType::F16, a_f16.data(), out.data(), out.size());
  return out;
}

std::vector<float> LoraWeights::b_f32() const {
  if (dtype == DType::F32) return b;
  std::vector<float> out(b_f16.size());
  convert_to_f32(DType::F16, b_f16.data(), out.data(), out.size());
  return out;
}

void LoraWeights::store_as(DType to) {
  if (to == dtype) return;
  if (to == DType::F32) {
    a = a_f32();
    b = b_f32();
    a_f16 = {};
    b_f16 = {};
  } else if (to == DType::F16) {
    a_f16.resize(a.size());
    b_f16.resize(b.size());
    for (size_t i = 0; i < a.size(); ++i) a_f16[i] = f32_to_f16(a[i]);
    for (size_t i = 0; i < b.size(); ++i) b_f16[i] = f32_to_f16(b[i]);
    a = {};
    b = {};
  } else {
    throw Error(concat("LoRA weights are kept in f32 or f16, not ", dtype_name(to)));
  }
  dtype = to;
}

DType lora_dtype_for(DType base) { return base == DType::F32 ? DType::F32 : DType::F16; }

std::shared_ptr<const LoraAdapter> LoraAdapter::load(const std::string& dir, const std::string& name,
                                                     const ModelConfig& base, DType dtype) {
  namespace fs = std::filesystem;
  Config cfg{dir + "/adapter_config.json", {}};
  if (!fs::exists(cfg.path)) throw Error(concat(dir, ": no adapter_config.json (not a PEFT adapter folder)"));
  try {
    cfg.root = json::parse(read_regular_file(cfg.path, 4 << 20));
  } catch (const json::exception& e) {
    throw Error(concat(cfg.path, ": not valid JSON (", e.what(), ")"));
  }
  if (!cfg.root.is_object()) throw Error(concat(cfg.path, ": not a JSON object"));

  // What this engine applies exactly, and what it refuses.
  const json* type = cfg.get("peft_type");
  if (!type || !type->is_string() || type->get<std::string>() != "LORA")
    throw cfg.fail("peft_type", concat("is ", type ? type->dump() : "missing", "; only LORA adapters are supported"));
  if (cfg.flag("use_dora")) throw cfg.fail("use_dora", "is true: DoRA adapters are not supported");
  if (cfg.flag("lora_bias")) throw cfg.fail("lora_bias", "is true: LoRA biases are not supported");
  if (const json* b = cfg.get("bias"); b && (!b->is_string() || b->get<std::string>() != "none"))
    throw cfg.fail("bias", concat("is ", b->dump(), "; only \"none\" is supported"));
  if (const json* m = cfg.get("modules_to_save"); m && !(m->is_array() && m->empty()))
    throw cfg.fail("modules_to_save", "is set: adapters that replace whole modules are not supported");
  for (const char* unsupported : {"layer_replication", "layers_pattern"})
    if (cfg.get(unsupported)) throw cfg.fail(unsupported, "is set: not supported");
  const double r_default = cfg.number("r", 8);
  const double alpha_default = cfg.number("lora_alpha", r_default);
  const bool rslora = cfg.flag("use_rslora");
  // fan_in_fan_out only changes how PEFT merges into Conv1D weights; for the
  // nn.Linear projections of GPT-NeoX PEFT itself turns it off, and A and B
  // are stored as [r, in] and [out, r] either way.
  cfg.flag("fan_in_fan_out");

  // Which modules: a list (suffix match, as PEFT) or one regular expression (full match).
  const json* targets = cfg.get("target_modules");
  if (!targets) throw cfg.fail("target_modules", "is missing");
  std::optional<std::regex> target_re;
  std::set<std::string> target_names;
  if (targets->is_string()) {
    try {
      target_re = std::regex(targets->get<std::string>());
    } catch (const std::regex_error&) {
      throw cfg.fail("target_modules", "is not a valid regular expression");
    }
  } else if (targets->is_array()) {
    for (const json& t : *targets) {
      if (!t.is_string()) throw cfg.fail("target_modules", "must be a list of module names or a regular expression");
      target_names.insert(t.get<std::string>());
    }
  } else {
    throw cfg.fail("target_modules", "must be a list of module names or a regular expression");
  }
  std::set<int> layer_filter;
  if (const json* l = cfg.get("layers_to_transform")) {
    for (const json& v : l->is_array() ? *l : json::array({*l})) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= base.num_layers)
        throw cfg.fail("layers_to_transform", concat("must hold layer numbers from 0 to ", base.num_layers - 1));
      layer_filter.insert(static_cast<int>(v.get<int64_t>()));
    }
  }
  auto targeted = [&](int layer, LoraModule m) {
    if (!layer_filter.empty() && !layer_filter.count(layer)) return false;
    const std::string path = module_path(layer, m);
    if (target_re) return std::regex_match(path, *target_re);
    for (const std::string& t : target_names)
      if (path == t || (path.size() > t.size() && path.ends_with("." + t))) return true;
    return false;
  };

  const std::string weights_path = dir + "/adapter_model.safetensors";
  if (!fs::exists(weights_path))
    throw Error(concat(dir, ": no adapter_model.safetensors (adapter_model.bin is not read: convert it to safetensors)"));
  const Checkpoint ckpt = Checkpoint::from_file(weights_path);
  std::set<std::string> unused;
  for (const std::string& n : ckpt.names()) unused.insert(n);
  auto find = [&](const std::string& key) -> const TensorView* {
    for (const std::string& n : {"base_model.model." + key, key})
      if (ckpt.has(n)) {
        unused.erase(n);
        return &ckpt.get(n);
      }
    return nullptr;
  };

  auto adapter = std::make_shared<LoraAdapter>();
  adapter->name = name;
  adapter->dir = dir;
  adapter->layers.resize(static_cast<size_t>(base.num_layers));
  adapter->config_scale.resize(static_cast<size_t>(base.num_layers));
  int applied = 0;
  for (int l = 0; l < base.num_layers; ++l) {
    for (int mi = 0; mi < kLoraModules; ++mi) {
      const LoraModule m = static_cast<LoraModule>(mi);
      const std::string path = module_path(l, m);
      const double r = pattern_value(cfg, "rank_pattern", path).value_or(r_default);
      const double alpha = pattern_value(cfg, "alpha_pattern", path).value_or(alpha_default);
      const float scale = static_cast<float>(rslora ? alpha / std::sqrt(r) : alpha / r);
      adapter->config_scale[static_cast<size_t>(l)][static_cast<size_t>(mi)] = scale;
      const TensorView* a = find(path + ".lora_A.weight");
      const TensorView* b = find(path + ".lora_B.weight");
      if (!targeted(l, m)) {
        if (a || b) throw Error(concat(weights_path, ": holds LoRA weights for ", path, ", which adapter_config.json does not target"));
        continue;
      }
      if (!a || !b)
        throw Error(concat(weights_path, ": missing ", path, !a ? ".lora_A.weight" : ".lora_B.weight"));
      const auto [in, out] = module_shape(base, m);
      const int64_t rank = a->shape.size() == 2 ? a->shape[0] : -1;
      if (a->shape != std::vector<int64_t>{rank, in} || rank <= 0 || rank != static_cast<int64_t>(r))
        throw Error(concat(weights_path, ": ", path, ".lora_A.weight has shape ", a->shape_string(), "; the base model (",
                           lora_module_name(m), " takes ", in, " inputs) and r = ", r, " need [", r, ", ", in, "]"));
      if (b->shape != std::vector<int64_t>{out, rank})
        throw Error(concat(weights_path, ": ", path, ".lora_B.weight has shape ", b->shape_string(), "; the base model (",
                           lora_module_name(m), " has ", out, " outputs) needs [", out, ", ", rank, "]"));
      LoraWeights w;
      w.rank = static_cast<int>(rank);
      w.scale = scale;
      w.a.resize(static_cast<size_t>(rank * in));
      w.b.resize(static_cast<size_t>(out * rank));
      convert_to_f32(a->dtype, a->data, w.a.data(), w.a.size());
      std::vector<float> b_rows(w.b.size());  // [out, rank] as stored
      convert_to_f32(b->dtype, b->data, b_rows.data(), b_rows.size());
      for (int64_t o = 0; o < out; ++o)
        for (int64_t j = 0; j < rank; ++j) w.b[static_cast<size_t>(j * out + o)] = b_rows[static_cast<size_t>(o * rank + j)];
      for (float v : w.a)
        if (!std::isfinite(v)) throw Error(concat(weights_path, ": ", path, ".lora_A.weight holds NaN or Inf"));
      for (float v : w.b)
        if (!std::isfinite(v)) throw Error(concat(weights_path, ": ", path, ".lora_B.weight holds NaN or Inf"));
      w.store_as(dtype);
      adapter->bytes += w.bytes();
      adapter->layers[static_cast<size_t>(l)][static_cast<size_t>(mi)] = std::move(w);
      ++applied;
    }
  }
  if (!unused.empty())
    throw Error(concat(weights_path, ": tensor '", *unused.begin(), "' is not a LoRA weight of a GPT-NeoX projection",
                       unused.size() > 1 ? concat(" (and ", unused.size() - 1, " more)") : std::string(),
                       "; is this an adapter for another architecture?"));
  if (applied == 0) throw Error(concat(cfg.path, ": `target_modules` matches none of this model's projections"));
  return adapter;
}

}  // namespace flashneox
