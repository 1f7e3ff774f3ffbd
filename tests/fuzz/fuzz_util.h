#pragma once
// Small helpers shared by the codec fuzz drivers: an always-on invariant check (the corpus runners
// build in Release, where assert() is gone), a tiny deterministic PRNG for the driver's own choices
// (seeded from the input, so every run of an input is the same), and piece sizes for splitting.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define WP_FUZZ_CHECK(cond)                                                             \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace wp::fuzz {

// xorshift32; never zero.
class Rng {
 public:
  explicit Rng(uint32_t seed) : s_(seed * 2654435761u + 0x9e3779b9u) {
    if (s_ == 0) {
      s_ = 1;
    }
  }
  uint32_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 17;
    s_ ^= s_ << 5;
    return s_;
  }
  uint32_t below(uint32_t n) { return n == 0 ? 0 : next() % n; }
  bool chance(uint32_t one_in) { return below(one_in) == 0; }

 private:
  uint32_t s_;
};

// How an input stream is cut before it is fed: whole, byte by byte, or in pieces of 1..8 / 1..64
// bytes (from the PRNG, not from the stream, so the stream's bytes stay what the corpus says).
class Splitter {
 public:
  Splitter(uint32_t mode, uint32_t seed) : mode_(mode & 3), rng_(seed) {}
  size_t next(size_t left) {
    size_t n = left;
    switch (mode_) {
      case 0:
        break;
      case 1:
        n = 1;
        break;
      case 2:
        n = 1 + rng_.below(8);
        break;
      default:
        n = 1 + rng_.below(64);
        break;
    }
    return n < left ? n : left;
  }

 private:
  uint32_t mode_;
  Rng rng_;
};

// Follows a stream of HTTP/2 frames as a codec writes them (after `skip` preface bytes), one
// output() batch at a time, and checks that it is well framed: known frame types, no frame larger
// than 16 MiB - 1 (the protocol maximum), DATA and HEADERS never on stream 0, the control frames
// SETTINGS / PING / GOAWAY only on stream 0, and (at_boundary) no frame left half written.
class FrameWalker {
 public:
  explicit FrameWalker(size_t skip = 0) : skip_(skip) {}
  template <class F>  // f(type, flags, stream, length) for each frame header
  void walk(const uint8_t* p, size_t n, F&& f) {
    while (n > 0) {
      if (skip_ > 0) {
        size_t k = n < skip_ ? n : skip_;
        skip_ -= k;
        p += k;
        n -= k;
        continue;
      }
      if (payload_ > 0) {
        size_t k = n < payload_ ? n : payload_;
        payload_ -= k;
        p += k;
        n -= k;
        continue;
      }
      hdr_[have_++] = *p++;
      --n;
      if (have_ == 9) {
        have_ = 0;
        const uint32_t len = (uint32_t{hdr_[0]} << 16) | (uint32_t{hdr_[1]} << 8) | hdr_[2];
        const uint8_t type = hdr_[3];
        const uint32_t stream = ((uint32_t{hdr_[5]} << 24) | (uint32_t{hdr_[6]} << 16) | (uint32_t{hdr_[7]} << 8) |
                                 hdr_[8]) & 0x7fffffffu;
        WP_FUZZ_CHECK(type <= 9);
        WP_FUZZ_CHECK((type != 0 && type != 1) || stream != 0);
        WP_FUZZ_CHECK((type != 4 && type != 6 && type != 7) || stream == 0);
        payload_ = len;
        ++frames_;
        f(type, hdr_[4], stream, len);
      }
    }
  }
  bool at_boundary() const { return skip_ == 0 && have_ == 0 && payload_ == 0; }
  size_t frames() const { return frames_; }

 private:
  size_t skip_;
  uint8_t hdr_[9] = {};
  size_t have_ = 0;
  size_t payload_ = 0;
  size_t frames_ = 0;
};

}  // namespace wp::fuzz
