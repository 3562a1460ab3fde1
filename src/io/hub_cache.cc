#include "io/hub_cache.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace flashneox {

namespace fs = std::filesystem;

std::string default_hub_cache() {
  if (const char* v = std::getenv("HF_HUB_CACHE"); v && *v) return v;
  if (const char* h = std::getenv("HF_HOME"); h && *h) return std::string(h) + "/hub";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/huggingface/hub";
  return "";
}

bool is_hub_id(const std::string& text) {
  const std::string repo = text.substr(0, text.find('@'));
  const size_t slash = repo.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == repo.size()) return false;
  if (repo.find('/', slash + 1) != std::string::npos || text.find("..") != std::string::npos) return false;
  if (text.find('@') != std::string::npos && text.find('@') + 1 == text.size()) return false;
  return true;
}

namespace {

bool is_commit_hash(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// "branches: main, step3000; commits: 1a2b..." for the message of a miss.
std::string revisions_in(const fs::path& repo) {
  std::vector<std::string> refs, commits;
  std::error_code ec;
  if (fs::is_directory(repo / "refs", ec))
    for (const auto& e : fs::recursive_directory_iterator(repo / "refs", ec))
      if (e.is_regular_file()) refs.push_back(fs::relative(e.path(), repo / "refs").string());
  if (fs::is_directory(repo / "snapshots", ec))
    for (const auto& e : fs::directory_iterator(repo / "snapshots", ec)) commits.push_back(e.path().filename().string());
  std::sort(refs.begin(), refs.end());
  std::sort(commits.begin(), commits.end());
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (size_t i = 0; i < v.size() && i < 20; ++i) out += (i ? ", " : "") + v[i];
    if (v.size() > 20) out += concat(", ... (", v.size(), " in all)");
    return v.empty() ? std::string("none") : out;
  };
  return concat("revisions there: refs ", list(refs), "; snapshots ", list(commits));
}

}  // namespace

HubSnapshot resolve_hub_snapshot(const std::string& cache, const std::string& id) {
  if (!is_hub_id(id)) throw Error(concat("'", id, "' is not a hub id of the form org/name or org/name@revision"));
  const size_t at = id.find('@');
  const std::string repo_id = id.substr(0, at);
  const std::string revision = at == std::string::npos ? "main" : id.substr(at + 1);
  if (cache.empty()) throw Error(concat("'", id, "': no Hugging Face cache folder is known (set HF_HUB_CACHE or HF_HOME)"));
  const size_t slash = repo_id.find('/');
  const fs::path repo = fs::path(cache) / ("models--" + repo_id.substr(0, slash) + "--" + repo_id.substr(slash + 1));
  std::error_code ec;
  if (!fs::is_directory(repo, ec))
    throw Error(concat("'", repo_id, "' is not in the local Hugging Face cache (no folder ", repo.string(),
                       "); flashneox never downloads: fetch it with `huggingface-cli download ", repo_id,
                       at == std::string::npos ? "" : " --revision " + revision, "` first"));
  std::string commit;
  const fs::path ref = repo / "refs" / revision;
  if (revision.find("..") == std::string::npos && fs::is_regular_file(ref, ec)) {
    std::ifstream in(ref);
    std::getline(in, commit);
  } else if (is_commit_hash(revision)) {
    commit = revision;
  }
  const fs::path snapshot = repo / "snapshots" / commit;
  if (commit.empty() || commit.find('/') != std::string::npos || commit.find("..") != std::string::npos ||
      !fs::is_directory(snapshot, ec))
    throw Error(concat("'", id, "': revision '", revision, "' is not in the local Hugging Face cache (looked for ",
                       ref.string(), " and ", (repo / "snapshots" / (commit.empty() ? revision : commit)).string(),
                       "); ", revisions_in(repo)));
  return {snapshot.string(), commit};
}

}  // namespace flashneox
