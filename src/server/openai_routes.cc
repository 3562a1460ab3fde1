// OpenAI-compatible routes: POST /v1/completions, POST /v1/chat/completions
// (streaming or not, with usage) and GET /v1/models.
#include <httplib.h>

#include <atomic>
#include <chrono>

#include "server/generate_params.h"
#include "server/http_util.h"
#include "server/server.h"

namespace flashneox {

using nlohmann::json;

namespace {

std::atomic<uint64_t> g_next_id{1};

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* openai_finish_reason(FinishReason r) {
  return r == FinishReason::Length ? "length" : "stop";
}

// The sampling fields both endpoints share, with OpenAI's defaults
// (temperature 1: sampling; 0: greedy).
SamplingParams openai_sampling(const json& body, const char* max_tokens_field, int default_max) {
  SamplingParams p;
  auto num = [&](const char* name) -> std::optional<double> {
    if (!body.contains(name) || body[name].is_null()) return std::nullopt;
    if (!body[name].is_number()) throw validation_error(concat("`", name, "` must be a number"));
    return body[name].get<double>();
  };
  p.temperature = num("temperature").value_or(1.0);
  if (auto v = num("top_p")) p.top_p = *v;
  if (auto v = num("presence_penalty")) p.presence_penalty = *v;
  if (auto v = num("frequency_penalty")) p.frequency_penalty = *v;
  if (auto v = num("repetition_penalty")) p.repetition_penalty = *v;
  if (auto v = num("seed")) {
    if (*v < 0) throw validation_error("`seed` must be non-negative");
    p.seed = static_cast<uint64_t>(*v);
  }
  p.max_new_tokens = default_max;
  for (const char* field : {max_tokens_field, "max_tokens"}) {
    if (auto v = num(field)) {
      if (*v < 1 || *v > 1e9) throw validation_error(concat("`", field, "` must be at least 1"));
      p.max_new_tokens = static_cast<int>(*v);
      break;
    }
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& stop = body["stop"];
    if (stop.is_string()) {
      p.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array()) {
      for (const json& s : stop) {
        if (!s.is_string()) throw validation_error("`stop` must be a string or a list of strings");
        p.stop.push_back(s.get<std::string>());
      }
    } else {
      throw validation_error("`stop` must be a string or a list of strings");
    }
  }
  if (auto n = num("n"); n && *n != 1) throw validation_error("`n` other than 1 is not supported");
  try {
    p.validate();
  } catch (const Error& e) {
    throw validation_error(e.what());
  }
  return p;
}

bool stream_requested(const json& body) {
  if (!body.contains("stream") || body["stream"].is_null()) return false;
  if (!body["stream"].is_boolean()) throw validation_error("`stream` must be true or false");
  return body["stream"].get<bool>();
}

bool include_usage(const json& body) {
  return body.contains("stream_options") && body["stream_options"].is_object() &&
         body["stream_options"].value("include_usage", false);
}

json usage_json(const RequestEvent& f) {
  return {{"prompt_tokens", f.prompt_tokens},
          {"completion_tokens", f.generated_tokens},
          {"total_tokens", f.prompt_tokens + f.generated_tokens}};
}

// The model's chat template when it has one; otherwise the default
// (documented in the README): each message as a speaker's part in a play,
// then the assistant's cue.
std::string render_chat(const Server& server, const json& messages) {
  if (!messages.is_array() || messages.empty())
    throw validation_error("`messages` must be a non-empty list");
  std::string prompt;
  json normalized = json::array();
  for (const json& m : messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw validation_error("every message needs a string `role`");
    std::string content;
    if (m.contains("content") && m["content"].is_string()) {
      content = m["content"].get<std::string>();
    } else if (m.contains("content") && m["content"].is_array()) {
      for (const json& part : m["content"])
        if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
          content += part["text"].get<std::string>();
    } else if (!(m.contains("content") && m["content"].is_null())) {
      throw validation_error("every message needs a string `content`");
    }
    normalized.push_back({{"role", m["role"]}, {"content", content}});
    std::string role = m["role"].get<std::string>();
    for (char& c : role) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    prompt += role + ":\n" + content + "\n\n";
  }
  const ModelChatTemplate& t = server.chat_template();
  if (t.tmpl) {
    try {
      return t.tmpl->render({{"messages", normalized}, {"add_generation_prompt", true},
                             {"bos_token", t.bos_token}, {"eos_token", t.eos_token}});
    } catch (const Error& e) {
      throw validation_error(e.what());
    }
  }
  return prompt + "ASSISTANT:\n";
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void completions(Server& server, const httplib::Request& req, httplib::Response& res) {
  const json body = parse_json_body(req.body);
  if (!body.is_object()) throw validation_error("the request body must be a JSON object");
  std::string prompt;
  if (body.contains("prompt") && body["prompt"].is_string()) {
    prompt = body["prompt"].get<std::string>();
  } else if (body.contains("prompt") && body["prompt"].is_array() && body["prompt"].size() == 1 &&
             body["prompt"][0].is_string()) {
    prompt = body["prompt"][0].get<std::string>();
  } else {
    throw validation_error("`prompt` must be a string (or a list of one string)");
  }
  GenerationRequest request;
  request.params = openai_sampling(body, "max_tokens", 16);
  const bool echo = body.value("echo", false);
  request.prompt = tokenize_prompt(server.engine().tokenizer(), prompt, std::nullopt);
  const std::string id = "cmpl-" + std::to_string(g_next_id++);
  const std::string model = server.options().model_id;
  const int64_t created = unix_time();
  auto handle = submit_or_throw(server.engine(), std::move(request));
  if (!stream_requested(body)) {
    const Collected c = collect(*handle);
    json choice = {{"index", 0},
                   {"text", (echo ? prompt : "") + c.final_event.generated_text},
                   {"logprobs", nullptr},
                   {"finish_reason", openai_finish_reason(c.final_event.finish_reason)}};
    reply_json(res, {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
                     {"choices", json::array({choice})}, {"usage", usage_json(c.final_event)}});
    return;
  }
  const bool usage = include_usage(body);
  auto chunk = [id, model, created](const std::string& text, const json& finish) {
    return json({{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
                 {"choices", json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish}}})}});
  };
  const std::string first = echo ? prompt : "";
  auto sent_echo = std::make_shared<bool>(first.empty());
  stream_events(res, handle, [=](const RequestEvent& e) {
    std::vector<std::string> out;
    if (!*sent_echo) {
      out.push_back(dump(chunk(first, nullptr)));
      *sent_echo = true;
    }
    if (e.kind == RequestEvent::Kind::Failed) {
      out.push_back(dump({{"error", {{"message", e.error}, {"type", "generation"}}}}));
    } else if (e.kind == RequestEvent::Kind::Token) {
      if (!e.token.special && !e.token.text.empty()) out.push_back(dump(chunk(e.token.text, nullptr)));
    } else {
      json last = chunk("", openai_finish_reason(e.finish_reason));
      out.push_back(dump(last));
      if (usage) {
        json u = chunk("", nullptr);
        u["choices"] = json::array();
        u["usage"] = usage_json(e);
        out.push_back(dump(u));
      }
    }
    return out;
  }, "[DONE]");
}

void chat_completions(Server& server, const httplib::Request& req, httplib::Response& res) {
  const json body = parse_json_body(req.body);
  if (!body.is_object()) throw validation_error("the request body must be a JSON object");
  if (!body.contains("messages")) throw validation_error("`messages` is required");
  const std::string prompt = render_chat(server, body["messages"]);
  GenerationRequest request;
  request.params = openai_sampling(body, "max_completion_tokens", 256);
  if (body.value("logprobs", false)) {
    request.params.top_n_tokens = 0;
    if (body.contains("top_logprobs") && body["top_logprobs"].is_number_integer())
      request.params.top_n_tokens = body["top_logprobs"].get<int>();
    if (request.params.top_n_tokens < 0 || request.params.top_n_tokens > 10)
      throw validation_error("`top_logprobs` must be between 0 and 10");
  }
  const bool logprobs = body.value("logprobs", false);
  request.prompt = tokenize_prompt(server.engine().tokenizer(), prompt, std::nullopt);
  const std::string id = "chatcmpl-" + std::to_string(g_next_id++);
  const std::string model = server.options().model_id;
  const int64_t created = unix_time();
  auto handle = submit_or_throw(server.engine(), std::move(request));
  auto token_logprob = [](const GeneratedToken& t) {
    json top = json::array();
    for (const TokenInfo& alt : t.top_tokens) top.push_back({{"token", alt.text}, {"logprob", *alt.logprob}});
    return json({{"token", t.text}, {"logprob", *t.logprob}, {"top_logprobs", top}});
  };
  if (!stream_requested(body)) {
    const Collected c = collect(*handle);
    json choice = {{"index", 0},
                   {"message", {{"role", "assistant"}, {"content", c.final_event.generated_text}}},
                   {"finish_reason", openai_finish_reason(c.final_event.finish_reason)}};
    if (logprobs) {
      json content = json::array();
      for (const GeneratedToken& t : c.tokens) content.push_back(token_logprob(t));
      choice["logprobs"] = {{"content", content}};
    } else {
      choice["logprobs"] = nullptr;
    }
    reply_json(res, {{"id", id}, {"object", "chat.completion"}, {"created", created}, {"model", model},
                     {"choices", json::array({choice})}, {"usage", usage_json(c.final_event)}});
    return;
  }
  const bool usage = include_usage(body);
  auto chunk = [id, model, created](const json& delta, const json& finish) {
    return json({{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model},
                 {"choices", json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}}})}});
  };
  auto started = std::make_shared<bool>(false);
  stream_events(res, handle, [=](const RequestEvent& e) {
    std::vector<std::string> out;
    if (!*started) {
      out.push_back(dump(chunk({{"role", "assistant"}, {"content", ""}}, nullptr)));
      *started = true;
    }
    if (e.kind == RequestEvent::Kind::Failed) {
      out.push_back(dump({{"error", {{"message", e.error}, {"type", "generation"}}}}));
    } else if (e.kind == RequestEvent::Kind::Token) {
      if (!e.token.special && !e.token.text.empty()) {
        json c = chunk({{"content", e.token.text}}, nullptr);
        if (logprobs) c["choices"][0]["logprobs"] = {{"content", json::array({token_logprob(e.token)})}};
        out.push_back(dump(c));
      }
    } else {
      out.push_back(dump(chunk(json::object(), openai_finish_reason(e.finish_reason))));
      if (usage) {
        json u = chunk(json::object(), nullptr);
        u["choices"] = json::array();
        u["usage"] = usage_json(e);
        out.push_back(dump(u));
      }
    }
    return out;
  }, "[DONE]");
}

}  // namespace

void install_openai_routes(httplib::Server& http, Server& server) {
  http.Post("/v1/completions", [&server](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { completions(server, req, res); });
  });
  http.Post("/v1/chat/completions", [&server](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { chat_completions(server, req, res); });
  });
  http.Get("/v1/models", [&server](const httplib::Request&, httplib::Response& res) {
    reply_json(res, {{"object", "list"},
                     {"data", json::array({{{"id", server.options().model_id},
                                            {"object", "model"},
                                            {"created", unix_time()},
                                            {"owned_by", "flashneox"}}})}});
  });
}

}  // namespace flashneox
