// flashneox tokenize: JSON lines in, JSON lines out.
//   {"text": "..."}  ->  {"ids": [...]}          (default)
//   {"ids": [...]}   ->  {"text": "..."}         (--decode)
// A bad line gets {"error": "..."} in its place, so outputs stay aligned with
// inputs; the exit code is 1 if any line failed.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace flashneox {

int run_tokenize(int argc, char** argv) {
  Args args(argc, argv, 2, tokenize_flags());
  const std::string path = args.get("--tokenizer", default_model_dir() + "/tokenizer.json");
  const auto tokenizer = Tokenizer::from_file(path);
  const bool decode = args.has("--decode");
  const bool skip_special = args.has("--skip-special-tokens");
  std::ios::sync_with_stdio(false);
  std::string line;
  bool failed = false;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    nlohmann::json out;
    try {
      const nlohmann::json in = nlohmann::json::parse(line);
      if (decode) {
        if (!in.is_object() || !in.contains("ids") || !in["ids"].is_array())
          throw Error("expected an object with an \"ids\" array");
        std::vector<int32_t> ids;
        for (const auto& v : in["ids"]) {
          if (!v.is_number_integer()) throw Error("ids must be integers");
          const int64_t id = v.get<int64_t>();
          if (id < 0 || id > INT32_MAX) throw Error(concat("token id ", id, " is outside the vocabulary"));
          ids.push_back(static_cast<int32_t>(id));
        }
        out["text"] = tokenizer->decode(ids, skip_special);
      } else {
        if (!in.is_object() || !in.contains("text") || !in["text"].is_string())
          throw Error("expected an object with a \"text\" string");
        out["ids"] = tokenizer->encode(in["text"].get<std::string>());
      }
    } catch (const nlohmann::json::exception& e) {
      out = {{"error", concat("invalid JSON line: ", e.what())}};
      failed = true;
    } catch (const Error& e) {
      out = {{"error", e.what()}};
      failed = true;
    }
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  std::cout.flush();
  return failed ? 1 : 0;
}

}  // namespace flashneox
