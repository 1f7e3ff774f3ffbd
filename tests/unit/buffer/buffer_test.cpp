#include <catch2/catch.hpp>

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
