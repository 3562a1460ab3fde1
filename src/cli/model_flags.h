// Flags shared by the commands that run a model: which model, threads, the
// engine's limits and the sampling parameters.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "cli/args.h"
#include "engine/engine.h"
#include "engine/sampling_params.h"
#include "model/gpt_neox.h"
#include "tokenizer/tokenizer.h"

namespace flashneox {

std::set<std::string> model_flags();     // --model --threads --dtype
std::set<std::string> model_switches();  // --check-weights
// --dtype: the weights' compute dtype (f32, f16, bf16, int8); default: as stored.
DType parse_weight_dtype(const std::string& text);
// --kv-cache-dtype: f32 (default) or f16.
DType parse_kv_dtype(const std::string& text);
std::set<std::string> engine_flags();    // --block-size --kv-cache-memory --max-* ...
std::set<std::string> sampling_flags();  // --temperature --top-k ... --stop
std::set<std::string> sampling_switches();  // --ignore-eos --do-sample
std::set<std::string> merge(std::initializer_list<std::set<std::string>> sets);

struct LoadedModel {
  std::unique_ptr<GptNeoxModel> model;
  std::shared_ptr<const Tokenizer> tokenizer;
};
// Applies --threads, loads --model (default: the bundled one) and its tokenizer.json.
LoadedModel load_model_from_flags(const Args& args);

EngineOptions engine_options_from_flags(const Args& args);
SamplingParams sampling_params_from_flags(const Args& args);

}  // namespace flashneox
