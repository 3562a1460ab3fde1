// Service routes: GET /health, GET /info (LoRAX's fields), GET /metrics
// (Prometheus text), GET /openapi.json (api/openapi.h) and POST /tokenize
// (ids with text and byte offsets).
#include "server/api/openapi.h"
#include "server/generate_params.h"
#include "server/http_util.h"
#include "server/server.h"

#ifndef FLASHNEOX_VERSION
#define FLASHNEOX_VERSION "dev"
#endif

namespace flashneox {

using nlohmann::json;

namespace {

std::string render_metrics(Server& server) {
  const Engine& engine = server.engine();
  const EngineStats s = engine.stats();
  const EngineMetrics& m = engine.metrics();
  std::string out;
  auto gauge = [&](const char* name, const char* help, double value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " +
           std::to_string(value) + "\n";
  };
  out += "# HELP flashneox_requests_total Requests by outcome.\n# TYPE flashneox_requests_total counter\n";
  for (const auto& [outcome, count] : m.requests_by_outcome())
    out += "flashneox_requests_total{outcome=\"" + outcome + "\"} " + std::to_string(count) + "\n";
  out += "# HELP flashneox_generated_tokens_total Tokens generated.\n# TYPE flashneox_generated_tokens_total counter\n";
  out += "flashneox_generated_tokens_total " + std::to_string(m.generated_tokens()) + "\n";
  out += "# HELP flashneox_prompt_tokens_total Prompt tokens processed.\n# TYPE flashneox_prompt_tokens_total counter\n";
  out += "flashneox_prompt_tokens_total " + std::to_string(m.prompt_tokens()) + "\n";
  gauge("flashneox_queue_size", "Requests waiting to be admitted.", s.waiting);
  gauge("flashneox_batch_current_size", "Sequences in the running batch.", s.running);
  gauge("flashneox_kv_cache_blocks_total", "KV-cache blocks.", s.kv_blocks_total);
  gauge("flashneox_kv_cache_blocks_used", "KV-cache blocks in use.", s.kv_blocks_used);
  gauge("flashneox_kv_cache_blocks_free", "KV-cache blocks free (cached prefixes included).", s.kv_blocks_free);
  gauge("flashneox_kv_cache_blocks_cached", "Free KV-cache blocks that hold a reusable prefix.", s.kv_blocks_cached);
  m.time_to_first_token.render("flashneox_time_to_first_token_seconds", "Time from arrival to the first token.", out);
  m.inter_token_latency.render("flashneox_inter_token_latency_seconds", "Time between consecutive tokens.", out);
  m.end_to_end_latency.render("flashneox_request_duration_seconds", "Time from arrival to the last token.", out);
  m.batch_size.render("flashneox_batch_forward_size", "Sequences per forward pass.", out);
  const AdapterStoreStats a = server.adapters().stats();
  gauge("flashneox_adapters_loaded", "LoRA adapters in memory.", a.loaded);
  gauge("flashneox_adapter_memory_bytes", "Memory the loaded adapters take.", static_cast<double>(a.bytes));
  auto counter = [&](const char* name, const char* help, double value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " +
           std::to_string(value) + "\n";
  };
  const double looked_up = static_cast<double>(m.prefix_lookup_tokens());
  const double hits = static_cast<double>(m.prefix_hit_tokens());
  counter("flashneox_prefix_cache_lookup_tokens_total", "Tokens of admitted sequences looked up in the prefix cache.",
          looked_up);
  counter("flashneox_prefix_cache_hit_tokens_total", "Of those, tokens whose K/V were found there (not recomputed).",
          hits);
  gauge("flashneox_prefix_cache_hit_rate", "Hit tokens over looked-up tokens so far.",
        looked_up > 0 ? hits / looked_up : 0.0);
  const double proposed = static_cast<double>(m.speculated_tokens());
  const double accepted = static_cast<double>(m.accepted_speculated_tokens());
  counter("flashneox_speculative_proposed_tokens_total", "Tokens proposed by speculative decoding.", proposed);
  counter("flashneox_speculative_accepted_tokens_total", "Of those, tokens the model confirmed (emitted without a step).",
          accepted);
  gauge("flashneox_speculative_acceptance_rate", "Accepted over proposed tokens so far.",
        proposed > 0 ? accepted / proposed : 0.0);
  counter("flashneox_adapter_loads_total", "Adapter loads.", static_cast<double>(a.loads));
  counter("flashneox_adapter_load_failures_total", "Adapter loads that failed.", static_cast<double>(a.failures));
  counter("flashneox_adapter_evictions_total", "Adapters evicted to stay within --adapter-memory.",
          static_cast<double>(a.evictions));
  counter("flashneox_adapter_hits_total", "Requests whose adapter was already in memory.", static_cast<double>(a.hits));
  counter("flashneox_adapter_load_seconds_total", "Time spent loading adapters.", a.load_seconds);
  return out;
}

}  // namespace

void install_service_routes(Router& router, Server& server) {
  router.get("/health", [](const HttpRequest&, HttpResponse& res) { reply_json(res, json::object()); });
  router.get("/info", [&server](const HttpRequest&, HttpResponse& res) {
    const Engine& e = server.engine();
    const EngineOptions& o = e.options();
    reply_json(res, {{"model_id", server.options().model_id},
                     {"model_sha", nullptr},
                     {"model_dtype", dtype_name(e.model().weights().dtype)},
                     {"model_device_type", e.model().backend_name()},
                     {"model_pipeline_tag", "text-generation"},
                     {"max_concurrent_requests", o.max_concurrent_requests},
                     {"max_best_of", 1},
                     {"max_stop_sequences", 16},
                     {"max_input_length", o.max_input_length},
                     {"max_total_tokens", o.max_total_tokens},
                     {"max_batch_prefill_tokens", o.max_batch_prefill_tokens},
                     {"max_batch_total_tokens", o.max_batch_total_tokens},
                     {"max_batch_size", o.max_batch_size},
                     {"block_size", o.block_size},
                     {"max_active_adapters", o.max_active_adapters},
                     {"prefix_caching", o.prefix_caching},
                     {"adapters_loaded", server.adapters().stats().loaded},
                     {"kv_cache_bytes", e.kv_cache_bytes()},
                     {"waiting_served_ratio", 1.2},
                     {"max_waiting_tokens", 20},
                     {"validation_workers", 1},
                     {"version", FLASHNEOX_VERSION},
                     {"sha", nullptr},
                     {"docker_label", nullptr}});
  });
  router.get("/openapi.json", [](const HttpRequest&, HttpResponse& res) { reply_json(res, openapi_document()); });
  router.get("/metrics", [&server](const HttpRequest&, HttpResponse& res) {
    res.content_type = "text/plain; version=0.0.4";
    res.body = render_metrics(server);
  });
  router.post("/tokenize", [&server](const HttpRequest& req, HttpResponse& res) {
    guarded(res, [&] {
      const json body = parse_json_body(req.body);
      if (!body.is_object() || !body.contains("inputs") || !body["inputs"].is_string())
        throw validation_error("`inputs` must be a string");
      const std::string text = body["inputs"].get<std::string>();
      Encoding enc;
      try {
        enc = server.engine().tokenizer().encode_with_offsets(text);
      } catch (const Error& e) {
        throw validation_error(e.what());
      }
      // Byte offsets, widened to whole characters: a token holding part of
      // a character (byte-level BPE splits emoji) shows that character.
      auto is_continuation = [&](size_t i) {
        return i < text.size() && (static_cast<unsigned char>(text[i]) & 0xc0) == 0x80;
      };
      json out = json::array();
      for (size_t i = 0; i < enc.ids.size(); ++i) {
        auto [start, stop] = enc.offsets[i];
        while (start > 0 && is_continuation(start)) --start;
        while (stop < text.size() && is_continuation(stop)) ++stop;
        out.push_back({{"id", enc.ids[i]}, {"text", text.substr(start, stop - start)}, {"start", start}, {"stop", stop}});
      }
      reply_json(res, out);
    });
  });
}

}  // namespace flashneox
