#include "cli/model_flags.h"

#include <filesystem>

#include "cache/block_manager.h"
#include "core/memory_size.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/parallel.h"

namespace flashneox {

std::set<std::string> model_flags() { return {"--model", "--threads", "--dtype"}; }
std::set<std::string> model_switches() { return {"--check-weights"}; }

DType parse_weight_dtype(const std::string& s) {
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "f16" || s == "float16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "int8" || s == "i8") return DType::I8;
  throw Error(concat("--dtype must be f32, f16, bf16 or int8, not '", s, "'"));
}

std::set<std::string> engine_flags() {
  return {"--block-size",          "--kv-cache-memory",         "--kv-cache-dtype", "--max-input-length",
          "--max-total-tokens",    "--max-batch-prefill-tokens", "--max-batch-total-tokens",
          "--max-concurrent-requests", "--max-batch-size", "--max-active-adapters"};
}

std::set<std::string> sampling_flags() {
  return {"--max-new-tokens", "--temperature",       "--top-k",
          "--top-p",          "--typical-p",         "--repetition-penalty",
          "--frequency-penalty", "--presence-penalty", "--seed",
          "--stop",           "--top-n-tokens"};
}

std::set<std::string> sampling_switches() { return {"--ignore-eos", "--do-sample"}; }

std::set<std::string> merge(std::initializer_list<std::set<std::string>> sets) {
  std::set<std::string> out;
  for (const auto& s : sets) out.insert(s.begin(), s.end());
  return out;
}

DType parse_kv_dtype(const std::string& s) {
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "f16" || s == "float16") return DType::F16;
  throw Error(concat("--kv-cache-dtype must be f32 or f16, not '", s, "'"));
}

LoadedModel load_model_from_flags(const Args& args) {
  set_num_threads(args.get_int("--threads", 0));
  const std::string dir = args.get("--model", default_model_dir());
  LoadedModel loaded;
  LoadOptions load;
  if (args.has("--dtype")) load.weight_dtype = parse_weight_dtype(args.get("--dtype"));
  load.check_weights = args.has("--check-weights");
  loaded.model = GptNeoxModel::load(dir, nullptr, load);
  const std::string tokenizer_path = dir + "/tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path))
    throw Error(concat(dir, ": no tokenizer.json beside the model"));
  loaded.tokenizer = Tokenizer::from_file(tokenizer_path);
  const int32_t vocab = loaded.model->config().vocab_size;
  if (loaded.tokenizer->vocab_size() > vocab)
    throw Error(concat(tokenizer_path, ": has token ids up to ", loaded.tokenizer->vocab_size() - 1,
                       " but config.json's vocab_size is ", vocab));
  return loaded;
}

EngineOptions engine_options_from_flags(const Args& args) {
  EngineOptions o;
  o.block_size = args.get_int("--block-size", o.block_size);
  if (args.has("--kv-cache-memory")) o.kv_cache_bytes = parse_memory_budget(args.get("--kv-cache-memory"));
  o.kv_cache_dtype = parse_kv_dtype(args.get("--kv-cache-dtype", "f32"));
  o.max_input_length = args.get_int("--max-input-length", o.max_input_length);
  o.max_total_tokens = args.get_int("--max-total-tokens", o.max_total_tokens);
  o.max_batch_prefill_tokens = args.get_int("--max-batch-prefill-tokens", o.max_batch_prefill_tokens);
  o.max_batch_total_tokens = args.get_int("--max-batch-total-tokens", o.max_batch_total_tokens);
  o.max_concurrent_requests = args.get_int("--max-concurrent-requests", o.max_concurrent_requests);
  o.max_batch_size = args.get_int("--max-batch-size", o.max_batch_size);
  o.max_active_adapters = args.get_int("--max-active-adapters", o.max_active_adapters);
  return o;
}

SamplingParams sampling_params_from_flags(const Args& args) {
  SamplingParams p;
  p.do_sample = args.has("--do-sample");
  if (args.has("--temperature")) p.temperature = args.get_double("--temperature", 1.0);
  if (args.has("--top-k")) p.top_k = args.get_int("--top-k", 0);
  if (args.has("--top-p")) p.top_p = args.get_double("--top-p", 1.0);
  if (args.has("--typical-p")) p.typical_p = args.get_double("--typical-p", 1.0);
  if (args.has("--repetition-penalty")) p.repetition_penalty = args.get_double("--repetition-penalty", 1.0);
  p.frequency_penalty = args.get_double("--frequency-penalty", 0.0);
  p.presence_penalty = args.get_double("--presence-penalty", 0.0);
  if (args.has("--seed")) {
    const double seed = args.get_double("--seed", 0);
    if (seed < 0) throw Error("--seed must be non-negative");
    p.seed = static_cast<uint64_t>(seed);
  }
  p.max_new_tokens = args.get_int("--max-new-tokens", 64);
  p.stop = args.all("--stop");
  p.ignore_eos_token = args.has("--ignore-eos");
  p.top_n_tokens = args.get_int("--top-n-tokens", 0);
  p.validate();
  return p;
}

}  // namespace flashneox
