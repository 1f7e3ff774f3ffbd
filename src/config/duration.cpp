// Go's time.ParseDuration grammar, minus signs: "0" | (number unit)+, number = digits[.digits].
#include <cstdint>
#include <limits>

#include "waypoint/config/snapshot.h"

namespace wp::config {

namespace {

using Wide = unsigned __int128;

constexpr int64_t kNanosPerMilli = 1'000'000;

// Consumes a unit at the front of `text`; returns its length in nanoseconds, or 0.
uint64_t take_unit(std::string_view& text) {
  static constexpr struct {
    std::string_view name;
    uint64_t nanos;
  } kUnits[] = {
      {"ns", 1},
      {"us", 1'000},
      {"\xC2\xB5s", 1'000},  // U+00B5 micro sign
      {"\xCE\xBCs", 1'000},  // U+03BC Greek mu
      {"ms", 1'000'000},
      {"s", 1'000'000'000},
      {"m", 60'000'000'000},
      {"h", 3'600'000'000'000},
  };
  // "ms" must win over "m": try the longest spelling first.
  uint64_t best = 0;
  size_t best_len = 0;
  for (const auto& unit : kUnits) {
    if (text.starts_with(unit.name) && unit.name.size() > best_len) {
      best = unit.nanos;
      best_len = unit.name.size();
    }
  }
  text.remove_prefix(best_len);
  return best;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::optional<Millis> parse_duration(std::string_view text) {
  if (text == "0") {
    return Millis{0};
  }
  if (text.empty()) {
    return std::nullopt;
  }
  constexpr Wide kMax = std::numeric_limits<int64_t>::max();
  Wide total_nanos = 0;
  while (!text.empty()) {
    Wide whole = 0;
    Wide fraction = 0;
    Wide scale = 1;
    size_t digits = 0;
    for (; !text.empty() && is_digit(text.front()); text.remove_prefix(1), ++digits) {
      whole = whole * 10 + static_cast<unsigned>(text.front() - '0');
      if (whole > kMax) {
        return std::nullopt;
      }
    }
    if (!text.empty() && text.front() == '.') {
      text.remove_prefix(1);
      for (; !text.empty() && is_digit(text.front()); text.remove_prefix(1), ++digits) {
        if (scale < Wide{1'000'000'000'000'000'000ULL}) {  // finer digits cannot matter
          fraction = fraction * 10 + static_cast<unsigned>(text.front() - '0');
          scale *= 10;
        }
      }
    }
    if (digits == 0) {
      return std::nullopt;
    }
    uint64_t unit = take_unit(text);
    if (unit == 0) {
      return std::nullopt;
    }
    total_nanos += whole * unit + fraction * unit / scale;
    if (total_nanos > kMax) {
      return std::nullopt;
    }
  }
  auto millis = static_cast<int64_t>((total_nanos + kNanosPerMilli / 2) / kNanosPerMilli);
  if (millis == 0 && total_nanos > 0) {
    millis = 1;
  }
  return Millis{millis};
}

}  // namespace wp::config
