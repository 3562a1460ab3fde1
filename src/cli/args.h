// A small command-line parser: --flag value, --flag=value and --switch.
// Unknown flags and missing values are errors that name the flag.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace flashneox {

class Args {
 public:
  // `valued`: flags that take a value; `switches`: flags that do not.
  Args(int argc, char** argv, int first, const std::set<std::string>& valued,
       const std::set<std::string>& switches);

  bool has(const std::string& flag) const { return values_.count(flag) != 0; }
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  const std::vector<std::string>& all(const std::string& flag) const;
  int get_int(const std::string& flag, int fallback) const;
  double get_double(const std::string& flag, double fallback) const;
  std::string require(const std::string& flag) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

std::vector<int32_t> parse_int_list(const std::string& text, const std::string& what);

}  // namespace flashneox
