// Constrained decoding's automata: regular expressions and JSON schemas
// compile to grammars that accept exactly what they should (checked on
// hand-picked texts), refuse what they cannot take with a message naming it,
// and mask the real vocabulary (every allowed token keeps the text alive,
// every refused one kills it).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "structured/grammar.h"
#include "structured/token_trie.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace flashneox {
namespace {

using json = nlohmann::ordered_json;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const GrammarError& e) {
    return e.what();
  }
  return "";
}

TEST(Regex, MatchesWholeTexts) {
  auto g = Grammar::from_regex("^(ab|cd)+[0-9]{2,3}x?$");
  EXPECT_TRUE(g->matches("ab12"));
  EXPECT_TRUE(g->matches("abcdab123x"));
  EXPECT_FALSE(g->matches("ab1"));
  EXPECT_FALSE(g->matches("ab1234"));
  EXPECT_FALSE(g->matches("12"));
  EXPECT_FALSE(g->matches("xab12"));
  auto classes = Grammar::from_regex(R"([^a-z\s]\w*\.\d|\(\))");
  EXPECT_TRUE(classes->matches("Q_9.1"));
  EXPECT_TRUE(classes->matches("é.5"));  // a negated class takes any non-ASCII character
  EXPECT_TRUE(classes->matches("()"));
  EXPECT_FALSE(classes->matches("q.1"));
  EXPECT_FALSE(classes->matches(" .1"));
  auto any = Grammar::from_regex("a.c");
  EXPECT_TRUE(any->matches("a€c"));
  EXPECT_FALSE(any->matches("a\nc"));
  EXPECT_FALSE(any->matches("a\xff" "c"));  // never invalid UTF-8
  auto lazy = Grammar::from_regex("x{2,}?y*?(?:z|(?P<n>w))");
  EXPECT_TRUE(lazy->matches("xxxw"));
  EXPECT_TRUE(Grammar::from_regex("caf\\u00e9|[é]")->matches("café"));
  EXPECT_TRUE(Grammar::from_regex("a{,2}")->matches("a{,2}"));  // not a count: literal, as in Python
}

TEST(Regex, RefusesWhatItCannotTake) {
  for (const auto& [pattern, says] : std::vector<std::pair<std::string, std::string>>{
           {"(a)\\1", "\\1"}, {"\\bword", "\\b"}, {"(?=a)b", "lookaround"}, {"a*+", "possessive"},
           {"(ab", "missing ')'"}, {"ab)", "unmatched ')'"}, {"[a-", "unterminated"}, {"*a", "nothing to repeat"},
           {"a{5,2}", "m < n"}, {"a{1001}", "over 1000"}, {"[é-ü]", "ASCII"}, {"a^b", "'^'"}, {"a$b", "'$'"}}) {
    const std::string e = error_of([&] { Grammar::from_regex(pattern); });
    EXPECT_NE(e.find(says), std::string::npos) << pattern << ": " << e;
  }
}

TEST(JsonSchema, ObjectsWithRequiredAndOptionalProperties) {
  auto g = Grammar::from_json_schema(json::parse(R"({
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 5}, "age": {"type": "integer", "minimum": 0, "maximum": 130},
                   "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}},
    "required": ["age"], "additionalProperties": false})"));
  EXPECT_TRUE(g->matches(R"({"name": "Ann", "age": 42, "tags": ["a", "b"]})"));
  EXPECT_TRUE(g->matches(R"({"age":7})"));
  EXPECT_TRUE(g->matches(R"({"name":"","age":130,"tags":[]})"));
  EXPECT_FALSE(g->matches(R"({"name":"Ann"})"));              // age is required
  EXPECT_FALSE(g->matches(R"({"age":131})"));
  EXPECT_FALSE(g->matches(R"({"age":-1})"));
  EXPECT_FALSE(g->matches(R"({"age":07})"));
  EXPECT_FALSE(g->matches(R"({"name":"Annabel","age":1})"));  // maxLength
  EXPECT_FALSE(g->matches(R"({"age":1,"tags":["a","b","a"]})"));
  EXPECT_FALSE(g->matches(R"({,"age":1})"));
  EXPECT_FALSE(g->matches(R"({"age":1,})"));
}

TEST(JsonSchema, IntegerRangesAreExact) {
  for (const auto& [lo, hi] : std::vector<std::pair<int, int>>{{-120, 57}, {3, 1000}, {-999, -10}, {0, 0}, {95, 105}}) {
    auto g = Grammar::from_json_schema({{"type", "integer"}, {"minimum", lo}, {"maximum", hi}});
    for (int v = -1200; v <= 1200; ++v)
      EXPECT_EQ(g->matches(std::to_string(v)), v >= lo && v <= hi) << v << " in [" << lo << ", " << hi << "]";
  }
  auto open = Grammar::from_json_schema({{"type", "integer"}, {"exclusiveMinimum", 10}});
  EXPECT_FALSE(open->matches("10"));
  EXPECT_TRUE(open->matches("11"));
  EXPECT_TRUE(open->matches("123456789012345678"));
  EXPECT_FALSE(open->matches("1234567890123456789"));  // more digits than an int64 holds
  auto number = Grammar::from_json_schema({{"type", "number"}, {"minimum", -2}, {"maximum", 3}});
  for (const char* ok : {"-2", "-1.5", "0", "2.999", "3", "-0.25"}) EXPECT_TRUE(number->matches(ok)) << ok;
  for (const char* bad : {"-2.5", "3.5", "4", "-3", "1e2"}) EXPECT_FALSE(number->matches(bad)) << bad;
}

TEST(JsonSchema, StringsFormatsReferencesAndAlternatives) {
  auto g = Grammar::from_json_schema(json::parse(R"({
    "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"$ref": "#/$defs/node"}},
                       "required": ["v"]}},
    "type": "object",
    "properties": {"when": {"type": "string", "format": "date"}, "id": {"type": "string", "pattern": "^[A-Z]{2}-\\d+$"},
                   "list": {"$ref": "#/$defs/node"}, "x": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
                   "q": {"type": "string", "pattern": "a\"b"}},
    "required": ["when", "id", "list", "x"]})"));
  EXPECT_TRUE(g->matches(R"({"when": "2026-11-28", "id": "AB-12", "list": {"v": 1, "next": {"v": 2}}, "x": null})"));
  EXPECT_TRUE(g->matches(R"({"when":"2026-01-31","id":"ZZ-0","list":{"v":-3},"x":true,"q":"a\"b"})"));
  EXPECT_FALSE(g->matches(R"({"when":"2026-13-01","id":"AB-12","list":{"v":1},"x":null})"));
  EXPECT_FALSE(g->matches(R"({"when":"3333-02-30","id":"AB-12","list":{"v":1},"x":null})"));  // no such day
  EXPECT_FALSE(g->matches(R"({"when":"2026-04-31","id":"AB-12","list":{"v":1},"x":null})"));
  EXPECT_FALSE(g->matches(R"({"when":"2026-01-01","id":"ab-12","list":{"v":1},"x":null})"));
  EXPECT_FALSE(g->matches(R"({"when":"2026-01-01","id":"AB-1","list":{"v":1},"x":0})"));
  auto escapes = Grammar::from_json_schema({{"type", "string"}, {"minLength", 2}, {"maxLength", 2}});
  EXPECT_TRUE(escapes->matches(R"("\n\"")"));
  EXPECT_TRUE(escapes->matches("\"é€\""));
  EXPECT_FALSE(escapes->matches("\"a\nb\""));  // raw control characters are not JSON
  EXPECT_FALSE(escapes->matches(R"("abc")"));
  auto any = Grammar::any_json_object();
  EXPECT_TRUE(any->matches(R"({"a": [1, {"b": null}, "x", -2.5e3], "c": {}})"));
  EXPECT_FALSE(any->matches(R"([1])"));
  EXPECT_FALSE(any->matches(R"({"a": tru})"));
}

TEST(JsonSchema, RefusalsNameTheKeyword) {
  for (const auto& [schema, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({"type": "object", "properties": {"a": {"not": {}}}})", "'not' is not supported"},
           {R"({"type": "string", "format": "hostname"})", "format 'hostname'"},
           {R"({"type": "integer", "multipleOf": 3})", "'multipleOf'"},
           {R"({"type": "number", "minimum": 0.5})", "whole numbers"},
           {R"({"type": "integer", "minimum": 5, "maximum": 4})", "no integer"},
           {R"({"$ref": "https://example.com/s.json"})", "only local references"},
           {R"({"$ref": "#/$defs/missing"})", "points at nothing"},
           {R"({"$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "required": ["n"]}},
                "$ref": "#/$defs/n"})", "no text can satisfy it"},
           {R"({"type": "array", "items": {}, "maxItems": 5000})", "'maxItems' over 100"},
           {R"({"type": "strin"})", "unknown type 'strin'"},
           {R"({"anyOf": []})", "non-empty array"}}) {
    const std::string e = error_of([&] { Grammar::from_json_schema(json::parse(schema)); });
    EXPECT_NE(e.find(says), std::string::npos) << schema << ": " << e;
  }
}

// The mask of every state along `text` equals the brute-force answer: each
// token's bytes run through the automaton one by one.
void expect_exact_masks(Grammar& g, const Tokenizer& tokenizer, const TokenTrie& trie, const std::string& text) {
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const int32_t state = g.advance(g.start(), text.substr(0, cut));
    ASSERT_NE(state, Grammar::kDead) << text.substr(0, cut);
    const std::vector<uint64_t>& allowed = g.allowed_tokens(state, trie);
    int count = 0, wrong = 0;
    for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
      const bool bit = (allowed[static_cast<size_t>(id) / 64] >> (id % 64)) & 1;
      const std::string& bytes = tokenizer.token_bytes(id);
      const bool alive = !tokenizer.is_special(id) && !bytes.empty() && g.advance(state, bytes) != Grammar::kDead;
      if (bit != alive && ++wrong <= 3) {
        ADD_FAILURE() << "after '" << text.substr(0, cut) << "', token " << id << " '" << bytes << "': mask says " << bit;
      }
      count += bit;
    }
    if (cut < text.size()) {
      EXPECT_GT(count, 0) << text.substr(0, cut);
    }
  }
}

TEST(TokenMask, AllowsExactlyTheTokensThatKeepTheTextAlive) {
  const auto tokenizer = Tokenizer::from_file(testing::bundled_model() + "/tokenizer.json");
  const TokenTrie trie(*tokenizer, 50304);
  auto g = Grammar::from_json_schema(json::parse(R"({"type": "object", "properties": {"n": {"type": "integer"}},
                                                     "required": ["n"]})"));
  expect_exact_masks(*g, *tokenizer, trie, "{\"n\": 12}");
  EXPECT_TRUE(g->accepting(g->advance(g->start(), "{\"n\": 12}")));
  EXPECT_FALSE(g->can_continue(g->advance(g->start(), "{\"n\": 12}")));
  // Strings bounded and not (the masks' shortcut for runs of string characters), UTF-8, escapes, enums.
  auto strings = Grammar::from_json_schema(json::parse(R"({"type": "object", "properties": {
      "a": {"type": "string", "maxLength": 6}, "b": {"type": "string"}, "c": {"enum": ["merry", "sad"]},
      "d": {"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 30}, "maxItems": 2}},
      "required": ["a", "b", "c", "d"]})"));
  expect_exact_masks(*strings, *tokenizer, trie,
                     "{\"a\": \"O Rom\", \"b\": \"wherefore \\\"art\\\" thou — é\", \"c\": \"sad\", "
                     "\"d\": [\"a rose by any other name\", \"would smell as sweet\"]}");
  auto pattern = Grammar::from_regex("[a-z ]{0,12}(!|\\?)[0-9]{2}");
  expect_exact_masks(*pattern, *tokenizer, trie, "to be or not?42");
  auto open_chain = Grammar::from_regex("[a-z]{3}[a-z0-9]{0,40}x|[a-z]+");  // a run that ends into more of its bytes
  expect_exact_masks(*open_chain, *tokenizer, trie, "thee4ever0x");
}

}  // namespace
}  // namespace flashneox
