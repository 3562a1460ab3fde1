// A byte-level NFA: what regular expressions and JSON schemas compile to, and
// what Grammar determinises lazily to mask the vocabulary while decoding.
// Built from fragments (Thompson's construction); a fragment's end state has
// no edges until the next fragment is joined to it.
#pragma once

#include <bitset>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace flashneox {

// A grammar the compilers cannot take: unsupported syntax or keyword, or too
// large. The message names what; the server answers it with a 422.
class GrammarError : public Error {
 public:
  using Error::Error;
};

class ByteNfa {
 public:
  struct Edge {
    uint8_t lo, hi;  // inclusive byte range
    int32_t to;
  };
  struct State {
    std::vector<Edge> edges;
    std::vector<int32_t> epsilon;
  };
  struct Fragment {
    int32_t start, end;
  };
  static constexpr size_t kMaxStates = 400'000;  // about 40 MB; a bigger schema is refused

  int32_t add_state();
  void add_edge(int32_t from, uint8_t lo, uint8_t hi, int32_t to);
  void add_epsilon(int32_t from, int32_t to);
  void add_edges(int32_t from, const std::bitset<256>& bytes, int32_t to);  // one edge per run of bytes

  // Building blocks; each returns a new fragment.
  Fragment empty();
  Fragment nothing();  // matches no string at all (start never reaches end)
  Fragment bytes(uint8_t lo, uint8_t hi);
  Fragment byte_set(const std::bitset<256>& set);
  Fragment literal(std::string_view text);
  Fragment concat(Fragment a, Fragment b);
  Fragment sequence(const std::vector<Fragment>& parts);
  Fragment alternatives(const std::vector<Fragment>& options);
  Fragment optional(Fragment f);
  // make() builds a fresh copy each call; max < 0 means unbounded.
  Fragment repeat(const std::function<Fragment()>& make, int min, int max);
  // One UTF-8 encoded character: an ASCII byte in `ascii`, or (with
  // non_ascii) any well-formed multi-byte character.
  Fragment utf8_char(const std::bitset<128>& ascii, bool non_ascii);

  void set_start(int32_t s) { start_ = s; }
  void set_accept(int32_t s) { accept_ = s; }
  int32_t start() const { return start_; }
  int32_t accept() const { return accept_; }
  size_t size() const { return states_.size(); }
  const State& state(int32_t id) const { return states_[static_cast<size_t>(id)]; }

 private:
  std::vector<State> states_;
  int32_t start_ = -1, accept_ = -1;
};

}  // namespace flashneox
