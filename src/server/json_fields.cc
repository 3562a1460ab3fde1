#include "server/json_fields.h"

#include <cmath>

#include "server/api_error.h"

namespace flashneox {

using nlohmann::json;

JsonFields::JsonFields(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {
  if (!obj_.is_object())
    throw validation_error(where_.empty() ? "the request body must be a JSON object"
                                          : concat("`", where_, "` must be an object"));
}

std::string JsonFields::field(const char* name) const {
  return where_.empty() ? concat("`", name, "`") : concat("`", where_, ".", name, "`");
}

const json* JsonFields::raw(const char* name) {
  read_.insert(name);
  auto it = obj_.find(name);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<double> JsonFields::number(const char* name, double min, double max) {
  const json* v = raw(name);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw validation_error(concat(field(name), " must be a number"));
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < min || d > max)
    throw validation_error(concat(field(name), " must be between ", min, " and ", max, "; got ", v->dump()));
  return d;
}

std::optional<int64_t> JsonFields::integer(const char* name, int64_t min, int64_t max) {
  const json* v = raw(name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) throw validation_error(concat(field(name), " must be an integer; got ", v->dump()));
  // An unsigned value above INT64_MAX is out of every range we accept.
  const bool too_big = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
  const int64_t i = too_big ? 0 : v->get<int64_t>();
  if (too_big || i < min || i > max)
    throw validation_error(concat(field(name), " must be between ", min, " and ", max, "; got ", v->dump()));
  return i;
}

std::optional<bool> JsonFields::boolean(const char* name) {
  const json* v = raw(name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw validation_error(concat(field(name), " must be true or false"));
  return v->get<bool>();
}

std::optional<std::string> JsonFields::string(const char* name) {
  const json* v = raw(name);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw validation_error(concat(field(name), " must be a string"));
  return v->get<std::string>();
}

void JsonFields::finish() const {
  for (auto it = obj_.begin(); it != obj_.end(); ++it)
    if (!read_.count(it.key()))
      throw validation_error(concat(field(it.key().c_str()), " is not a field this server knows; remove it"));
}

namespace {
template <typename Json>
Json parse_limited(const std::string& text, int max_depth) {
  // The callback sees each value's depth as it opens: refusing there means a
  // deep value is never built (nlohmann's parser itself does not recurse).
  struct TooDeep {};
  try {
    return Json::parse(text, [max_depth](int depth, typename Json::parse_event_t event, Json&) {
      if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
          depth >= max_depth)
        throw TooDeep{};
      return true;
    });
  } catch (const TooDeep&) {
    throw bad_request(concat("the request body nests deeper than ", max_depth, " levels"));
  } catch (const typename Json::exception& e) {  // syntax, or a number too large for a double (out_of_range)
    throw bad_request(concat("Failed to parse the request body as JSON: ", e.what()));
  }
}
}  // namespace

json parse_json_limited(const std::string& text, int max_depth) { return parse_limited<json>(text, max_depth); }

nlohmann::ordered_json parse_ordered_json_limited(const std::string& text, int max_depth) {
  return parse_limited<nlohmann::ordered_json>(text, max_depth);
}

}  // namespace flashneox
