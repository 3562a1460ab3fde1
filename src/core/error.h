// One error policy: anything that goes wrong throws flashneox::Error with a
// message naming the thing (file, tensor, field, parameter). The CLI and the
// server catch it at their boundary and turn it into a message or a response.
#pragma once

#include <stdexcept>
#include <string>

namespace flashneox {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable parts: throw Error(concat("bad ", x)).
template <typename... Parts>
std::string concat(const Parts&... parts);

}  // namespace flashneox

#include <sstream>

namespace flashneox {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace flashneox
