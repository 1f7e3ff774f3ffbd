#include <catch2/catch.hpp>

#include "waypoint/config/snapshot.h"

namespace wp::config {
namespace {

TEST_CASE("config: parse_duration accepts Go-style durations", "[config]") {
  struct Case {
    const char* text;
    int64_t millis;
  };
  const Case cases[] = {
      {"0", 0},       {"0s", 0},         {"10s", 10'000},    {"1.5s", 1'500},
      {"250ms", 250}, {"1m30s", 90'000}, {"1h", 3'600'000},  {"1h2m3s4ms", 3'723'004},
      {"100us", 1},   {"100µs", 1},      {"100μs", 1},       {"1ns", 1},
      {"1499us", 1},  {"1500us", 2},     {"2.0005s", 2'001}, {".5s", 500},
      {"1.s", 1'000}, {"300s", 300'000}, {"0.25m", 15'000},  {"1000000ns", 1},
      {"0ms", 0},     {"0h0m", 0},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto d = parse_duration(c.text);
    REQUIRE(d.has_value());
    CHECK(d->count() == c.millis);
  }
}

TEST_CASE("config: parse_duration rejects malformed durations", "[config]") {
  const char* bad[] = {"",
                       "10",
                       "1.5",
                       "10x",
                       "-1s",
                       "+1s",
                       "1 s",
                       " 1s",
                       "1s ",
                       "s",
                       ".s",
                       "1.2.3s",
                       "1sm",
                       "10S",
                       "1h30",
                       "µs",
                       "1e3s",
                       "0x10s",
                       "9999999999999999999s",
                       "2562048h"};  // the last two overflow Go's int64 nanoseconds
  for (const char* text : bad) {
    INFO(text);
    CHECK_FALSE(parse_duration(text).has_value());
  }
}

}  // namespace
}  // namespace wp::config
