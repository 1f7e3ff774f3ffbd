// The HTTP/2 abuse guards shared by the HBONE and h2c engines (hbone/h2_guards.h).
#include <catch2/catch.hpp>

#include <chrono>
#include <vector>

#include "waypoint/hbone/h2_guards.h"

namespace wp::hbone {
namespace {

using namespace std::chrono_literals;

nghttp2_frame frame(uint8_t type, size_t length, uint8_t flags, size_t padlen = 0) {
  nghttp2_frame f{};
  f.hd.type = type;
  f.hd.length = length;
  f.hd.flags = flags;
  if (type == NGHTTP2_DATA) {
    f.data.padlen = padlen;
  }
  return f;
}

TEST_CASE("h2 guards: the stream limit is written into the first SETTINGS frame", "[hbone][guards]") {
  // SETTINGS with one entry (ENABLE_PUSH = 0), then a WINDOW_UPDATE that must pass unchanged.
  std::vector<uint8_t> in = {0, 0, 6, NGHTTP2_SETTINGS, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0,
                             0, 0, 4, NGHTTP2_WINDOW_UPDATE, 0, 0, 0, 0, 0, 0, 0, 1, 0};
  std::vector<uint8_t> out;
  REQUIRE(add_max_concurrent_streams(in.data(), in.size(), 100, out));
  REQUIRE(out.size() == in.size() + 6);
  CHECK(out[2] == 12);  // the frame grew by one entry
  CHECK(std::vector<uint8_t>(out.begin() + 9, out.begin() + 15) == std::vector<uint8_t>(in.begin() + 9, in.begin() + 15));
  CHECK(std::vector<uint8_t>(out.begin() + 15, out.begin() + 21) == std::vector<uint8_t>{0, 3, 0, 0, 0, 100});
  CHECK(std::vector<uint8_t>(out.begin() + 21, out.end()) == std::vector<uint8_t>(in.begin() + 15, in.end()));
  // A SETTINGS ACK, another frame, or a truncated SETTINGS are left alone.
  std::vector<uint8_t> ack = {0, 0, 0, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, 0, 0, 0};
  CHECK_FALSE(add_max_concurrent_streams(ack.data(), ack.size(), 100, out));
  CHECK_FALSE(add_max_concurrent_streams(in.data() + 15, 13, 100, out));
  CHECK_FALSE(add_max_concurrent_streams(in.data(), 12, 100, out));
}

TEST_CASE("h2 guards: GOAWAY frames and their codes after fatal errors", "[hbone][guards]") {
  auto f = goaway_frame(7, NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(std::vector<uint8_t>(f.begin(), f.end()) ==
        std::vector<uint8_t>{0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, NGHTTP2_ENHANCE_YOUR_CALM});
  CHECK(fatal_goaway_code(NGHTTP2_ERR_FLOODED, NGHTTP2_PROTOCOL_ERROR) == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(fatal_goaway_code(NGHTTP2_ERR_NOMEM, NGHTTP2_PROTOCOL_ERROR) == NGHTTP2_PROTOCOL_ERROR);
#ifdef WP_HAVE_NGHTTP2_MAX_CONTINUATIONS
  CHECK(fatal_goaway_code(NGHTTP2_ERR_TOO_MANY_CONTINUATIONS, NGHTTP2_INTERNAL_ERROR) == NGHTTP2_ENHANCE_YOUR_CALM);
#endif
}

TEST_CASE("h2 guards: consecutive empty frames", "[hbone][guards]") {
  EmptyFrameGuard g(1);
  CHECK_FALSE(g.on_frame_recv(frame(NGHTTP2_DATA, 0, 0)));  // one is allowed (Envoy's default)
  CHECK(g.on_frame_recv(frame(NGHTTP2_DATA, 0, 0)));
  EmptyFrameGuard h(1);
  CHECK_FALSE(h.on_frame_recv(frame(NGHTTP2_DATA, 0, 0)));
  CHECK_FALSE(h.on_frame_recv(frame(NGHTTP2_DATA, 5, 0)));  // a payload resets the count
  CHECK_FALSE(h.on_frame_recv(frame(NGHTTP2_DATA, 0, 0)));
  CHECK_FALSE(h.on_frame_recv(frame(NGHTTP2_PING, 8, 0)));  // other frames neither count nor reset
  CHECK(h.on_frame_recv(frame(NGHTTP2_DATA, 4, 0, 4)));       // padding only: still empty
  EmptyFrameGuard e(1);
  CHECK_FALSE(e.on_frame_recv(frame(NGHTTP2_DATA, 0, 0)));
  CHECK_FALSE(e.on_frame_recv(frame(NGHTTP2_DATA, 0, NGHTTP2_FLAG_END_STREAM)));  // ends a stream: fine
  EmptyFrameGuard off(0);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE_FALSE(off.on_frame_recv(frame(NGHTTP2_DATA, 0, 0)));
  }
}

TEST_CASE("h2 guards: premature resets tell an attack from a busy client", "[hbone][guards]") {
  H2Limits limits;  // 500 streams, 1 s
  PrematureResetGuard attack(limits);
  bool closed = false;
  for (int i = 0; i < 500 && !closed; ++i) {
    closed = attack.on_stream_closed(true, false, 1ms);  // HEADERS then RST at once
    if (i < 499) {
      REQUIRE_FALSE(closed);
    }
  }
  CHECK(closed);
  CHECK(attack.premature() == 500);

  // Reset after the answer (a finished tunnel ended with CANCEL), or after the minimum lifetime,
  // or ended by us: never premature.
  PrematureResetGuard busy(limits);
  for (int i = 0; i < 5000; ++i) {
    REQUIRE_FALSE(busy.on_stream_closed(true, true, 1ms));
    REQUIRE_FALSE(busy.on_stream_closed(true, false, 2s));
    REQUIRE_FALSE(busy.on_stream_closed(false, false, 1ms));
  }
  CHECK(busy.premature() == 0);

  // Half premature is enough (Envoy's rule).
  PrematureResetGuard half(limits);
  bool any = false;
  for (int i = 0; i < 250; ++i) {
    any = any || half.on_stream_closed(false, true, 1ms);
    any = any || half.on_stream_closed(true, false, 1ms);
  }
  CHECK(any);
  PrematureResetGuard under(limits);  // a third premature: never closed
  for (int i = 0; i < 1000; ++i) {
    REQUIRE_FALSE(under.on_stream_closed(false, true, 1ms));
    REQUIRE_FALSE(under.on_stream_closed(true, true, 1ms));
    REQUIRE_FALSE(under.on_stream_closed(true, false, 1ms));
  }
  CHECK(under.premature() == 1000);
}

}  // namespace
}  // namespace wp::hbone
