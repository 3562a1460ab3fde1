#include "server/grammar_params.h"

#include <functional>
#include <initializer_list>

#include "server/api_error.h"
#include "server/json_fields.h"
#include "structured/grammar_cache.h"

namespace flashneox {

namespace {

using json = nlohmann::ordered_json;

const json& object_field(const json& obj, const std::string& field, std::initializer_list<const char*> known) {
  if (!obj.is_object()) throw validation_error(concat("`", field, "` must be an object"));
  for (const auto& [key, v] : obj.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) throw validation_error(concat("`", field, ".", key, "` is not a field this server knows; remove it"));
  }
  return obj;
}

std::string type_of(const json& obj, const std::string& field) {
  if (!obj.contains("type") || !obj["type"].is_string())
    throw validation_error(concat("`", field, ".type` must be a string"));
  return obj["type"].get<std::string>();
}

// The server's grammars, by source: a schema sent again is decoded warm.
// Each holds at most Grammar::kMaxCachedMasks masks (12 MB).
GrammarCache& cache() {
  static GrammarCache grammars(16);
  return grammars;
}

std::shared_ptr<Grammar> compiled(const std::string& field, const std::string& key,
                                  const std::function<std::shared_ptr<Grammar>()>& compile) {
  try {
    return cache().get(key, compile);
  } catch (const GrammarError& e) {
    throw validation_error(concat("`", field, "`: ", e.what()));
  }
}

std::shared_ptr<Grammar> schema_grammar(const json& schema, const std::string& field) {
  if (!schema.is_object() && !schema.is_boolean())
    throw validation_error(concat("`", field, "` must be a JSON schema (an object)"));
  return compiled(field, "schema\n" + schema.dump(), [&] { return Grammar::from_json_schema(schema); });
}

std::shared_ptr<Grammar> any_object(const std::string& field) {
  return compiled(field, "object", [] { return Grammar::any_json_object(); });
}

}  // namespace

std::shared_ptr<Grammar> read_tgi_grammar(const json& value, const std::string& field) {
  object_field(value, field, {"type", "value"});
  const std::string type = type_of(value, field);
  if (!value.contains("value")) throw validation_error(concat("`", field, ".value` is required"));
  const json& v = value["value"];
  const std::string value_field = field + ".value";
  if (type == "regex") {
    if (!v.is_string()) throw validation_error(concat("`", value_field, "` must be a string (a regular expression)"));
    return compiled(value_field, "regex\n" + v.get<std::string>(), [&] { return Grammar::from_regex(v.get<std::string>()); });
  }
  if (type == "json") {
    if (v.is_string()) {  // TGI also takes the schema as JSON text
      json schema;
      try {
        schema = parse_ordered_json_limited(v.get<std::string>());
      } catch (const ApiError& e) {
        throw validation_error(concat("`", value_field, "` is not a JSON schema: ", e.what()));
      }
      return schema_grammar(schema, value_field);
    }
    return schema_grammar(v, value_field);
  }
  throw validation_error(concat("`", field, ".type` must be \"json\" or \"regex\", not \"", type, "\""));
}

std::shared_ptr<Grammar> read_response_format(const json& value, const std::string& field) {
  object_field(value, field, {"type", "schema", "json_schema"});
  const std::string type = type_of(value, field);
  if (type == "text") {
    if (value.contains("schema") || value.contains("json_schema"))
      throw validation_error(concat("`", field, "` of type \"text\" takes no schema"));
    return nullptr;
  }
  if (type == "json_object") {
    if (value.contains("json_schema")) throw validation_error(concat("`", field, ".json_schema` needs type \"json_schema\""));
    if (!value.contains("schema") || value["schema"].is_null())
      return any_object(field);
    return schema_grammar(value["schema"], field + ".schema");
  }
  if (type == "json_schema") {
    if (value.contains("schema")) throw validation_error(concat("`", field, ".schema` needs type \"json_object\""));
    const std::string inner = field + ".json_schema";
    if (!value.contains("json_schema")) throw validation_error(concat("`", inner, "` is required"));
    const json& js = object_field(value["json_schema"], inner, {"name", "schema", "strict", "description"});
    if (!js.contains("name") || !js["name"].is_string()) throw validation_error(concat("`", inner, ".name` must be a string"));
    if (js.contains("strict") && !js["strict"].is_boolean() && !js["strict"].is_null())
      throw validation_error(concat("`", inner, ".strict` must be a boolean"));
    if (js.contains("description") && !js["description"].is_string())
      throw validation_error(concat("`", inner, ".description` must be a string"));
    if (!js.contains("schema")) return any_object(inner);
    return schema_grammar(js["schema"], inner + ".schema");
  }
  throw validation_error(
      concat("`", field, ".type` must be \"text\", \"json_object\" or \"json_schema\", not \"", type, "\""));
}

}  // namespace flashneox
