// Reads the body of TGI/LoRAX /generate requests and of OpenAI requests into
// an engine request, with TGI's validation messages.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/request.h"
#include "lora/merge_spec.h"
#include "tokenizer/tokenizer.h"

namespace flashneox {

struct GenerateCall {
  std::string inputs;          // the prompt text
  GenerationRequest request;   // tokenized, parameters validated
  bool details = false;
  bool return_full_text = false;
  bool stream = false;         // the compat route "/" decides by this
  std::string adapter_id;      // "" for the base model
  std::string adapter_source = "hub";
  std::optional<MergeSpec> merged_adapters;  // LoRAX's per-request merge, instead of adapter_id
};

// Parses {"inputs": ..., "parameters": {...}, "stream": ...}. Throws ApiError.
GenerateCall parse_generate_body(const std::string& body, const Tokenizer& tokenizer);

// The JSON body (nesting limited), or ApiError 400 naming the problem.
nlohmann::json parse_json_body(const std::string& body);

// Tokenizes and applies `truncate` (keep the last N tokens, N > 0). Throws ApiError.
std::vector<int32_t> tokenize_prompt(const Tokenizer& tokenizer, const std::string& text,
                                     std::optional<int> truncate);

class JsonFields;
// `stop`: a list of strings (or, with allow_single_string, one string).
std::vector<std::string> read_stop(JsonFields& fields, const char* name, bool allow_single_string);
// SamplingParams::validate() as a 422.
void validate_sampling(const SamplingParams& p);

}  // namespace flashneox
