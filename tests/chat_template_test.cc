// The Jinja subset that model chat templates use, on real-world templates.
#include <gtest/gtest.h>

#include "core/error.h"
#include "server/chat_template.h"

namespace flashneox {
namespace {

using nlohmann::json;

const json kChat = {{{"role", "system"}, {"content", "Be brief."}},
                    {{"role", "user"}, {"content", "Hi"}},
                    {{"role", "assistant"}, {"content", "Hello."}},
                    {{"role", "user"}, {"content", "  Bye  "}}};

TEST(ChatTemplate, ChatMl) {
  const ChatTemplate t(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}");
  EXPECT_EQ(t.render({{"messages", kChat}, {"add_generation_prompt", true}}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n  Bye  <|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, LlamaStyleWithSlicingLoopAndRaise) {
  const ChatTemplate t(
      "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
      "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
      "{% set system_message = false %}{% endif %}"
      "{% for message in loop_messages %}"
      "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% if loop.index0 == 0 and system_message != false %}"
      "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
      "{% else %}{% set content = message['content'] %}{% endif %}"
      "{%- if message['role'] == 'user' -%}\n  {{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}"
      "{%- elif message['role'] == 'assistant' -%}\n  {{ ' ' + content | trim + ' ' + eos_token }}{% endif %}"
      "{% endfor %}");
  const json vars = {{"messages", kChat}, {"bos_token", "<s>"}, {"eos_token", "</s>"}};
  EXPECT_EQ(t.render(vars),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]");
  json bad = kChat;
  bad.erase(bad.begin() + 2);  // user, user: not alternating
  try {
    t.render({{"messages", bad}, {"bos_token", "<s>"}, {"eos_token", "</s>"}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must alternate"), std::string::npos);
  }
}

TEST(ChatTemplate, TestsFiltersAndLoopVariables) {
  const ChatTemplate t(
      "{% for m in messages %}{% if not loop.first %}|{% endif %}{{ loop.index }}:{{ m.role | upper }}"
      "{% if m.name is defined %}({{ m.name }}){% endif %}{% endfor %}"
      "{{ ' n=' ~ (messages | length) }}{% if extra is none %} none{% endif %}{% if 'x' in 'xyz' %} in{% endif %}");
  const json msgs = {{{"role", "user"}, {"content", "a"}, {"name", "bob"}}, {{"role", "assistant"}, {"content", "b"}}};
  EXPECT_EQ(t.render({{"messages", msgs}, {"extra", nullptr}}), "1:USER(bob)|2:ASSISTANT n=2 none in");
}

TEST(ChatTemplate, UnsupportedSyntaxIsAClearError) {
  EXPECT_THROW(ChatTemplate("{% macro x() %}{% endmacro %}"), Error);
  EXPECT_THROW(ChatTemplate("{% for m in messages %}no end"), Error);
  EXPECT_THROW(ChatTemplate("{{ 'unterminated }}"), Error);
  EXPECT_THROW(ChatTemplate("{{ x | frobnicate }}").render(json::object()), Error);
}

// What the parser says of a template it refuses (empty when it parses).
std::string refusal(const std::string& source) {
  try {
    ChatTemplate t(source);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(ChatTemplate, DeepNestingIsRefusedNotACrash) {
  // 100,000 parentheses or blocks would overflow the stack of a recursive parser.
  const int n = 100000;
  EXPECT_NE(refusal("{{ " + std::string(n, '(') + "1" + std::string(n, ')') + " }}").find("nests deeper"),
            std::string::npos);
  std::string blocks;
  for (int i = 0; i < n; ++i) blocks += "{% if x %}";
  EXPECT_NE(refusal(blocks).find("nest deeper"), std::string::npos);
  // Within the limit it works.
  EXPECT_EQ(ChatTemplate("{{ " + std::string(30, '(') + "1" + std::string(30, ')') + " }}").render(json::object()), "1");
}

TEST(ChatTemplate, ArithmeticOverflowIsAnError) {
  // Found by the fuzzer: signed overflow was undefined behaviour.
  EXPECT_THROW(ChatTemplate("{{ 999999999999999999 * 999999999999999999 }}").render(json::object()), Error);
  EXPECT_THROW(ChatTemplate("{{ 999999999999999999 + 999999999999999999 * 10 }}").render(json::object()), Error);
  EXPECT_EQ(ChatTemplate("{{ 6 * 7 }}").render(json::object()), "42");
}

TEST(ChatTemplate, HugeIntegerLiteralSaysSo) {
  EXPECT_NE(refusal("{{ 99999999999999999999999 }}").find("integer literal 99999999999999999999999 is too large"),
            std::string::npos);
}

}  // namespace
}  // namespace flashneox
