// Fuzzes H2cClientCodec (h2c inside a tunnel, client side towards an upstream): requests are
// submitted first (their output taken: preface, SETTINGS, HEADERS, DATA), then arbitrary server
// bytes are fed, cut at driver-chosen points. Between pieces the owner's work runs: windows given
// back, request bodies paced by on_stream_drained, new requests on on_capacity, output taken.
//
// Input: byte 0 = flags, byte 1 = seed of the driver's choices, then the server's bytes.
//   flags & 3     requests submitted up front, minus one (1..4; stream ids 1, 3, 5, 7)
//   flags & 4     consume received DATA in the rounds between pieces (else at once)
//   flags & 0x18  split: whole, byte by byte, 1..8-byte or 1..64-byte pieces
//   flags & 0x20  small settings: 128-byte stream window, 256-byte header lists
//   flags & 0x40  destroy the codec at the end without finish()
//   flags & 0x80  submit another request on each on_capacity (up to 16 in all)
// Request kinds (from the seed): GET, HEAD, POST with Content-Length, POST with trailers, and a
// large streamed POST paced by on_stream_drained.
//
// Checked: per stream, responses only on submitted streams, one final response (1xx skipped, status
// 200..999), body / trailers / end only after it and while open, end once, Content-Length honoured,
// on_stream_closed exactly once and nothing after it; submit_request fails exactly when
// available_streams() is 0; no usable() after on_error; active_streams() agrees; the output is
// well-framed HTTP/2 after the preface and want_output() is false once collect_output() is done;
// after finish() every stream is closed and nothing is called.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "fuzz_util.h"
#include "waypoint/http/h2c_codec.h"

namespace {

using namespace wp::http;
using wp::buffer::Buffer;
using wp::fuzz::Rng;

constexpr size_t kBigBody = 80 * 1024;
constexpr size_t kMaxRequests = 16;
constexpr bool kStrictStatus = true;

enum class Kind : uint8_t { Get, Head, Post, Trailers, Big, kCount };

struct StreamRec {
  Kind kind = Kind::Get;
  bool open = true;
  bool responded = false;
  bool ended = false;
  bool trailers = false;
  bool reset_by_us = false;
  int status = 0;
  std::optional<uint64_t> content_length;
  uint64_t received = 0;
  uint64_t unconsumed = 0;
  uint64_t body_sent = 0;
};

struct Harness final : H2cClientCallbacks {
  Harness(uint8_t flags, uint32_t seed, const H2cSettings& settings)
      : flags(flags), rng(seed), codec(*this, settings) {}

  uint8_t flags;
  Rng rng;
  H2cClientCodec codec;
  std::map<int32_t, StreamRec> streams;
  int32_t last_id = 0;
  size_t open = 0;
  size_t submitted = 0;
  bool error = false;
  bool finished = false;
  wp::fuzz::FrameWalker out_frames{24};  // after the client preface

  StreamRec& live(int32_t id) {
    WP_FUZZ_CHECK(!finished);
    auto it = streams.find(id);
    WP_FUZZ_CHECK(it != streams.end() && it->second.open);
    return it->second;
  }

  void send(int32_t id, size_t n, bool end) {
    Buffer b;
    std::string payload(n, 'q');
    b.append(payload.data(), payload.size());
    codec.send_body(id, b, end);
    WP_FUZZ_CHECK(b.empty());
  }

  void submit() {
    if (submitted >= kMaxRequests) {
      return;
    }
    const auto kind = static_cast<Kind>(rng.below(static_cast<uint32_t>(Kind::kCount)));
    RequestHead h;
    h.method = kind == Kind::Get ? "GET" : kind == Kind::Head ? "HEAD" : "POST";
    h.target = "/q" + std::to_string(submitted);
    h.authority = "upstream.svc:8080";
    h.headers.add("accept", "*/*");
    h.headers.add("te", "trailers, deflate");  // only te: trailers goes out
    h.headers.add("keep-alive", "5");          // hop-by-hop: dropped
    h.headers.add("cookie", "a=1");
    const bool body = kind == Kind::Post || kind == Kind::Trailers || kind == Kind::Big;
    if (kind == Kind::Post) {
      h.content_length = 11;
    }
    const uint32_t available = codec.available_streams();
    const int32_t id = codec.submit_request(h, !body);
    WP_FUZZ_CHECK((id < 0) == (available == 0));
    if (id < 0) {
      WP_FUZZ_CHECK(available == 0);
      return;
    }
    WP_FUZZ_CHECK((id & 1) == 1 && id > last_id);
    WP_FUZZ_CHECK(streams.count(id) == 0);
    last_id = id;
    ++submitted;
    ++open;
    StreamRec& s = streams[id];
    s.kind = kind;
    if (kind == Kind::Post) {
      send(id, 11, true);
      send(id, 3, false);  // after the end: dropped
    } else if (kind == Kind::Trailers) {
      send(id, 7, false);
      HeaderMap t;
      t.add("x-checksum", "7");
      codec.send_trailers(id, t);
    } else if (kind == Kind::Big) {
      s.body_sent = 16384;
      send(id, 16384, false);
    }
  }

  void on_response(int32_t id, ResponseHead&& head) override {
    StreamRec& s = live(id);
    WP_FUZZ_CHECK(!s.responded && !s.reset_by_us);
    WP_FUZZ_CHECK(head.status >= 0 && head.status <= 999 && (head.status < 100 || head.status >= 200));
    // nghttp2 accepts any 3 digits but 101 ("000".."099" too) and the codec delivers them as
    // final responses. Strict once the codec refuses them.
    WP_FUZZ_CHECK(!kStrictStatus || head.status >= 200);
    for (const Header& f : head.headers) {
      WP_FUZZ_CHECK(!f.name.empty() && f.name[0] != ':');
    }
    s.responded = true;
    s.status = head.status;
    s.content_length = head.content_length;
    if (rng.chance(8)) {
      s.reset_by_us = true;
      codec.reset(id, 8);  // CANCEL, as when the downstream went away
    }
  }

  void on_response_body(int32_t id, wp::buffer::Buffer& data) override {
    const size_t len = data.length();
    data.clear();
    StreamRec& s = live(id);
    WP_FUZZ_CHECK(s.responded && !s.ended && !s.trailers && !s.reset_by_us);
    s.received += len;
    WP_FUZZ_CHECK(s.kind == Kind::Head || !s.content_length || s.received <= *s.content_length);
    if ((flags & 4) == 0) {
      codec.consume(id, len);
    } else {
      s.unconsumed += len;
    }
  }

  void on_response_trailers(int32_t id, HeaderMap&& trailers) override {
    StreamRec& s = live(id);
    WP_FUZZ_CHECK(s.responded && !s.ended && !s.trailers && !s.reset_by_us);
    for (const Header& f : trailers) {
      WP_FUZZ_CHECK(!f.name.empty() && f.name[0] != ':');
    }
    s.trailers = true;
  }

  void on_response_end(int32_t id) override {
    StreamRec& s = live(id);
    WP_FUZZ_CHECK(s.responded && !s.ended && !s.reset_by_us);
    s.ended = true;
    if (s.kind != Kind::Head && s.status != 304 && s.content_length) {
      WP_FUZZ_CHECK(s.received == *s.content_length);
    }
  }

  void on_stream_closed(int32_t id, uint32_t) override {
    StreamRec& s = live(id);
    s.open = false;
    WP_FUZZ_CHECK(open > 0);
    --open;
  }

  void on_stream_drained(int32_t id) override {
    StreamRec& s = live(id);
    WP_FUZZ_CHECK(!s.reset_by_us);
    if (s.kind == Kind::Big && s.body_sent < kBigBody && codec.pending_body(id) == 0) {
      const size_t n = std::min<size_t>(16384, kBigBody - s.body_sent);
      s.body_sent += n;
      send(id, n, s.body_sent == kBigBody);
    }
  }

  void on_capacity() override {
    WP_FUZZ_CHECK(!finished);
    if ((flags & 0x80) != 0 && !error) {
      submit();
    }
  }

  void on_error(const CodecError& e) override {
    WP_FUZZ_CHECK(!finished && !error);
    WP_FUZZ_CHECK(e.status == 502 && e.source == ErrorSource::Upstream);
    WP_FUZZ_CHECK(e.reason != nullptr && (e.counter.has_value() || e.graceful));
    error = true;
  }

  void round() {
    for (auto& [id, s] : streams) {
      if (s.open && s.unconsumed > 0 && !rng.chance(4)) {
        const uint64_t n = rng.chance(2) ? s.unconsumed : s.unconsumed / 2;
        s.unconsumed -= n;
        codec.consume(id, n);
      }
    }
    flush();
    WP_FUZZ_CHECK(codec.active_streams() == open);
    WP_FUZZ_CHECK(!error || (!codec.usable() && codec.available_streams() == 0));
  }

  void flush() {
    Buffer out;
    collect_output(codec, out);
    WP_FUZZ_CHECK(!codec.want_output());
    out.for_each([&](const uint8_t* p, size_t n) {
      out_frames.walk(p, n, [&](uint8_t type, uint8_t, uint32_t stream, uint32_t) {
        if (out_frames.frames() == 1) {
          WP_FUZZ_CHECK(type == 4);  // SETTINGS right after the preface
        }
        if (type == 0 || type == 1) {
          WP_FUZZ_CHECK((stream & 1) == 1 && static_cast<int32_t>(stream) <= last_id);
        }
        WP_FUZZ_CHECK(type != 5);
      });
    });
    WP_FUZZ_CHECK(out_frames.at_boundary());
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t flags = size > 0 ? data[0] : 0;
  const uint32_t seed = size > 1 ? data[1] : 0;
  const size_t skip = std::min<size_t>(size, 2);
  const uint8_t* in = data + skip;
  const size_t len = size - skip;
  H2cSettings settings;
  if ((flags & 0x20) != 0) {
    settings.initial_window_size = 128;
    settings.connection_window_size = 1024;
    settings.max_header_list_bytes = 256;
  }
  Harness h(flags, seed, settings);
  for (unsigned i = 0; i <= (flags & 3u); ++i) {
    h.submit();
  }
  WP_FUZZ_CHECK(h.submitted == (flags & 3u) + 1);  // 100 streams assumed before the server's SETTINGS
  h.flush();
  wp::fuzz::Splitter split(flags >> 3, seed ^ 0x3c);
  size_t off = 0;
  while (off < len && !h.error) {
    size_t n = split.next(len - off);
    const bool ok = h.codec.feed(in + off, n);
    WP_FUZZ_CHECK(ok || h.error);
    off += n;
    h.round();
  }
  h.flush();
  if ((flags & 0x40) != 0) {
    return 0;
  }
  h.codec.finish();
  WP_FUZZ_CHECK(h.open == 0 && h.codec.active_streams() == 0);
  WP_FUZZ_CHECK(!h.codec.usable() && h.codec.available_streams() == 0);
  h.finished = true;
  RequestHead late;
  late.method = "GET";
  late.target = "/late";
  late.authority = "upstream.svc";
  WP_FUZZ_CHECK(h.codec.submit_request(late, true) == -1);
  Buffer out;
  h.codec.output(out);
  static const uint8_t ping[] = {0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  WP_FUZZ_CHECK(!h.codec.feed(ping, sizeof(ping)));
  return 0;
}
