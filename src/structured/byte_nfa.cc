#include "structured/byte_nfa.h"

namespace flashneox {

int32_t ByteNfa::add_state() {
  if (states_.size() >= kMaxStates)
    throw GrammarError(flashneox::concat("the grammar is too large (over ", kMaxStates,
                              " automaton states); use fewer or smaller repetitions"));
  states_.emplace_back();
  return static_cast<int32_t>(states_.size() - 1);
}

void ByteNfa::add_edge(int32_t from, uint8_t lo, uint8_t hi, int32_t to) {
  states_[static_cast<size_t>(from)].edges.push_back({lo, hi, to});
}

void ByteNfa::add_epsilon(int32_t from, int32_t to) {
  states_[static_cast<size_t>(from)].epsilon.push_back(to);
}

ByteNfa::Fragment ByteNfa::empty() {
  const int32_t s = add_state();
  return {s, s};
}

ByteNfa::Fragment ByteNfa::nothing() {
  const int32_t start = add_state();
  return {start, add_state()};
}

ByteNfa::Fragment ByteNfa::bytes(uint8_t lo, uint8_t hi) {
  const int32_t start = add_state(), end = add_state();
  add_edge(start, lo, hi, end);
  return {start, end};
}

void ByteNfa::add_edges(int32_t from, const std::bitset<256>& set, int32_t to) {
  for (int b = 0; b < 256;) {  // runs of bytes as ranges: fewer edges to determinise
    if (!set[static_cast<size_t>(b)]) {
      ++b;
      continue;
    }
    int e = b;
    while (e + 1 < 256 && set[static_cast<size_t>(e + 1)]) ++e;
    add_edge(from, static_cast<uint8_t>(b), static_cast<uint8_t>(e), to);
    b = e + 1;
  }
}

ByteNfa::Fragment ByteNfa::byte_set(const std::bitset<256>& set) {
  const int32_t start = add_state(), end = add_state();
  add_edges(start, set, end);
  return {start, end};
}

ByteNfa::Fragment ByteNfa::literal(std::string_view text) {
  const int32_t start = add_state();
  int32_t at = start;
  for (const char c : text) {
    const int32_t next = add_state();
    const auto b = static_cast<uint8_t>(c);
    add_edge(at, b, b, next);
    at = next;
  }
  return {start, at};
}

ByteNfa::Fragment ByteNfa::concat(Fragment a, Fragment b) {
  add_epsilon(a.end, b.start);
  return {a.start, b.end};
}

ByteNfa::Fragment ByteNfa::sequence(const std::vector<Fragment>& parts) {
  if (parts.empty()) return empty();
  Fragment out = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) out = concat(out, parts[i]);
  return out;
}

ByteNfa::Fragment ByteNfa::alternatives(const std::vector<Fragment>& options) {
  const int32_t start = add_state(), end = add_state();
  for (const Fragment& f : options) {
    add_epsilon(start, f.start);
    add_epsilon(f.end, end);
  }
  return {start, end};
}

ByteNfa::Fragment ByteNfa::optional(Fragment f) {
  add_epsilon(f.start, f.end);
  return f;
}

ByteNfa::Fragment ByteNfa::repeat(const std::function<Fragment()>& make, int min, int max) {
  Fragment out = empty();
  for (int i = 0; i < min; ++i) out = concat(out, make());
  if (max < 0) {  // a loop: f*, entered and left through fresh states
    const Fragment f = make();
    const int32_t hub = add_state();
    add_epsilon(hub, f.start);
    add_epsilon(f.end, hub);
    return concat(out, Fragment{hub, hub});
  }
  // (f (f (f)?)?)? — each copy may be the last, no epsilon fan-out of width max.
  const int32_t end = add_state();
  int32_t at = out.end;
  for (int i = min; i < max; ++i) {
    add_epsilon(at, end);
    const Fragment f = make();
    add_epsilon(at, f.start);
    at = f.end;
  }
  add_epsilon(at, end);
  return {out.start, end};
}

ByteNfa::Fragment ByteNfa::utf8_char(const std::bitset<128>& ascii, bool non_ascii) {
  const int32_t start = add_state(), end = add_state();
  std::bitset<256> bytes;
  for (size_t b = 0; b < 128; ++b) bytes[b] = ascii[b];
  add_edges(start, bytes, end);
  if (!non_ascii) return {start, end};
  // Well-formed UTF-8 only (no overlongs, no surrogates, nothing past U+10FFFF).
  const int32_t tail1 = add_state(), tail2 = add_state(), tail3 = add_state();
  add_edge(tail1, 0x80, 0xBF, end);
  add_edge(tail2, 0x80, 0xBF, tail1);
  add_edge(tail3, 0x80, 0xBF, tail2);
  add_edge(start, 0xC2, 0xDF, tail1);
  const int32_t e0 = add_state(), ed = add_state(), f0 = add_state(), f4 = add_state();
  add_edge(start, 0xE0, 0xE0, e0);
  add_edge(e0, 0xA0, 0xBF, tail1);
  add_edge(start, 0xE1, 0xEC, tail2);
  add_edge(start, 0xEE, 0xEF, tail2);
  add_edge(start, 0xED, 0xED, ed);
  add_edge(ed, 0x80, 0x9F, tail1);
  add_edge(start, 0xF0, 0xF0, f0);
  add_edge(f0, 0x90, 0xBF, tail2);
  add_edge(start, 0xF1, 0xF3, tail3);
  add_edge(start, 0xF4, 0xF4, f4);
  add_edge(f4, 0x80, 0x8F, tail2);
  return {start, end};
}

}  // namespace flashneox
