// JSON schemas (the subset of draft 2020-12 that real schemas use) to a byte
// NFA of the JSON texts that validate. Objects come out with their listed
// properties in the listed order (optional ones may be left out); other
// sets of valid texts are likewise subsets, never supersets, so an output
// that completes always validates. An unsupported keyword is a GrammarError
// naming it and where it is.
//
// Supported: type (or a list of types), enum, const, properties, required,
// additionalProperties, items, minItems, maxItems, minLength, maxLength,
// pattern, format (date, time, date-time, uuid, email), minimum, maximum,
// exclusiveMinimum, exclusiveMaximum (integers; numbers with integer bounds),
// anyOf, oneOf, allOf of one schema, local $ref (#, #/$defs/..., any JSON
// pointer; recursion unrolled kMaxRefDepth deep), and the annotations
// (title, description, default, examples, ...).
#pragma once

#include <nlohmann/json.hpp>

#include "structured/byte_nfa.h"

namespace flashneox {

constexpr int kMaxRefDepth = 4;      // nested expansions of one recursive $ref
constexpr int kAnyValueDepth = 5;    // nesting of a value with no schema

ByteNfa::Fragment compile_json_schema(ByteNfa& nfa, const nlohmann::ordered_json& schema);

// Any JSON object (OpenAI's and LoRAX's `json_object` without a schema).
ByteNfa::Fragment compile_any_json_object(ByteNfa& nfa);

}  // namespace flashneox
