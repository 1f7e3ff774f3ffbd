// Fuzzes Http1ServerCodec (the downstream side of an HTTP/1.1 connection inside a tunnel): arbitrary
// request bytes, cut at driver-chosen points, answered like a session does (after each message,
// in order, so pipelining and keep-alive run; or early, from on_head).
//
// Input: byte 0 = flags, byte 1 = seed of the driver's choices, then the request stream.
//   flags & 3     split: whole, byte by byte, 1..8-byte or 1..64-byte pieces
//   flags & 4     answer each request from on_head (before its body) instead of after it
//   flags & 8     answer "Expect: 100-continue" with a 100 first
//   flags & 16    small limits (head 512 bytes, 8 fields, 64-byte target): the 431 / 414 paths
//   flags & 32    fed as a Buffer of 1..64-byte slices (feed(Buffer&): body slices are moved)
//
// Checked on the way: callback order (head, body*, trailers?, complete), no callback after on_error
// or after the codec closed, body pointers inside the fed piece, body length = Content-Length,
// progress of feed(), encoder return values and close_after_response(). Two round trips too:
//  - every request is re-serialized with Http1ClientCodec (as the proxy forwards it); an HTTP/1.1
//    one must parse again, alone, to the same method, target, authority, framing and body;
//  - that client codec then parses every response we encode, which must come out as sent.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "waypoint/http/http1_codec.h"

namespace {

using namespace wp::http;
using wp::buffer::Buffer;
using wp::fuzz::Rng;

// Parses one re-serialized request alone and remembers what came out.
struct Reparse final : Http1ServerCallbacks {
  size_t heads = 0;
  size_t completes = 0;
  size_t errors = 0;
  uint64_t body = 0;
  RequestHead head;
  void on_head(RequestHead&& h) override {
    ++heads;
    head = std::move(h);
  }
  void on_body(wp::buffer::Buffer& b) override {
    body += b.length();
    b.clear();
  }
  void on_trailers(HeaderMap&&) override {}
  void on_message_complete() override { ++completes; }
  void on_error(const CodecError&) override { ++errors; }
};

struct Request {
  std::string method, target, authority;
  Version version = Version::Http11;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;
  bool expect_continue = false;
  uint64_t body = 0;
  bool complete = false;
  bool answered = false;
  HeaderMap trailers;
  Buffer reencoded;  // as the client codec serialized it
};

// What a response we encoded should look like once our client codec parsed it back.
struct SentResponse {
  int status = 0;
  uint64_t body = 0;
};

// The client that sent the requests: parses every response the server codec encoded.
struct ResponseReader final : Http1ClientCallbacks {
  std::deque<SentResponse> sent;  // final responses, in order
  bool in_message = false;
  uint64_t body = 0;
  size_t finals = 0;
  void on_head(ResponseHead&& h) override {
    WP_FUZZ_CHECK(!in_message);
    if (h.status < 200) {
      return;  // the interim 100 / 103 we sent
    }
    WP_FUZZ_CHECK(finals < sent.size());
    WP_FUZZ_CHECK(h.status == sent[finals].status);
    in_message = true;
    body = 0;
  }
  void on_body(wp::buffer::Buffer& b) override {
    WP_FUZZ_CHECK(in_message);
    body += b.length();
    b.clear();
  }
  void on_trailers(HeaderMap&&) override { WP_FUZZ_CHECK(in_message); }
  void on_message_complete() override {
    WP_FUZZ_CHECK(in_message);
    in_message = false;
    WP_FUZZ_CHECK(body == sent[finals].body);
    ++finals;
  }
  void on_error(const CodecError&) override {
    WP_FUZZ_CHECK(!"the client codec rejected a response the server codec encoded");
  }
};

struct Harness final : Http1ServerCallbacks {
  Harness(uint8_t flags, uint32_t seed, const Http1Limits& limits)
      : flags(flags), rng(seed), server(*this, limits), client(reader) {}

  uint8_t flags;
  Rng rng;
  ResponseReader reader;
  Http1ServerCodec server;
  Http1ClientCodec client;  // re-serializes requests, parses responses (into reader)

  // Server side state.
  const uint8_t* lo = nullptr;  // the piece being fed
  const uint8_t* hi = nullptr;
  bool in_message = false;
  bool server_error = false;
  bool server_closed = false;    // feed() left the codec Closed
  bool stop = false;             // the session would close now (error, closing response)
  std::deque<Request> requests;  // parsed, not yet answered (front = oldest)
  uint64_t body_seen = 0;
  bool trailers_seen = false;

  // Response side.
  Buffer responses;              // encoded, not yet given to the client codec
  bool check_responses = true;   // false once a response was left incomplete on purpose
  bool close_delimited = false;  // the last response ends with the connection

  void on_head(RequestHead&& h) override {
    WP_FUZZ_CHECK(!server_error && !server_closed);
    WP_FUZZ_CHECK(!in_message);
    WP_FUZZ_CHECK(!(h.content_length && h.chunked));
    WP_FUZZ_CHECK(h.method != "CONNECT");
    WP_FUZZ_CHECK(h.target == "*" || (!h.target.empty() && h.target[0] == '/'));
    WP_FUZZ_CHECK(h.version == Version::Http10 || !h.authority.empty());
    WP_FUZZ_CHECK(!h.expect_continue || h.version == Version::Http11);
    in_message = true;
    body_seen = 0;
    trailers_seen = false;
    Request& r = requests.emplace_back();
    r.method = h.method;
    r.target = h.target;
    r.authority = h.authority;
    r.version = h.version;
    r.content_length = h.content_length;
    r.chunked = h.chunked;
    r.keep_alive = h.keep_alive;
    r.expect_continue = h.expect_continue;
    client.encode_head(h, r.reencoded);
    if (r.expect_continue && (flags & 8) != 0 && (flags & 4) == 0) {
      Http1ServerCodec::encode_continue(responses);
    }
    if ((flags & 4) != 0) {
      answer(r);
    }
  }
  void on_body(wp::buffer::Buffer& b) override {
    const size_t n = b.length();
    WP_FUZZ_CHECK(!server_error && !server_closed && in_message);
    WP_FUZZ_CHECK(n > 0 && n <= static_cast<size_t>(hi - lo));
    Request& r = requests.back();
    WP_FUZZ_CHECK(r.chunked || r.content_length.value_or(0) > 0);
    WP_FUZZ_CHECK(!trailers_seen);
    body_seen += n;
    WP_FUZZ_CHECK(!r.content_length || body_seen <= *r.content_length);
    WP_FUZZ_CHECK(client.encode_body(b, r.reencoded));
    WP_FUZZ_CHECK(b.empty());
  }
  void on_trailers(HeaderMap&& t) override {
    WP_FUZZ_CHECK(!server_error && !server_closed && in_message);
    WP_FUZZ_CHECK(requests.back().chunked && !trailers_seen && !t.empty());
    trailers_seen = true;
    requests.back().trailers = std::move(t);
  }
  void on_message_complete() override {
    WP_FUZZ_CHECK(!server_error && !server_closed && in_message);
    in_message = false;
    Request& r = requests.back();
    WP_FUZZ_CHECK(!r.content_length || body_seen == *r.content_length);
    r.body = body_seen;
    r.complete = true;
    WP_FUZZ_CHECK(client.encode_end(r.reencoded, r.trailers.empty() ? nullptr : &r.trailers));
    if (r.version == Version::Http11) {
      check_reparse(r);
    }
  }
  void on_error(const CodecError& e) override {
    WP_FUZZ_CHECK(!server_error && !server_closed);
    WP_FUZZ_CHECK(e.source == ErrorSource::Downstream && e.status >= 400 && e.status < 600);
    WP_FUZZ_CHECK(e.reason != nullptr && e.counter.has_value());
    server_error = true;
  }

  // The re-serialized HTTP/1.1 request parses to the same request.
  void check_reparse(const Request& r) {
    Reparse rec;
    Http1Limits big;
    big.max_head_bytes = 1 << 20;
    big.max_headers = 1000;
    big.max_url_bytes = 1 << 20;
    Http1ServerCodec again(rec, big);
    std::vector<uint8_t> bytes(r.reencoded.length());
    r.reencoded.copy_out(bytes.data(), bytes.size());
    size_t n = again.feed(bytes.data(), bytes.size());
    WP_FUZZ_CHECK(rec.errors == 0 && rec.heads == 1 && rec.completes == 1);
    WP_FUZZ_CHECK(n == bytes.size());
    WP_FUZZ_CHECK(rec.head.method == r.method && rec.head.target == r.target && rec.head.authority == r.authority);
    WP_FUZZ_CHECK(rec.head.content_length == r.content_length && rec.head.chunked == r.chunked);
    WP_FUZZ_CHECK(rec.head.keep_alive == r.keep_alive && rec.head.expect_continue == r.expect_continue);
    WP_FUZZ_CHECK(rec.body == r.body);
  }

  // Encodes one response to `r` (the oldest unanswered request) in a style the PRNG picks.
  void answer(Request& r) {
    WP_FUZZ_CHECK(!r.answered);
    r.answered = true;
    if (stop) {
      return;  // the connection is closing: nothing more is written
    }
    const bool head_method = r.method == "HEAD";
    ResponseHead h;
    h.headers.add("server", "fuzz");
    uint64_t body = 0;
    enum Style { Length, Chunked, NoContent, NotModified, Interim, Closing, Short, kStyles };
    const auto style = static_cast<Style>(rng.below(kStyles));
    switch (style) {
      case Length:
      case Closing:
      case Short:
        body = rng.below(40);
        h.content_length = body;
        h.keep_alive = style != Closing;
        break;
      case Chunked:
        body = rng.below(40);
        break;
      case NoContent:
        h.status = 204;
        break;
      case NotModified:
        h.status = 304;
        h.content_length = 12;  // metadata only
        break;
      case Interim: {
        ResponseHead early;
        early.status = 103;
        early.headers.add("link", "</s.css>; rel=preload");
        server.encode_head(early, responses);
        body = rng.below(10);
        h.content_length = body;
        break;
      }
      case kStyles:
        break;
    }
    const bool no_body = head_method || h.status == 204 || h.status == 304;
    const bool close_mode = !no_body && !h.content_length && r.version == Version::Http10;
    server.encode_head(h, responses);
    WP_FUZZ_CHECK(server.close_after_response() == (!r.keep_alive || !h.keep_alive || close_mode));
    if (no_body) {
      uint8_t one = 'x';
      WP_FUZZ_CHECK(!server.encode_body(&one, 1, responses));
      body = 0;
    }
    std::string payload(body, 'b');
    const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
    uint64_t written = 0;
    if (style == Short && body > 0) {
      WP_FUZZ_CHECK(server.encode_body(p, body - 1, responses));
      WP_FUZZ_CHECK(!server.encode_end(responses));  // one byte short
      check_responses = false;                       // the stream is broken from here on
      stop = true;
      return;
    }
    if (body > 0) {
      size_t first = rng.below(static_cast<uint32_t>(body) + 1);
      WP_FUZZ_CHECK(server.encode_body(p, first, responses));
      WP_FUZZ_CHECK(server.encode_body(p + first, body - first, responses));
      written = body;
      if (h.content_length) {
        WP_FUZZ_CHECK(!server.encode_body(p, 1, responses));  // past Content-Length
      }
    }
    HeaderMap trailers;
    trailers.add("x-checksum", "1");
    WP_FUZZ_CHECK(server.encode_end(responses, style == Chunked ? &trailers : nullptr));
    reader.sent.push_back(SentResponse{h.status, written});
    close_delimited = close_mode;
    if (server.close_after_response()) {
      stop = true;
    }
    feed_client();
  }

  void feed_client() {
    if (!check_responses) {
      return;
    }
    while (!responses.empty()) {
      auto f = responses.front();
      std::vector<uint8_t> bytes(f.begin(), f.end());
      responses.drain(f.size());
      size_t n = client.feed(bytes.data(), bytes.size());
      WP_FUZZ_CHECK(n == bytes.size());
    }
  }

  // Answers the completed requests, oldest first (the early-answer mode has done it already).
  void answer_completed() {
    while (!requests.empty() && requests.front().complete) {
      if (!requests.front().answered && !stop) {
        answer(requests.front());
      }
      requests.pop_front();
    }
  }

  // A session's local reply after a parse error: it must close the connection.
  void local_reply() {
    ResponseHead h;
    h.status = 400;
    h.content_length = 0;
    Buffer out;
    server.encode_head(h, out);
    WP_FUZZ_CHECK(server.close_after_response());
    WP_FUZZ_CHECK(server.encode_end(out));
  }

  void feed(const uint8_t* data, size_t len) {
    lo = data;
    hi = data + len;
    size_t done = 0;
    const bool as_buffer = (flags & 32) != 0;
    Buffer in;
    if (as_buffer) {
      for (size_t off = 0, k = 0; off < len; off += k) {
        k = std::min<size_t>(len - off, 1 + (off * 7 + len) % 64);
        Buffer slice;
        slice.append(data + off, k);
        in.move_from(slice);  // a slice of its own
      }
    }
    while (done < len && !stop) {
      size_t n = as_buffer ? server.feed(in) : server.feed(data + done, len - done);
      WP_FUZZ_CHECK(n <= len - done);
      done += n;
      WP_FUZZ_CHECK(!as_buffer || server.state() == CodecState::Closed || in.length() == len - done);
      const CodecState st = server.state();
      WP_FUZZ_CHECK(st != CodecState::Error || server_error);
      WP_FUZZ_CHECK(st == CodecState::Error || !server_error);
      if (st == CodecState::Error) {
        requests.clear();
        local_reply();
        stop = true;
        return;
      }
      if (st == CodecState::Closed) {
        while (as_buffer && !in.empty()) {
          done += server.feed(in);  // after a closing message: the rest is discarded, slice by slice
        }
        WP_FUZZ_CHECK(done == len);
        WP_FUZZ_CHECK(!requests.empty() && requests.back().complete && !requests.back().keep_alive);
        server_closed = true;
        answer_completed();
        return;
      }
      if (st == CodecState::Paused) {
        WP_FUZZ_CHECK(!requests.empty() && requests.back().complete && !in_message);
        answer_completed();
        server.resume();
        WP_FUZZ_CHECK(server.state() == CodecState::Running);
        continue;
      }
      if (as_buffer && done < len) {
        WP_FUZZ_CHECK(n > 0);  // Running: the whole front slice taken; on to the next
        continue;
      }
      WP_FUZZ_CHECK(done == len);  // Running: everything taken
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t flags = size > 0 ? data[0] : 0;
  const uint32_t seed = size > 1 ? data[1] : 0;
  const uint8_t* in = data + std::min<size_t>(size, 2);
  const size_t len = size - std::min<size_t>(size, 2);
  Http1Limits limits;
  if ((flags & 16) != 0) {
    limits.max_head_bytes = 512;
    limits.max_headers = 8;
    limits.max_url_bytes = 64;
  }
  Harness h(flags, seed, limits);
  wp::fuzz::Splitter split(flags, seed ^ 0x5a);
  size_t off = 0;
  while (off < len && !h.stop) {
    size_t n = split.next(len - off);
    h.feed(in + off, n);
    off += n;
  }
  if (h.server_closed) {
    // Whatever follows a closing request is discarded, without a callback.
    static const uint8_t more[] = "GET / HTTP/1.1\r\nhost: a\r\n\r\n";
    h.lo = more;
    h.hi = more + sizeof(more);
    WP_FUZZ_CHECK(h.server.feed(more, sizeof(more)) == sizeof(more));
  } else if (h.server_error) {
    static const uint8_t more[] = "GET / HTTP/1.1\r\n";
    WP_FUZZ_CHECK(h.server.feed(more, sizeof(more)) == 0);  // refused
  } else if (!h.stop) {
    // The downstream closes its side.
    const bool mid = h.in_message;
    const bool ok = h.server.finish();
    WP_FUZZ_CHECK(!mid || !ok);  // a request cut short is an error
    WP_FUZZ_CHECK(ok != h.server_error);
  }
  if (h.check_responses) {
    h.feed_client();
    if (h.close_delimited) {
      WP_FUZZ_CHECK(h.client.finish());
    }
    WP_FUZZ_CHECK(!h.reader.in_message);
    WP_FUZZ_CHECK(h.reader.finals == h.reader.sent.size());
  }
  return 0;
}
