#include "cli/model_flags.h"

#include <filesystem>

#include "cache/block_manager.h"
#include "core/memory_size.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/parallel.h"
#include "distributed/tensor_parallel_job.h"
#include "io/hub_cache.h"

namespace flashneox {

Flag model_flag() {
  return {"--model", "DIR|ORG/NAME[@REV]", "the bundled model",
          "model folder (config.json, *.safetensors or *.bin, tokenizer.json), or a hub id in the local HF cache"};
}
Flag threads_flag() { return {"--threads", "N", "0", "compute threads; 0: every core (or OMP_NUM_THREADS when set)"}; }
Flag check_weights_flag() { return {"--check-weights", "", "", "scan every weight for NaN/Inf before use"}; }

Flags model_flags() {
  return {model_flag(), threads_flag(), {"--dtype", "f32|f16|bf16|int8|q4|q4-g128", "as stored",
                                             "the weights' compute dtype (q4: 4 bits, a scale per 32 inputs; q4-g128: per 128)"},
          check_weights_flag()};
}

Flag kv_cache_dtype_flag() { return {"--kv-cache-dtype", "f32|f16", "f32", "KV cache element type"}; }

Flag speculate_flag() {
  return {"--speculate", "N", "off",
          "speculative decoding: up to N tokens per step guessed by prompt lookup (the last tokens matched earlier in "
          "the prompt and output) and checked in the same forward; the output is unchanged"};
}

Flag draft_model_flag() {
  return {"--draft-model", "DIR|ORG/NAME", "off",
          "speculate with this smaller GPT-NeoX of the same tokenizer as the guesser (--speculate defaults to 4)"};
}

std::shared_ptr<GptNeoxModel> load_draft_model(const Args& args, const Tokenizer& tokenizer) {
  if (!args.has("--draft-model")) return nullptr;
  LoadOptions options;
  if (args.has("--dtype")) options.weight_dtype = parse_weight_dtype(args.get("--dtype"));
  LoadedModel draft = load_model(args.get("--draft-model"), options, /*require_tokenizer=*/false);
  if (draft.tokenizer) {  // the same ids must mean the same text
    const Tokenizer& other = *draft.tokenizer;
    bool same = other.vocab_size() == tokenizer.vocab_size();
    for (int32_t id = 0; same && id < tokenizer.vocab_size(); ++id)
      same = other.token_bytes(id) == tokenizer.token_bytes(id) && other.is_special(id) == tokenizer.is_special(id);
    if (!same)
      throw Error(concat(args.get("--draft-model"), ": the draft model's tokenizer.json differs from the model's; a draft "
                         "must share its tokenizer"));
  }
  return std::shared_ptr<GptNeoxModel>(std::move(draft.model));
}

Flags cache_flags() { return {kv_cache_dtype_flag(), {"--block-size", "N", "16", "tokens per KV cache block"}}; }

DType parse_weight_dtype(const std::string& s, const char* name) {
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "f16" || s == "float16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "int8" || s == "i8") return DType::I8;
  if (s == "q4") return DType::Q4;
  if (s == "q4-g128") return DType::Q4G128;
  throw Error(concat(name, " must be f32, f16, bf16, int8, q4 or q4-g128, not '", s, "'"));
}

Flags engine_flags() {
  return cache_flags() +
         Flags{{"--kv-cache-memory", "SIZE|FRACTION", "min(20% of free memory, 2GiB)",
                "KV cache budget: bytes (1GiB, 512MiB) or a fraction of available memory (0.2)"},
               {"--max-input-length", "N", "max-total-tokens - 1", "longest prompt accepted, in tokens"},
               {"--max-total-tokens", "N", "min(max_position_embeddings, 2048)", "prompt plus new tokens per request"},
               {"--max-batch-prefill-tokens", "N", "4096", "prompt tokens per forward (longer prompts are chunked)"},
               {"--max-batch-total-tokens", "N", "the cache's capacity", "tokens the running batch may reach"},
               {"--max-concurrent-requests", "N", "128", "requests waiting or running; more are refused (429)"},
               {"--max-batch-size", "N", "256", "sequences in the running batch"},
               {"--max-active-adapters", "N", "128", "distinct LoRA adapters in the running batch"},
               {"--no-prefix-caching", "", "", "recompute every prompt (by default whole blocks of K/V computed before "
                "for the same leading tokens and adapter are reused)"},
               speculate_flag(), draft_model_flag()};
}

Flags sampling_flags() {
  return {{"--max-new-tokens", "N", "64", "tokens to generate"},
          {"--do-sample", "", "", "sample even without --temperature/--top-k/--top-p/--typical-p"},
          {"--temperature", "T", "greedy", "sample at this softmax temperature (other than 1 samples; 0 is greedy)"},
          {"--top-k", "K", "off", "sample among the K most likely tokens"},
          {"--top-p", "P", "off", "nucleus sampling: the smallest set with probability >= P"},
          {"--typical-p", "P", "off", "locally typical sampling"},
          {"--repetition-penalty", "R", "1.0", "divide the logits of tokens already seen by R (CTRL's penalty)"},
          {"--frequency-penalty", "F", "0.0", "subtract F times each token's count so far, -2..2"},
          {"--presence-penalty", "P", "0.0", "subtract P from every token seen so far, -2..2"},
          {"--seed", "S", "random", "sampling seed"},
          {"--stop", "TEXT", "", "stop when TEXT appears (\\n and \\t are newline and tab)", true},
          {"--ignore-eos", "", "", "keep generating past the end-of-sequence token"},
          {"--top-n-tokens", "N", "0", "also report the N most likely tokens at each step"}};
}

std::string unescape_flag_text(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      const char next = text[i + 1];
      if (next == 'n' || next == 't' || next == '\\') {
        out += next == 'n' ? '\n' : next == 't' ? '\t' : '\\';
        ++i;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

DType parse_kv_dtype(const std::string& s, const char* name) {
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "f16" || s == "float16") return DType::F16;
  throw Error(concat(name, " must be f32 or f16, not '", s, "'"));
}

std::string resolve_model_dir(const std::string& model, const char* what) {
  std::error_code ec;
  if (std::filesystem::is_directory(model, ec)) return model;
  if (!std::filesystem::exists(model, ec) && is_hub_id(model)) return resolve_hub_snapshot(default_hub_cache(), model).dir;
  throw Error(concat(model, ": no such ", what, " folder (nor a hub id org/name[@revision] in the local Hugging Face cache)"));
}

LoadedModel load_model(const std::string& model, const LoadOptions& options, bool require_tokenizer) {
  const std::string dir = resolve_model_dir(model);
  LoadedModel loaded;
  loaded.model = options.tensor_parallel ? load_tensor_parallel_model(*options.tensor_parallel, dir, options)
                                         : GptNeoxModel::load(dir, nullptr, options);
  const std::string tokenizer_path = dir + "/tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path)) {
    if (!require_tokenizer) return loaded;
    throw Error(concat(dir, ": no tokenizer.json beside the model"));
  }
  loaded.tokenizer = Tokenizer::from_file(tokenizer_path);
  const int32_t vocab = loaded.model->config().vocab_size;
  if (loaded.tokenizer->vocab_size() > vocab)
    throw Error(concat(tokenizer_path, ": has token ids up to ", loaded.tokenizer->vocab_size() - 1,
                       " but config.json's vocab_size is ", vocab));
  return loaded;
}

LoadedModel load_model_from_flags(const Args& args) {
  set_num_threads(args.get_int("--threads", 0));
  LoadOptions load;
  if (args.has("--dtype")) load.weight_dtype = parse_weight_dtype(args.get("--dtype"));
  load.check_weights = args.has("--check-weights");
  load.tensor_parallel = tensor_parallel_world();  // under mpirun: split over its ranks
  return load_model(args.get("--model", default_model_dir()), load);
}

int parse_speculate(const Args& args) {
  const int n = args.get_int("--speculate", 0);
  if (n < 0 || n > kMaxSpeculate) throw Error(concat("--speculate must be between 0 and ", kMaxSpeculate));
  return n;
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
  o.prefix_caching = !args.has("--no-prefix-caching");
  o.speculate = parse_speculate(args);
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
  for (const std::string& stop : args.all("--stop")) p.stop.push_back(unescape_flag_text(stop));
  p.ignore_eos_token = args.has("--ignore-eos");
  p.top_n_tokens = args.get_int("--top-n-tokens", 0);
  try {
    p.validate();
  } catch (const Error& e) {
    // The message names the API field (`top_p`); here the user typed a flag (--top-p).
    std::string message = e.what();
    if (const size_t open = message.find('`'), close = message.find('`', open + 1);
        open != std::string::npos && close != std::string::npos) {
      std::string flag = "--" + message.substr(open + 1, close - open - 1);
      for (char& c : flag)
        if (c == '_') c = '-';
      if (flag == "--ignore-eos-token") flag = "--ignore-eos";
      message = flag + message.substr(close + 1);
    }
    throw Error(message);
  }
  return p;
}

}  // namespace flashneox
