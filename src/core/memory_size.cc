#include "core/memory_size.h"

#include <cstdlib>
#include <fstream>

#include "core/error.h"

namespace flashneox {

size_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  size_t value;
  std::string unit;
  while (in >> key >> value >> unit)
    if (key == "MemAvailable:") return value * 1024;
  return size_t{4} << 30;  // unknown: assume 4 GiB
}

namespace {

double parse_size(const std::string& text, const std::string& what, bool allow_fraction) {
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  const std::string unit = end ? std::string(end) : "";
  if (text.empty() || end == text.c_str() || !(number > 0))
    throw Error(concat(what, " '", text, "' is not a positive size"));
  double bytes;
  if (allow_fraction && unit.empty() && number <= 1.0) {
    bytes = number * static_cast<double>(available_memory_bytes());
  } else if (unit.empty() || unit == "B") {
    bytes = number;
  } else if (unit == "KiB" || unit == "K") {
    bytes = number * 1024;
  } else if (unit == "MiB" || unit == "M") {
    bytes = number * 1024 * 1024;
  } else if (unit == "GiB" || unit == "G") {
    bytes = number * 1024 * 1024 * 1024;
  } else if (unit == "KB") {
    bytes = number * 1e3;
  } else if (unit == "MB") {
    bytes = number * 1e6;
  } else if (unit == "GB") {
    bytes = number * 1e9;
  } else {
    throw Error(concat(what, " '", text, "': unknown unit '", unit, "' (use B, KiB, MiB, GiB, KB, MB, GB",
                       allow_fraction ? " or a fraction like 0.2)" : ")"));
  }
  if (!(bytes >= 1.0) || bytes > 4.6e18) throw Error(concat(what, " '", text, "' is out of range"));
  return bytes;
}

}  // namespace

size_t parse_byte_size(const std::string& text, const std::string& what) {
  return static_cast<size_t>(parse_size(text, what, false));
}

size_t parse_memory_budget(const std::string& text) {
  return static_cast<size_t>(parse_size(text, "memory budget", true));
}

}  // namespace flashneox
