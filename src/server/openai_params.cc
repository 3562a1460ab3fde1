#include "server/openai_params.h"

#include <cctype>
#include <climits>

#include "server/api_error.h"
#include "server/generate_params.h"
#include "server/grammar_params.h"
#include "server/json_fields.h"
#include "server/tool_calls.h"

namespace flashneox {

using nlohmann::json;

namespace {

// The fields both endpoints share, with OpenAI's defaults (temperature 1:
// sampling; 0: greedy).
void read_common(JsonFields& f, OpenAiCall& call, const char* max_tokens_field, int default_max,
                 const std::string& body) {
  SamplingParams& p = call.request.params;
  call.model = f.string("model").value_or("");
  p.temperature = f.number("temperature", 0.0, 2.0).value_or(1.0);
  if (auto v = f.number("top_p", 0.0, 1.0)) p.top_p = *v;
  if (auto v = f.integer("top_k", 1, INT32_MAX)) p.top_k = static_cast<int>(*v);
  if (auto v = f.number("presence_penalty", -2.0, 2.0)) p.presence_penalty = *v;
  if (auto v = f.number("frequency_penalty", -2.0, 2.0)) p.frequency_penalty = *v;
  if (auto v = f.number("repetition_penalty", 0.0, 1e9)) p.repetition_penalty = *v;
  if (auto v = f.integer("seed", 0, INT64_MAX)) p.seed = static_cast<uint64_t>(*v);
  if (auto v = f.integer("speculate", 0, kMaxSpeculate)) p.speculate = static_cast<int>(*v);
  p.max_new_tokens = default_max;
  for (const char* field : {max_tokens_field, "max_tokens"}) {
    if (auto v = f.integer(field, 1, INT32_MAX)) {
      p.max_new_tokens = static_cast<int>(*v);
      break;
    }
  }
  p.stop = read_stop(f, "stop", true);
  if (auto n = f.integer("n", 1, INT32_MAX); n && *n != 1) throw validation_error("`n` other than 1 is not supported");
  if (auto b = f.raw("logit_bias"); b && !(b->is_object() && b->empty()))
    throw validation_error("`logit_bias` is not supported by this server");
  if (f.raw("response_format"))  // schemas are read in written order (property order)
    p.grammar = read_response_format(parse_ordered_json_limited(body)["response_format"], "response_format");
  call.stream = f.boolean("stream").value_or(false);
  if (const json* options = f.raw("stream_options")) {
    JsonFields so(*options, "stream_options");
    call.include_usage = so.boolean("include_usage").value_or(false);
    so.finish();
  }
  f.string("user");  // an end-user id for the provider's abuse monitoring; nothing to do here (README)
}

// The model's chat template when it has one; otherwise the default
// (documented in the README): each message as a speaker's part in a play,
// then the assistant's cue.
std::string render_chat(const json& messages, const ModelChatTemplate& t, const json& tools) {
  if (!messages.is_array() || messages.empty()) throw validation_error("`messages` must be a non-empty list");
  std::string prompt;
  json normalized = json::array();
  for (const json& m : messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw validation_error("every message needs a string `role`");
    std::string content;
    if (m.contains("content") && m["content"].is_string()) {
      content = m["content"].get<std::string>();
    } else if (m.contains("content") && m["content"].is_array()) {
      for (const json& part : m["content"]) {
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
            !part["text"].is_string())
          throw validation_error("message content parts must be {\"type\": \"text\", \"text\": ...}");
        content += part["text"].get<std::string>();
      }
    } else if (!(m.contains("content") && m["content"].is_null()) && !m.contains("tool_calls")) {
      throw validation_error("every message needs a string `content`");
    }
    json message = {{"role", m["role"]}, {"content", content}};
    // An assistant's earlier calls, and a tool's answer to one, as OpenAI sends them back.
    if (m.contains("tool_calls")) {
      if (!m["tool_calls"].is_array()) throw validation_error("a message's `tool_calls` must be a list");
      message["tool_calls"] = m["tool_calls"];
      for (const json& call : m["tool_calls"]) {
        if (!content.empty()) content += '\n';
        content += call.dump();
      }
    }
    if (m.contains("tool_call_id")) message["tool_call_id"] = m["tool_call_id"];
    normalized.push_back(message);
    std::string role = m["role"].get<std::string>();
    for (char& c : role) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    prompt += role + ":\n" + content + "\n\n";
  }
  if (!tools.is_null()) prompt = "TOOLS:\n" + tools.dump() + "\n\n" + prompt;
  if (t.tmpl) {
    try {
      json context = {{"messages", normalized},
                      {"add_generation_prompt", true},
                      {"bos_token", t.bos_token},
                      {"eos_token", t.eos_token}};
      if (!tools.is_null()) context["tools"] = tools;
      return t.tmpl->render(context);
    } catch (const Error& e) {
      throw validation_error(e.what());
    }
  }
  return prompt + "ASSISTANT:\n";
}

}  // namespace

OpenAiCall parse_completions_body(const std::string& body, const Tokenizer& tokenizer) {
  const json root = parse_json_body(body);
  JsonFields f(root, "");
  OpenAiCall call;
  const json* prompt = f.raw("prompt");
  if (prompt && prompt->is_string()) {
    call.prompt = prompt->get<std::string>();
  } else if (prompt && prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    call.prompt = (*prompt)[0].get<std::string>();
  } else {
    throw validation_error("`prompt` must be a string (or a list of one string)");
  }
  read_common(f, call, "max_tokens", 16, body);
  call.echo = f.boolean("echo").value_or(false);
  call.request.params.logprobs = false;
  if (auto v = f.integer("logprobs", 0, 5)) {
    call.request.params.logprobs = true;
    call.logprobs = static_cast<int>(*v);
    call.request.params.top_n_tokens = call.logprobs;
    call.request.params.decoder_input_details = call.echo;  // the prompt's own log-probabilities
  }
  if (auto v = f.integer("best_of", 1, INT32_MAX); v && *v != 1)
    throw validation_error("`best_of` other than 1 is not supported");
  if (auto s = f.string("suffix"); s && !s->empty()) throw validation_error("`suffix` is not supported");
  f.finish();
  validate_sampling(call.request.params);
  call.request.prompt = tokenize_prompt(tokenizer, call.prompt, std::nullopt);
  return call;
}

OpenAiCall parse_chat_body(const std::string& body, const Tokenizer& tokenizer, const ModelChatTemplate& t) {
  const json root = parse_json_body(body);
  JsonFields f(root, "");
  OpenAiCall call;
  const json* messages = f.raw("messages");
  if (!messages) throw validation_error("`messages` is required");
  read_common(f, call, "max_completion_tokens", 256, body);
  call.chat_logprobs = f.boolean("logprobs").value_or(false);
  call.request.params.logprobs = call.chat_logprobs;
  const auto top = f.integer("top_logprobs", 0, 10);
  if (top && !call.chat_logprobs) throw validation_error("`top_logprobs` needs `logprobs: true`");
  call.request.params.top_n_tokens = static_cast<int>(top.value_or(0));
  ToolSetup tools;
  const bool has_tools = f.raw("tools") != nullptr, has_choice = f.raw("tool_choice") != nullptr;
  if (has_tools || has_choice) {  // schemas are read in written order
    const nlohmann::ordered_json ordered = parse_ordered_json_limited(body);
    auto field = [&](const char* name) { return ordered.contains(name) ? &ordered[name] : nullptr; };
    tools = read_tools(field("tools"), field("tool_choice"));
    if (tools.grammar && call.request.params.grammar)
      throw validation_error("give at most one of `response_format` and `tools` with a `tool_choice` other than \"none\"");
    if (tools.grammar) {
      call.request.params.grammar = tools.grammar;
      call.tool_call = true;
      call.tool_may_answer = tools.may_answer;
    }
  }
  f.boolean("parallel_tool_calls");  // one call per response here: accepted either way (README)
  f.finish();
  validate_sampling(call.request.params);
  call.prompt = render_chat(*messages, t, tools.tools_for_prompt);
  call.request.prompt = tokenize_prompt(tokenizer, call.prompt, std::nullopt);
  return call;
}

}  // namespace flashneox
