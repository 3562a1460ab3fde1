#include "io/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"

namespace flashneox {

using nlohmann::json;

namespace {

struct Reader {
  const json& root;
  const std::string& origin;

  Error fail(const std::string& field, const std::string& why) const {
    return Error(concat(origin, ": field '", field, "' ", why));
  }
  int positive_int(const std::string& field) const {
    if (!root.contains(field)) throw fail(field, "is missing");
    const json& v = root[field];
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > (1u << 30)) ||
        v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 30))
      throw fail(field, concat("must be a positive integer up to 2^30; got ", v.dump()));
    return v.get<int>();
  }
  double number_or(const json& obj, const std::string& field, double fallback) const {
    if (!obj.contains(field) || obj[field].is_null()) return fallback;
    if (!obj[field].is_number()) throw fail(field, "must be a number");
    return obj[field].get<double>();
  }
  bool bool_or(const std::string& field, bool fallback) const {
    if (!root.contains(field) || root[field].is_null()) return fallback;
    if (!root[field].is_boolean()) throw fail(field, "must be true or false");
    return root[field].get<bool>();
  }
  // An integer in [min, max]: never truncated (2^32 + 5 is refused, not 5).
  int int_or(const std::string& field, int fallback, int64_t min, int64_t max) const {
    if (!root.contains(field) || root[field].is_null()) return fallback;
    const json& v = root[field];
    if (!v.is_number_integer()) throw fail(field, "must be an integer");
    const bool huge = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
    if (huge || v.get<int64_t>() < min || v.get<int64_t>() > max)
      throw fail(field, concat("is ", v.dump(), "; must be between ", min, " and ", max));
    return static_cast<int>(v.get<int64_t>());
  }
};

void parse_rope_scaling(const Reader& r, const json& scaling, const std::string& field,
                        ModelConfig& config) {
  if (scaling.is_null()) return;
  if (!scaling.is_object()) throw r.fail(field, "must be an object");
  std::string type;
  if (scaling.contains("rope_type") && scaling["rope_type"].is_string())
    type = scaling["rope_type"].get<std::string>();
  else if (scaling.contains("type") && scaling["type"].is_string())
    type = scaling["type"].get<std::string>();
  if (type.empty() || type == "default") return;
  if (type == "linear") {
    config.rope_scaling = RopeScaling::Linear;
  } else if (type == "dynamic") {
    config.rope_scaling = RopeScaling::Dynamic;
  } else {
    throw r.fail(field, concat("has rope type '", type, "'; supported: linear, dynamic"));
  }
  config.rope_factor = r.number_or(scaling, "factor", 0.0);
  if (!(config.rope_factor >= 1.0))
    throw r.fail(field, "needs a 'factor' of at least 1.0");
}

}  // namespace

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& origin) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(concat(origin, ": not valid JSON (", e.what(), ")"));
  }
  if (!root.is_object()) throw Error(concat(origin, ": not a JSON object"));
  Reader r{root, origin};
  if (root.contains("model_type")) {
    if (!root["model_type"].is_string() || root["model_type"].get<std::string>() != "gpt_neox")
      throw r.fail("model_type", concat("is ", root["model_type"].dump(),
                                        "; flashneox runs gpt_neox models only"));
  }
  ModelConfig c;
  c.vocab_size = r.positive_int("vocab_size");
  c.hidden_size = r.positive_int("hidden_size");
  c.num_heads = r.positive_int("num_attention_heads");
  c.num_layers = r.positive_int("num_hidden_layers");
  c.intermediate_size = r.positive_int("intermediate_size");
  if (c.hidden_size % c.num_heads != 0)
    throw r.fail("num_attention_heads",
                 concat("(", c.num_heads, ") does not divide hidden_size (", c.hidden_size, ")"));
  c.head_size = c.hidden_size / c.num_heads;

  // Rotary: legacy names first, then rope_parameters (transformers 5).
  const json empty = json::object();
  const json& params =
      root.contains("rope_parameters") && root["rope_parameters"].is_object()
          ? root["rope_parameters"]
          : empty;
  double rotary_pct = r.number_or(root, "rotary_pct", -1.0);
  if (rotary_pct < 0) rotary_pct = r.number_or(params, "partial_rotary_factor", -1.0);
  if (rotary_pct < 0) rotary_pct = r.number_or(root, "partial_rotary_factor", 1.0);
  if (!(rotary_pct > 0.0 && rotary_pct <= 1.0))
    throw r.fail("rotary_pct", "must be in (0, 1]");
  c.rotary_dims = static_cast<int>(c.head_size * rotary_pct);
  if (c.rotary_dims < 2 || c.rotary_dims % 2 != 0)
    throw r.fail("rotary_pct", concat("gives ", c.rotary_dims,
                                      " rotary dimensions; need an even number of at least 2"));
  c.rotary_base = r.number_or(root, "rotary_emb_base", -1.0);
  if (c.rotary_base < 0) c.rotary_base = r.number_or(params, "rope_theta", -1.0);
  if (c.rotary_base < 0) c.rotary_base = r.number_or(root, "rope_theta", 10000.0);
  if (!(c.rotary_base > 1.0)) throw r.fail("rotary_emb_base", "must be greater than 1");
  if (root.contains("rope_scaling")) parse_rope_scaling(r, root["rope_scaling"], "rope_scaling", c);
  if (c.rope_scaling == RopeScaling::None && !params.empty())
    parse_rope_scaling(r, params, "rope_parameters", c);

  c.max_position_embeddings = r.int_or("max_position_embeddings", 2048, 1, 1 << 24);
  c.layer_norm_eps = r.number_or(root, "layer_norm_eps", 1e-5);
  if (!(c.layer_norm_eps > 0)) throw r.fail("layer_norm_eps", "must be positive");
  c.parallel_residual = r.bool_or("use_parallel_residual", true);
  c.tie_word_embeddings = r.bool_or("tie_word_embeddings", false);
  c.attention_bias = r.bool_or("attention_bias", true);
  c.bos_token_id = r.int_or("bos_token_id", 0, 0, c.vocab_size - 1);
  c.eos_token_id = r.int_or("eos_token_id", 0, 0, c.vocab_size - 1);

  if (root.contains("hidden_act")) {
    if (!root["hidden_act"].is_string()) throw r.fail("hidden_act", "must be a string");
    c.activation_name = root["hidden_act"].get<std::string>();
  }
  if (c.activation_name == "gelu") {
    c.activation = Activation::GeluErf;
  } else if (c.activation_name == "gelu_new" || c.activation_name == "gelu_fast" ||
             c.activation_name == "gelu_pytorch_tanh") {
    c.activation = Activation::GeluTanh;
  } else {
    throw r.fail("hidden_act",
                 concat("is '", c.activation_name,
                        "'; supported: gelu, gelu_new, gelu_fast, gelu_pytorch_tanh"));
  }
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  return from_json_text(read_regular_file(path, 16 << 20), path);
}

}  // namespace flashneox
