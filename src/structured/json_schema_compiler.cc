#include "structured/json_schema_compiler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "structured/regex_compiler.h"

namespace flashneox {

namespace {

using json = nlohmann::ordered_json;  // properties keep their order
using Fragment = ByteNfa::Fragment;

constexpr int kMaxIntegerDigits = 18;  // unbounded integers stay within int64
constexpr int kMaxSchemaDepth = 128;

const std::set<std::string>& annotations() {
  static const std::set<std::string> names = {
      "title",    "description", "default",  "examples",   "$schema",    "$id",
      "$comment", "deprecated",  "readOnly", "writeOnly",  "$defs",      "definitions",
      "$anchor",  "contentMediaType", "contentEncoding"};
  return names;
}

const std::set<std::string>& supported() {
  static const std::set<std::string> names = {
      "type",      "enum",     "const",     "properties", "required",         "additionalProperties",
      "items",     "minItems", "maxItems",  "minLength",  "maxLength",        "pattern",
      "format",    "minimum",  "maximum",   "exclusiveMinimum", "exclusiveMaximum",
      "anyOf",     "oneOf",    "allOf",     "$ref"};
  return names;
}

std::string pow10_minus_1(size_t digits) { return std::string(digits, '9'); }

class SchemaCompiler {
 public:
  SchemaCompiler(ByteNfa& nfa, const json& root) : nfa_(nfa), root_(root) {}

  Fragment value(const json& s, const std::string& path) {
    if (++depth_ > kMaxSchemaDepth) fail(path, "the schema nests too deeply");
    Fragment f = value_unguarded(s, path);
    --depth_;
    return f;
  }

  Fragment any_value(int depth) {
    std::vector<Fragment> options = {string_of_length(0, -1), number(), nfa_.literal("true"),
                                     nfa_.literal("false"), nfa_.literal("null")};
    if (depth > 0) {
      options.push_back(map_of([&] { return any_value(depth - 1); }));
      options.push_back(list_of([&] { return any_value(depth - 1); }, 0, -1));
    }
    return nfa_.alternatives(options);
  }

  Fragment any_object() {
    return map_of([&] { return any_value(kAnyValueDepth - 1); });
  }

 private:
  [[noreturn]] static void fail(const std::string& path, const std::string& what) {
    throw GrammarError(concat("JSON schema at #", path, ": ", what));
  }

  Fragment ws() { return nfa_.optional(nfa_.literal(" ")); }

  Fragment value_unguarded(const json& s, const std::string& path) {
    if (s.is_boolean()) return s.get<bool>() ? any_value(kAnyValueDepth) : nfa_.nothing();
    if (!s.is_object()) fail(path, "a schema must be an object or a boolean");
    bool constrains = false;
    for (const auto& [key, v] : s.items()) {
      if (annotations().count(key)) continue;
      if (!supported().count(key)) fail(path, concat("the keyword '", key, "' is not supported"));
      constrains = true;
    }
    if (!constrains) return any_value(kAnyValueDepth);
    auto only = [&](const char* key) {
      for (const auto& [k, v] : s.items())
        if (k != key && !annotations().count(k))
          fail(path, concat("'", key, "' beside '", k, "' is not supported"));
    };
    if (s.contains("$ref")) {
      only("$ref");
      return reference(s["$ref"], path);
    }
    for (const char* key : {"anyOf", "oneOf", "allOf"})
      if (s.contains(key)) {
        only(key);
        const json& list = s[key];
        if (!list.is_array() || list.empty()) fail(path, concat("'", key, "' must be a non-empty array"));
        if (std::string(key) == "allOf") {
          if (list.size() != 1) fail(path, "'allOf' with more than one schema is not supported");
          return value(list[0], path + "/allOf/0");
        }
        std::vector<Fragment> options;
        for (size_t i = 0; i < list.size(); ++i)
          options.push_back(value(list[i], concat(path, "/", key, "/", i)));
        return nfa_.alternatives(options);
      }
    if (s.contains("const")) return nfa_.literal(s["const"].dump());
    if (s.contains("enum")) {
      const json& list = s["enum"];
      if (!list.is_array() || list.empty()) fail(path, "'enum' must be a non-empty array");
      std::vector<Fragment> options;
      for (const json& v : list) options.push_back(nfa_.literal(v.dump()));
      return nfa_.alternatives(options);
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) types.push_back(t.get<std::string>());
      else if (t.is_array() && !t.empty())
        for (const json& x : t) {
          if (!x.is_string()) fail(path, "'type' must be a string or an array of strings");
          types.push_back(x.get<std::string>());
        }
      else fail(path, "'type' must be a string or an array of strings");
    } else {
      types.push_back(inferred_type(s, path));
    }
    std::vector<Fragment> options;
    for (const std::string& t : types) options.push_back(typed(s, t, path));
    return options.size() == 1 ? options[0] : nfa_.alternatives(options);
  }

  std::string inferred_type(const json& s, const std::string& path) {
    for (const char* k : {"properties", "required", "additionalProperties"})
      if (s.contains(k)) return "object";
    for (const char* k : {"items", "minItems", "maxItems"})
      if (s.contains(k)) return "array";
    for (const char* k : {"minLength", "maxLength", "pattern", "format"})
      if (s.contains(k)) return "string";
    for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
      if (s.contains(k)) return "number";
    fail(path, "a schema with no 'type' and nothing to infer it from");
  }

  Fragment typed(const json& s, const std::string& type, const std::string& path) {
    auto refuse = [&](std::initializer_list<const char*> keys) {
      for (const char* k : keys)
        if (s.contains(k)) fail(path, concat("'", k, "' does not apply to type '", type, "'"));
    };
    if (type == "null") return nfa_.literal("null");
    if (type == "boolean") return nfa_.alternatives({nfa_.literal("true"), nfa_.literal("false")});
    if (type == "integer" || type == "number") {
      refuse({"minLength", "maxLength", "pattern", "format", "items", "minItems", "maxItems", "properties"});
      return numeric(s, type == "integer", path);
    }
    if (type == "string") return string(s, path);
    if (type == "array") return array(s, path);
    if (type == "object") return object(s, path);
    fail(path, concat("unknown type '", type, "'"));
  }

  // ---- numbers ----

  Fragment digit() { return nfa_.bytes('0', '9'); }

  // Decimal strings of one length between lo and hi (same length, lo <= hi).
  Fragment same_length(const std::string& lo, const std::string& hi) {
    if (lo.empty()) return nfa_.empty();
    const std::string first(1, lo[0]);
    const size_t rest = lo.size() - 1;
    if (lo.substr(1) == std::string(rest, '0') && hi.substr(1) == pow10_minus_1(rest))  // [a-b][0-9]{rest}
      return nfa_.concat(nfa_.bytes(static_cast<uint8_t>(lo[0]), static_cast<uint8_t>(hi[0])),
                         nfa_.repeat([&] { return digit(); }, static_cast<int>(rest), static_cast<int>(rest)));
    if (lo[0] == hi[0]) return nfa_.concat(nfa_.literal(first), same_length(lo.substr(1), hi.substr(1)));
    std::vector<Fragment> options;
    options.push_back(nfa_.concat(nfa_.literal(first), same_length(lo.substr(1), pow10_minus_1(rest))));
    if (hi[0] - lo[0] > 1)
      options.push_back(nfa_.concat(nfa_.bytes(static_cast<uint8_t>(lo[0] + 1), static_cast<uint8_t>(hi[0] - 1)),
                                    nfa_.repeat([&] { return digit(); }, static_cast<int>(rest), static_cast<int>(rest))));
    options.push_back(nfa_.concat(nfa_.literal(std::string(1, hi[0])), same_length(std::string(rest, '0'), hi.substr(1))));
    return nfa_.alternatives(options);
  }

  // Non-negative integers in [lo, hi] written canonically; no hi: up to kMaxIntegerDigits digits.
  Fragment non_negative(uint64_t lo, std::optional<uint64_t> hi) {
    const std::string lo_text = std::to_string(lo);
    std::vector<Fragment> options;
    if (!hi) {  // lo's length from lo up, then every longer number: [1-9][0-9]{len, 17}
      options.push_back(same_length(lo_text, pow10_minus_1(lo_text.size())));
      const int len = static_cast<int>(lo_text.size());
      if (len < kMaxIntegerDigits)
        options.push_back(nfa_.concat(nfa_.bytes('1', '9'), nfa_.repeat([&] { return digit(); }, len, kMaxIntegerDigits - 1)));
      return options.size() == 1 ? options[0] : nfa_.alternatives(options);
    }
    const size_t last = std::to_string(*hi).size();
    for (size_t len = lo_text.size(); len <= last; ++len) {
      std::string a = lo_text;
      if (len != lo_text.size()) {  // the smallest number of this length: 10...0
        a.assign(len, '0');
        a[0] = '1';
      }
      const std::string b = len == last ? std::to_string(*hi) : pow10_minus_1(len);
      if (a.size() == b.size() && a <= b) options.push_back(same_length(a, b));
    }
    if (options.empty()) return nfa_.nothing();
    return options.size() == 1 ? options[0] : nfa_.alternatives(options);
  }

  // Integers in [lo, hi], either side open.
  Fragment integer_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
    std::vector<Fragment> options;
    if (!hi || *hi >= 0) options.push_back(non_negative(lo && *lo > 0 ? static_cast<uint64_t>(*lo) : 0,
                                                        hi ? std::optional<uint64_t>(static_cast<uint64_t>(*hi)) : std::nullopt));
    if (!lo || *lo < 0) {
      const uint64_t smallest = hi && *hi < 0 ? static_cast<uint64_t>(-(*hi + 1)) + 1 : 1;
      std::optional<uint64_t> largest;
      if (lo) largest = static_cast<uint64_t>(-(*lo + 1)) + 1;
      options.push_back(nfa_.concat(nfa_.literal("-"), non_negative(smallest, largest)));
    }
    return options.size() == 1 ? options[0] : nfa_.alternatives(options);
  }

  Fragment fraction() {
    return nfa_.concat(nfa_.literal("."), nfa_.repeat([&] { return digit(); }, 1, 15));
  }

  Fragment number() {
    Fragment exponent = nfa_.sequence({nfa_.byte_set(std::bitset<256>().set('e').set('E')),
                                       nfa_.optional(nfa_.byte_set(std::bitset<256>().set('+').set('-'))),
                                       nfa_.repeat([&] { return digit(); }, 1, 2)});
    return nfa_.sequence({integer_range(std::nullopt, std::nullopt), nfa_.optional(fraction()),
                          nfa_.optional(exponent)});
  }

  std::optional<double> bound(const json& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return std::nullopt;
    const json& v = s[key];
    if (!v.is_number() || !std::isfinite(v.get<double>())) fail(path, concat("'", key, "' must be a number"));
    const double d = v.get<double>();
    if (std::fabs(d) > 9e17) fail(path, concat("'", key, "' beyond +-9e17 is not supported"));
    return d;
  }

  Fragment numeric(const json& s, bool integer, const std::string& path) {
    std::optional<double> lo = bound(s, "minimum", path), hi = bound(s, "maximum", path);
    const std::optional<double> xlo = bound(s, "exclusiveMinimum", path), xhi = bound(s, "exclusiveMaximum", path);
    if (!integer) {
      if (!lo && !hi && !xlo && !xhi) return number();
      for (const auto& b : {lo, hi, xlo, xhi})
        if (b && *b != std::floor(*b))
          fail(path, "bounds of a 'number' must be whole numbers (fractional bounds are supported on integers only)");
      return bounded_number(lo, hi, xlo, xhi, path);
    }
    std::optional<int64_t> ilo, ihi;
    if (lo) ilo = static_cast<int64_t>(std::ceil(*lo));
    if (xlo) ilo = std::max(ilo.value_or(INT64_MIN), static_cast<int64_t>(std::floor(*xlo)) + 1);
    if (hi) ihi = static_cast<int64_t>(std::floor(*hi));
    if (xhi) ihi = std::min(ihi.value_or(INT64_MAX), static_cast<int64_t>(std::ceil(*xhi)) - 1);
    if (ilo && ihi && *ilo > *ihi) fail(path, "no integer lies between the minimum and the maximum");
    return integer_range(ilo, ihi);
  }

  // Numbers between whole-number bounds: a whole number in range, or k.ddd
  // whose whole interval [k, k+1) (or (-(k+1), -k] when negative) is in range.
  Fragment bounded_number(std::optional<double> lo, std::optional<double> hi, std::optional<double> xlo,
                          std::optional<double> xhi, const std::string& path) {
    std::optional<int64_t> ilo, ihi;  // inclusive bounds for whole numbers
    if (lo) ilo = static_cast<int64_t>(*lo);
    if (xlo) ilo = std::max(ilo.value_or(INT64_MIN), static_cast<int64_t>(*xlo) + 1);
    if (hi) ihi = static_cast<int64_t>(*hi);
    if (xhi) ihi = std::min(ihi.value_or(INT64_MAX), static_cast<int64_t>(*xhi) - 1);
    if (ilo && ihi && *ilo > *ihi) fail(path, "no number lies between the minimum and the maximum");
    std::vector<Fragment> options = {integer_range(ilo, ihi)};
    // k.ddd with k >= 0 lies in [k, k+1): needs k >= lo and k+1 <= hi.
    const int64_t plo = std::max<int64_t>(0, lo ? static_cast<int64_t>(*lo) : xlo ? static_cast<int64_t>(*xlo) + 1 : 0);
    std::optional<int64_t> phi;
    if (hi || xhi) phi = (hi ? static_cast<int64_t>(*hi) : static_cast<int64_t>(*xhi)) - 1;
    if (!phi || *phi >= plo)
      options.push_back(nfa_.concat(non_negative(static_cast<uint64_t>(plo), phi ? std::optional<uint64_t>(static_cast<uint64_t>(*phi)) : std::nullopt),
                                    fraction()));
    // -k.ddd with k >= 0 lies in (-(k+1), -k]: needs -k <= hi and -(k+1) >= lo.
    const int64_t nlo = std::max<int64_t>(0, hi ? -static_cast<int64_t>(*hi) : xhi ? -static_cast<int64_t>(*xhi) + 1 : 0);
    std::optional<int64_t> nhi;
    if (lo || xlo) nhi = -(lo ? static_cast<int64_t>(*lo) : static_cast<int64_t>(*xlo)) - 1;
    if (!nhi || *nhi >= nlo)
      options.push_back(nfa_.sequence({nfa_.literal("-"),
                                       non_negative(static_cast<uint64_t>(nlo), nhi ? std::optional<uint64_t>(static_cast<uint64_t>(*nhi)) : std::nullopt),
                                       fraction()}));
    return nfa_.alternatives(options);
  }

  // ---- strings ----

  // One character of a JSON string: unescaped UTF-8 or a short escape.
  Fragment json_char() {
    std::bitset<128> plain;
    for (size_t c = 0x20; c < 128; ++c) plain.set(c);
    plain.reset('"').reset('\\');
    std::bitset<256> escaped;
    for (const char c : std::string("\"\\/bfnrt")) escaped.set(static_cast<unsigned char>(c));
    return nfa_.alternatives({nfa_.utf8_char(plain, true), nfa_.concat(nfa_.literal("\\"), nfa_.byte_set(escaped))});
  }

  Fragment string_of_length(int min, int max) {
    return nfa_.sequence({nfa_.literal("\""), nfa_.repeat([&] { return json_char(); }, min, max), nfa_.literal("\"")});
  }

  int count(const json& s, const char* key, const std::string& path, int limit) {
    const json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      fail(path, concat("'", key, "' must be a non-negative integer"));
    if (v.get<int64_t>() > limit) fail(path, concat("'", key, "' over ", limit, " is not supported"));
    return static_cast<int>(v.get<int64_t>());
  }

  Fragment string(const json& s, const std::string& path) {
    const bool has_length = s.contains("minLength") || s.contains("maxLength");
    if (s.contains("pattern")) {
      if (has_length || s.contains("format")) fail(path, "'pattern' together with lengths or 'format' is not supported");
      if (!s["pattern"].is_string()) fail(path, "'pattern' must be a string");
      return quoted(s["pattern"].get<std::string>());
    }
    if (s.contains("format")) {
      if (has_length) fail(path, "'format' together with lengths is not supported");
      if (!s["format"].is_string()) fail(path, "'format' must be a string");
      return quoted(format_regex(s["format"].get<std::string>(), path));
    }
    const int min = s.contains("minLength") ? count(s, "minLength", path, 1000) : 0;
    const int max = s.contains("maxLength") ? count(s, "maxLength", path, 1000) : -1;
    if (max >= 0 && max < min) fail(path, "'maxLength' is less than 'minLength'");
    return string_of_length(min, max);
  }

  Fragment quoted(const std::string& pattern) {
    return nfa_.sequence({nfa_.literal("\""), compile_regex(nfa_, pattern, RegexContext::JsonString), nfa_.literal("\"")});
  }

  static std::string format_regex(const std::string& format, const std::string& path) {
    // Days that exist in every year of their month (29 February is left out):
    // every output is a real date; years 1000-9999.
    const std::string date =
        "[1-9][0-9]{3}-(02-(0[1-9]|1[0-9]|2[0-8])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|"
        "(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01]))";
    const std::string time = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
    if (format == "date") return date;
    if (format == "time") return time;
    if (format == "date-time") return date + "T" + time;
    if (format == "uuid") return "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
    if (format == "email") return "[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63}){0,3}\\.[A-Za-z]{2,12}";
    fail(path, concat("the format '", format, "' is not supported (date, time, date-time, uuid, email are)"));
  }

  // ---- arrays and objects ----

  Fragment list_of(const std::function<Fragment()>& item, int min, int max) {
    if (max == 0) return nfa_.literal("[]");
    if (max < 0 && min <= 1) {  // one copy of the item, looped: [item (, item)*] or []
      const Fragment open = nfa_.literal("["), first = item(), close = nfa_.literal("]");
      nfa_.add_epsilon(open.end, first.start);
      if (min == 0) nfa_.add_epsilon(open.end, close.start);
      const Fragment comma = nfa_.sequence({nfa_.literal(","), ws()});
      nfa_.add_epsilon(first.end, comma.start);
      nfa_.add_epsilon(comma.end, first.start);
      nfa_.add_epsilon(first.end, close.start);
      return {open.start, close.end};
    }
    Fragment items = nfa_.concat(item(), nfa_.repeat([&] { return nfa_.sequence({nfa_.literal(","), ws(), item()}); },
                                                     std::max(min - 1, 0), max < 0 ? -1 : max - 1));
    if (min == 0) items = nfa_.optional(items);
    return nfa_.sequence({nfa_.literal("["), items, nfa_.literal("]")});
  }

  // {"key": value, ...} with any keys; one copy of the value, looped.
  Fragment map_of(const std::function<Fragment()>& value_of) {
    const Fragment open = nfa_.literal("{");
    const int32_t close_start = nfa_.add_state();
    const Fragment close = nfa_.concat(Fragment{close_start, close_start}, nfa_.literal("}"));
    const Fragment member = nfa_.sequence({string_of_length(0, -1), nfa_.literal(":"), ws(), value_of()});
    nfa_.add_epsilon(open.end, member.start);
    nfa_.add_epsilon(open.end, close.start);
    const int32_t after_comma = nfa_.add_state();
    nfa_.add_edge(member.end, ',', ',', after_comma);
    const Fragment space = ws();
    nfa_.add_epsilon(after_comma, space.start);
    nfa_.add_epsilon(space.end, member.start);
    nfa_.add_epsilon(member.end, close.start);
    return {open.start, close.end};
  }

  Fragment array(const json& s, const std::string& path) {
    if (s.contains("prefixItems")) fail(path, "the keyword 'prefixItems' is not supported");
    const int min = s.contains("minItems") ? count(s, "minItems", path, 100) : 0;
    const int max = s.contains("maxItems") ? count(s, "maxItems", path, 100) : -1;
    if (max >= 0 && max < min) fail(path, "'maxItems' is less than 'minItems'");
    if (!s.contains("items")) return list_of([&] { return any_value(kAnyValueDepth - 1); }, min, max);
    return list_of([&] { return value(s["items"], path + "/items"); }, min, max);
  }

  Fragment object(const json& s, const std::string& path) {
    std::vector<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail(path, "'required' must be an array of names");
      for (const json& r : s["required"]) {
        if (!r.is_string()) fail(path, "'required' must be an array of names");
        required.push_back(r.get<std::string>());
      }
    }
    if (!s.contains("properties") && required.empty()) {
      if (!s.contains("additionalProperties") || s["additionalProperties"] == true)
        return map_of([&] { return any_value(kAnyValueDepth - 1); });
      if (s["additionalProperties"] == false) return nfa_.literal("{}");
      return map_of([&] { return value(s["additionalProperties"], path + "/additionalProperties"); });
    }
    std::vector<std::pair<std::string, json>> props;
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) fail(path, "'properties' must be an object");
      for (const auto& [name, sub] : s["properties"].items()) props.emplace_back(name, sub);
    }
    for (const std::string& r : required) {
      bool listed = false;
      for (const auto& p : props) listed = listed || p.first == r;
      if (!listed) props.emplace_back(r, json(true));
    }
    // Two chains of states, "nothing written yet" and "something written":
    // each property is entered from the first directly and from the second
    // after a comma, and leads to the second; an optional one may be skipped.
    const Fragment open = nfa_.literal("{");
    int32_t none = open.end, some = nfa_.add_state();
    for (const auto& [name, sub] : props) {
      const bool is_required = std::find(required.begin(), required.end(), name) != required.end();
      const Fragment member = nfa_.sequence({nfa_.literal(json(name).dump()), nfa_.literal(":"), ws(),
                                             value(sub, path + "/properties/" + name)});
      const Fragment comma = nfa_.sequence({nfa_.literal(","), ws()});
      nfa_.add_epsilon(none, member.start);
      nfa_.add_epsilon(some, comma.start);
      nfa_.add_epsilon(comma.end, member.start);
      const int32_t next_none = nfa_.add_state(), next_some = nfa_.add_state();
      nfa_.add_epsilon(member.end, next_some);
      if (!is_required) {
        nfa_.add_epsilon(none, next_none);
        nfa_.add_epsilon(some, next_some);
      }
      none = next_none, some = next_some;
    }
    const Fragment close = nfa_.literal("}");
    nfa_.add_epsilon(none, close.start);
    nfa_.add_epsilon(some, close.start);
    return {open.start, close.end};
  }

  // ---- references ----

  Fragment reference(const json& ref, const std::string& path) {
    if (!ref.is_string()) fail(path, "'$ref' must be a string");
    const std::string target = ref.get<std::string>();
    if (target.empty() || target[0] != '#') fail(path, concat("'$ref' to '", target, "': only local references (#...) are supported"));
    int& expansions = ref_depth_[target];
    if (expansions >= kMaxRefDepth) return nfa_.nothing();  // the recursion stops here
    const json* at = &root_;
    try {
      at = &root_.at(json::json_pointer(target.substr(1)));
    } catch (const json::exception&) {
      fail(path, concat("'$ref' to '", target, "' points at nothing"));
    }
    ++expansions;
    Fragment f = value(*at, target.substr(1));
    --ref_depth_[target];
    return f;
  }

  ByteNfa& nfa_;
  const json& root_;
  int depth_ = 0;
  std::map<std::string, int> ref_depth_;
};

}  // namespace

ByteNfa::Fragment compile_json_schema(ByteNfa& nfa, const nlohmann::ordered_json& schema) {
  SchemaCompiler compiler(nfa, schema);
  return compiler.value(schema, "");
}

ByteNfa::Fragment compile_any_json_object(ByteNfa& nfa) {
  const nlohmann::ordered_json empty = nlohmann::ordered_json::object();
  return SchemaCompiler(nfa, empty).any_object();
}

}  // namespace flashneox
