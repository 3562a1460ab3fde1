// The pieces of the HTTP layer that need no socket: routing (404 / 405 with
// Allow), request-field rules, the JSON nesting limit, the access-log line and
// the constant-time key comparison.
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/http/access_log.h"
#include "server/http/router.h"
#include "server/json_fields.h"
#include "server/server.h"

namespace flashneox {
namespace {

using nlohmann::json;

TEST(Router, FindsByMethodAndPathAndListsWhatIsAllowed) {
  Router r;
  int hit = 0;
  r.get("/a", [&](const HttpRequest&, HttpResponse&) { hit = 1; });
  r.post("/a", [&](const HttpRequest&, HttpResponse&) { hit = 2; });
  r.post("/b", [&](const HttpRequest&, HttpResponse&) { hit = 3; });
  const HttpHandler* h = nullptr;
  std::string allow;
  HttpRequest req;
  HttpResponse res;
  ASSERT_EQ(r.find("POST", "/a", &h, &allow), Router::Match::Found);
  (*h)(req, res);
  EXPECT_EQ(hit, 2);
  EXPECT_EQ(r.find("DELETE", "/a", &h, &allow), Router::Match::WrongMethod);
  EXPECT_EQ(allow, "GET, POST");
  EXPECT_EQ(r.find("GET", "/b", &h, &allow), Router::Match::WrongMethod);
  EXPECT_EQ(allow, "POST");
  EXPECT_EQ(r.find("GET", "/c", &h, &allow), Router::Match::NoPath);
  EXPECT_EQ(r.routes().size(), 3u);
}

int status_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e.status();
  }
  return 0;
}

TEST(JsonFields, NumbersAreRangeCheckedNeverTruncated) {
  const json body = json::parse(R"({"a": 4294967297, "b": 1e30, "c": 18446744073709551615, "d": 3,
                                    "e": "x", "f": 0.5, "g": null})");
  JsonFields f(body, "parameters");
  EXPECT_EQ(status_of([&] { f.integer("a", 0, 10); }), 422);
  EXPECT_EQ(status_of([&] { f.integer("b", 0, INT64_MAX); }), 422);  // a float is not an integer
  EXPECT_EQ(status_of([&] { f.integer("c", 0, INT64_MAX); }), 422);  // past int64
  EXPECT_EQ(*f.integer("d", 0, 10), 3);
  EXPECT_EQ(status_of([&] { f.number("e", 0, 1); }), 422);
  EXPECT_EQ(*f.number("f", 0, 1), 0.5);
  EXPECT_FALSE(f.integer("g", 0, 1).has_value());  // null is absent
  EXPECT_EQ(status_of([&] { f.finish(); }), 0);      // everything was read
  JsonFields g(body, "");
  g.integer("d", 0, 10);
  try {
    g.finish();
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 422);
    EXPECT_NE(std::string(e.what()).find("`a`"), std::string::npos) << e.what();
  }
}

TEST(JsonFields, NestingIsLimitedAtParse) {
  EXPECT_EQ(status_of([] { parse_json_limited(std::string(100000, '[') + std::string(100000, ']')); }), 400);
  EXPECT_EQ(status_of([] { parse_json_limited("[1e999999]"); }), 400);  // a number no double holds
  EXPECT_NO_THROW(parse_json_limited(std::string(60, '[') + std::string(60, ']')));
  EXPECT_EQ(status_of([] { parse_json_limited(std::string(65, '[') + std::string(65, ']')); }), 400);
}

TEST(AccessLog, TextAndJsonLines) {
  AccessRecord r;
  r.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764331200123));
  r.client = "127.0.0.1:5000";
  r.method = "POST";
  r.path = "/generate";
  r.status = 200;
  r.info.prompt_tokens = 4;
  r.info.generated_tokens = 10;
  r.info.queue_seconds = 0.0015;
  r.total_seconds = 0.25;
  EXPECT_EQ(AccessLog(AccessLogFormat::Text).format(r),
            "2025-11-28T12:00:00.123Z 127.0.0.1:5000 POST /generate 200 prompt_tokens=4 generated_tokens=10 "
            "queue_ms=1.5 total_ms=250.0");
  const json j = json::parse(AccessLog(AccessLogFormat::Json).format(r));
  EXPECT_EQ(j["route"], "/generate");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["generated_tokens"], 10);
  EXPECT_DOUBLE_EQ(j["total_ms"].get<double>(), 250.0);
  r.info = AccessInfo();  // not a generation request: no token fields
  EXPECT_EQ(AccessLog(AccessLogFormat::Text).format(r).find("tokens"), std::string::npos);
  EXPECT_THROW(parse_access_log_format("xml"), Error);
}

TEST(ApiKey, ComparedInConstantTime) {
  EXPECT_TRUE(constant_time_equals("Bearer sesame", "Bearer sesame"));
  EXPECT_FALSE(constant_time_equals("Bearer sesame", "Bearer sesamf"));
  EXPECT_FALSE(constant_time_equals("Bearer sesame", "Bearer sesame!"));
  EXPECT_FALSE(constant_time_equals("", "Bearer sesame"));
  EXPECT_TRUE(constant_time_equals("", ""));
  // The time does not depend on where the first difference is: every byte
  // is read. Compare a mismatch at the first byte and at the last, many times.
  const std::string key(4096, 'k');
  std::string early = key, late = key;
  early[0] = 'x';
  late[4095] = 'x';
  auto time_of = [&](const std::string& guess) {
    const auto start = std::chrono::steady_clock::now();
    bool any = false;
    for (int i = 0; i < 2000; ++i) any |= constant_time_equals(key, guess);
    EXPECT_FALSE(any);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double e = 1e9, l = 1e9;
  for (int round = 0; round < 5; ++round) {  // best of five against scheduling noise
    e = std::min(e, time_of(early));
    l = std::min(l, time_of(late));
  }
  EXPECT_LT(std::max(e, l) / std::min(e, l), 1.5) << e << " " << l;  // == would differ by ~4096x
}

}  // namespace
}  // namespace flashneox
