#include "cli/args.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace flashneox {

Args::Args(int argc, char** argv, int first, const Flags& flags) {
  for (const Flag& f : flags) declared_.push_back(f.name);
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) throw Error(concat("unexpected argument '", arg, "'"));
    std::string value;
    bool inline_value = false;
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    const auto flag = std::find_if(flags.begin(), flags.end(), [&](const Flag& f) { return f.name == arg; });
    if (flag == flags.end()) {
      const std::string near = nearest_flag(arg, flags);
      throw Error(concat("unknown option '", arg, "'", near.empty() ? "" : concat(" (did you mean ", near, "?)"),
                         "; see --help"));
    }
    if (flag->value.empty()) {
      if (inline_value) throw Error(concat(arg, " takes no value"));
      values_[arg].push_back("1");
    } else {
      if (!inline_value) {
        if (i + 1 >= argc) throw Error(concat(arg, " needs a value (", flag->value, ")"));
        value = argv[++i];
      }
      values_[arg].push_back(value);
    }
  }
}

void Args::check_declared(const std::string& flag) const {
  if (std::find(declared_.begin(), declared_.end(), flag) == declared_.end())
    throw Error(concat("internal error: ", flag, " is read but not in this command's flag table"));
}

bool Args::has(const std::string& flag) const {
  check_declared(flag);
  return values_.count(flag) != 0;
}

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  check_declared(flag);
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second.back();
}

const std::vector<std::string>& Args::all(const std::string& flag) const {
  check_declared(flag);
  static const std::vector<std::string> none;
  auto it = values_.find(flag);
  return it == values_.end() ? none : it->second;
}

std::string Args::require(const std::string& flag) const {
  if (!has(flag)) throw Error(concat(flag, " is required"));
  return get(flag);
}

int Args::get_int(const std::string& flag, int fallback) const {
  if (!has(flag)) return fallback;
  const std::string text = get(flag);
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < -(1L << 31) || value > (1L << 31) - 1)
    throw Error(concat(flag, " must be an integer, got '", text, "'"));
  return static_cast<int>(value);
}

double Args::get_double(const std::string& flag, double fallback) const {
  if (!has(flag)) return fallback;
  const std::string text = get(flag);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') throw Error(concat(flag, " must be a number, got '", text, "'"));
  return value;
}

std::vector<int32_t> parse_int_list(const std::string& text, const std::string& what) {
  std::vector<int32_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string part = text.substr(start, comma == std::string::npos ? std::string::npos
                                                                          : comma - start);
    char* end = nullptr;
    const long value = std::strtol(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || value < 0 || value > (1L << 31) - 1)
      throw Error(concat(what, ": '", part, "' is not a non-negative integer"));
    out.push_back(static_cast<int32_t>(value));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace flashneox
