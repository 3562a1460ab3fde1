// A compiled grammar for constrained decoding: a byte NFA determinised
// lazily (a DFA state is made when decoding first reaches it) and, per DFA
// state, the set of tokens whose bytes keep the automaton alive, found in one
// walk of the vocabulary trie and cached (JSON revisits a few states often).
// One thread uses a Grammar at a time: the HTTP thread builds it, then only
// the engine's thread touches it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "structured/byte_nfa.h"
#include "structured/token_trie.h"

namespace flashneox {

class Grammar {
 public:
  static constexpr int32_t kDead = -1;
  // Bounds on what one grammar may cost while decoding (a hostile pattern
  // must not stall the engine or exhaust memory): DFA states, NFA states
  // held by them, and steps of determinisation work (about a second).
  static constexpr size_t kMaxDfaStates = 20'000;
  static constexpr size_t kMaxHeldStates = 20'000'000;
  static constexpr uint64_t kMaxWork = 400'000'000;

  // Throws GrammarError when no text at all matches (e.g. a required
  // property whose schema recurses forever).
  Grammar(ByteNfa nfa, std::string description);

  static std::shared_ptr<Grammar> from_regex(std::string_view pattern);
  static std::shared_ptr<Grammar> from_json_schema(const nlohmann::ordered_json& schema);
  static std::shared_ptr<Grammar> any_json_object();

  int32_t start() const { return start_; }
  int32_t next(int32_t state, uint8_t byte);
  int32_t advance(int32_t state, std::string_view bytes);  // kDead once any byte fails
  bool accepting(int32_t state) const { return states_[static_cast<size_t>(state)].accepting; }
  bool can_continue(int32_t state);  // some byte keeps the automaton alive
  bool matches(std::string_view text);  // the whole text, from the start

  // Bits over trie.vocab(): the tokens whose bytes keep `state` alive.
  // A grammar serves one vocabulary; another trie is an error.
  const std::vector<uint64_t>& allowed_tokens(int32_t state, const TokenTrie& trie);

  const std::string& description() const { return description_; }
  size_t dfa_states() const { return states_.size(); }

 private:
  struct DfaState {
    std::vector<int32_t> nfa;  // sorted epsilon-closed set
    bool accepting = false;
    std::unique_ptr<std::array<int32_t, 256>> next;  // made on first use
    std::vector<uint64_t> allowed;                   // empty until first asked
    bool allowed_ready = false;
  };
  struct SetHash {
    size_t operator()(const std::vector<int32_t>& v) const;
  };

  void close(std::vector<int32_t>& set);  // epsilon closure over live states, sorted
  int32_t intern(std::vector<int32_t> set);
  void expand(int32_t state);
  void charge(uint64_t steps);  // throws GrammarError past kMaxWork

  ByteNfa nfa_;
  std::string description_;
  std::vector<bool> live_;  // NFA states from which acceptance is reachable
  std::vector<uint32_t> mark_;  // close()'s visited marks, by stamp
  uint32_t stamp_ = 0;
  size_t held_ = 0;    // sum of the DFA states' NFA sets
  uint64_t work_ = 0;  // determinisation steps so far
  std::vector<DfaState> states_;
  std::unordered_map<std::vector<int32_t>, int32_t, SetHash> ids_;
  int32_t start_ = kDead;
  const TokenTrie* trie_ = nullptr;
};

}  // namespace flashneox
