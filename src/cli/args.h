// A small command-line parser: --flag value, --flag=value and --switch.
// Unknown flags and missing values are errors that name the flag.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cli/flags.h"

namespace flashneox {

class Args {
 public:
  // Accepts exactly the flags of `flags`; an unknown one is an error that
  // suggests the nearest.
  Args(int argc, char** argv, int first, const Flags& flags);

  // Reading a flag the table does not declare is a programming error (it
  // could never be set): these throw for one.
  bool has(const std::string& flag) const;
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  const std::vector<std::string>& all(const std::string& flag) const;
  int get_int(const std::string& flag, int fallback) const;
  double get_double(const std::string& flag, double fallback) const;
  std::string require(const std::string& flag) const;

 private:
  void check_declared(const std::string& flag) const;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> declared_;
};

std::vector<int32_t> parse_int_list(const std::string& text, const std::string& what);

}  // namespace flashneox
