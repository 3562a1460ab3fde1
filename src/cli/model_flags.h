// Flags shared by the commands that run a model: which model, threads, the
// engine's limits and the sampling parameters.
#pragma once

#include <memory>
#include <string>

#include "cli/args.h"
#include "engine/engine.h"
#include "engine/sampling_params.h"
#include "model/gpt_neox.h"
#include "tokenizer/tokenizer.h"

namespace flashneox {

Flags model_flags();     // --model --threads --dtype --check-weights
// The single rows of model_flags(), for commands that take only some of them.
Flag model_flag();
Flag threads_flag();
Flag check_weights_flag();
Flag kv_cache_dtype_flag();
Flag speculate_flag();  // --speculate N
int parse_speculate(const Args& args);
Flag draft_model_flag();  // --draft-model DIR
// --draft-model, loaded with --dtype; throws when its tokenizer is not `tokenizer`.
std::shared_ptr<GptNeoxModel> load_draft_model(const Args& args, const Tokenizer& tokenizer);
// --dtype: the weights' compute dtype (f32, f16, bf16, int8); default: as stored.
// `name` is what error messages call it.
DType parse_weight_dtype(const std::string& text, const char* name = "--dtype");
// --kv-cache-dtype: f32 (default) or f16.
DType parse_kv_dtype(const std::string& text, const char* name = "--kv-cache-dtype");
Flags engine_flags();     // --block-size --kv-cache-memory --max-* ...
Flags sampling_flags();   // --temperature --top-k ... --stop --ignore-eos --do-sample
// --kv-cache-dtype and --block-size, for the commands that run one batch.
Flags cache_flags();
// `\n`, `\t` and `\\` in a flag's text (a shell passes them literally).
std::string unescape_flag_text(const std::string& text);

// --model: a folder, or a hub id (org/name[@revision]) resolved offline in
// the local Hugging Face cache. Throws Error naming where it looked; `what`
// names the kind of folder in the message ("model", "adapter").
std::string resolve_model_dir(const std::string& model, const char* what = "model");

struct LoadedModel {
  std::unique_ptr<GptNeoxModel> model;
  std::shared_ptr<const Tokenizer> tokenizer;
};
// Loads a model folder or hub id (resolve_model_dir) and its tokenizer.json
// (left null when the folder has none and it is not required).
LoadedModel load_model(const std::string& model, const LoadOptions& options = {}, bool require_tokenizer = true);
// Applies --threads, loads --model (default: the bundled one) and its tokenizer.json.
LoadedModel load_model_from_flags(const Args& args);

EngineOptions engine_options_from_flags(const Args& args);
SamplingParams sampling_params_from_flags(const Args& args);

}  // namespace flashneox
