#include <nghttp2/nghttp2.h>

#include <catch2/catch.hpp>

#include <string>

#include "waypoint/hbone/h2_core.h"

using wp::hbone::H2SessionSettings;

TEST_CASE("h2 core: settings are clamped into the range RFC 9113 allows", "[h2core]") {
  H2SessionSettings s;
  s.stream_window = 0xffffffffu;
  s.connection_window = 1u << 31;
  s.max_frame_size = 100;
  s.max_header_list_bytes = static_cast<size_t>(1) << 40;
  H2SessionSettings c = wp::hbone::clamp(s);
  CHECK(c.stream_window == (1u << 31) - 1);
  CHECK(c.connection_window == (1u << 31) - 1);
  CHECK(c.max_frame_size == 16384);
  CHECK(c.max_header_list_bytes == 0xffffffffu);
  s.max_frame_size = 1u << 30;
  CHECK(wp::hbone::clamp(s).max_frame_size == 16777215);
  H2SessionSettings ok;
  CHECK(wp::hbone::clamp(ok).stream_window == ok.stream_window);
  CHECK(wp::hbone::clamp(ok).max_frame_size == ok.max_frame_size);
}

TEST_CASE("h2 core: the header budget counts 32 bytes per field and stays overflowed", "[h2core]") {
  wp::hbone::HeaderBudget b(100);
  CHECK(b.add(10, 20));      // 62
  CHECK(b.add(2, 4));        // 100: at the limit is fine
  CHECK_FALSE(b.add(0, 0));  // 132
  CHECK(b.overflow());
  CHECK_FALSE(b.add(0, 0));
  b.reset();
  CHECK_FALSE(b.overflow());
  CHECK(b.add(30, 30));
}

TEST_CASE("h2 core: credentials are never indexed, other fields are", "[h2core]") {
  const std::string auth = "authorization";
  const std::string proxy = "proxy-authorization";
  const std::string other = "x-request-id";
  const std::string value = "secret value";
  CHECK(wp::hbone::make_nv(auth, value).flags == NGHTTP2_NV_FLAG_NO_INDEX);
  CHECK(wp::hbone::make_nv(proxy, value).flags == NGHTTP2_NV_FLAG_NO_INDEX);
  nghttp2_nv nv = wp::hbone::make_nv(other, value);
  CHECK(nv.flags == NGHTTP2_NV_FLAG_NONE);
  CHECK(nv.namelen == other.size());
  CHECK(nv.valuelen == value.size());
  CHECK(std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen) == value);
}

TEST_CASE("h2 core: a session is created with our SETTINGS first on the wire", "[h2core]") {
  nghttp2_session_callbacks* cbs = nullptr;
  REQUIRE(nghttp2_session_callbacks_new(&cbs) == 0);
  H2SessionSettings s;
  s.stream_window = 1u << 20;
  s.max_frame_size = 32768;
  s.max_header_list_bytes = 20000;
  nghttp2_session* session = wp::hbone::new_session(false, cbs, nullptr, s);
  REQUIRE(session != nullptr);
  wp::hbone::submit_settings(session, s);
  const uint8_t* p = nullptr;
  std::string wire;
  for (ssize_t n; (n = nghttp2_session_mem_send(session, &p)) > 0;) {
    wire.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  // Client preface, then a SETTINGS frame (type 4) with four entries, then the connection
  // WINDOW_UPDATE (type 8) that opens our 4 MiB default connection window.
  const std::string preface = NGHTTP2_CLIENT_MAGIC;
  REQUIRE(wire.size() > preface.size() + 9);
  CHECK(wire.compare(0, preface.size(), preface) == 0);
  const auto* f = reinterpret_cast<const uint8_t*>(wire.data() + preface.size());
  const size_t len = (size_t{f[0]} << 16) | (size_t{f[1]} << 8) | f[2];
  CHECK(f[3] == NGHTTP2_SETTINGS);
  CHECK(len == 4 * 6);
  bool saw_frame_size = false;
  bool saw_header_list = false;
  for (size_t i = 0; i < len; i += 6) {
    const uint8_t* e = f + 9 + i;
    const uint16_t id = static_cast<uint16_t>((e[0] << 8) | e[1]);
    const uint32_t v = (uint32_t{e[2]} << 24) | (uint32_t{e[3]} << 16) | (uint32_t{e[4]} << 8) | e[5];
    if (id == NGHTTP2_SETTINGS_MAX_FRAME_SIZE) {
      saw_frame_size = v == 32768;
    }
    if (id == NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE) {
      saw_header_list = v == 20000;
    }
  }
  CHECK(saw_frame_size);
  CHECK(saw_header_list);
  const uint8_t* w = f + 9 + len;
  REQUIRE(wire.size() >= preface.size() + 9 + len + 9);
  CHECK(w[3] == NGHTTP2_WINDOW_UPDATE);
  CHECK(nghttp2_session_get_local_window_size(session) == static_cast<int32_t>(s.connection_window));
  nghttp2_session_del(session);
  nghttp2_session_callbacks_del(cbs);
}
