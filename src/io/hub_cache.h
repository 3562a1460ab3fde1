// The local Hugging Face cache, read offline: a repository `org/name` at a
// revision (a branch or tag under refs/, or a commit) is the folder
// <cache>/models--org--name/snapshots/<commit>. Nothing is ever downloaded.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"

namespace flashneox {

// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; "" when
// none of those can be formed.
std::string default_hub_cache();

// True for "org/name" and "org/name@revision" (one slash, no "..", nothing
// absolute): text that names a hub repository rather than a folder.
bool is_hub_id(const std::string& text);

struct HubSnapshot {
  std::string dir;       // .../snapshots/<commit>
  std::string commit;
};

// Resolves `id` ("org/name" or "org/name@revision"; revision default "main")
// in `cache`. Throws Error naming the folders it looked in and, when the
// repository is there, the revisions it has.
HubSnapshot resolve_hub_snapshot(const std::string& cache, const std::string& id);

}  // namespace flashneox
