// TGI and LoRAX routes: POST /generate, POST /generate_stream, and POST /
// (what the text-generation and lorax-client packages call: an array of one
// response, or a stream when "stream": true).
#include "server/generate_params.h"
#include "server/http_util.h"
#include "server/server.h"

namespace flashneox {

using nlohmann::json;

namespace {

json token_json(const TokenInfo& t) {
  json j = {{"id", t.id}, {"text", t.text}, {"special", t.special}};
  j["logprob"] = t.logprob ? json(*t.logprob) : json(nullptr);
  return j;
}

json top_tokens_json(const GeneratedToken& t) {
  json list = json::array();
  for (const TokenInfo& alt : t.top_tokens) list.push_back(token_json(alt));
  return list;
}

json seed_json(const RequestEvent& e) { return e.seed ? json(*e.seed) : json(nullptr); }

json full_details(const GenerateCall& call, const Collected& c) {
  const RequestEvent& f = c.final_event;
  json details = {{"finish_reason", finish_reason_name(f.finish_reason)},
                  {"generated_tokens", f.generated_tokens},
                  {"prompt_tokens", f.prompt_tokens},
                  {"input_length", f.prompt_tokens},
                  {"seed", seed_json(f)},
                  {"best_of_sequences", nullptr}};
  json prefill = json::array();
  for (const TokenInfo& t : f.prefill) {
    json j = {{"id", t.id}, {"text", t.text}};
    j["logprob"] = t.logprob ? json(*t.logprob) : json(nullptr);
    prefill.push_back(j);
  }
  details["prefill"] = prefill;
  json tokens = json::array(), top = json::array();
  for (const GeneratedToken& t : c.tokens) {
    tokens.push_back(token_json(t));
    top.push_back(top_tokens_json(t));
  }
  details["tokens"] = tokens;
  details["top_tokens"] = call.request.params.top_n_tokens > 0 ? top : json(nullptr);
  return details;
}

// Runs a request to the end; the TGI response object plus timing headers.
// The engine request with the adapter it names, loaded here (on the handler
// thread) if it is not in memory yet.
GenerationRequest with_adapter(Server& server, const GenerateCall& call) {
  GenerationRequest request = call.request;
  request.adapter = call.merged_adapters ? server.merged_adapter_for(*call.merged_adapters, call.adapter_source)
                                         : server.adapter_for(call.adapter_id, call.adapter_source);
  return request;
}

json generate_once(Server& server, const GenerateCall& call, const HttpRequest& req, HttpResponse& res) {
  const Clock::time_point received = Clock::now();
  auto handle = submit_or_throw(server.engine(), with_adapter(server, call));
  const Collected c = collect(*handle, req);
  const RequestEvent& f = c.final_event;
  record_access(res, f);
  json out = {{"generated_text", (call.return_full_text ? call.inputs : "") + f.generated_text}};
  if (call.details) out["details"] = full_details(call, c);
  const double total = seconds_between(received, f.finished_at);
  const double queue = seconds_between(f.queued_at, f.started_at);
  const double inference = seconds_between(f.started_at, f.finished_at);
  auto ms = [](double s) { return std::to_string(static_cast<long long>(s * 1000.0)); };
  res.set_header("x-compute-type", server.engine().model().backend_name());
  res.set_header("x-compute-time", std::to_string(total));
  res.set_header("x-total-time", ms(total));
  res.set_header("x-validation-time", "0");
  res.set_header("x-queue-time", ms(queue));
  res.set_header("x-inference-time", ms(inference));
  res.set_header("x-time-per-token", ms(f.generated_tokens > 0 ? inference / f.generated_tokens : 0.0));
  res.set_header("x-prompt-tokens", std::to_string(f.prompt_tokens));
  res.set_header("x-generated-tokens", std::to_string(f.generated_tokens));
  return out;
}

// TGI's stream: one event per token; the last token's event also carries the
// full text and the details, so each token is held until the next event.
void generate_stream(Server& server, GenerateCall call, HttpResponse& res) {
  auto handle = submit_or_throw(server.engine(), with_adapter(server, call));
  auto held = std::make_shared<std::optional<json>>();
  auto index = std::make_shared<int>(0);
  const std::string prefix = call.return_full_text ? call.inputs : "";
  const bool top = call.request.params.top_n_tokens > 0;
  stream_events(res, handle, [held, index, prefix, top](const RequestEvent& e) {
    std::vector<std::string> out;
    if (e.kind == RequestEvent::Kind::Failed) {
      out.push_back(dump({{"error", e.error}, {"error_type", e.error_type}}));
      return out;
    }
    auto flush = [&](json event) {
      out.push_back(dump(event));
    };
    if (e.kind == RequestEvent::Kind::Token) {
      if (*held) flush(**held);
      json event = {{"index", (*index)++},     {"token", token_json(e.token)},
                    {"generated_text", nullptr}, {"details", nullptr}};
      event["top_tokens"] = top ? top_tokens_json(e.token) : json(nullptr);
      *held = event;
      return out;
    }
    json last = *held ? **held
                      : json({{"index", *index}, {"token", {{"id", 0}, {"text", ""}, {"logprob", 0.0}, {"special", true}}},
                              {"top_tokens", nullptr}});
    last["generated_text"] = prefix + e.generated_text;
    last["details"] = {{"finish_reason", finish_reason_name(e.finish_reason)},
                       {"generated_tokens", e.generated_tokens},
                       {"prompt_tokens", e.prompt_tokens},
                       {"input_length", e.prompt_tokens},
                       {"seed", seed_json(e)}};
    held->reset();
    flush(last);
    return out;
  });
}

}  // namespace

void install_generate_routes(Router& router, Server& server) {
  router.post("/generate", [&server](const HttpRequest& req, HttpResponse& res) {
    guarded(res, [&] {
      const GenerateCall call = parse_generate_body(req.body, server.engine().tokenizer());
      reply_json(res, generate_once(server, call, req, res));
    });
  });
  router.post("/generate_stream", [&server](const HttpRequest& req, HttpResponse& res) {
    guarded(res, [&] { generate_stream(server, parse_generate_body(req.body, server.engine().tokenizer()), res); });
  });
  router.post("/", [&server](const HttpRequest& req, HttpResponse& res) {
    guarded(res, [&] {
      GenerateCall call = parse_generate_body(req.body, server.engine().tokenizer());
      if (call.stream) {
        generate_stream(server, std::move(call), res);
      } else {
        reply_json(res, json::array({generate_once(server, call, req, res)}));
      }
    });
  });
}

}  // namespace flashneox
