// Compiled grammars by their source, so a schema or pattern sent again is
// decoded warm (its DFA states and token masks already made). Thread-safe;
// the least recently used grammar goes first. A grammar in the cache may be
// in use by the engine's thread: callers only hand it on.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "structured/grammar.h"

namespace flashneox {

class GrammarCache {
 public:
  explicit GrammarCache(size_t capacity) : capacity_(capacity) {}

  // The grammar compiled from `key`'s source, compiling it (outside the lock) when absent.
  std::shared_ptr<Grammar> get(const std::string& key, const std::function<std::shared_ptr<Grammar>()>& compile);

 private:
  using Entry = std::pair<std::string, std::shared_ptr<Grammar>>;
  const size_t capacity_;
  std::mutex mutex_;
  std::list<Entry> order_;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace flashneox
