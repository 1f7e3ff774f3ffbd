#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "waypoint/buffer/buffer.h"

using wp::buffer::Buffer;

namespace {
std::string contents(const Buffer& b) {
  std::string s(b.length(), '\0');
  CHECK(b.copy_out(s.data(), s.size()) == s.size());
  return s;
}
}  // namespace

TEST_CASE("Buffer appends across slices and drains from the front", "[buffer]") {
  Buffer b;
  std::string data;
  for (int i = 0; i < 100000; ++i) {
    data.push_back(static_cast<char>('a' + i % 26));
  }
  b.append(data.data(), 10);
  b.append(data.data() + 10, data.size() - 10);
  CHECK(b.length() == data.size());
  CHECK(b.slice_count() > 1);
  CHECK(contents(b) == data);
  b.drain(5);
  CHECK(contents(b) == data.substr(5));
  b.drain(16384);
  CHECK(contents(b) == data.substr(5 + 16384));
  CHECK(b.front().size() > 0);
  CHECK(b.front()[0] == static_cast<uint8_t>(data[5 + 16384]));
  b.drain(b.length());
  CHECK(b.empty());
  CHECK(b.front().empty());
  CHECK(b.slice_count() == 0);
}

TEST_CASE("Buffer::move_from hands slices over without losing order", "[buffer]") {
  Buffer a;
  Buffer b;
  a.append("hello ", 6);
  b.append("world", 5);
  a.move_from(b);
  CHECK(b.empty());
  CHECK(contents(a) == "hello world");
  Buffer c;
  c.move_from(a);
  CHECK(a.empty());
  CHECK(contents(c) == "hello world");
  c.append("!", 1);  // appends after moved slices still land at the end
  CHECK(contents(c) == "hello world!");
}

TEST_CASE("Buffer::move hands whole slices over and copies only a partial or small one", "[buffer]") {
  Buffer a;
  std::string big(3 * wp::buffer::Slice::kLarge, 'b');
  a.append(big.data(), big.size());
  REQUIRE(a.slice_count() == 3);
  const uint8_t* second = nullptr;
  size_t i = 0;
  a.for_each([&](const uint8_t* p, size_t) {
    if (i++ == 1) {
      second = p;
    }
  });
  a.drain(100);  // the first slice is now partial
  Buffer b;
  b.move(a, wp::buffer::Slice::kLarge - 100 + wp::buffer::Slice::kLarge + 10);
  CHECK(b.length() == 2 * wp::buffer::Slice::kLarge - 90);
  CHECK(a.length() == wp::buffer::Slice::kLarge - 10);
  CHECK(contents(b) == big.substr(100, b.length()));
  CHECK(contents(a) == big.substr(100 + b.length()));
  // The second slice changed hands: its bytes were not copied.
  bool found = false;
  b.for_each([&](const uint8_t* p, size_t) { found = found || p == second; });
  CHECK(found);
  // A few bytes are copied into the room of the last slice rather than pinning a block.
  Buffer small;
  small.append("tail", 4);
  Buffer c;
  c.append("head ", 5);
  c.move(small, 100);
  CHECK(small.empty());
  CHECK(c.slice_count() == 1);
  CHECK(contents(c) == "head tail");
  // Moving nothing, or from an empty buffer, changes nothing.
  c.move(small, 10);
  c.move(a, 0);
  CHECK(contents(c) == "head tail");
  CHECK(a.length() == wp::buffer::Slice::kLarge - 10);
}

TEST_CASE("slices return to the per-thread pool", "[buffer]") {
  size_t before = wp::buffer::thread_slice_bytes_in_use();
  {
    Buffer b;
    std::string big(200000, 'x');
    b.append(big.data(), big.size());
    CHECK(wp::buffer::thread_slice_bytes_in_use() >= before + big.size());
  }
  CHECK(wp::buffer::thread_slice_bytes_in_use() == before);
}

TEST_CASE("Buffer matches a plain string model under random appends, drains, moves and clears", "[buffer]") {
  std::mt19937 rng(12345);
  Buffer buf, other;
  std::string model, other_model;
  auto contents = [](const Buffer& b) {
    std::string s(b.length(), '\0');
    REQUIRE(b.copy_out(s.data(), s.size()) == s.size());
    std::string walked;
    b.for_each([&](const uint8_t* p, size_t n) { walked.append(reinterpret_cast<const char*>(p), n); });
    CHECK(walked == s);
    return s;
  };
  for (int step = 0; step < 20000; ++step) {
    switch (rng() % 8) {
      case 0:
      case 1: {  // append 1 byte .. 40 KiB
        size_t n = 1 + rng() % (rng() % 2 ? 64 : 40000);
        std::string data(n, '\0');
        for (auto& c : data) {
          c = static_cast<char>('a' + rng() % 26);
        }
        buf.append(data.data(), n);
        model += data;
        break;
      }
      case 2: {  // drain some, sometimes exactly to a slice boundary
        size_t n = model.empty() ? 0 : rng() % (model.size() + 1);
        if (rng() % 4 == 0 && !buf.empty()) {
          n = buf.front().size();
        }
        buf.drain(n);
        model.erase(0, n);
        break;
      }
      case 3: {  // fill the other buffer and move it over
        size_t n = rng() % 20000;
        std::string data(n, 'z');
        other.append(data.data(), n);
        other_model += data;
        buf.move_from(other);
        model += other_model;
        other_model.clear();
        CHECK(other.empty());
        CHECK(other.slice_count() == 0);
        break;
      }
      case 4: {  // move-construct away and back: the moved-from buffer stays usable
        Buffer tmp(std::move(buf));
        CHECK(buf.empty());
        buf.append("q", 1);
        buf.clear();
        buf = std::move(tmp);
        break;
      }
      case 6: {  // move part of the other buffer over: whole slices move, a partial one is copied
        size_t n = rng() % 40000;
        std::string data(n, '\0');
        for (auto& c : data) {
          c = static_cast<char>('A' + rng() % 26);
        }
        other.append(data.data(), n);
        other_model += data;
        size_t take = other_model.empty() ? 0 : rng() % (other_model.size() + 2);
        if (rng() % 3 == 0 && !other.empty()) {
          take = other.front().size();  // exactly one slice
        }
        buf.move(other, take);
        take = std::min(take, other_model.size());
        model += other_model.substr(0, take);
        other_model.erase(0, take);
        REQUIRE(other.length() == other_model.size());
        if (!other_model.empty()) {
          REQUIRE(other.front()[0] == static_cast<uint8_t>(other_model[0]));
        }
        break;
      }
      case 5:
        if (rng() % 50 == 0) {
          buf.clear();
          model.clear();
        }
        break;
      default:
        break;
    }
    REQUIRE(buf.length() == model.size());
    if (step % 97 == 0) {
      REQUIRE(contents(buf) == model);
    }
    if (!model.empty()) {
      auto f = buf.front();
      REQUIRE(!f.empty());
      REQUIRE(f[0] == static_cast<uint8_t>(model[0]));
    }
  }
  REQUIRE(contents(buf) == model);
}
