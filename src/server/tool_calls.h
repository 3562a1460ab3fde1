// OpenAI function calling over constrained decoding. With `tools` and a
// `tool_choice` other than "none", the output is held to
//   {"name": <a tool's name>, "arguments": <that tool's parameters schema>}
// (one tool when named, any of them for "required"; for "auto" also
// {"name": "no_tool", "arguments": {"content": <text>}}, TGI's way of
// answering without a call), and comes back as `tool_calls` (finish_reason
// "tool_calls"), whole or as streamed deltas.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "structured/grammar.h"

namespace flashneox {

struct ToolSetup {
  std::shared_ptr<Grammar> grammar;  // null: no call is forced (no tools, or tool_choice "none")
  bool may_answer = false;           // "auto": no_tool carries a plain answer
  nlohmann::json tools_for_prompt;   // the tools as given (array), for the chat template; null without
};

// Reads `tools` and `tool_choice` (either may be null). Throws ApiError 422 naming the problem.
ToolSetup read_tools(const nlohmann::ordered_json* tools, const nlohmann::ordered_json* tool_choice);

// What a finished tool-constrained output means.
struct ToolOutcome {
  std::optional<nlohmann::json> call;  // {"id", "type": "function", "function": {"name", "arguments" (text)}}
  std::string content;                 // a no_tool answer, or the raw text when the output was cut off
};
ToolOutcome read_tool_output(const std::string& text, bool may_answer, const std::string& call_id);

// Splits a streamed tool-call output into OpenAI deltas: the call's header
// once its name is complete, then the arguments' text as it comes (the
// wrapper's closing brace held back). A no_tool answer is sent whole at the end.
class ToolCallStreamer {
 public:
  ToolCallStreamer(bool may_answer, std::string call_id) : may_answer_(may_answer), id_(std::move(call_id)) {}
  // The delta objects ({"tool_calls": [...]}) the new text makes.
  std::vector<nlohmann::json> push(const std::string& text);
  // At the end: the remaining deltas, and whether a tool was called.
  std::vector<nlohmann::json> finish(bool* called);

 private:
  bool may_answer_;
  std::string id_;
  std::string text_;          // everything so far
  size_t arguments_at_ = 0;   // where the arguments start (0: header not sent)
  size_t sent_ = 0;           // arguments bytes sent
  bool no_tool_ = false;
};

}  // namespace flashneox
