// Fuzzes H2cServerCodec (h2c inside a tunnel, server side): the client preface, then arbitrary
// frames, cut at driver-chosen points. Requests are answered as they arrive, in ways the driver
// picks per stream (at once, with a body, with trailers, after the request body as an echo, with
// a 100 first, with a large body paced by on_stream_drained, late, or reset), and every round the
// codec's pending output is taken, so the send paths run as well as the receive paths.
//
// Input: byte 0 = flags, byte 1 = seed of the driver's choices, then the client's bytes.
//   flags & 1     do not send the client preface first (the input carries it, or a bad one)
//   flags & 2     consume received DATA in the rounds between pieces (else at once, from the callback)
//   flags & 0x0c  split: whole, byte by byte, 1..8-byte or 1..64-byte pieces
//   flags & 0x10  small settings: 2 streams, 128-byte stream window, 256-byte header lists (431)
//   flags & 0x20  send GOAWAY (graceful) after the first request
//   flags & 0x40  destroy the codec at the end without finish()
//
// Checked: per stream, on_request first and once, body / trailers / end only while the request is
// open, end once, the body matches Content-Length, on_stream_closed exactly once and nothing after
// it, on_stream_drained only for live streams; no pseudo-headers or connection-specific fields
// reach the owner; active_streams() agrees; the output is well-framed HTTP/2 and want_output() is
// false once collect_output() is done; after finish() every stream is closed and nothing is called.
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

constexpr uint8_t kPreface[] = {'P', 'R', 'I',  ' ',  '*',  ' ',  'H', 'T', 'T',  'P',  '/',  '2',
                                '.', '0', '\r', '\n', '\r', '\n', 'S', 'M', '\r', '\n', '\r', '\n'};
constexpr size_t kBigBody = 96 * 1024;
constexpr size_t kSendBudget = 512 * 1024;  // response bytes per input, so runs stay fast

enum class Action : uint8_t { Immediate, Body, Trailers, Reset, Echo, Interim, Big, Late, kCount };

struct StreamRec {
  Action action = Action::Immediate;
  bool open = true;
  bool ended = false;  // on_request_end seen
  bool trailers = false;
  bool reset_by_us = false;
  bool responded = false;
  bool late_pending = false;
  std::optional<uint64_t> content_length;
  uint64_t received = 0;
  uint64_t unconsumed = 0;
  uint64_t big_sent = 0;
};

bool connection_specific(const std::string& name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" || name == "transfer-encoding" ||
         name == "upgrade";
}

void check_fields(const HeaderMap& fields) {
  for (const Header& f : fields) {
    WP_FUZZ_CHECK(!f.name.empty() && f.name[0] != ':');
    WP_FUZZ_CHECK(!connection_specific(f.name));
    WP_FUZZ_CHECK(f.name != "te" || iequals(f.value, "trailers"));
  }
}

struct Harness final : H2cServerCallbacks {
  Harness(uint8_t flags, uint32_t seed, const H2cSettings& settings)
      : flags(flags), rng(seed), codec(*this, settings) {}

  uint8_t flags;
  Rng rng;
  H2cServerCodec codec;
  std::map<int32_t, StreamRec> streams;
  int32_t last_id = 0;
  size_t open = 0;
  size_t requests = 0;
  size_t sent = 0;  // response body bytes queued
  bool error = false;
  bool finished = false;  // finish() was called: no callback from now on
  bool goaway_sent = false;
  wp::fuzz::FrameWalker out_frames;

  StreamRec& live(int32_t id) {
    WP_FUZZ_CHECK(!finished);
    auto it = streams.find(id);
    WP_FUZZ_CHECK(it != streams.end() && it->second.open);
    return it->second;
  }

  // Bytes of response body still allowed for this input.
  size_t reserve(size_t n) {
    n = std::min(n, kSendBudget - sent);
    sent += n;
    return n;
  }

  void send(int32_t id, size_t n, bool end) {
    Buffer b;
    std::string payload(n, 'r');
    b.append(payload.data(), payload.size());
    codec.send_body(id, b, end);
    WP_FUZZ_CHECK(b.empty());  // send_body takes everything
  }

  void respond(int32_t id, StreamRec& s) {
    s.responded = true;
    ResponseHead h;
    h.headers.add("server", "fuzz");
    h.headers.add("connection", "close");  // hop-by-hop: must not reach the wire
    switch (s.action) {
      case Action::Immediate:
        if (rng.chance(2)) {
          h.content_length = 0;
        }
        codec.respond(id, h, true);
        break;
      case Action::Body: {
        const size_t n = reserve(rng.below(300));
        h.content_length = n;
        codec.respond(id, h, false);
        send(id, n, true);
        break;
      }
      case Action::Trailers: {
        codec.respond(id, h, false);
        send(id, reserve(rng.below(100)), false);
        HeaderMap t;
        t.add("grpc-status", "0");
        t.add("content-length", "1");  // dropped from trailers
        codec.send_trailers(id, t);
        if (rng.chance(4)) {
          codec.reset(id, 0);  // reset after the response is queued
          s.reset_by_us = true;
        }
        break;
      }
      case Action::Echo: {
        const size_t n = reserve(s.received);
        h.content_length = n;
        codec.respond(id, h, false);
        send(id, n, true);
        break;
      }
      case Action::Interim: {
        ResponseHead interim;
        interim.status = 100;
        codec.respond(id, interim, false);
        h.status = rng.chance(2) ? 204 : 503;
        codec.respond(id, h, true);
        break;
      }
      case Action::Big:
        codec.respond(id, h, false);
        s.big_sent = reserve(16384);
        send(id, s.big_sent, false);
        break;
      case Action::Late:
      case Action::Reset:
      case Action::kCount:
        break;
    }
  }

  void on_request(int32_t id, RequestHead&& head, bool end_stream) override {
    WP_FUZZ_CHECK(!finished);
    WP_FUZZ_CHECK(id > 0 && (id & 1) == 1 && id > last_id);
    WP_FUZZ_CHECK(streams.count(id) == 0);
    WP_FUZZ_CHECK(!head.method.empty());
    WP_FUZZ_CHECK(head.method == "CONNECT" || !head.target.empty());
    check_fields(head.headers);
    last_id = id;
    ++open;
    ++requests;
    StreamRec& s = streams[id];
    s.content_length = head.content_length;
    s.action = static_cast<Action>(rng.below(static_cast<uint32_t>(Action::kCount)));
    if ((flags & 0x20) != 0 && !goaway_sent) {
      goaway_sent = true;
      codec.goaway();
    }
    if (s.action == Action::Reset) {
      s.reset_by_us = true;
      codec.reset(id, rng.below(14));
    } else if (s.action == Action::Late) {
      s.late_pending = true;
    } else if (s.action != Action::Echo) {
      respond(id, s);
    }
    (void)end_stream;  // on_request_end follows at once when set
  }

  void on_request_body(int32_t id, wp::buffer::Buffer& data) override {
    const size_t len = data.length();
    data.clear();
    StreamRec& s = live(id);
    WP_FUZZ_CHECK(!s.ended && !s.trailers && !s.reset_by_us);
    s.received += len;
    WP_FUZZ_CHECK(!s.content_length || s.received <= *s.content_length);
    if ((flags & 2) == 0) {
      codec.consume(id, len);
    } else {
      s.unconsumed += len;
    }
  }

  void on_request_trailers(int32_t id, HeaderMap&& trailers) override {
    StreamRec& s = live(id);
    WP_FUZZ_CHECK(!s.ended && !s.trailers && !s.reset_by_us);
    check_fields(trailers);
    s.trailers = true;
  }

  void on_request_end(int32_t id) override {
    StreamRec& s = live(id);
    WP_FUZZ_CHECK(!s.ended && !s.reset_by_us);
    s.ended = true;
    WP_FUZZ_CHECK(!s.content_length || s.received == *s.content_length);
    if (s.action == Action::Echo) {
      respond(id, s);
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
    if (s.action == Action::Big && s.big_sent < kBigBody && codec.pending_body(id) == 0) {
      const size_t n = reserve(std::min<size_t>(16384, kBigBody - s.big_sent));
      s.big_sent = n == 0 ? kBigBody : s.big_sent + n;  // out of budget: end it here
      send(id, n, s.big_sent == kBigBody);
    }
  }

  void on_error(const CodecError& e) override {
    WP_FUZZ_CHECK(!finished && !error);
    WP_FUZZ_CHECK(e.status == 400 && e.source == ErrorSource::Downstream);
    WP_FUZZ_CHECK(e.reason != nullptr && (e.counter.has_value() || e.graceful));
    error = true;
  }

  // What the owner does between two reads: give windows back, answer late streams, send.
  void round() {
    for (auto& [id, s] : streams) {
      if (!s.open) {
        continue;
      }
      if (s.unconsumed > 0 && !rng.chance(4)) {
        const uint64_t n = rng.chance(2) ? s.unconsumed : s.unconsumed / 2;
        s.unconsumed -= n;
        codec.consume(id, n);
      }
      if (s.late_pending && rng.chance(2)) {
        s.late_pending = false;
        s.action = static_cast<Action>(rng.below(3));  // Immediate, Body or Trailers
        respond(id, s);
      }
    }
    flush();
    WP_FUZZ_CHECK(codec.active_streams() == open);
  }

  void flush() {
    Buffer out;
    collect_output(codec, out);
    WP_FUZZ_CHECK(!codec.want_output());
    out.for_each([&](const uint8_t* p, size_t n) {
      out_frames.walk(p, n, [&](uint8_t type, uint8_t, uint32_t stream, uint32_t) {
        if (out_frames.frames() == 1) {
          WP_FUZZ_CHECK(type == 4);  // the server's SETTINGS comes first
        }
        if (type == 0 || type == 1) {
          WP_FUZZ_CHECK((stream & 1) == 1);  // no server push: only client streams
        }
        WP_FUZZ_CHECK(type != 5);  // PUSH_PROMISE
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
  if ((flags & 0x10) != 0) {
    settings.max_concurrent_streams = 2;
    settings.initial_window_size = 128;
    settings.connection_window_size = 1024;
    settings.max_header_list_bytes = 256;
  }
  Harness h(flags, seed, settings);
  if ((flags & 1) == 0) {
    WP_FUZZ_CHECK(h.codec.feed(kPreface, sizeof(kPreface)));
  }
  wp::fuzz::Splitter split(flags >> 2, seed ^ 0xa5);
  size_t off = 0;
  while (off < len && !h.error) {
    size_t n = split.next(len - off);
    const bool ok = h.codec.feed(in + off, n);
    WP_FUZZ_CHECK(ok || h.error);  // a failed feed has reported why
    off += n;
    h.round();
  }
  h.flush();  // after an error: the GOAWAY goes out, then the tunnel closes
  if ((flags & 0x40) != 0) {
    return 0;  // the owner drops the codec with streams open: no callback, nothing leaked
  }
  h.codec.finish();
  WP_FUZZ_CHECK(h.open == 0 && h.codec.active_streams() == 0);
  h.finished = true;
  Buffer out;
  h.codec.output(out);  // only what was already framed; no callback
  static const uint8_t ping[] = {0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  WP_FUZZ_CHECK(!h.codec.feed(ping, sizeof(ping)));
  return 0;
}
