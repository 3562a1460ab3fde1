#include "lora/adapter_store.h"

#include "io/hub_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

namespace flashneox {

namespace fs = std::filesystem;

AdapterStore::AdapterStore(const ModelConfig& base, AdapterStoreOptions options)
    : base_(base), options_(std::move(options)) {
  if (options_.hub_cache.empty()) options_.hub_cache = default_hub_cache();
  if (!options_.local_root.empty()) {
    std::error_code ec;
    const fs::path root = fs::canonical(options_.local_root, ec);
    if (ec || !fs::is_directory(root)) throw Error(concat("--adapter-root ", options_.local_root, " is not a folder"));
    options_.local_root = root.string();
  }
}

void AdapterStore::preload(const std::string& name, const std::string& dir) {
  const auto start = std::chrono::steady_clock::now();
  auto adapter = LoraAdapter::load(dir, name, base_, options_.weight_dtype);
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.count(name)) throw Error(concat("--adapter: the name '", name, "' is given twice"));
  Entry& e = entries_[name];
  e.adapter = std::move(adapter);
  e.pinned = true;
  e.last_used = std::chrono::steady_clock::now();
  ++stats_.loads;
  stats_.load_seconds += std::chrono::duration<double>(e.last_used - start).count();
}

std::string AdapterStore::resolve_local(const std::string& id) const {
  if (options_.local_root.empty())
    throw AdapterError(422, concat("adapter '", id, "': local adapters are off (start the server with --adapter-root DIR)"));
  const fs::path given(id);
  const fs::path root(options_.local_root);
  const fs::path joined = given.is_absolute() ? given : root / given;
  std::error_code ec;
  const fs::path real = fs::canonical(joined, ec);  // follows every symlink
  if (ec) throw AdapterError(422, concat("adapter '", id, "': no such folder under the adapter root"));
  const std::string r = real.string(), base = root.string();
  if (r != base && r.rfind(base + "/", 0) != 0)
    throw AdapterError(403, concat("adapter '", id, "' resolves to a path outside --adapter-root (", base,
                                   "); only folders inside it are served"));
  return r;
}

std::string AdapterStore::resolve_hub(const std::string& id) const {
  if (!is_hub_id(id))
    throw AdapterError(422, concat("adapter '", id, "' is not loaded and is not a hub id of the form org/name"));
  try {
    return resolve_hub_snapshot(options_.hub_cache, id).dir;
  } catch (const Error& e) {
    throw AdapterError(422, concat("adapter ", e.what()));
  }
}

std::shared_ptr<const LoraAdapter> AdapterStore::get(const std::string& id, const std::string& source) {
  if (id.empty()) return nullptr;
  if (source != "hub" && source != "local")
    throw AdapterError(422, concat("adapter_source '", source, "' is not supported (hub or local)"));
  std::unique_lock<std::mutex> lock(mutex_);
  if (auto it = entries_.find(id); it != entries_.end() && it->second.pinned) {
    it->second.last_used = std::chrono::steady_clock::now();
    ++stats_.hits;
    return it->second.adapter;
  }
  lock.unlock();
  return get_or_load(source + ":" + id, [&] {
    const std::string dir = source == "local" ? resolve_local(id) : resolve_hub(id);
    try {
      return LoraAdapter::load(dir, id, base_, options_.weight_dtype);
    } catch (const AdapterError&) {
      throw;
    } catch (const Error& e) {
      throw AdapterError(422, concat("adapter '", id, "' cannot be used: ", e.what()));
    }
  });
}

std::shared_ptr<const LoraAdapter> AdapterStore::get_merged(const MergeSpec& spec, const std::string& source) {
  try {
    spec.validate();
  } catch (const Error& e) {
    throw AdapterError(422, e.what());
  }
  std::vector<std::shared_ptr<const LoraAdapter>> parts;
  for (const std::string& id : spec.ids) {
    if (id.empty()) throw AdapterError(422, "`merged_adapters.ids` holds an empty id");
    parts.push_back(get(id, source));
  }
  return get_or_load("merged:" + source + ":" + spec.key(), [&] {
    try {
      return merge_adapters(parts, spec, "merged adapter");
    } catch (const Error& e) {
      throw AdapterError(422, e.what());
    }
  });
}

template <class Load>
std::shared_ptr<const LoraAdapter> AdapterStore::get_or_load(const std::string& key, Load load) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto it = entries_.find(key);
    if (it == entries_.end()) break;
    if (it->second.loading) {  // someone else is loading it: wait for that load
      loaded_.wait(lock);
      continue;
    }
    it->second.last_used = std::chrono::steady_clock::now();
    ++stats_.hits;
    return it->second.adapter;
  }
  entries_[key].loading = true;
  lock.unlock();
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<const LoraAdapter> adapter;
  std::optional<AdapterError> error;
  try {
    adapter = load();
  } catch (const AdapterError& e) {
    error = e;
  }
  lock.lock();
  if (!adapter) {
    entries_.erase(key);
    ++stats_.failures;
    loaded_.notify_all();
    throw *error;
  }
  Entry& e = entries_[key];
  e.adapter = adapter;
  e.loading = false;
  e.merged = key.starts_with("merged:");
  e.last_used = std::chrono::steady_clock::now();
  ++stats_.loads;
  stats_.load_seconds += std::chrono::duration<double>(e.last_used - start).count();
  evict_locked();
  loaded_.notify_all();
  return adapter;
}

void AdapterStore::evict_locked() {
  // Least recently used first; pinned ones, loading ones and ones a running
  // request holds (use_count > 1) stay.
  for (;;) {
    size_t bytes = 0;
    for (const auto& [key, e] : entries_)
      if (e.adapter) bytes += e.adapter->bytes;
    if (bytes <= options_.memory_budget) return;
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      const Entry& e = it->second;
      if (e.pinned || e.loading || !e.adapter || e.adapter.use_count() > 1) continue;
      if (victim == entries_.end() || e.last_used < victim->second.last_used) victim = it;
    }
    if (victim == entries_.end()) return;  // everything left is in use
    entries_.erase(victim);
    ++stats_.evictions;
  }
}

AdapterStoreStats AdapterStore::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  AdapterStoreStats s = stats_;
  for (const auto& [key, e] : entries_)
    if (e.adapter) {
      ++s.loaded;
      s.bytes += e.adapter->bytes;
    }
  return s;
}

std::vector<std::string> AdapterStore::loaded_names() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [key, e] : entries_)
    if (e.adapter && !e.merged) out.push_back(e.adapter->name);
  return out;
}

}  // namespace flashneox
