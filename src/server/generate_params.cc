#include "server/generate_params.h"

#include <climits>

#include "server/api_error.h"
#include "server/grammar_params.h"
#include "server/json_fields.h"

namespace flashneox {

using nlohmann::json;

json parse_json_body(const std::string& body) { return parse_json_limited(body); }

std::vector<int32_t> tokenize_prompt(const Tokenizer& tokenizer, const std::string& text,
                                     std::optional<int> truncate) {
  std::vector<int32_t> ids;
  try {
    ids = tokenizer.encode(text);
  } catch (const Error& e) {
    throw validation_error(e.what());
  }
  if (truncate && static_cast<int>(ids.size()) > *truncate) ids.erase(ids.begin(), ids.end() - *truncate);
  return ids;
}

std::vector<std::string> read_stop(JsonFields& f, const char* name, bool allow_single_string) {
  std::vector<std::string> out;
  const json* stop = f.raw(name);
  if (!stop) return out;
  const char* shape = allow_single_string ? "a string or a list of strings" : "a list of strings";
  if (allow_single_string && stop->is_string()) return {stop->get<std::string>()};
  if (!stop->is_array()) throw validation_error(concat("`", name, "` must be ", shape));
  for (const json& s : *stop) {
    if (!s.is_string()) throw validation_error(concat("`", name, "` must be ", shape));
    out.push_back(s.get<std::string>());
  }
  return out;
}

void validate_sampling(const SamplingParams& p) {
  try {
    p.validate();
  } catch (const Error& e) {
    throw validation_error(e.what());
  }
}

namespace {

// LoRAX's MergedAdapters: ids, weights, merge_strategy, density, majority_sign_method.
MergeSpec read_merge_spec(const json& value) {
  JsonFields f(value, "parameters.merged_adapters");
  MergeSpec spec;
  const json* ids = f.raw("ids");
  if (!ids || !ids->is_array()) throw validation_error("`merged_adapters.ids` must be a list of adapter ids");
  for (const json& id : *ids) {
    if (!id.is_string()) throw validation_error("`merged_adapters.ids` must be a list of adapter ids");
    spec.ids.push_back(id.get<std::string>());
  }
  if (const json* weights = f.raw("weights")) {
    if (!weights->is_array()) throw validation_error("`merged_adapters.weights` must be a list of numbers");
    for (const json& w : *weights) {
      if (!w.is_number()) throw validation_error("`merged_adapters.weights` must be a list of numbers");
      spec.weights.push_back(w.get<double>());
    }
  }
  if (auto s = f.string("merge_strategy")) spec.strategy = *s;
  if (auto d = f.number("density", 0.0, 1.0)) spec.density = *d;
  if (auto m = f.string("majority_sign_method")) spec.majority_sign_method = *m;
  f.finish();
  try {
    spec.validate();
  } catch (const Error& e) {
    throw validation_error(e.what());
  }
  return spec;
}

}  // namespace

GenerateCall parse_generate_body(const std::string& body, const Tokenizer& tokenizer) {
  const json root = parse_json_body(body);
  JsonFields top(root, "");
  GenerateCall call;
  const auto inputs = top.string("inputs");
  if (!inputs) throw validation_error("`inputs` must be a string");
  call.inputs = *inputs;
  call.stream = top.boolean("stream").value_or(false);
  static const json kEmpty = json::object();
  const json* params_json = top.raw("parameters");
  top.finish();
  JsonFields f(params_json ? *params_json : kEmpty, "parameters");
  SamplingParams& p = call.request.params;
  p.do_sample = f.boolean("do_sample").value_or(false);
  if (auto v = f.integer("max_new_tokens", 1, INT32_MAX)) p.max_new_tokens = static_cast<int>(*v);
  // Any positive temperature works (the sampler is in log space); 0 is refused
  // as TGI does, since do_sample=false already means greedy.
  if (auto v = f.number("temperature", 0.0, 1e300)) {
    if (*v <= 0) throw validation_error("`temperature` must be strictly positive");
    p.temperature = *v;
  }
  if (auto v = f.integer("top_k", 1, INT32_MAX)) p.top_k = static_cast<int>(*v);
  if (auto v = f.number("top_p", 0.0, 1.0)) {
    if (!(*v > 0.0 && *v < 1.0)) throw validation_error("`top_p` must be > 0.0 and < 1.0");
    p.top_p = *v;
  }
  if (auto v = f.number("typical_p", 0.0, 1.0)) {
    if (!(*v > 0.0 && *v < 1.0)) throw validation_error("`typical_p` must be > 0.0 and < 1.0");
    p.typical_p = *v;
  }
  if (auto v = f.number("repetition_penalty", 0.0, 1e9)) p.repetition_penalty = *v;
  if (auto v = f.number("frequency_penalty", -2.0, 2.0)) p.frequency_penalty = *v;
  if (auto v = f.number("presence_penalty", -2.0, 2.0)) p.presence_penalty = *v;
  if (auto v = f.integer("seed", 0, INT64_MAX)) p.seed = static_cast<uint64_t>(*v);
  if (auto v = f.integer("top_n_tokens", 0, 10)) p.top_n_tokens = static_cast<int>(*v);
  if (auto v = f.integer("speculate", 0, kMaxSpeculate)) p.speculate = static_cast<int>(*v);
  // LoRAX's name for the same thing.
  if (auto v = f.integer("return_k_alternatives", 0, 10)) p.top_n_tokens = static_cast<int>(*v);
  p.stop = read_stop(f, "stop", false);
  p.ignore_eos_token = f.boolean("ignore_eos_token").value_or(false);
  p.decoder_input_details = f.boolean("decoder_input_details").value_or(false);
  call.details = f.boolean("details").value_or(false);
  p.logprobs = call.details || call.stream;  // what the response shows (stream events carry each token's)
  call.return_full_text = f.boolean("return_full_text").value_or(false);
  if (auto v = f.integer("best_of", 1, INT32_MAX); v && *v != 1)
    throw validation_error("`best_of` other than 1 is not supported by this server");
  if (f.boolean("watermark").value_or(false)) throw validation_error("`watermark` is not supported by this server");
  call.adapter_id = f.string("adapter_id").value_or("");
  if (auto source = f.string("adapter_source"); source && !source->empty()) {
    if (*source != "hub" && *source != "local")
      throw validation_error("`adapter_source` must be \"hub\" or \"local\"");
    call.adapter_source = *source;
  }
  if (const json* merged = f.raw("merged_adapters")) {
    if (!call.adapter_id.empty()) throw validation_error("give at most one of `adapter_id` and `merged_adapters`");
    call.merged_adapters = read_merge_spec(*merged);
  }
  f.string("api_token");  // for hub downloads in LoRAX; nothing is downloaded here (README)
  const bool has_grammar = f.raw("grammar") != nullptr, has_format = f.raw("response_format") != nullptr;
  if (has_grammar && has_format) throw validation_error("give at most one of `grammar` and `response_format`");
  if (has_grammar || has_format) {  // schemas are read in written order (property order)
    const nlohmann::ordered_json ordered = parse_ordered_json_limited(body);
    const nlohmann::ordered_json& params = ordered["parameters"];
    p.grammar = has_grammar ? read_tgi_grammar(params["grammar"], "parameters.grammar")
                            : read_response_format(params["response_format"], "parameters.response_format");
  }
  std::optional<int> truncate;
  if (auto v = f.integer("truncate", 1, INT32_MAX)) truncate = static_cast<int>(*v);
  f.finish();
  validate_sampling(p);
  call.request.prompt = tokenize_prompt(tokenizer, call.inputs, truncate);
  return call;
}

}  // namespace flashneox
