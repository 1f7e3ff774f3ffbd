#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "bench/histogram.h"

using wp::bench::Histogram;

TEST_CASE("histogram: empty, exact small values, max and mean", "[bench]") {
  Histogram h;
  CHECK(h.total() == 0);
  CHECK(h.percentile(50) == 0);
  for (uint64_t v = 1; v <= 100; ++v) {
    h.record(v);
  }
  CHECK(h.total() == 100);
  CHECK(h.percentile(50) == 50);  // nearest rank, exact below 128
  CHECK(h.percentile(99) == 99);
  CHECK(h.percentile(100) == 100);
  CHECK(h.max() == 100);
  CHECK(h.mean() == Approx(50.5));
}

TEST_CASE("histogram: percentiles of wide random data are within 0.4 % of the exact ones", "[bench]") {
  std::mt19937_64 rng(7);
  // Log-uniform from 1 us to 10 s, as latencies spread.
  std::uniform_real_distribution<double> exponent(3.0, 10.0);
  std::vector<uint64_t> values;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<uint64_t>(std::pow(10.0, exponent(rng)));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    INFO("p" << p);
    size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
    double exact = static_cast<double>(values[rank - 1]);
    double got = static_cast<double>(h.percentile(p));
    CHECK(std::fabs(got - exact) / exact <= 0.004);
  }
  CHECK(h.max() == values.back());
  CHECK(h.percentile(100) == values.back());
}

TEST_CASE("histogram: the largest values land in the last buckets without overflow", "[bench]") {
  Histogram h;
  h.record(UINT64_MAX);
  h.record(1ull << 63);
  h.record(0);
  CHECK(h.total() == 3);
  CHECK(h.max() == UINT64_MAX);
  CHECK(h.percentile(100) == UINT64_MAX);
  CHECK(h.percentile(1) == 0);
  uint64_t mid = h.percentile(50);
  CHECK(mid >= (1ull << 63));
}
