#include "structured/grammar.h"

#include <algorithm>

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
  std::vector<int32_t> first = {nfa_.start()};
  close(first);
  start_ = intern(std::move(first));
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

void Grammar::close(std::vector<int32_t>& set) {
  if (++stamp_ == 0) {  // wrapped: clear the marks once every 4 billion closures
    std::fill(mark_.begin(), mark_.end(), 0);
    stamp_ = 1;
  }
  std::vector<int32_t> out, stack;
  auto visit = [&](int32_t s) {
    uint32_t& m = mark_[static_cast<size_t>(s)];
    if (!live_[static_cast<size_t>(s)] || m == stamp_) return;
    m = stamp_;
    out.push_back(s);
    stack.push_back(s);
  };
  for (const int32_t s : set) visit(s);
  uint64_t steps = set.size();
  while (!stack.empty()) {
    const int32_t s = stack.back();
    stack.pop_back();
    steps += nfa_.state(s).epsilon.size();
    for (const int32_t t : nfa_.state(s).epsilon) visit(t);
  }
  charge(steps + out.size());
  std::sort(out.begin(), out.end());
  set = std::move(out);
}

int32_t Grammar::intern(std::vector<int32_t> set) {
  if (set.empty()) return kDead;
  auto it = ids_.find(set);
  if (it != ids_.end()) return it->second;
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
  ids_.emplace(std::move(set), id);
  return id;
}

void Grammar::charge(uint64_t steps) {
  work_ += steps;
  if (work_ > kMaxWork)
    throw GrammarError(concat(description_, " takes too much work to follow while decoding; simplify it "
                              "(fewer overlapping alternatives and repetitions)"));
}

void Grammar::expand(int32_t state) {
  std::array<std::vector<int32_t>, 256> targets;
  uint64_t steps = 0;
  for (const int32_t s : states_[static_cast<size_t>(state)].nfa)
    for (const auto& e : nfa_.state(s).edges)
      if (live_[static_cast<size_t>(e.to)]) {
        steps += static_cast<uint64_t>(e.hi - e.lo) + 1;
        for (int b = e.lo; b <= e.hi; ++b) targets[static_cast<size_t>(b)].push_back(e.to);
      }
  charge(steps);
  auto next = std::make_unique<std::array<int32_t, 256>>();
  for (size_t b = 0; b < 256; ++b) {
    // Neighbouring bytes often lead to the same set (ranges): reuse the last answer.
    if (b > 0 && targets[b] == targets[b - 1]) {
      (*next)[b] = (*next)[b - 1];
      continue;
    }
    std::vector<int32_t> set = targets[b];
    close(set);
    (*next)[b] = intern(std::move(set));
  }
  states_[static_cast<size_t>(state)].next = std::move(next);
}

int32_t Grammar::next(int32_t state, uint8_t byte) {
  if (!states_[static_cast<size_t>(state)].next) expand(state);
  return (*states_[static_cast<size_t>(state)].next)[byte];
}

int32_t Grammar::advance(int32_t state, std::string_view bytes) {
  for (const char c : bytes) {
    if (state == kDead) break;
    state = next(state, static_cast<uint8_t>(c));
  }
  return state;
}

bool Grammar::can_continue(int32_t state) {
  if (!states_[static_cast<size_t>(state)].next) expand(state);
  const auto& next = *states_[static_cast<size_t>(state)].next;
  return std::any_of(next.begin(), next.end(), [](int32_t s) { return s != kDead; });
}

bool Grammar::matches(std::string_view text) {
  const int32_t end = advance(start_, text);
  return end != kDead && accepting(end);
}

const std::vector<uint64_t>& Grammar::allowed_tokens(int32_t state, const TokenTrie& trie) {
  if (trie_ && trie_ != &trie) throw Error("a grammar was used with two vocabularies");
  trie_ = &trie;
  if (states_[static_cast<size_t>(state)].allowed_ready) return states_[static_cast<size_t>(state)].allowed;
  std::vector<uint64_t> bits((static_cast<size_t>(trie.vocab()) + 63) / 64, 0);
  const auto& nodes = trie.nodes();
  const auto& children = trie.children();
  const auto& tokens = trie.tokens();
  std::vector<std::pair<int32_t, int32_t>> stack = {{0, state}};  // (trie node, DFA state)
  while (!stack.empty()) {
    const auto [node_id, at] = stack.back();
    stack.pop_back();
    const TokenTrie::Node& node = nodes[static_cast<size_t>(node_id)];
    for (int32_t c = node.first_child; c < node.first_child + node.child_count; ++c) {
      const TokenTrie::Child& child = children[static_cast<size_t>(c)];
      const int32_t to = next(at, child.byte);  // may grow states_: no references held across
      if (to == kDead) continue;
      const TokenTrie::Node& reached = nodes[static_cast<size_t>(child.node)];
      for (int32_t t = reached.first_token; t < reached.first_token + reached.token_count; ++t) {
        const auto id = static_cast<size_t>(tokens[static_cast<size_t>(t)]);
        bits[id / 64] |= uint64_t{1} << (id % 64);
      }
      if (reached.child_count > 0) stack.emplace_back(child.node, to);
    }
  }
  DfaState& d = states_[static_cast<size_t>(state)];
  d.allowed = std::move(bits);
  d.allowed_ready = true;
  return d.allowed;
}

}  // namespace flashneox
