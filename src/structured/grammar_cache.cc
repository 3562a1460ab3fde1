#include "structured/grammar_cache.h"

namespace flashneox {

std::shared_ptr<Grammar> GrammarCache::get(const std::string& key,
                                           const std::function<std::shared_ptr<Grammar>()>& compile) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
  }
  std::shared_ptr<Grammar> grammar = compile();  // errors are not cached: they are cheap to find again
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it != index_.end()) return it->second->second;  // compiled meanwhile by another thread
  order_.emplace_front(key, grammar);
  index_[key] = order_.begin();
  if (order_.size() > capacity_) {
    index_.erase(order_.back().first);
    order_.pop_back();
  }
  return grammar;
}

}  // namespace flashneox
