// Fuzzes Http1ClientCodec (the upstream side): requests are encoded first, then arbitrary response
// bytes are fed, cut at driver-chosen points.
//
// Input: byte 0 = flags, byte 1 = the kinds of the first four requests, byte 2 = seed, then the
// response stream.
//   flags & 3     requests encoded up front, minus one (1..4)
//   flags & 4     after each complete response, encode one more request (up to 16 in all)
//   flags & 0x18  split: whole, byte by byte, 1..8-byte or 1..64-byte pieces
//   flags & 0x20  small limits (head 512 bytes, 8 fields)
//   flags & 0x40  fed as a Buffer of 1..64-byte slices (feed(Buffer&): body slices are moved)
//   byte 1        two bits per request: GET, HEAD, POST with Content-Length, POST chunked + trailers
//                 (HEAD decides that a response has no body; the others are ordinary)
// The seeds cover 1xx, 204/304, chunked, close-delimited, pipelined and malformed responses.
//
// Checked: callback order (1xx heads alone; head, body*, trailers?, complete), never more final
// responses than requests, no body for HEAD / 1xx / 204 / 304, body length = Content-Length, body
// pointers inside the fed piece, no callback after on_error or once the codec closed, feed()
// progress, finish() (a close-delimited response completes, anything else cut short is an error).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "fuzz_util.h"
#include "waypoint/http/http1_codec.h"

namespace {

using namespace wp::http;
using wp::buffer::Buffer;

constexpr bool kStrictStatus = true;

struct Harness final : Http1ClientCallbacks {
  Harness(uint8_t flags, uint8_t kinds, const Http1Limits& limits) : flags(flags), kinds(kinds), codec(*this, limits) {}

  uint8_t flags;
  uint8_t kinds;
  Http1ClientCodec codec;
  std::deque<bool> outstanding;  // requests without a final response yet: is it HEAD
  size_t encoded = 0;
  const uint8_t* lo = nullptr;
  const uint8_t* hi = nullptr;
  bool error = false;
  bool closed = false;
  bool in_message = false;
  bool no_body = false;
  bool chunked = false;
  bool trailers_seen = false;
  std::optional<uint64_t> content_length;
  uint64_t body = 0;
  size_t finals = 0;

  void encode_request() {
    const unsigned kind = encoded < 4 ? (kinds >> (2 * encoded)) & 3 : encoded % 4;
    ++encoded;
    RequestHead h;
    h.method = kind == 0 ? "GET" : kind == 1 ? "HEAD" : "POST";
    h.target = "/r" + std::to_string(encoded);
    h.authority = "upstream.svc";
    h.headers.add("accept", "*/*");
    h.headers.add("connection", "keep-alive");  // hop-by-hop: dropped
    Buffer out;
    if (kind == 2) {
      h.content_length = 5;
    } else if (kind == 3) {
      h.chunked = true;
    }
    codec.encode_head(h, out);
    const auto* p = reinterpret_cast<const uint8_t*>("hello");
    if (kind == 2) {
      WP_FUZZ_CHECK(codec.encode_body(p, 5, out));
      WP_FUZZ_CHECK(!codec.encode_body(p, 1, out));
    } else if (kind == 3) {
      WP_FUZZ_CHECK(codec.encode_body(p, 5, out));
      WP_FUZZ_CHECK(codec.encode_body(p, 0, out));
    } else {
      WP_FUZZ_CHECK(!codec.encode_body(p, 1, out));  // no body announced
    }
    HeaderMap trailers;
    trailers.add("x-sum", "5");
    trailers.add("content-length", "9");  // never in trailers
    WP_FUZZ_CHECK(codec.encode_end(out, kind == 3 ? &trailers : nullptr));
    WP_FUZZ_CHECK(out.length() > 0);
    outstanding.push_back(kind == 1);
  }

  void on_head(ResponseHead&& h) override {
    WP_FUZZ_CHECK(!error && !closed && !in_message);
    WP_FUZZ_CHECK(!outstanding.empty());  // a response needs a request
    WP_FUZZ_CHECK(h.status >= 0 && h.status <= 999 && h.status != 101);
    // llhttp 8.1 lets 1- and 2-digit and 0xx status codes through and the codec takes them for
    // interim responses (their body then parses as the next response). Strict once refused.
    WP_FUZZ_CHECK(!kStrictStatus || h.status >= 100);
    WP_FUZZ_CHECK(!(h.content_length && h.chunked));
    if (h.status < 200) {
      return;  // interim: no body, no on_message_complete; the final response follows
    }
    in_message = true;
    no_body = outstanding.front() || h.status == 204 || h.status == 304;
    chunked = h.chunked;
    content_length = h.content_length;
    trailers_seen = false;
    body = 0;
  }
  void on_body(wp::buffer::Buffer& b) override {
    const size_t n = b.length();
    b.clear();
    WP_FUZZ_CHECK(!error && !closed && in_message && !no_body && !trailers_seen);
    WP_FUZZ_CHECK(n > 0 && n <= static_cast<size_t>(hi - lo));
    body += n;
    WP_FUZZ_CHECK(!content_length || body <= *content_length);
  }
  void on_trailers(HeaderMap&& t) override {
    WP_FUZZ_CHECK(!error && !closed && in_message && chunked && !no_body && !trailers_seen && !t.empty());
    WP_FUZZ_CHECK(!t.has("content-length") && !t.has("transfer-encoding") && !t.has("host"));
    trailers_seen = true;
  }
  void on_message_complete() override {
    WP_FUZZ_CHECK(!error && !closed && in_message);
    in_message = false;
    WP_FUZZ_CHECK(no_body || !content_length || body == *content_length);
    WP_FUZZ_CHECK(!no_body || body == 0);
    outstanding.pop_front();
    ++finals;
    if ((flags & 4) != 0 && encoded < 16) {
      encode_request();  // the connection is reused (from the callback, as a pool would)
    }
  }
  void on_error(const CodecError& e) override {
    WP_FUZZ_CHECK(!error && !closed);
    WP_FUZZ_CHECK(e.status == 502 && e.source == ErrorSource::Upstream);
    WP_FUZZ_CHECK(e.reason != nullptr && e.counter.has_value());
    error = true;
  }

  // Feeds one piece; returns false once the codec stops taking input.
  bool feed(const uint8_t* data, size_t len) {
    lo = data;
    hi = data + len;
    size_t n = 0;
    if ((flags & 0x40) != 0) {
      wp::buffer::Buffer in;
      for (size_t off = 0, k = 0; off < len; off += k) {
        k = std::min<size_t>(len - off, 1 + (off * 7 + len) % 64);
        wp::buffer::Buffer slice;
        slice.append(data + off, k);
        in.move_from(slice);  // a slice of its own
      }
      while (!in.empty()) {
        const size_t before = in.length();
        const size_t k = codec.feed(in);
        WP_FUZZ_CHECK(in.length() == before - k);  // what was parsed left the buffer, moved or drained
        n += k;
        if (k == 0 || codec.state() == CodecState::Error) {
          break;
        }
      }
    } else {
      n = codec.feed(data, len);
    }
    const CodecState st = codec.state();
    WP_FUZZ_CHECK(st != CodecState::Paused);  // only the server side pauses
    WP_FUZZ_CHECK((st == CodecState::Error) == error);
    if (st == CodecState::Error) {
      WP_FUZZ_CHECK(n <= len);
      WP_FUZZ_CHECK(codec.feed(data, len) == 0);  // refused from now on, silently
      return false;
    }
    WP_FUZZ_CHECK(n == len);
    if (st == CodecState::Closed) {
      WP_FUZZ_CHECK(!in_message);
      closed = true;  // no callback from now on
    }
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t flags = size > 0 ? data[0] : 0;
  const uint8_t kinds = size > 1 ? data[1] : 0;
  const uint32_t seed = size > 2 ? data[2] : 0;
  const size_t skip = std::min<size_t>(size, 3);
  const uint8_t* in = data + skip;
  const size_t len = size - skip;
  Http1Limits limits;
  if ((flags & 0x20) != 0) {
    limits.max_head_bytes = 512;
    limits.max_headers = 8;
  }
  Harness h(flags, kinds, limits);
  for (unsigned i = 0; i <= (flags & 3u); ++i) {
    h.encode_request();
  }
  wp::fuzz::Splitter split(flags >> 3, seed);
  size_t off = 0;
  bool alive = true;
  while (off < len && alive) {
    size_t n = split.next(len - off);
    alive = h.feed(in + off, n);
    off += n;
  }
  WP_FUZZ_CHECK(h.finals <= h.encoded);
  if (alive) {
    // The upstream closes: a close-delimited response completes, anything cut short is an error.
    const bool ok = h.codec.finish();
    WP_FUZZ_CHECK(ok != h.error);
    WP_FUZZ_CHECK(!ok || !h.in_message);
  }
  return 0;
}
