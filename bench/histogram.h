#pragma once
// The load generator's latency histogram (bench/loadgen.cpp): log-linear buckets of nanoseconds,
// exact below 128 ns and 128 sub-buckets per power of two above, so a percentile is reported within
// 0.4 % of the true value (bucket midpoints), at a fixed 58 KiB and O(1) per record.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace wp::bench {

class Histogram {
 public:
  static constexpr int kSub = 7;
  void record(uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    sum_ += v;
    max_ = std::max(max_, v);
  }
  uint64_t total() const { return total_; }
  uint64_t max() const { return max_; }
  double mean() const { return total_ == 0 ? 0 : static_cast<double>(sum_) / static_cast<double>(total_); }
  uint64_t percentile(double p) const {
    if (total_ == 0) {
      return 0;
    }
    uint64_t want = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
    want = std::max<uint64_t>(want, 1);
    if (want >= total_) {
      return max_;  // the top rank is the maximum, exactly
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= want) {
        return std::min(midpoint(i), max_);
      }
    }
    return max_;
  }

 private:
  static size_t index(uint64_t v) {
    if (v < (1u << kSub)) {
      return static_cast<size_t>(v);
    }
    int e = 63 - __builtin_clzll(v);  // >= kSub
    uint64_t sub = v >> (e - kSub);   // in [128, 256)
    return static_cast<size_t>((e - kSub + 1) << kSub) + static_cast<size_t>(sub - (1u << kSub));
  }
  static uint64_t midpoint(size_t i) {
    if (i < (1u << kSub)) {
      return i;
    }
    int e = static_cast<int>(i >> kSub) + kSub - 1;
    uint64_t sub = (i & ((1u << kSub) - 1)) + (1u << kSub);
    uint64_t lo = sub << (e - kSub);
    return lo + (1ull << (e - kSub)) / 2;
  }
  std::array<uint64_t, (64 - kSub + 1) << kSub> counts_{};
  uint64_t total_ = 0, sum_ = 0, max_ = 0;
};

}  // namespace wp::bench
