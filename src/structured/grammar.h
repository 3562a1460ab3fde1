// A compiled grammar for constrained decoding: a byte NFA determinised
// lazily (a DFA state is made when decoding first reaches it) and, per DFA
// state, the set of tokens whose bytes keep the automaton alive, found in one
// walk of the vocabulary trie and cached (JSON revisits a few states often).
// One thread uses a Grammar at a time: an HTTP thread builds it, then only
// the engine's thread touches it (requests sharing one from the server's
// cache all step on that thread); start() alone, fixed at construction, may
// be read from anywhere.
#pragma once

#include <bitset>
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
  static constexpr size_t kMaxCachedMasks = 2048;  // 12 MB for a 50k vocabulary; more are remade

  // Throws GrammarError when no text at all matches (e.g. a required
  // property whose schema recurses forever).
  Grammar(ByteNfa nfa, std::string description);

  static std::shared_ptr<Grammar> from_regex(std::string_view pattern);
  static std::shared_ptr<Grammar> from_json_schema(const nlohmann::ordered_json& schema);
  static std::shared_ptr<Grammar> any_json_object();

  int32_t start() const { return start_; }
  int32_t next(int32_t state, uint8_t byte) { return row(state)[byte]; }
  int32_t advance(int32_t state, std::string_view bytes);  // kDead once any byte fails
  bool accepting(int32_t state) const { return states_[static_cast<size_t>(state)].accepting; }
  bool can_continue(int32_t state);  // some byte keeps the automaton alive
  bool matches(std::string_view text);  // the whole text, from the start

  // Bits over trie.vocab(): the tokens whose bytes keep `state` alive.
  // A grammar serves one vocabulary; another trie is an error. Valid until
  // the next call.
  const std::vector<uint64_t>& allowed_tokens(int32_t state, const TokenTrie& trie);

  const std::string& description() const { return description_; }
  size_t dfa_states() const { return states_.size(); }
  size_t masks_made() const { return masks_made_; }  // vocabulary walks so far

 private:
  struct DfaState {
    std::vector<int32_t> nfa;  // sorted epsilon-closed set
    bool accepting = false;
    bool expanded = false;          // its row of next_ is filled
    std::vector<uint64_t> allowed;  // empty until first asked
    bool allowed_ready = false;
    // The bytes that all lead to one successor (a string's characters), as
    // an index into byte_sets_ (-1: too few to matter, -2: not computed),
    // and for how many bytes in a row such bytes keep the text alive.
    int32_t uniform_set = -2;
    int32_t uniform_next = kDead;
    uint16_t uniform_run = 0;
    bool run_known = false;
    bool run_closed = false;  // past the run, those bytes are dead (a string's maxLength)
  };
  struct SetHash {
    size_t operator()(const std::vector<int32_t>& v) const;
  };

  void close(const std::vector<int32_t>& set);  // epsilon closure over live states, sorted, into closed_
  int32_t intern(const std::vector<int32_t>& set);
  void expand(int32_t state);
  const int32_t* row(int32_t state) {  // the state's 256 transitions
    if (!states_[static_cast<size_t>(state)].expanded) expand(state);
    return next_.data() + static_cast<size_t>(state) * 256;
  }
  void charge(uint64_t steps);  // throws GrammarError past kMaxWork
  void classify(int32_t state);      // fills uniform_set and uniform_next
  uint16_t uniform_run(int32_t state);  // fills uniform_run

  ByteNfa nfa_;
  std::string description_;
  std::vector<bool> live_;  // NFA states from which acceptance is reachable
  std::vector<uint32_t> mark_;  // close()'s visited marks, by stamp
  uint32_t stamp_ = 0;
  size_t held_ = 0;    // sum of the DFA states' NFA sets
  uint64_t work_ = 0;  // determinisation steps so far
  size_t masks_made_ = 0, cached_masks_ = 0;
  std::vector<uint64_t> uncached_mask_;
  std::vector<DfaState> states_;
  std::vector<int32_t> next_;  // 256 per DFA state, filled by expand()
  std::vector<std::bitset<256>> byte_sets_;  // DfaState::uniform_set's
  struct WalkEntry {
    int32_t node, state;
    bool on_chain;
  };
  std::vector<WalkEntry> walk_stack_;  // allowed_tokens()'s scratch
  std::unordered_multimap<size_t, int32_t> ids_;  // SetHash of a state's set -> its id
  // Scratch of expand() and close().
  std::vector<ByteNfa::Edge> edges_;
  std::vector<int32_t> targets_, closed_, close_stack_;
  int32_t start_ = kDead;
  const TokenTrie* trie_ = nullptr;
};

}  // namespace flashneox
