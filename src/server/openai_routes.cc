// OpenAI-compatible routes: POST /v1/completions, POST /v1/chat/completions
// (streaming or not, with usage and log-probabilities) and GET /v1/models.
// Both generation routes run through one skeleton; they differ only in how a
// choice is shaped.
#include <atomic>
#include <chrono>

#include "server/http_util.h"
#include "server/openai_params.h"
#include "server/server.h"
#include "server/tool_calls.h"

namespace flashneox {

using nlohmann::json;

namespace {

std::atomic<uint64_t> g_next_id{1};

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* openai_finish_reason(FinishReason r) { return r == FinishReason::Length ? "length" : "stop"; }

json usage_json(const RequestEvent& f) {
  return {{"prompt_tokens", f.prompt_tokens},
          {"completion_tokens", f.generated_tokens},
          {"total_tokens", f.prompt_tokens + f.generated_tokens}};
}

// How an endpoint shapes its choices.
struct ChoiceShape {
  const char* id_prefix;
  const char* object;        // whole response
  const char* chunk_object;  // streamed chunk
  // The one choice of a whole response.
  std::function<json(const Collected&)> whole;
  // The choices of the chunks one event becomes (the finish chunk included).
  std::function<std::vector<json>(const RequestEvent&)> stream;
};

void run(Server& server, const HttpRequest& req, HttpResponse& res, OpenAiCall call, ChoiceShape shape) {
  const std::string id = shape.id_prefix + std::to_string(g_next_id++);
  const std::string model = server.options().model_id;
  const int64_t created = unix_time();
  // `model` names an adapter, as LoRAX reads it; the base model's name (or none) is the base.
  if (!call.model.empty() && call.model != model) call.request.adapter = server.adapter_for(call.model, "hub");
  auto handle = submit_or_throw(server.engine(), std::move(call.request));
  if (!call.stream) {
    const Collected c = collect(*handle, req);
    record_access(res, c.final_event);
    reply_json(res, {{"id", id},
                     {"object", shape.object},
                     {"created", created},
                     {"model", model},
                     {"choices", json::array({shape.whole(c)})},
                     {"usage", usage_json(c.final_event)}});
    return;
  }
  const bool usage = call.include_usage;
  auto chunk = [id, model, created, object = shape.chunk_object](json choices) {
    return json({{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"choices", choices}});
  };
  stream_events(res, handle, [chunk, usage, shape](const RequestEvent& e) {
    std::vector<std::string> out;
    if (e.kind == RequestEvent::Kind::Failed) {
      out.push_back(dump({{"error", {{"message", e.error}, {"type", e.error_type}}}}));
      return out;
    }
    for (json& choice : shape.stream(e)) out.push_back(dump(chunk(json::array({std::move(choice)}))));
    if (e.kind == RequestEvent::Kind::Finished && usage) {
      json u = chunk(json::array());
      u["usage"] = usage_json(e);
      out.push_back(dump(u));
    }
    return out;
  }, "[DONE]");
}

// ---- /v1/completions ----

// The legacy logprobs object for some tokens, text offsets counted from `offset`.
json completion_logprobs(const std::vector<const TokenInfo*>& tokens, const std::vector<const GeneratedToken*>& alts,
                         size_t offset) {
  json out = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (size_t i = 0; i < tokens.size(); ++i) {
    const TokenInfo& t = *tokens[i];
    out["tokens"].push_back(t.text);
    out["token_logprobs"].push_back(t.logprob ? json(*t.logprob) : json(nullptr));
    if (alts[i]) {
      json top = json::object();
      for (const TokenInfo& a : alts[i]->top_tokens) top[a.text] = *a.logprob;
      out["top_logprobs"].push_back(top);
    } else {
      out["top_logprobs"].push_back(nullptr);
    }
    out["text_offset"].push_back(offset);
    offset += t.text.size();
  }
  return out;
}

void completions(Server& server, const HttpRequest& req, HttpResponse& res) {
  OpenAiCall call = parse_completions_body(req.body, server.engine().tokenizer());
  const std::string echoed = call.echo ? call.prompt : "";
  const int logprobs = call.logprobs;
  ChoiceShape shape{"cmpl-", "text_completion", "text_completion", nullptr, nullptr};
  shape.whole = [echoed, logprobs](const Collected& c) {
    const RequestEvent& f = c.final_event;
    json choice = {{"index", 0}, {"text", echoed + f.generated_text}, {"logprobs", nullptr},
                   {"finish_reason", openai_finish_reason(f.finish_reason)}};
    if (logprobs >= 0) {
      std::vector<const TokenInfo*> tokens;
      std::vector<const GeneratedToken*> alts;
      for (const TokenInfo& t : f.prefill) tokens.push_back(&t), alts.push_back(nullptr);
      for (const GeneratedToken& t : c.tokens) tokens.push_back(&t), alts.push_back(&t);
      choice["logprobs"] = completion_logprobs(tokens, alts, 0);
    }
    return choice;
  };
  auto sent_echo = std::make_shared<bool>(echoed.empty());
  auto offset = std::make_shared<size_t>(echoed.size());
  shape.stream = [echoed, logprobs, sent_echo, offset](const RequestEvent& e) {
    std::vector<json> out;
    auto choice = [](const std::string& text, json logprobs_json, json finish) {
      return json({{"index", 0}, {"text", text}, {"logprobs", logprobs_json}, {"finish_reason", finish}});
    };
    if (!*sent_echo) {
      out.push_back(choice(echoed, nullptr, nullptr));
      *sent_echo = true;
    }
    if (e.kind == RequestEvent::Kind::Token) {
      if (e.token.special || e.token.text.empty()) return out;
      json lp = logprobs >= 0 ? completion_logprobs({&e.token}, {&e.token}, *offset) : json(nullptr);
      *offset += e.token.text.size();
      out.push_back(choice(e.token.text, lp, nullptr));
    } else {
      out.push_back(choice("", nullptr, openai_finish_reason(e.finish_reason)));
    }
    return out;
  };
  run(server, req, res, std::move(call), shape);
}

// ---- /v1/chat/completions ----

json chat_token_logprob(const GeneratedToken& t) {
  json top = json::array();
  for (const TokenInfo& alt : t.top_tokens) top.push_back({{"token", alt.text}, {"logprob", *alt.logprob}});
  return json({{"token", t.text}, {"logprob", *t.logprob}, {"top_logprobs", top}});
}

void chat_completions(Server& server, const HttpRequest& req, HttpResponse& res) {
  OpenAiCall call = parse_chat_body(req.body, server.engine().tokenizer(), server.chat_template());
  const bool logprobs = call.chat_logprobs;
  const bool tool_call = call.tool_call, may_answer = call.tool_may_answer;
  const std::string call_id = "call_" + std::to_string(g_next_id++);
  ChoiceShape shape{"chatcmpl-", "chat.completion", "chat.completion.chunk", nullptr, nullptr};
  shape.whole = [logprobs, tool_call, may_answer, call_id](const Collected& c) {
    json message = {{"role", "assistant"}, {"content", c.final_event.generated_text}};
    std::string finish = openai_finish_reason(c.final_event.finish_reason);
    if (tool_call) {
      const ToolOutcome outcome = read_tool_output(c.final_event.generated_text, may_answer, call_id);
      if (outcome.call) {
        message = {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array({*outcome.call})}};
        finish = "tool_calls";
      } else {
        message["content"] = outcome.content;
      }
    }
    json choice = {{"index", 0}, {"message", message}, {"logprobs", nullptr}, {"finish_reason", finish}};
    if (logprobs) {
      json content = json::array();
      for (const GeneratedToken& t : c.tokens) content.push_back(chat_token_logprob(t));
      choice["logprobs"] = {{"content", content}};
    }
    return choice;
  };
  auto started = std::make_shared<bool>(false);
  auto tools = tool_call ? std::make_shared<ToolCallStreamer>(may_answer, call_id) : nullptr;
  shape.stream = [logprobs, started, tools](const RequestEvent& e) {
    std::vector<json> out;
    auto choice = [](json delta, json finish) {
      return json({{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}});
    };
    if (!*started) {
      out.push_back(choice({{"role", "assistant"}, {"content", ""}}, nullptr));
      *started = true;
    }
    if (tools) {  // tool calls: deltas of the call, or a no_tool answer at the end
      if (e.kind == RequestEvent::Kind::Token) {
        if (!e.token.special)
          for (json& delta : tools->push(e.token.text)) out.push_back(choice(std::move(delta), nullptr));
        return out;
      }
      bool called = false;
      for (json& delta : tools->finish(&called)) out.push_back(choice(std::move(delta), nullptr));
      const bool complete = e.finish_reason != FinishReason::Length;
      out.push_back(choice(json::object(), called && complete ? "tool_calls" : openai_finish_reason(e.finish_reason)));
      return out;
    }
    if (e.kind == RequestEvent::Kind::Token) {
      if (e.token.special || e.token.text.empty()) return out;
      json c = choice({{"content", e.token.text}}, nullptr);
      if (logprobs) c["logprobs"] = {{"content", json::array({chat_token_logprob(e.token)})}};
      out.push_back(c);
    } else {
      out.push_back(choice(json::object(), openai_finish_reason(e.finish_reason)));
    }
    return out;
  };
  run(server, req, res, std::move(call), shape);
}

}  // namespace

void install_openai_routes(Router& router, Server& server) {
  router.post("/v1/completions", [&server](const HttpRequest& req, HttpResponse& res) {
    guarded(res, [&] { completions(server, req, res); });
  });
  router.post("/v1/chat/completions", [&server](const HttpRequest& req, HttpResponse& res) {
    guarded(res, [&] { chat_completions(server, req, res); });
  });
  router.get("/v1/models", [&server](const HttpRequest&, HttpResponse& res) {
    json data = json::array({{{"id", server.options().model_id}, {"object", "model"}, {"created", unix_time()},
                              {"owned_by", "flashneox"}}});
    for (const std::string& name : server.adapters().loaded_names())
      data.push_back({{"id", name}, {"object", "model"}, {"created", unix_time()}, {"owned_by", "flashneox"},
                      {"parent", server.options().model_id}});
    reply_json(res, {{"object", "list"}, {"data", data}});
  });
}

}  // namespace flashneox
