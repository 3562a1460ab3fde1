// flashneox: the command-line entry point. Dispatches to one subcommand and
// turns any error into a message and a non-zero exit code.
#include <cstdio>
#include <cstring>
#include <exception>

#ifndef FLASHNEOX_VERSION
#define FLASHNEOX_VERSION "dev"
#endif

#include "cli/commands.h"
#include "core/error.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"logits", flashneox::run_logits,
     "--model DIR --ids 5,7,9[@NAME] [--ids ...] [--lora NAME=DIR ...] [--prefill N] [--block-size B]\n"
     "              [--scatter-blocks] [--threads N] --out FILE.safetensors"},
    {"serve", flashneox::run_serve,
     "[--model DIR] [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--dtype f32|f16|bf16|int8]\n"
     "              [--kv-cache-memory 1GiB|0.2] [--kv-cache-dtype f32|f16] [--block-size 16]\n"
     "              [--max-input-length N] [--max-total-tokens N] [--max-batch-prefill-tokens N]\n"
     "              [--max-batch-total-tokens N] [--max-concurrent-requests N] [--max-batch-size N]\n"
     "              [--max-body-bytes 1MiB] [--model-id NAME] [--http-threads N] [--threads N]\n"
     "              [--max-connections 2048] [--header-timeout 10] [--body-timeout 10] [--keep-alive-timeout 15]\n"
     "              [--shutdown-timeout 30] [--log-format text|json] [--no-access-log] [--check-weights]\n"
     "              [--adapter NAME=DIR ...] [--adapter-root DIR] [--adapter-memory 1GiB] [--max-active-adapters 128]"},
    {"generate", flashneox::run_generate,
     "[--model DIR] --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]\n"
     "              [--typical-p P] [--repetition-penalty R] [--seed S] [--stop TEXT ...] [--ignore-eos]\n"
     "              [--dtype f32|f16|bf16|int8] [--kv-cache-dtype f32|f16] [--threads N] [--check-weights]\n"
     "              [--adapter DIR]"},
    {"perplexity", flashneox::run_perplexity,
     "[--model DIR] --file TEXT [--start-token N] [--window W] [--stride S] [--partial-window]\n"
     "              [--dtype f32|f16|bf16|int8] [--kv-cache-dtype f32|f16] [--threads N] [--check-weights]\n"
     "              [--adapter DIR]"},
    {"bench", flashneox::run_bench,
     "(--model DIR | --config CONFIG.json) [--dtype f32|f16|bf16|int8] [--kv-cache-dtype f32|f16]\n"
     "              [--threads N] [--batch 1,8,32] [--prompt 128,512] [--new 128] [--json]\n"
     "              [--adapters 0,1,8,32] [--adapter-rank 16] [--adapter DIR] [--check-weights]"},
    {"tokenize", flashneox::run_tokenize,
     "[--tokenizer FILE] [--decode] [--skip-special-tokens]  JSON lines on stdin"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: flashneox <command> [options]   (flashneox <command> --help, flashneox --version)\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-11s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::printf("flashneox %s\n", FLASHNEOX_VERSION);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    if (argc >= 3 && (std::strcmp(argv[2], "--help") == 0 || std::strcmp(argv[2], "-h") == 0)) {
      std::printf("usage: flashneox %s %s\n", c.name, c.summary);
      return 0;
    }
    try {
      return c.run(argc, argv);
    } catch (const flashneox::Error& e) {
      std::fprintf(stderr, "flashneox %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flashneox %s: internal error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "flashneox: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
