// flashneox serve: the HTTP server (TGI/LoRAX and OpenAI APIs, playground at /).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "server/server.h"

namespace flashneox {

namespace {
Server* g_server = nullptr;
void on_signal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

int run_serve(int argc, char** argv) {
  Args args(argc, argv, 2,
            merge({model_flags(), engine_flags(), {"--host", "--port", "--api-key", "--max-body-bytes", "--model-id", "--http-threads"}}),
            {});
  ServerOptions options;
  options.host = args.get("--host", options.host);
  options.port = args.get_int("--port", options.port);
  if (options.port < 0 || options.port > 65535) throw Error("--port must be between 0 and 65535");
  options.api_key = args.get("--api-key", std::getenv("FLASHNEOX_API_KEY") ? std::getenv("FLASHNEOX_API_KEY") : "");
  if (args.has("--max-body-bytes")) options.max_body_bytes = parse_memory_budget(args.get("--max-body-bytes"));
  options.http_threads = args.get_int("--http-threads", 0);
  const EngineOptions engine_options = engine_options_from_flags(args);
  LoadedModel loaded = load_model_from_flags(args);
  options.model_id = args.get("--model-id", std::filesystem::path(loaded.model->directory()).filename().string());
  const ModelConfig& c = loaded.model->config();
  const size_t weight_bytes = loaded.model->weights().weight_bytes;
  Engine engine(std::move(loaded.model), loaded.tokenizer, engine_options);
  Server server(engine, options);
  const int port = server.bind();
  std::signal(SIGPIPE, SIG_IGN);
  g_server = &server;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::fprintf(stderr,
               "flashneox: %s (%d layers, hidden %d, %.1f MiB weights), KV cache %.1f MiB "
               "(%d tokens), max_total_tokens %d\n",
               options.model_id.c_str(), c.num_layers, c.hidden_size, weight_bytes / 1048576.0,
               engine.kv_cache_bytes() / 1048576.0, engine.stats().kv_blocks_total * engine.options().block_size,
               engine.options().max_total_tokens);
  std::fprintf(stderr, "flashneox: serving on http://%s:%d (playground at /)%s\n", options.host.c_str(), port,
               options.api_key.empty() ? "" : ", API key required");
  std::fflush(stderr);
  server.serve();
  g_server = nullptr;
  std::fprintf(stderr, "flashneox: stopped\n");
  return 0;
}

}  // namespace flashneox
