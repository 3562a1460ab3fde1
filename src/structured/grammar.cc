#include "structured/grammar.h"

#include <algorithm>
#include <array>

#include "structured/json_schema_compiler.h"
#include "structured/regex_compiler.h"

namespace flashneox {

size_t Grammar::SetHash::operator()(const std::vector<int32_t>& v) const {
  uint64_t h = 1469598103934665603ull;
  for (const int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
  return static_cast<size_t>(h);
}

Grammar::Grammar(ByteNfa nfa, std::string description)
    : nfa_(std::move(nfa)), description_(std::move(description)) {
  // Keep only states that can still reach acceptance, so every live DFA state
  // can finish and a mask is never empty where the text is incomplete.
  const size_t n = nfa_.size();
  std::vector<std::vector<int32_t>> into(n);
  for (size_t s = 0; s < n; ++s) {
    for (const auto& e : nfa_.state(static_cast<int32_t>(s)).edges) into[static_cast<size_t>(e.to)].push_back(static_cast<int32_t>(s));
    for (const int32_t t : nfa_.state(static_cast<int32_t>(s)).epsilon) into[static_cast<size_t>(t)].push_back(static_cast<int32_t>(s));
  }
  live_.assign(n, false);
  std::vector<int32_t> stack = {nfa_.accept()};
  live_[static_cast<size_t>(nfa_.accept())] = true;
  while (!stack.empty()) {
    const int32_t s = stack.back();
    stack.pop_back();
    for (const int32_t p : into[static_cast<size_t>(s)])
      if (!live_[static_cast<size_t>(p)]) {
        live_[static_cast<size_t>(p)] = true;
        stack.push_back(p);
      }
  }
  if (!live_[static_cast<size_t>(nfa_.start())])
    throw GrammarError(concat(description_, ": no text can satisfy it (a required part recurses more than ",
                              kMaxRefDepth, " levels deep, or a part matches nothing)"));
  mark_.assign(n, 0);
  close({nfa_.start()});
  start_ = intern(closed_);
}

namespace {
std::shared_ptr<Grammar> finish(ByteNfa& nfa, ByteNfa::Fragment f, std::string description) {
  nfa.set_start(f.start);
  nfa.set_accept(f.end);
  return std::make_shared<Grammar>(std::move(nfa), std::move(description));
}
}  // namespace

std::shared_ptr<Grammar> Grammar::from_regex(std::string_view pattern) {
  ByteNfa nfa;
  const ByteNfa::Fragment f = compile_regex(nfa, pattern);
  return finish(nfa, f, "the regular expression");
}

std::shared_ptr<Grammar> Grammar::from_json_schema(const nlohmann::ordered_json& schema) {
  ByteNfa nfa;
  const ByteNfa::Fragment f = compile_json_schema(nfa, schema);
  return finish(nfa, f, "the JSON schema");
}

std::shared_ptr<Grammar> Grammar::any_json_object() {
  ByteNfa nfa;
  const ByteNfa::Fragment f = compile_any_json_object(nfa);
  return finish(nfa, f, "a JSON object");
}

void Grammar::close(const std::vector<int32_t>& set) {
  if (++stamp_ == 0) {  // wrapped: clear the marks once every 4 billion closures
    std::fill(mark_.begin(), mark_.end(), 0);
    stamp_ = 1;
  }
  closed_.clear();
  close_stack_.clear();
  auto visit = [&](int32_t s) {
    uint32_t& m = mark_[static_cast<size_t>(s)];
    if (!live_[static_cast<size_t>(s)] || m == stamp_) return;
    m = stamp_;
    closed_.push_back(s);
    close_stack_.push_back(s);
  };
  for (const int32_t s : set) visit(s);
  uint64_t steps = set.size();
  while (!close_stack_.empty()) {
    const int32_t s = close_stack_.back();
    close_stack_.pop_back();
    steps += nfa_.state(s).epsilon.size();
    for (const int32_t t : nfa_.state(s).epsilon) visit(t);
  }
  charge(steps + closed_.size());
  std::sort(closed_.begin(), closed_.end());
}

int32_t Grammar::intern(const std::vector<int32_t>& set) {
  if (set.empty()) return kDead;
  const size_t hash = SetHash{}(set);
  const auto [first, last] = ids_.equal_range(hash);
  for (auto it = first; it != last; ++it)
    if (states_[static_cast<size_t>(it->second)].nfa == set) return it->second;
  if (states_.size() >= kMaxDfaStates)
    throw GrammarError(concat(description_, " needs more than ", kMaxDfaStates,
                              " automaton states while decoding; simplify it (fewer bounded repetitions)"));
  held_ += set.size();
  if (held_ > kMaxHeldStates)
    throw GrammarError(concat(description_, " is too large to determinise while decoding; simplify it"));
  DfaState d;
  d.accepting = std::binary_search(set.begin(), set.end(), nfa_.accept());
  d.nfa = set;
  const auto id = static_cast<int32_t>(states_.size());
  states_.push_back(std::move(d));
  ids_.emplace(hash, id);
  return id;
}

void Grammar::charge(uint64_t steps) {
  work_ += steps;
  if (work_ > kMaxWork)
    throw GrammarError(concat(description_, " takes too much work to follow while decoding; simplify it "
                              "(fewer overlapping alternatives and repetitions)"));
}

void Grammar::expand(int32_t state) {
  // Bytes fall into intervals between the edges' ends; all bytes of one
  // interval lead to the same set, so each interval is closed once.
  edges_.clear();
  for (const int32_t s : states_[static_cast<size_t>(state)].nfa)
    for (const auto& e : nfa_.state(s).edges)
      if (live_[static_cast<size_t>(e.to)]) edges_.push_back(e);
  std::array<bool, 257> cut{};
  cut[0] = cut[256] = true;
  for (const auto& e : edges_) cut[e.lo] = cut[static_cast<size_t>(e.hi) + 1] = true;
  std::array<int32_t, 256> next;
  for (int lo = 0; lo < 256;) {
    int hi = lo + 1;
    while (!cut[static_cast<size_t>(hi)]) ++hi;
    targets_.clear();
    for (const auto& e : edges_)
      if (e.lo <= lo && lo <= e.hi) targets_.push_back(e.to);
    charge(edges_.size());
    int32_t to = kDead;
    if (!targets_.empty()) {
      close(targets_);
      to = intern(closed_);  // may add states (and rows)
    }
    std::fill(next.begin() + lo, next.begin() + hi, to);
    lo = hi;
  }
  next_.resize(states_.size() * 256);
  std::copy(next.begin(), next.end(), next_.begin() + static_cast<std::ptrdiff_t>(state) * 256);
  states_[static_cast<size_t>(state)].expanded = true;
}

int32_t Grammar::advance(int32_t state, std::string_view bytes) {
  for (const char c : bytes) {
    if (state == kDead) break;
    state = next(state, static_cast<uint8_t>(c));
  }
  return state;
}

bool Grammar::can_continue(int32_t state) {
  const int32_t* next = row(state);
  return std::any_of(next, next + 256, [](int32_t s) { return s != kDead; });
}

bool Grammar::matches(std::string_view text) {
  const int32_t end = advance(start_, text);
  return end != kDead && accepting(end);
}

void Grammar::classify(int32_t state) {
  constexpr size_t kWorthIt = 48;  // fewer bytes: the plain walk is cheap anyway
  const int32_t* next = row(state);
  // The most common live successor (rows have few distinct ones).
  std::vector<std::pair<int32_t, size_t>> counts;
  for (size_t b = 0; b < 256; ++b) {
    if (next[b] == kDead) continue;
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == next[b]; });
    if (it == counts.end()) counts.emplace_back(next[b], 1);
    else ++it->second;
  }
  int32_t best = kDead;
  size_t best_count = 0;
  for (const auto& [succ, n] : counts)
    if (n > best_count) best = succ, best_count = n;
  DfaState& d = states_[static_cast<size_t>(state)];
  if (best == kDead || best_count < kWorthIt) {
    d.uniform_set = -1;
    return;
  }
  std::bitset<256> bytes;
  for (size_t b = 0; b < 256; ++b) bytes[b] = next[b] == best;
  size_t set = 0;
  while (set < byte_sets_.size() && byte_sets_[set] != bytes) ++set;
  if (set == byte_sets_.size()) byte_sets_.push_back(bytes);
  d.uniform_set = static_cast<int32_t>(set);
  d.uniform_next = best;
}

uint16_t Grammar::uniform_run(int32_t state) {
  constexpr uint16_t kEndless = 65535;
  if (states_[static_cast<size_t>(state)].uniform_set == -2) classify(state);
  const int32_t set = states_[static_cast<size_t>(state)].uniform_set;
  if (set < 0) return 0;
  if (states_[static_cast<size_t>(state)].run_known) return states_[static_cast<size_t>(state)].uniform_run;
  // Follow state -> successor -> ... while the successor has the same byte
  // set: a string's characters, one state per length. Each step of the
  // chain is alive; the run is how many steps remain from each state.
  std::vector<int32_t> chain = {state};
  uint32_t tail = 0;  // the run of the state after the chain's last
  bool closed = false;
  for (;;) {
    const int32_t succ = states_[static_cast<size_t>(chain.back())].uniform_next;
    if (states_[static_cast<size_t>(succ)].uniform_set == -2) classify(succ);
    const DfaState& d = states_[static_cast<size_t>(succ)];
    if (d.uniform_set != set) {  // one more step, then other bytes: are the chain's bytes dead there?
      const int32_t* end = row(succ);
      const std::bitset<256>& bytes = byte_sets_[static_cast<size_t>(set)];
      closed = true;
      for (size_t b = 0; b < 256 && closed; ++b) closed = !bytes[b] || end[b] == kDead;
      break;
    }
    if (d.run_known) {
      tail = d.uniform_run;
      closed = d.run_closed;
      break;
    }
    if (std::find(chain.begin(), chain.end(), succ) != chain.end()) {  // a loop: as long as wanted
      tail = kEndless;
      break;
    }
    chain.push_back(succ);
  }
  for (size_t i = chain.size(); i-- > 0;) {
    tail = std::min<uint32_t>(tail + 1, kEndless);
    DfaState& d = states_[static_cast<size_t>(chain[i])];
    d.uniform_run = static_cast<uint16_t>(tail);
    d.run_known = true;
    d.run_closed = closed;
  }
  return states_[static_cast<size_t>(state)].uniform_run;
}

const std::vector<uint64_t>& Grammar::allowed_tokens(int32_t state, const TokenTrie& trie) {
  if (trie_ && trie_ != &trie) throw Error("a grammar was used with two vocabularies");
  trie_ = &trie;
  if (states_[static_cast<size_t>(state)].allowed_ready) return states_[static_cast<size_t>(state)].allowed;
  std::vector<uint64_t> bits((static_cast<size_t>(trie.vocab()) + 63) / 64 + 1, 0);  // +1: see below
  const std::vector<TokenTrie::Node>& nodes = trie.nodes();
  const std::vector<TokenTrie::Subtree>& subtrees = trie.subtrees();
  const std::vector<int32_t>& subtree_tokens = trie.subtree_tokens();
  std::vector<std::shared_ptr<const TokenTrie::ByteSetIndex>> indexes;  // by byte set, for this walk
  auto index_of = [&](int32_t at) -> const TokenTrie::ByteSetIndex* {
    const auto set = static_cast<size_t>(states_[static_cast<size_t>(at)].uniform_set);
    if (indexes.size() <= set) indexes.resize(set + 1);
    if (!indexes[set]) indexes[set] = trie.index(byte_sets_[set]);
    return indexes[set].get();
  };
  // Which children have tokens or children of their own is a coin toss, so
  // the plain step has no branches on it: a token of -1 sets a bit in the
  // spare last word, and the stack slot is written always and kept when needed.
  const size_t spare = bits.size() - 1;
  const size_t words = trie.words();
  if (walk_stack_.size() < nodes.size() + 1) walk_stack_.resize(nodes.size() + 1);  // never more pending than nodes
  WalkEntry* stack = walk_stack_.data();
  size_t top = 0;
  // Where the state has a chain of bytes (a string's characters, say), every
  // token made only of them and short enough is allowed at once, from the
  // byte set's table; the walk then skips what that covered ("on_chain":
  // the path so far is all chain bytes).
  bool root_chain = false;
  if (uniform_run(state) > 0) {
    const uint64_t* covered = index_of(state)->up_to(uniform_run(state), words);
    for (size_t w = 0; w < words; ++w) bits[w] |= covered[w];
    root_chain = true;
  }
  stack[top++] = {0, state, root_chain};
  while (top > 0) {
    const WalkEntry entry = stack[--top];
    const int32_t at = entry.state;
    // Subtrees made only of bytes that step `at` along a live chain long
    // enough are allowed whole: already counted when on the root's chain,
    // else OR-ed from the subtree's token list.
    const uint16_t run = uniform_run(at);
    const TokenTrie::ByteSetIndex* chain = run > 0 ? index_of(at) : nullptr;
    const uint8_t* within = chain ? chain->within.data() : nullptr;
    const std::bitset<256>* chain_bytes = chain ? &byte_sets_[static_cast<size_t>(states_[static_cast<size_t>(at)].uniform_set)] : nullptr;
    const int32_t* next = row(at);  // valid until the next row() (expansions move rows)
    const TokenTrie::Node& node = nodes[static_cast<size_t>(entry.node)];
    // On the root's chain, a subtree within the bytes is done either way:
    // its tokens up to the run were counted, and a closed run kills the rest.
    const bool skip_within = entry.on_chain && states_[static_cast<size_t>(at)].run_closed;
    for (int32_t c = node.first_child; c < node.first_child + node.child_count; ++c) {
      if (within && within[c] && (skip_within || subtrees[static_cast<size_t>(c)].depth <= run)) {
        if (entry.on_chain) continue;
        if (const uint64_t* dense = trie.subtree_bits(c)) {
          for (size_t w = 0; w < words; ++w) bits[w] |= dense[w];
          continue;
        }
        const TokenTrie::Subtree& sub = subtrees[static_cast<size_t>(c)];
        for (int32_t t = sub.begin; t < sub.end; ++t) {
          const auto id = static_cast<size_t>(subtree_tokens[static_cast<size_t>(t)]);
          bits[id / 64] |= uint64_t{1} << (id % 64);
        }
        continue;
      }
      const TokenTrie::Node& child = nodes[static_cast<size_t>(c)];
      const int32_t to = next[child.byte];
      const bool alive = to != kDead;
      const bool has_token = alive && child.token >= 0;
      const size_t word = has_token ? static_cast<size_t>(child.token) / 64 : spare;
      bits[word] |= uint64_t{has_token} << (child.token & 63);
      stack[top] = {c, to, entry.on_chain && chain_bytes && (*chain_bytes)[child.byte]};
      top += static_cast<size_t>(alive && child.child_count > 0);
      if (child.more_tokens && alive) [[unlikely]]
        for (const int32_t t : trie.more_tokens(c)) bits[static_cast<size_t>(t) / 64] |= uint64_t{1} << (t % 64);
    }
  }
  bits.pop_back();
  ++masks_made_;
  if (cached_masks_ >= kMaxCachedMasks) {  // memory bound: this one is not kept
    uncached_mask_ = std::move(bits);
    return uncached_mask_;
  }
  ++cached_masks_;
  DfaState& d = states_[static_cast<size_t>(state)];
  d.allowed = std::move(bits);
  d.allowed_ready = true;
  return d.allowed;
}

}  // namespace flashneox
