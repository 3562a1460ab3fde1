// Reads the fields of a JSON request object with one rule for all: a wrong
// type or an out-of-range value is a 422 naming the field, numbers are never
// truncated or wrapped, and a field nobody read is refused (finish()), so no
// option is ever silently ignored.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

namespace flashneox {

class JsonFields {
 public:
  // `obj` must be an object (422 otherwise); `where` names it in messages
  // ("parameters"), or "" for the body itself.
  JsonFields(const nlohmann::json& obj, std::string where);

  // Absent or null give nullopt. Ranges are inclusive.
  std::optional<double> number(const char* name, double min, double max);
  std::optional<int64_t> integer(const char* name, int64_t min, int64_t max);
  std::optional<bool> boolean(const char* name);
  std::optional<std::string> string(const char* name);
  // The raw value (marked as read), or nullptr when absent or null.
  const nlohmann::json* raw(const char* name);
  // Accepted for compatibility and documented as having no effect here.
  void accept(const char* name) { read_.insert(name); }
  // Throws a 422 naming the first field that was not read.
  void finish() const;

 private:
  std::string field(const char* name) const;  // "`parameters.top_k`"
  const nlohmann::json& obj_;
  std::string where_;
  std::set<std::string> read_;
};

// Parses a request body with a nesting limit (deeper → 400): a value is never
// built deeper than `max_depth`, so nothing later recurses without bound.
nlohmann::json parse_json_limited(const std::string& text, int max_depth = 64);
// The same with objects in the order written (JSON schemas: property order).
nlohmann::ordered_json parse_ordered_json_limited(const std::string& text, int max_depth = 64);

}  // namespace flashneox
