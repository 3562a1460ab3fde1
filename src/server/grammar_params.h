// The request fields that ask for constrained decoding, as each API spells
// them, compiled into a Grammar (a 422 naming the field and the problem):
//   TGI    parameters.grammar          {"type": "json" | "regex", "value": schema | pattern}
//   LoRAX  parameters.response_format  {"type": "json_object", "schema": schema?}
//   OpenAI response_format             {"type": "text" | "json_object"}
//                                      {"type": "json_schema", "json_schema": {"name", "schema", "strict"?, "description"?}}
// Every response_format spelling is accepted wherever response_format is.
// Schemas are read from the body parsed in order (ordered_json), so objects
// come out with their properties in the order the schema lists them.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "structured/grammar.h"

namespace flashneox {

std::shared_ptr<Grammar> read_tgi_grammar(const nlohmann::ordered_json& value, const std::string& field);
// Null for {"type": "text"}.
std::shared_ptr<Grammar> read_response_format(const nlohmann::ordered_json& value, const std::string& field);

}  // namespace flashneox
