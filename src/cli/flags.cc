#include "cli/flags.h"

#include <algorithm>

namespace flashneox {

Flags operator+(Flags a, const Flags& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string help_text(const std::string& command, const std::string& summary, const Flags& flags) {
  std::string out = "usage: flashneox " + command + " [options]\n\n" + summary + "\n\noptions:\n";
  size_t width = 0;
  auto head = [](const Flag& f) { return f.name + (f.value.empty() ? "" : " " + f.value); };
  for (const Flag& f : flags) width = std::max(width, head(f).size());
  for (const Flag& f : flags) {
    std::string line = "  " + head(f);
    line.append(width + 4 - head(f).size(), ' ');
    line += f.help;
    if (f.repeatable) line += " (repeatable)";
    if (!f.fallback.empty()) line += " [default: " + f.fallback + "]";
    out += line + "\n";
  }
  out += "  --help" + std::string(width + 4 - 6, ' ') + "this text\n";
  return out;
}

std::string nearest_flag(const std::string& unknown, const Flags& flags) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
        diagonal = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const Flag& f : flags) {
    const size_t d = distance(unknown, f.name);
    if (d < best_distance) {
      best_distance = d;
      best = f.name;
    }
  }
  // A typo, not a different word: at most a third of the name changed.
  return best_distance <= std::max<size_t>(2, unknown.size() / 3) ? best : "";
}

}  // namespace flashneox
