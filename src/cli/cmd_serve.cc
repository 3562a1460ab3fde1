// flashneox serve: the HTTP server (TGI/LoRAX and OpenAI APIs, playground at /).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/memory_size.h"
#include "io/hub_cache.h"
#include "server/server.h"

namespace flashneox {

namespace {

// The handler only counts (async-signal-safe); the main thread acts on it.
std::atomic<int> g_signals{0};
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int) {
  if (g_signals.fetch_add(1) >= 1) _exit(1);  // a second signal: leave at once
}

double positive_seconds(const Args& args, const char* flag, double fallback) {
  const double v = args.get_double(flag, fallback);
  if (!(v > 0 && v <= 86400)) throw Error(concat(flag, " must be a number of seconds > 0"));
  return v;
}

}  // namespace

int run_serve(int argc, char** argv) {
  Args args(argc, argv, 2, serve_flags());
  ServerOptions options;
  options.host = args.get("--host", options.host);
  options.port = args.get_int("--port", options.port);
  if (options.port < 0 || options.port > 65535) throw Error("--port must be between 0 and 65535");
  options.api_key = args.get("--api-key", std::getenv("FLASHNEOX_API_KEY") ? std::getenv("FLASHNEOX_API_KEY") : "");
  HttpLimits& http = options.http;
  if (args.has("--max-body-bytes")) http.max_body_bytes = parse_byte_size(args.get("--max-body-bytes"), "--max-body-bytes");
  http.handler_threads = args.get_int("--http-threads", 0);
  if (http.handler_threads < 0) throw Error("--http-threads must be >= 0 (0: max_concurrent_requests + 16)");
  http.max_connections = args.get_int("--max-connections", http.max_connections);
  if (http.max_connections < 1) throw Error("--max-connections must be at least 1");
  http.header_timeout_s = positive_seconds(args, "--header-timeout", http.header_timeout_s);
  http.body_read_timeout_s = positive_seconds(args, "--body-timeout", http.body_read_timeout_s);
  http.keep_alive_timeout_s = positive_seconds(args, "--keep-alive-timeout", http.keep_alive_timeout_s);
  const double shutdown_timeout = positive_seconds(args, "--shutdown-timeout", 30.0);
  options.access_log = args.has("--no-access-log") ? AccessLogFormat::Off
                                                   : parse_access_log_format(args.get("--log-format", "text"));
  for (const std::string& spec : args.all("--adapter")) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw Error(concat("--adapter takes NAME=DIR, not '", spec, "'"));
    options.preload_adapters.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
  }
  options.adapters.local_root = args.get("--adapter-root", "");
  if (args.has("--adapter-memory"))
    options.adapters.memory_budget = parse_byte_size(args.get("--adapter-memory"), "--adapter-memory");
  EngineOptions engine_options = engine_options_from_flags(args);
  configure_allocator_for_server();
  LoadedModel loaded = load_model_from_flags(args);
  engine_options.draft_model = load_draft_model(args, *loaded.tokenizer);
  // A hub id names itself; a folder by its name.
  const std::string model_arg = args.get("--model", "");
  const bool from_hub = !model_arg.empty() && !std::filesystem::exists(model_arg) && is_hub_id(model_arg);
  options.model_id = args.get("--model-id", from_hub ? model_arg.substr(0, model_arg.find('@'))
                                                     : std::filesystem::path(loaded.model->directory()).filename().string());
  const ModelConfig& c = loaded.model->config();
  const size_t weight_bytes = loaded.model->weights().weight_bytes;
  Engine engine(std::move(loaded.model), loaded.tokenizer, engine_options);
  Server server(engine, options);
  const int port = server.bind();
  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::fprintf(stderr,
               "flashneox: %s (%d layers, hidden %d, %.1f MiB weights), KV cache %.1f MiB "
               "(%d tokens), activations up to %.1f MiB, max_total_tokens %d\n",
               options.model_id.c_str(), c.num_layers, c.hidden_size, weight_bytes / 1048576.0,
               engine.kv_cache_bytes() / 1048576.0, engine.stats().kv_blocks_total * engine.options().block_size,
               engine.workspace_bytes() / 1048576.0, engine.options().max_total_tokens);
  server.start();
  std::fprintf(stderr, "flashneox: serving on http://%s:%d (playground at /)%s\n", options.host.c_str(), port,
               options.api_key.empty() ? "" : ", API key required");
  std::fflush(stderr);
  while (g_signals.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::fprintf(stderr,
               "flashneox: shutting down: no new requests; running ones get up to %.0f s "
               "(a second signal exits at once)\n",
               shutdown_timeout);
  std::fflush(stderr);
  server.shutdown(shutdown_timeout);
  std::fprintf(stderr, "flashneox: stopped\n");
  return 0;
}

}  // namespace flashneox
