// Chat templates from tokenizer_config.json: the subset of Jinja that model
// chat templates use — {{ }}, {% for/if/elif/else/set %}, whitespace
// control ({%- -%}), loop.index0/first/last, attribute and item access,
// slicing, + ~ % == != < > <= >= and/or/not in, `is defined`/`is none`,
// filters trim/length/upper/lower/tojson, and raise_exception(). Anything
// else is a clear error when the template is loaded or rendered.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace flashneox {

class ChatTemplate {
 public:
  // Parses the template; throws Error naming what is not supported.
  explicit ChatTemplate(const std::string& source);
  ~ChatTemplate();

  // Renders with the given variables (messages, add_generation_prompt,
  // bos_token, eos_token, ...). Throws Error (raise_exception included).
  std::string render(const nlohmann::json& variables) const;

  struct Node;

 private:
  std::shared_ptr<Node> root_;
};

// The chat template of a model directory's tokenizer_config.json (and its
// bos/eos tokens), or none when it has no template.
struct ModelChatTemplate {
  std::unique_ptr<ChatTemplate> tmpl;
  std::string bos_token, eos_token;
};
ModelChatTemplate load_chat_template(const std::string& model_dir);

}  // namespace flashneox
