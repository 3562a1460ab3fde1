#include "server/generate_params.h"

#include "server/api_error.h"

namespace flashneox {

using nlohmann::json;

json parse_json_body(const std::string& body) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    throw bad_request(concat("Failed to parse the request body as JSON: ", e.what()));
  }
}

namespace {

// Typed getters that name the field when the type is wrong (422 as TGI does).
std::optional<double> number(const json& obj, const char* name) {
  if (!obj.contains(name) || obj[name].is_null()) return std::nullopt;
  if (!obj[name].is_number()) throw validation_error(concat("`", name, "` must be a number"));
  return obj[name].get<double>();
}
std::optional<int64_t> integer(const json& obj, const char* name) {
  if (!obj.contains(name) || obj[name].is_null()) return std::nullopt;
  if (!obj[name].is_number_integer()) throw validation_error(concat("`", name, "` must be an integer"));
  return obj[name].get<int64_t>();
}
bool boolean(const json& obj, const char* name, bool fallback) {
  if (!obj.contains(name) || obj[name].is_null()) return fallback;
  if (!obj[name].is_boolean()) throw validation_error(concat("`", name, "` must be true or false"));
  return obj[name].get<bool>();
}
int int_in_range(int64_t v, const char* name) {
  if (v < INT32_MIN || v > INT32_MAX) throw validation_error(concat("`", name, "` is out of range"));
  return static_cast<int>(v);
}

}  // namespace

std::vector<int32_t> tokenize_prompt(const Tokenizer& tokenizer, const std::string& text,
                                     std::optional<int> truncate) {
  std::vector<int32_t> ids;
  try {
    ids = tokenizer.encode(text);
  } catch (const Error& e) {
    throw validation_error(e.what());
  }
  if (truncate) {
    if (*truncate <= 0) throw validation_error("`truncate` must be strictly positive");
    if (static_cast<int>(ids.size()) > *truncate) ids.erase(ids.begin(), ids.end() - *truncate);
  }
  return ids;
}

GenerateCall parse_generate_body(const std::string& body, const Tokenizer& tokenizer) {
  const json root = parse_json_body(body);
  if (!root.is_object()) throw validation_error("the request body must be a JSON object");
  if (!root.contains("inputs") || !root["inputs"].is_string())
    throw validation_error("`inputs` must be a string");
  GenerateCall call;
  call.inputs = root["inputs"].get<std::string>();
  call.stream = boolean(root, "stream", false);
  const json params = root.value("parameters", json::object());
  if (!params.is_object()) throw validation_error("`parameters` must be an object");
  SamplingParams& p = call.request.params;
  p.do_sample = boolean(params, "do_sample", false);
  if (auto v = integer(params, "max_new_tokens")) p.max_new_tokens = int_in_range(*v, "max_new_tokens");
  if (auto v = number(params, "temperature")) {
    if (*v <= 0) throw validation_error("`temperature` must be strictly positive");
    p.temperature = *v;
  }
  if (auto v = integer(params, "top_k")) p.top_k = int_in_range(*v, "top_k");
  if (auto v = number(params, "top_p")) {
    if (!(*v > 0.0 && *v < 1.0)) throw validation_error("`top_p` must be > 0.0 and < 1.0");
    p.top_p = *v;
  }
  if (auto v = number(params, "typical_p")) {
    if (!(*v > 0.0 && *v < 1.0)) throw validation_error("`typical_p` must be > 0.0 and < 1.0");
    p.typical_p = *v;
  }
  if (auto v = number(params, "repetition_penalty")) p.repetition_penalty = *v;
  if (auto v = number(params, "frequency_penalty")) p.frequency_penalty = *v;
  if (auto v = number(params, "presence_penalty")) p.presence_penalty = *v;
  if (auto v = integer(params, "seed")) {
    if (*v < 0) throw validation_error("`seed` must be non-negative");
    p.seed = static_cast<uint64_t>(*v);
  }
  if (auto v = integer(params, "top_n_tokens")) p.top_n_tokens = int_in_range(*v, "top_n_tokens");
  if (params.contains("stop") && !params["stop"].is_null()) {
    if (!params["stop"].is_array()) throw validation_error("`stop` must be a list of strings");
    for (const json& s : params["stop"]) {
      if (!s.is_string()) throw validation_error("`stop` must be a list of strings");
      p.stop.push_back(s.get<std::string>());
    }
  }
  p.ignore_eos_token = boolean(params, "ignore_eos_token", false);
  p.decoder_input_details = boolean(params, "decoder_input_details", false);
  call.details = boolean(params, "details", false);
  call.return_full_text = boolean(params, "return_full_text", false);
  if (auto v = integer(params, "best_of"); v && *v != 1)
    throw validation_error("`best_of` other than 1 is not supported by this server");
  if (boolean(params, "watermark", false))
    throw validation_error("`watermark` is not supported by this server");
  if (params.contains("adapter_id") && !params["adapter_id"].is_null()) {
    if (!params["adapter_id"].is_string()) throw validation_error("`adapter_id` must be a string");
    const std::string id = params["adapter_id"].get<std::string>();
    if (!id.empty())
      throw validation_error(concat("adapter '", id, "' is not loaded: this server serves the base model only"));
  }
  if (params.contains("merged_adapters") && !params["merged_adapters"].is_null())
    throw validation_error("`merged_adapters` is not supported by this server");
  try {
    p.validate();
  } catch (const Error& e) {
    throw validation_error(e.what());
  }
  std::optional<int> truncate;
  if (auto v = integer(params, "truncate")) truncate = int_in_range(*v, "truncate");
  call.request.prompt = tokenize_prompt(tokenizer, call.inputs, truncate);
  return call;
}

}  // namespace flashneox
