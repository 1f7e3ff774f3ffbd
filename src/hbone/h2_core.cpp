#include "waypoint/hbone/h2_core.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace wp::hbone {

H2SessionSettings clamp(const H2SessionSettings& s) {
  constexpr uint32_t kMaxWindow = (1u << 31) - 1;
  H2SessionSettings out = s;
  out.stream_window = std::min(s.stream_window, kMaxWindow);
  out.connection_window = std::min(s.connection_window, kMaxWindow);
  out.max_frame_size = std::clamp<uint32_t>(s.max_frame_size, 16384, 16777215);
  out.max_header_list_bytes = std::min<size_t>(s.max_header_list_bytes, std::numeric_limits<uint32_t>::max());
  return out;
}

nghttp2_session* new_session(bool server, const nghttp2_session_callbacks* callbacks, void* user,
                             const H2SessionSettings& settings) {
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    return nullptr;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
  nghttp2_option_set_max_send_header_block_length(opt, std::max<size_t>(65536, settings.max_header_list_bytes + 4096));
#ifdef WP_HAVE_NGHTTP2_RESET_RATE_LIMIT
  // nghttp2's token bucket counts every RST_STREAM received, so it closes a busy, well-behaved
  // client that ends finished streams with CANCEL; PrematureResetGuard counts only streams reset
  // before they were answered.
  nghttp2_option_set_stream_reset_rate_limit(opt, UINT32_MAX, UINT32_MAX);
#endif
#ifdef WP_HAVE_NGHTTP2_MAX_CONTINUATIONS
  nghttp2_option_set_max_continuations(opt, 8);  // CONTINUATION flood guard
#endif
  nghttp2_session* session = nullptr;
  int rv = server ? nghttp2_session_server_new2(&session, callbacks, user, opt)
                  : nghttp2_session_client_new2(&session, callbacks, user, opt);
  nghttp2_option_del(opt);
  return rv == 0 ? session : nullptr;
}

void submit_settings(nghttp2_session* session, const H2SessionSettings& settings) {
  const H2SessionSettings s = clamp(settings);
  std::vector<nghttp2_settings_entry> iv = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, s.stream_window},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, s.max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(s.max_header_list_bytes)},
  };
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, static_cast<int32_t>(s.connection_window));
}

bool never_indexed(std::string_view name) {
  return name == "authorization" || name == "proxy-authorization";
}

}  // namespace wp::hbone
