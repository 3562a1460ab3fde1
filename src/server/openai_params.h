// Reads OpenAI /v1/completions and /v1/chat/completions bodies into an engine
// request, with the same field rules as /generate (json_fields.h).
#pragma once

#include <string>

#include "engine/request.h"
#include "server/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace flashneox {

struct OpenAiCall {
  std::string prompt;          // as given (completions) or rendered from the messages (chat)
  GenerationRequest request;   // tokenized, parameters validated
  std::string model;           // as the client named it ("" when absent)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: the prompt comes back before the text
  int logprobs = -1;           // completions: -1 off, else alternatives per token (0..5)
  bool chat_logprobs = false;  // chat: logprobs true (top_logprobs in request.params.top_n_tokens)
  bool tool_call = false;      // chat: the output is a tool call (tool_calls.h)
  bool tool_may_answer = false;  // ... or, with tool_choice "auto", a plain answer
};

OpenAiCall parse_completions_body(const std::string& body, const Tokenizer& tokenizer);
OpenAiCall parse_chat_body(const std::string& body, const Tokenizer& tokenizer,
                           const ModelChatTemplate& chat_template);

}  // namespace flashneox
