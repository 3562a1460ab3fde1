// Every command's flags, in the order --help lists them.
#include "cli/commands.h"
#include "cli/model_flags.h"

namespace flashneox {

namespace {

const Flag kAdapterDir{"--adapter", "DIR", "", "run with this PEFT LoRA adapter"};

}  // namespace

Flags generate_flags() {
  return Flags{{"--prompt", "TEXT", "", "the prompt (required)"}} + model_flags() + cache_flags() + sampling_flags() +
         Flags{kAdapterDir, speculate_flag(), draft_model_flag()};
}

Flags perplexity_flags() {
  return Flags{{"--file", "PATH", "", "text file to score (required)"},
               {"--start-token", "N", "0", "skip the first N tokens of the file"},
               {"--max-tokens", "N", "all", "score only the first N tokens from --start-token (a quick estimate)"},
               {"--window", "N", "min(max_position_embeddings, 1024)", "tokens per scored window"},
               {"--stride", "N", "the window", "tokens between window starts; each window scores its last stride tokens"},
               {"--partial-window", "", "", "also score a last window shorter than --window"}} +
         model_flags() + Flags{kv_cache_dtype_flag(), kAdapterDir};
}

Flags logits_flags() {
  return {model_flag(),
          {"--ids", "1,2,3[@NAME]", "", "a sequence of token ids (required), run with adapter NAME", true},
          {"--lora", "NAME=DIR", "", "a PEFT LoRA adapter that --ids ...@NAME can name", true},
          {"--out", "FILE", "", "safetensors file for logits_<i> and hidden_<i> (required)"},
          {"--prefill", "N", "all", "tokens of each sequence in the batched prefill; the rest decode one by one"},
          {"--block-size", "N", "16", "tokens per KV cache block"},
          {"--scatter-blocks", "", "", "blocks from a shuffled pool, interleaved across sequences"},
          {"--hidden-states", "final|all", "final",
           "all: also hidden_states.<i> [layers + 1, len, hidden], as transformers' output_hidden_states"},
          threads_flag()};
}

Flags serve_flags() {
  return Flags{{"--host", "ADDR", "127.0.0.1", "address to listen on"},
               {"--port", "N", "8080", "port to listen on; 0 picks a free one"},
               {"--api-key", "KEY", "$FLASHNEOX_API_KEY", "require Authorization: Bearer KEY (all but /health)"},
               {"--model-id", "NAME", "the model folder's name", "the name /info and /v1/models report"}} +
         model_flags() + engine_flags() +
         Flags{{"--max-body-bytes", "SIZE", "1MiB", "largest request body (413 beyond)"},
               {"--max-connections", "N", "2048", "open connections; more get 503"},
               {"--http-threads", "N", "max-concurrent-requests + 16", "requests handled at once"},
               {"--header-timeout", "SECONDS", "10", "from connect to the end of the request headers"},
               {"--body-timeout", "SECONDS", "10", "for each read of a request body"},
               {"--keep-alive-timeout", "SECONDS", "15", "idle time between requests on one connection"},
               {"--shutdown-timeout", "SECONDS", "30", "on SIGTERM/SIGINT, time running requests get to finish"},
               {"--log-format", "text|json", "text", "access log format (stderr)"},
               {"--no-access-log", "", "", "no access log"},
               {"--adapter", "NAME=DIR", "", "preload a LoRA adapter under NAME (never evicted)", true},
               {"--adapter-root", "DIR", "off", "folder that adapter_source \"local\" ids must lie in"},
               {"--adapter-memory", "SIZE", "1GiB", "idle adapters beyond this are evicted"}};
}

Flags bench_flags() {
  return Flags{model_flag(),
               {"--config", "CONFIG.json", "", "benchmark random weights of this config instead of --model"},
               {"--dtype", "f32|f16|bf16|int8|q4|q4-g128", "as stored (f16 with --config)", "the weights' compute dtype"},
               threads_flag(),
               {"--batch", "N,N,...", "1,8,32", "batch sizes"},
               {"--prompt", "N,N,...", "128", "prompt lengths"},
               {"--new", "N", "128", "tokens generated per request"},
               {"--shared-prefix", "N", "off", "every request starts with the same N tokens: time to first token "
                "without and with prefix caching, side by side"},
               {"--contend", "", "", "decode with --threads and with 1 thread, on a quiet machine and with one "
                "core kept busy by another process, side by side"},
               {"--rounds", "N", "3", "with --shared-prefix or --contend, rounds of each (alternating)"}} +
         cache_flags() +
         Flags{{"--adapters", "N,N,...", "0", "distinct random LoRA adapters per batch (requests spread over them)"},
               {"--adapter-rank", "R", "16", "rank of the random adapters"},
               {"--adapter", "DIR", "", "every request runs with this PEFT LoRA adapter"},
               {"--json", "", "", "one JSON report on stdout"},
               speculate_flag(), draft_model_flag(), check_weights_flag()};
}

Flags tokenize_flags() {
  return {{"--tokenizer", "FILE", "the bundled model's tokenizer.json", "tokenizer.json to use"},
          {"--decode", "", "", "read JSON lists of ids and write text, instead of text to ids"},
          {"--skip-special-tokens", "", "", "with --decode, leave special tokens out"}};
}

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"serve", run_serve, serve_flags, "Serves the TGI/LoRAX and OpenAI HTTP APIs (playground at /)."},
      {"generate", run_generate, generate_flags, "Generates a continuation of --prompt and prints it."},
      {"perplexity", run_perplexity, perplexity_flags, "Perplexity of a text file, in sliding windows."},
      {"logits", run_logits, logits_flags, "Writes the logits and final hidden states of token sequences, one batch."},
      {"bench", run_bench, bench_flags, "Prefill and decode throughput, and the machine's own limits beside them."},
      {"tokenize", run_tokenize, tokenize_flags, "Text to token ids (or back with --decode), one JSON line each."},
  };
  return table;
}

}  // namespace flashneox
