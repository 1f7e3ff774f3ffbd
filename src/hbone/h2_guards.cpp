#include "waypoint/hbone/h2_guards.h"

#include <algorithm>

namespace wp::hbone {
namespace {

uint32_t read24(const uint8_t* p) { return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]; }

void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

bool add_max_concurrent_streams(const uint8_t* data, size_t len, uint32_t value, std::vector<uint8_t>& out) {
  constexpr size_t kHeader = 9;
  if (len < kHeader || data[3] != NGHTTP2_SETTINGS || (data[4] & NGHTTP2_FLAG_ACK) != 0) {
    return false;
  }
  const uint32_t payload = read24(data);
  if (len < kHeader + payload) {
    return false;
  }
  out.clear();
  out.reserve(len + 6);
  const uint32_t grown = payload + 6;
  out.push_back(static_cast<uint8_t>(grown >> 16));
  out.push_back(static_cast<uint8_t>(grown >> 8));
  out.push_back(static_cast<uint8_t>(grown));
  out.insert(out.end(), data + 3, data + kHeader + payload);
  uint8_t entry[6] = {0, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0, 0, 0, 0};
  put32(entry + 2, value);
  out.insert(out.end(), entry, entry + 6);
  out.insert(out.end(), data + kHeader + payload, data + len);
  return true;
}

std::array<uint8_t, 17> goaway_frame(int32_t last_stream_id, uint32_t error_code) {
  std::array<uint8_t, 17> f{};
  f[2] = 8;  // length
  f[3] = NGHTTP2_GOAWAY;
  put32(&f[9], static_cast<uint32_t>(last_stream_id) & 0x7fffffffu);
  put32(&f[13], error_code);
  return f;
}

uint32_t fatal_goaway_code(int nghttp2_error, uint32_t otherwise) {
  const bool flood = nghttp2_error == NGHTTP2_ERR_FLOODED
#ifdef WP_HAVE_NGHTTP2_MAX_CONTINUATIONS
                     || nghttp2_error == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
#endif
      ;
  return flood ? static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM) : otherwise;
}

bool EmptyFrameGuard::on_frame_recv(const nghttp2_frame& frame) {
  if (frame.hd.type != NGHTTP2_DATA && frame.hd.type != NGHTTP2_HEADERS) {
    return false;
  }
  size_t payload = frame.hd.length;
  if (frame.hd.type == NGHTTP2_DATA) {
    payload -= std::min(payload, frame.data.padlen);
  }
  if (payload > 0 || (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    consecutive_ = 0;
    return false;
  }
  ++consecutive_;
  return max_ > 0 && consecutive_ > max_;
}

bool PrematureResetGuard::on_stream_closed(bool reset_by_peer, bool answered,
                                           std::chrono::steady_clock::duration age) {
  ++closed_;
  if (reset_by_peer && !answered && age < limits_.premature_reset_min_stream_lifetime) {
    ++premature_;
  }
  return limits_.premature_reset_total_stream_count > 0 && closed_ >= limits_.premature_reset_total_stream_count &&
         premature_ * 2 >= closed_;
}

}  // namespace wp::hbone
