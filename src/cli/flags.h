// Every command's flags in one table each: name, value, default and a line of
// help. The parser accepts exactly these and `--help` is printed from them,
// so the two cannot drift apart.
#pragma once

#include <string>
#include <vector>

namespace flashneox {

struct Flag {
  std::string name;      // "--max-new-tokens"
  std::string value;     // what it takes ("N", "f32|f16"); empty: a switch
  std::string fallback;  // the default, as shown in --help; empty: none
  std::string help;      // one line
  bool repeatable = false;
};
using Flags = std::vector<Flag>;

Flags operator+(Flags a, const Flags& b);

// "usage: flashneox NAME [options]", the summary, then one line per flag.
std::string help_text(const std::string& command, const std::string& summary, const Flags& flags);

// The flag whose name is nearest to `unknown` (edit distance), or "" when
// none is close enough to be a likely typo.
std::string nearest_flag(const std::string& unknown, const Flags& flags);

}  // namespace flashneox
