#pragma once
// What both nghttp2 engines (HBONE on 15008, hbone/h2_connection.h, and h2c inside tunnels,
// http/h2c_codec.h) set up the same way, written once: the session options, the SETTINGS we
// announce (clamped to what the protocol can carry), header-list accounting, and the header
// entries we send (credentials kept out of the HPACK dynamic table). The abuse guards they share
// are in h2_guards.h. The engines differ in what a stream is (a CONNECT tunnel, a request) and in
// I/O (a TLS socket, the tunnel's bytes), so their callbacks stay theirs.
#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wp::hbone {

struct H2SessionSettings {
  uint32_t stream_window = 1u << 20;      // SETTINGS_INITIAL_WINDOW_SIZE
  uint32_t connection_window = 4u << 20;  // our connection receive window
  uint32_t max_frame_size = 16384;        // SETTINGS_MAX_FRAME_SIZE
  size_t max_header_list_bytes = 16384;   // SETTINGS_MAX_HEADER_LIST_SIZE, and our own send limit
};

// The settings with every value moved into its legal range (RFC 9113 §6.5.2): windows at most
// 2^31-1, the frame size within 16384..16777215, the header list within uint32.
H2SessionSettings clamp(const H2SessionSettings& s);

// A new nghttp2 session with the house options: windows reopen only when the owner consumes
// (end-to-end flow control), a peer assumed to allow 100 streams until its SETTINGS arrive, our
// header blocks as large as the largest we accept, nghttp2's RST_STREAM bucket opened wide
// (PrematureResetGuard decides), the CONTINUATION flood guard. Returns nullptr when nghttp2 cannot
// allocate.
nghttp2_session* new_session(bool server, const nghttp2_session_callbacks* callbacks, void* user,
                             const H2SessionSettings& settings);

// Our first SETTINGS (push off, the stream window, frame size, header list size) and our connection
// window. The stream limit is not among them: nghttp2 would enforce it with a connection error, so
// the server writes it into the frame on its way out (add_max_concurrent_streams) and refuses
// streams over it one by one.
void submit_settings(nghttp2_session* session, const H2SessionSettings& settings);

// Header-list accounting for one received block (RFC 9113 §6.5.2: name + value + 32 per field).
class HeaderBudget {
 public:
  explicit HeaderBudget(size_t limit) : limit_(limit) {}
  // Counts a field; false once the block is over the limit (and from then on).
  bool add(size_t name_len, size_t value_len) {
    used_ += name_len + value_len + 32;
    overflow_ = overflow_ || used_ > limit_;
    return !overflow_;
  }
  bool overflow() const { return overflow_; }
  void reset() {
    used_ = 0;
    overflow_ = false;
  }

 private:
  size_t limit_;
  size_t used_ = 0;
  bool overflow_ = false;
};

// A field we never let into the HPACK dynamic table (RFC 7541 §7.1.3).
bool never_indexed(std::string_view name);

// An nghttp2 header entry pointing into `name` and `value` (which must outlive the submit call),
// NO_INDEX for credentials.
inline nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  return {const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
          const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())), name.size(), value.size(),
          static_cast<uint8_t>(never_indexed(name) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)};
}

}  // namespace wp::hbone
