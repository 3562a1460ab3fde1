// flashneox generate: streams a continuation of --prompt to stdout as it is
// produced (only the generated text, so it can be piped); a one-line summary
// goes to stderr.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"

namespace flashneox {

int run_generate(int argc, char** argv) {
  Args args(argc, argv, 2, generate_flags());
  const std::string prompt = args.require("--prompt");
  const SamplingParams params = sampling_params_from_flags(args);
  LoadedModel loaded = load_model_from_flags(args);
  const std::vector<int32_t> ids = loaded.tokenizer->encode(prompt);
  if (ids.empty()) throw Error("--prompt encodes to no tokens");

  // A cache sized for this one request, not the server's default budget.
  EngineOptions options;
  options.block_size = args.get_int("--block-size", options.block_size);
  options.kv_cache_dtype = parse_kv_dtype(args.get("--kv-cache-dtype", "f32"));
  options.speculate = parse_speculate(args);
  options.draft_model = load_draft_model(args, *loaded.tokenizer);
  const ModelConfig& c = loaded.model->config();
  const int64_t total_tokens = static_cast<int64_t>(ids.size()) + params.max_new_tokens;
  if (total_tokens > c.max_position_embeddings && c.rope_scaling != RopeScaling::Dynamic)
    throw Error(concat("the prompt (", ids.size(), " tokens) plus --max-new-tokens (", params.max_new_tokens,
                       ") is ", total_tokens, " positions, more than the model's max_position_embeddings (",
                       c.max_position_embeddings, ")"));
  options.max_total_tokens = static_cast<int>(total_tokens);
  options.max_input_length = static_cast<int>(ids.size());
  options.kv_cache_bytes = KvCache::block_bytes(c.num_layers, options.block_size, c.num_heads, c.head_size,
                                                options.kv_cache_dtype) *
                           static_cast<size_t>((options.max_total_tokens + options.block_size - 1) / options.block_size);
  const ModelConfig config = c;
  const DType adapter_dtype = lora_dtype_for(loaded.model->weights().dtype);
  Engine engine(std::move(loaded.model), loaded.tokenizer, options);

  const auto start = Clock::now();
  GenerationRequest request{ids, params, nullptr};
  if (args.has("--adapter")) request.adapter = LoraAdapter::load(args.get("--adapter"), args.get("--adapter"), config, adapter_dtype);
  auto handle = engine.submit(std::move(request));
  RequestEvent event;
  Clock::time_point first_token{};
  for (;;) {
    if (!handle->next(event, std::chrono::milliseconds(0))) {
      engine.step();
      continue;
    }
    if (event.kind == RequestEvent::Kind::Token) {
      if (first_token == Clock::time_point{}) first_token = Clock::now();
      if (!event.token.special) {
        std::fwrite(event.token.text.data(), 1, event.token.text.size(), stdout);
        std::fflush(stdout);
      }
      continue;
    }
    if (event.kind == RequestEvent::Kind::Failed) throw Error(event.error);
    break;
  }
  const double total = std::chrono::duration<double>(Clock::now() - start).count();
  const double ttft = std::chrono::duration<double>(first_token - start).count();
  const double decode = total - ttft;
  std::string speculation;
  if (const uint64_t proposed = engine.metrics().speculated_tokens())
    speculation = concat(", speculation: ", engine.metrics().accepted_speculated_tokens(), " of ", proposed,
                         " guesses accepted");
  std::fprintf(stderr, "\n[%d prompt tokens, %d generated, finish: %s, %.2f s, %.1f tokens/s, first token %.0f ms%s%s]\n",
               event.prompt_tokens, event.generated_tokens, finish_reason_name(event.finish_reason), total,
               event.generated_tokens > 1 && decode > 0 ? (event.generated_tokens - 1) / decode : 0.0,
               ttft * 1000.0, event.seed ? (", seed " + std::to_string(*event.seed)).c_str() : "",
               speculation.c_str());
  return 0;
}

}  // namespace flashneox
