#pragma once
// HTTP/2 abuse guards shared by both nghttp2 engines (HBONE on 15008 and h2c inside tunnels):
// what nghttp2 1.52 does not do itself, or does in a way that hurts well-behaved peers.
//  - Stream limit as a stream error: nghttp2 answers a stream over an ACKed
//    SETTINGS_MAX_CONCURRENT_STREAMS with a connection error (GOAWAY PROTOCOL_ERROR, every other
//    stream dies), where RFC 9113 §5.1.2 allows REFUSED_STREAM. So nghttp2 is told no limit, the
//    limit is written into our first SETTINGS frame on its way out (add_max_concurrent_streams),
//    and streams over it are refused one by one.
//  - Empty frames (Envoy's max_consecutive_inbound_frames_with_empty_payload, default 1).
//  - Premature resets (CVE-2023-44487) told apart from busy clients ending finished streams, as
//    Envoy does: a stream reset by the peer before it was answered and younger than a minimum
//    lifetime is premature; once at least N streams have closed on a connection and half or more
//    were premature, the connection goes.
//  - A GOAWAY frame written by hand when nghttp2 itself can no longer be driven (fatal errors:
//    floods, CONTINUATION floods), so a peer always learns why before the close.
#include <nghttp2/nghttp2.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace wp::hbone {

struct H2Limits {
  uint32_t max_consecutive_empty_frames = 1;      // 0 = unlimited
  uint32_t premature_reset_total_stream_count = 500;
  std::chrono::milliseconds premature_reset_min_stream_lifetime{1000};
};

// When `data` begins with a complete non-ACK SETTINGS frame, writes `data` to `out` with a
// SETTINGS_MAX_CONCURRENT_STREAMS = `value` entry added to that frame and returns true.
bool add_max_concurrent_streams(const uint8_t* data, size_t len, uint32_t value, std::vector<uint8_t>& out);

// A GOAWAY frame (RFC 9113 §6.8) without debug data.
std::array<uint8_t, 17> goaway_frame(int32_t last_stream_id, uint32_t error_code);
// The GOAWAY error code after a fatal nghttp2 error: ENHANCE_YOUR_CALM for the floods, else
// `otherwise`.
uint32_t fatal_goaway_code(int nghttp2_error, uint32_t otherwise);

// Counts consecutive received HEADERS/DATA frames that carry no payload and do not end the stream.
class EmptyFrameGuard {
 public:
  explicit EmptyFrameGuard(uint32_t max = 1) : max_(max) {}
  // Returns true when this frame goes over the limit.
  bool on_frame_recv(const nghttp2_frame& frame);

 private:
  uint32_t max_;
  uint32_t consecutive_ = 0;
};

class PrematureResetGuard {
 public:
  explicit PrematureResetGuard(const H2Limits& limits = {}) : limits_(limits) {}
  // A stream closed. `reset_by_peer`: it ended with a received RST_STREAM; `answered`: we had sent
  // its response headers; `age`: since its HEADERS arrived. Returns true when the connection
  // should be closed.
  bool on_stream_closed(bool reset_by_peer, bool answered, std::chrono::steady_clock::duration age);
  uint64_t premature() const { return premature_; }
  uint64_t closed() const { return closed_; }

 private:
  H2Limits limits_;
  uint64_t closed_ = 0;
  uint64_t premature_ = 0;
};

}  // namespace wp::hbone
