// Where a server's adapters come from and how long they stay: preloaded by
// name (--adapter NAME=DIR, never evicted), loaded on first use from a folder
// under --adapter-root ("local") or from the local Hugging Face cache ("hub",
// offline), and evicted least recently used under a memory budget when idle.
// Loads run on the calling (HTTP handler) thread, never the engine's, and
// callers asking for an adapter that is loading wait for that one load.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "lora/adapter_merge.h"
#include "lora/lora_adapter.h"

namespace flashneox {

// A request's adapter could not be had; `status` is the HTTP answer (4xx).
class AdapterError : public Error {
 public:
  AdapterError(int status, const std::string& message) : Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct AdapterStoreOptions {
  std::string local_root;              // "local" adapters must lie under it; empty: local loading off
  size_t memory_budget = size_t{1} << 30;  // idle adapters beyond it are evicted
  std::string hub_cache;               // empty: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
  DType weight_dtype = DType::F32;     // adapters are kept in (lora_dtype_for the base)
};

struct AdapterStoreStats {
  int loaded = 0;          // adapters in memory now
  size_t bytes = 0;        // their weights
  uint64_t loads = 0, evictions = 0, hits = 0, failures = 0;
  double load_seconds = 0.0;
};

class AdapterStore {
 public:
  AdapterStore(const ModelConfig& base, AdapterStoreOptions options);

  // Loads `dir` under `name` now (throws Error); pinned: never evicted.
  void preload(const std::string& name, const std::string& dir);
  // The adapter `id` from `source` ("hub", the default, or "local"); a name
  // given to preload() wins whatever the source. Throws AdapterError.
  std::shared_ptr<const LoraAdapter> get(const std::string& id, const std::string& source = "hub");
  // The adapters of `spec` (each from `source`) merged into one, cached by the
  // definition like any other adapter. Throws AdapterError.
  std::shared_ptr<const LoraAdapter> get_merged(const MergeSpec& spec, const std::string& source = "hub");

  AdapterStoreStats stats() const;
  std::vector<std::string> loaded_names() const;  // merged adapters are not listed
  // Where a hub id resolves in the local cache (the snapshot folder), or an
  // AdapterError naming where it looked.
  std::string resolve_hub(const std::string& id) const;
  std::string resolve_local(const std::string& id) const;

 private:
  struct Entry {
    std::shared_ptr<const LoraAdapter> adapter;  // null while loading
    bool pinned = false;
    bool loading = false;
    bool merged = false;
    std::chrono::steady_clock::time_point last_used;
  };
  void evict_locked();
  // The cached adapter under `key`, or the one `load` makes (run unlocked, on
  // the calling thread; callers of the same key wait for it).
  template <class Load>
  std::shared_ptr<const LoraAdapter> get_or_load(const std::string& key, Load load);

  const ModelConfig base_;
  AdapterStoreOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable loaded_;
  std::map<std::string, Entry> entries_;  // key: "name" (preloaded) or "source:id"
  AdapterStoreStats stats_;
};

}  // namespace flashneox
