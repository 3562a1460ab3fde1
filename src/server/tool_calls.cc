#include "server/tool_calls.h"

#include <set>

#include "server/api_error.h"
#include "server/grammar_params.h"

namespace flashneox {

namespace {

using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

constexpr const char* kNoTool = "no_tool";

ojson call_schema(const std::string& name, const ojson& parameters) {
  ojson s = {{"type", "object"},
             {"properties", {{"name", {{"const", name}}}, {"arguments", parameters}}},
             {"required", {"name", "arguments"}}};
  return s;
}

}  // namespace

ToolSetup read_tools(const ojson* tools, const ojson* tool_choice) {
  ToolSetup setup;
  if (!tools || tools->is_null()) {
    if (tool_choice && !tool_choice->is_null() && *tool_choice != "none")
      throw validation_error("`tool_choice` needs `tools`");
    return setup;
  }
  if (!tools->is_array() || tools->empty()) throw validation_error("`tools` must be a non-empty list");
  std::vector<std::pair<std::string, ojson>> functions;
  std::set<std::string> names;
  for (size_t i = 0; i < tools->size(); ++i) {
    const ojson& t = (*tools)[i];
    const std::string where = concat("`tools[", i, "]");
    if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") || !t["function"].is_object())
      throw validation_error(where + "` must be {\"type\": \"function\", \"function\": {...}}");
    const ojson& f = t["function"];
    for (const auto& [key, v] : f.items())
      if (key != "name" && key != "description" && key != "parameters" && key != "strict")
        throw validation_error(concat(where, ".function.", key, "` is not a field this server knows; remove it"));
    if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
      throw validation_error(where + ".function.name` must be a non-empty string");
    const std::string name = f["name"].get<std::string>();
    if (name == kNoTool) throw validation_error(concat(where, ".function.name`: \"", kNoTool, "\" is reserved"));
    if (!names.insert(name).second) throw validation_error(concat(where, ".function.name`: \"", name, "\" appears twice"));
    const ojson parameters =
        f.contains("parameters") && !f["parameters"].is_null() ? f["parameters"] : ojson({{"type", "object"}});
    functions.emplace_back(name, parameters);
  }
  setup.tools_for_prompt = json::parse(tools->dump());
  std::string mode = "auto";
  std::string named;
  if (tool_choice && !tool_choice->is_null()) {
    if (tool_choice->is_string()) {
      mode = tool_choice->get<std::string>();
      if (mode != "none" && mode != "auto" && mode != "required")
        throw validation_error("`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", ...}");
    } else if (tool_choice->is_object() && tool_choice->value("type", "") == "function" &&
               tool_choice->contains("function") && (*tool_choice)["function"].is_object() &&
               (*tool_choice)["function"].contains("name") && (*tool_choice)["function"]["name"].is_string()) {
      mode = "named";
      named = (*tool_choice)["function"]["name"].get<std::string>();
      if (!names.count(named)) throw validation_error(concat("`tool_choice` names \"", named, "\", which is not in `tools`"));
    } else {
      throw validation_error("`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
  }
  if (mode == "none") return setup;
  ojson options = ojson::array();
  for (const auto& [name, parameters] : functions)
    if (mode != "named" || name == named) options.push_back(call_schema(name, parameters));
  if (mode == "auto") {
    options.push_back(call_schema(kNoTool, {{"type", "object"},
                                            {"properties", {{"content", {{"type", "string"}}}}},
                                            {"required", {"content"}}}));
    setup.may_answer = true;
  }
  const ojson schema = options.size() == 1 ? options[0] : ojson({{"anyOf", options}});
  setup.grammar = read_response_format({{"type", "json_schema"}, {"json_schema", {{"name", "tool_call"}, {"schema", schema}}}},
                                       "tools");
  return setup;
}

ToolOutcome read_tool_output(const std::string& text, bool may_answer, const std::string& call_id) {
  ToolOutcome out;
  const json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("name") || !parsed.contains("arguments")) {
    out.content = text;  // cut off before it was complete
    return out;
  }
  const std::string name = parsed["name"].get<std::string>();
  if (may_answer && name == kNoTool) {
    out.content = parsed["arguments"].value("content", "");
    return out;
  }
  out.call = json({{"id", call_id},
                   {"type", "function"},
                   {"function", {{"name", name}, {"arguments", parsed["arguments"].dump()}}}});
  return out;
}

std::vector<json> ToolCallStreamer::push(const std::string& text) {
  text_ += text;
  std::vector<json> out;
  if (no_tool_) return out;
  if (arguments_at_ == 0) {
    // {"name": "N", "arguments": ...: the header once the arguments begin.
    const size_t key = text_.find("\"arguments\":");
    if (key == std::string::npos) return out;
    size_t at = key + 12;
    if (at < text_.size() && text_[at] == ' ') ++at;
    if (at >= text_.size()) return out;
    // The name: the JSON string after the first colon (escapes skipped).
    const size_t name_start = text_.find('"', text_.find(':') + 1);
    size_t name_end = name_start + 1;
    while (text_[name_end] != '"') name_end += text_[name_end] == '\\' ? 2 : 1;
    const std::string name = json::parse(text_.substr(name_start, name_end - name_start + 1)).get<std::string>();
    if (may_answer_ && name == kNoTool) {
      no_tool_ = true;
      return out;
    }
    arguments_at_ = sent_ = at;
    out.push_back({{"tool_calls", json::array({{{"index", 0}, {"id", id_}, {"type", "function"},
                                                 {"function", {{"name", name}, {"arguments", ""}}}}})}});
  }
  // Everything but the last byte, which may be the wrapper's closing brace.
  if (text_.size() > sent_ + 1) {
    const std::string piece = text_.substr(sent_, text_.size() - 1 - sent_);
    sent_ = text_.size() - 1;
    out.push_back({{"tool_calls", json::array({{{"index", 0}, {"function", {{"arguments", piece}}}}})}});
  }
  return out;
}

std::vector<json> ToolCallStreamer::finish(bool* called) {
  std::vector<json> out;
  const ToolOutcome outcome = read_tool_output(text_, may_answer_, id_);
  *called = arguments_at_ > 0;
  if (arguments_at_ > 0) {
    // Complete: the arguments end one byte before the wrapper's closing
    // brace. Cut off: the rest of what came.
    const size_t end = outcome.call ? text_.size() - 1 : text_.size();
    if (end > sent_)
      out.push_back({{"tool_calls", json::array({{{"index", 0}, {"function", {{"arguments", text_.substr(sent_, end - sent_)}}}}})}});
  } else {
    out.push_back({{"content", outcome.content}});
  }
  return out;
}

}  // namespace flashneox
