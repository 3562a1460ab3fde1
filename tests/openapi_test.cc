// GET /openapi.json against the server it describes: the same routes both
// ways, every $ref resolves, and every documented request field is one the
// body parsers read (a field they do not know is a 422 naming it, so each is
// sent as null, which they take as absent).
#include <gtest/gtest.h>

#include <set>

#include "engine/engine.h"
#include "server/api/openapi.h"
#include "server/api_error.h"
#include "server/generate_params.h"
#include "server/openai_params.h"
#include "server/server.h"
#include "test_support.h"

namespace flashneox {
namespace {

using json = nlohmann::json;

const json& resolve(const json& doc, const json& schema) {
  if (!schema.contains("$ref")) return schema;
  return doc.at(json::json_pointer(schema["$ref"].get<std::string>().substr(1)));
}

TEST(OpenApi, DocumentsExactlyTheRoutesTheServerHas) {
  auto tokenizer = std::shared_ptr<const Tokenizer>(Tokenizer::from_file(testing::bundled_model() + "/tokenizer.json"));
  EngineOptions eo;
  eo.kv_cache_bytes = 16u << 20;
  eo.max_total_tokens = 256;
  Engine engine(GptNeoxModel::load(testing::bundled_model()), tokenizer, eo);
  Server server(engine, ServerOptions{});
  std::set<std::pair<std::string, std::string>> served, documented;
  for (const auto& [method, path] : server.router().routes()) served.emplace(method, path);
  const json& doc = openapi_document();
  EXPECT_EQ(doc["openapi"], "3.1.0");
  for (const auto& [path, item] : doc["paths"].items())
    for (const auto& [method, op] : item.items()) {
      std::string m = method;
      for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.emplace(m, path);
      EXPECT_TRUE(op.contains("operationId")) << m << " " << path;
      EXPECT_TRUE(op["responses"].contains("200")) << m << " " << path;
    }
  EXPECT_EQ(served, documented);
}

TEST(OpenApi, EveryReferenceResolves) {
  const json& doc = openapi_document();
  std::vector<const json*> stack = {&doc};
  int refs = 0;
  while (!stack.empty()) {
    const json* j = stack.back();
    stack.pop_back();
    if (j->is_object() && j->contains("$ref")) {
      ++refs;
      EXPECT_NO_THROW(resolve(doc, *j)) << (*j)["$ref"];
    }
    if (j->is_structured())
      for (const auto& child : *j) stack.push_back(&child);
  }
  EXPECT_GT(refs, 20);
}

// The properties of a documented request body, by component name.
std::vector<std::string> fields(const std::string& component) {
  std::vector<std::string> out;
  for (const auto& [name, schema] : openapi_document()["components"]["schemas"][component]["properties"].items())
    out.push_back(name);
  return out;
}

std::string refusal(const std::function<void()>& parse) {
  try {
    parse();
  } catch (const ApiError& e) {
    return e.what();
  }
  return "";
}

TEST(OpenApi, EveryDocumentedFieldIsReadByItsParser) {
  const auto tokenizer = Tokenizer::from_file(testing::bundled_model() + "/tokenizer.json");
  const ModelChatTemplate no_template;
  auto known = [](const std::string& error) { return error.find("is not a field this server knows") == std::string::npos; };
  for (const std::string& f : fields("GenerateParameters")) {
    const json body = {{"inputs", "ROMEO:"}, {"parameters", {{f, nullptr}}}};
    EXPECT_TRUE(known(refusal([&] { parse_generate_body(body.dump(), *tokenizer); }))) << "parameters." << f;
  }
  for (const std::string& f : fields("GenerateRequest")) {
    json body = {{"inputs", "ROMEO:"}};
    if (f != "inputs") body[f] = nullptr;
    EXPECT_TRUE(known(refusal([&] { parse_generate_body(body.dump(), *tokenizer); }))) << f;
  }
  for (const std::string& f : fields("CompletionRequest")) {
    json body = {{"prompt", "ROMEO:"}};
    if (f != "prompt") body[f] = nullptr;
    EXPECT_TRUE(known(refusal([&] { parse_completions_body(body.dump(), *tokenizer); }))) << f;
  }
  for (const std::string& f : fields("ChatRequest")) {
    json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
    if (f != "messages") body[f] = nullptr;
    EXPECT_TRUE(known(refusal([&] { parse_chat_body(body.dump(), *tokenizer, no_template); }))) << f;
  }
  // And the parsers refuse what is not documented.
  EXPECT_FALSE(known(refusal([&] { parse_generate_body(R"({"inputs": "x", "parameters": {"nope": 1}})", *tokenizer); })));
}

}  // namespace
}  // namespace flashneox
