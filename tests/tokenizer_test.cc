// The tokenizer against Hugging Face `tokenizers` (fixtures), streaming
// decode against full decode, and hostile input.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "test_support.h"

namespace flashneox {
namespace {

using nlohmann::json;

const Tokenizer& neox_tokenizer() {
  static const auto t = Tokenizer::from_file(testing::test_data("gpt-neox-20b-tokenizer.json"));
  return *t;
}

json load_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string stream_decode(const Tokenizer& t, const std::vector<int32_t>& ids) {
  StreamDecoder stream(t);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    EXPECT_EQ(find_invalid_utf8(piece), std::string::npos) << "broken UTF-8 streamed";
    out += piece;
  }
  return out + stream.finish();
}

TEST(Tokenizer, EveryFixtureCaseEncodesAndDecodesExactly) {
  const json cases = load_json(testing::test_data("fixtures/tokenizer-cases.json"));
  ASSERT_GE(cases["cases"].size(), 400u);
  int failures = 0;
  for (const json& c : cases["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto want = c["ids"].get<std::vector<int32_t>>();
    const auto got = neox_tokenizer().encode(text);
    if (got != want && ++failures <= 10) ADD_FAILURE() << "encode mismatch for " << json(text).dump();
    const std::string decoded = neox_tokenizer().decode(want);
    if (decoded != c["decoded"].get<std::string>() && ++failures <= 10)
      ADD_FAILURE() << "decode mismatch for " << json(text).dump();
    if (stream_decode(neox_tokenizer(), want) != decoded && ++failures <= 10)
      ADD_FAILURE() << "stream decode differs for " << json(text).dump();
  }
  EXPECT_EQ(failures, 0);
}

TEST(Tokenizer, TinyShakespeareTokenCount) {
  std::ifstream in(testing::test_data("tinyshakespeare.txt"), std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const json want = load_json(testing::test_data("fixtures/tinyshakespeare-token-count.json"));
  const auto ids = neox_tokenizer().encode(text.str());
  ASSERT_EQ(static_cast<int64_t>(ids.size()), want["tokens"].get<int64_t>());
  const auto first = want["first_64"].get<std::vector<int32_t>>();
  const auto last = want["last_16"].get<std::vector<int32_t>>();
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 64), first);
  EXPECT_EQ(std::vector<int32_t>(ids.end() - 16, ids.end()), last);
  EXPECT_EQ(neox_tokenizer().decode(ids), text.str());
}

TEST(Tokenizer, PythiaTokenizerAgreesOnOrdinaryText) {
  const auto pythia = Tokenizer::from_file(testing::test_data("pythia-tokenizer.json"));
  const std::string text = "Hello world, it's 2026!\n\n  indented\tcode();";
  EXPECT_EQ(pythia->encode(text), neox_tokenizer().encode(text));
  // Only the RWKV-distributed file has "assistant" as an added token.
  EXPECT_EQ(neox_tokenizer().encode("assistant"), std::vector<int32_t>{50279});
  EXPECT_NE(pythia->encode("assistant"), std::vector<int32_t>{50279});
}

TEST(Tokenizer, StreamingNeverBreaksCharacters) {
  // Every id at random: pieces are valid UTF-8 and join to the full decode.
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> dist(0, neox_tokenizer().vocab_size() - 1);
  for (int round = 0; round < 200; ++round) {
    std::vector<int32_t> ids(1 + rng() % 40);
    for (auto& id : ids) id = dist(rng);
    EXPECT_EQ(stream_decode(neox_tokenizer(), ids), neox_tokenizer().decode(ids));
  }
  // An emoji split over byte-level tokens streams out whole.
  const auto ids = neox_tokenizer().encode("🦜🦜 日本語");
  StreamDecoder stream(neox_tokenizer());
  std::string joined;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    EXPECT_EQ(find_invalid_utf8(piece), std::string::npos);
    joined += piece;
  }
  EXPECT_EQ(joined + stream.finish(), "🦜🦜 日本語");
}

TEST(Tokenizer, InvalidInputIsAClearError) {
  try {
    neox_tokenizer().encode("abc\xff\xfe");
    FAIL() << "invalid UTF-8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("offset 3"), std::string::npos);
  }
  EXPECT_THROW(neox_tokenizer().encode("\xed\xa0\x80"), Error);  // a surrogate
  EXPECT_THROW(neox_tokenizer().decode({1, 999999}), Error);
  EXPECT_THROW(neox_tokenizer().decode({-1}), Error);
  EXPECT_THROW(Tokenizer::from_json_text("{", "x.json"), Error);
  EXPECT_THROW(Tokenizer::from_json_text(R"({"model":{"type":"Unigram"}, "pre_tokenizer":{"type":"ByteLevel"}})", "x.json"), Error);
}

// A minimal byte-level BPE tokenizer.json with one added token of id `id`.
std::string tiny_tokenizer(const std::string& id) {
  return R"({"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"},
    "added_tokens":[{"id":)" + id + R"(,"content":"<x>","special":true}]})";
}

TEST(Tokenizer, IdsAreBoundedAndSparseIdsStaySmall) {
  // An id of 2^26 (or 2^31 - 1) once asked for gigabytes; now it is refused.
  for (const std::string id : {"67108864", "2147483647", "4294967298", "-3", "1.5"}) {
    try {
      Tokenizer::from_json_text(tiny_tokenizer(id), "t.json");
      FAIL() << "id " << id << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("<x>"), std::string::npos) << e.what();
    }
  }
  // The largest allowed id works, and costs one entry, not 16 million.
  const auto t = Tokenizer::from_json_text(tiny_tokenizer(std::to_string(Tokenizer::kMaxTokenId)), "t.json");
  EXPECT_EQ(t->vocab_size(), Tokenizer::kMaxTokenId + 1);
  EXPECT_EQ(t->encode("a<x>"), (std::vector<int32_t>{0, Tokenizer::kMaxTokenId}));
  EXPECT_EQ(t->decode({Tokenizer::kMaxTokenId, 1}), "<x>b");
  EXPECT_EQ(t->decode({5}), "");  // an id in range that no token has
  EXPECT_TRUE(t->is_special(Tokenizer::kMaxTokenId));
}

TEST(Tokenizer, OffsetsPointIntoTheInput) {
  const std::string text = "Hello, world<|endoftext|>  x";
  const Encoding e = neox_tokenizer().encode_with_offsets(text);
  ASSERT_EQ(e.ids.size(), e.offsets.size());
  std::string rebuilt;
  for (const auto& [b, end] : e.offsets) rebuilt += text.substr(b, end - b);
  EXPECT_EQ(rebuilt, text);
}

TEST(Tokenizer, DecodeSkipsSpecialTokensOnRequest) {
  const auto ids = neox_tokenizer().encode("a<|endoftext|>b");
  EXPECT_EQ(neox_tokenizer().decode(ids, true), "ab");
  EXPECT_EQ(neox_tokenizer().decode(ids, false), "a<|endoftext|>b");
}

TEST(Tokenizer, RandomBytesAndRandomTextNeverCrash) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    try {
      const auto ids = neox_tokenizer().encode(bytes);
      EXPECT_EQ(neox_tokenizer().decode(ids), normalize(bytes, Normalization::NFC));
    } catch (const Error&) {
      EXPECT_NE(find_invalid_utf8(bytes), std::string::npos);
    }
    std::string text;  // random valid UTF-8 across planes
    for (int k = rng() % 32; k > 0; --k) {
      char32_t cp = rng() % 4 == 0 ? rng() % 0x80 : rng() % 0x110000;
      if (cp >= 0xd800 && cp <= 0xdfff) cp = ' ';
      append_utf8(text, cp);
    }
    const auto ids = neox_tokenizer().encode(text);
    EXPECT_EQ(neox_tokenizer().decode(ids), normalize(text, Normalization::NFC));
  }
}

}  // namespace
}  // namespace flashneox
