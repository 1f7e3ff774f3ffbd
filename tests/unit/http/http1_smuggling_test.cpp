// The request-smuggling corpus: everything llhttp 8.1 lets through (or that a strict proxy must
// refuse), each with the status we answer. Each input is fed whole, byte by byte and in random
// splits; none may ever deliver a second request or complete a message.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "waypoint/http/http1_codec.h"

namespace {

using namespace wp::http;

struct Counting : Http1ServerCallbacks {
  std::vector<std::string> targets;
  size_t completes = 0;
  std::vector<CodecError> errors;
  void on_head(RequestHead&& h) override { targets.push_back(h.target); }
  void on_body(wp::buffer::Buffer& b) override { b.clear(); }
  void on_trailers(HeaderMap&&) override {}
  void on_message_complete() override { ++completes; }
  void on_error(const CodecError& e) override { errors.push_back(e); }
};

struct Case {
  const char* name;
  std::string in;
  int status;
  size_t heads;  // heads legitimately delivered before the error (the first request's own head)
};

const std::string kSmuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

std::vector<Case> corpus() {
  return {
      // Line folding and stray CR / LF (llhttp 8.1 accepts several of these).
      {"obs-fold (SP)", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, 0},
      {"obs-fold (HTAB)", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400, 0},
      {"obs-fold hides a Content-Length",
       "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Content-Length: 36\r\n\r\n" + kSmuggled, 400, 0},
      {"obs-fold on the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, 0},
      {"bare CR in an empty header value", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\r\n\r\n", 400, 0},
      {"bare CR before a value", "GET / HTTP/1.1\r\nHost: a\r\nX:\rContent-Length: 36\r\n\r\n" + kSmuggled, 400, 0},
      {"bare CR inside a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, 0},
      {"bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
      {"bare CR ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\r" + kSmuggled, 400, 0},
      {"bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n", 400, 0},
      {"bare LF after a field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, 0},
      // Field names.
      {"space inside a header name", "POST / HTTP/1.1\r\nHost: a\r\nContent Length: 36\r\n\r\n" + kSmuggled, 400, 0},
      {"space before the colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 36\r\n\r\n" + kSmuggled, 400, 0},
      {"space before the colon of Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, 0},
      {"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400, 0},
      {"header line without a colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, 0},
      {"NUL in a header value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35), 400, 0},
      {"DEL in a header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400, 0},
      // Framing.
      {"Content-Length and Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + kSmuggled,
       400, 0},
      {"Transfer-Encoding and Content-Length",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + kSmuggled,
       400, 0},
      {"duplicate Content-Length, equal values",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, 0},
      {"duplicate Content-Length, different values",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 39\r\n\r\nabc" + kSmuggled, 400, 0},
      {"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400, 0},
      {"Content-Length not a number", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 400, 0},
      {"Content-Length with a sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400, 0},
      {"Content-Length negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, 0},
      {"Transfer-Encoding on HTTP/1.0",
       "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + kSmuggled, 400, 0},
      {"Transfer-Encoding: chunked, identity",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400, 0},
      {"Transfer-Encoding: chunked, chunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400, 0},
      {"Transfer-Encoding: gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400, 0},
      {"Transfer-Encoding: xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400,
       0},
      {"Transfer-Encoding with an empty element",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", 400, 0},
      {"two Transfer-Encoding fields",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       0},
      {"Transfer-Encoding: identity, chunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 400, 0},
      {"Transfer-Encoding: gzip, chunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, 0},
      {"chunk data not followed by CRLF",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n" + kSmuggled, 400, 1},
      {"chunk data followed by LF only",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n" + kSmuggled, 400, 1},
      {"chunk size with trailing space",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400, 1},
      {"chunk size with 0x", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
       400, 1},
      {"chunk size negative", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n", 400, 1},
      {"chunk size overflowing 64 bits",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n", 400, 1},
      {"chunk size line ending in bare LF",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, 1},
      {"Content-Length in trailers",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 36\r\n\r\n" + kSmuggled,
       400, 1},
      {"Transfer-Encoding in trailers",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       1},
      {"obs-fold in trailers",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", 400, 1},
      {"bare CR in trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX:\r\r\n\r\n", 400,
       1},
      // Host.
      {"missing Host on HTTP/1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400, 0},
      {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0},
      {"duplicate Host, equal values", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, 0},
      {"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, 0},
      {"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 0},
      {"Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, 0},
      // Versions, methods, targets.
      {"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, 0},
      {"HTTP/1.2 request line", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400, 0},
      {"HTTP/0.9 request line", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 400, 0},
      {"HTTP/3.0 request line", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 400, 0},
      // h2c is sniffed before this codec; here its preface is just malformed HTTP/1.1.
      {"h2c preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, 0},
      {"lowercase protocol name", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, 0},
      {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501, 0},
      {"absolute-form target", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
      {"asterisk target on GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
      {"unknown method", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
      {"TLS bytes", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400, 0},
      {"control character in the target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
  };
}

}  // namespace

TEST_CASE("http: the smuggling corpus is refused with the documented status") {
  for (const Case& c : corpus()) {
    INFO(c.name);
    std::vector<std::vector<size_t>> splits;
    splits.push_back({c.in.size()});
    splits.push_back(std::vector<size_t>(c.in.size(), 1));
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      std::mt19937 rng(seed);
      std::vector<size_t> s;
      for (size_t left = c.in.size(); left > 0;) {
        size_t n = std::min<size_t>(left, 1 + rng() % 13);
        s.push_back(n);
        left -= n;
      }
      splits.push_back(s);
    }
    for (const auto& split : splits) {
      Counting rec;
      Http1ServerCodec codec(rec);
      const auto* p = reinterpret_cast<const uint8_t*>(c.in.data());
      size_t off = 0;
      for (size_t piece : split) {
        size_t done = 0;
        while (done < piece && codec.state() == CodecState::Running) {
          size_t n = codec.feed(p + off + done, piece - done);
          done += n;
          if (n == 0) {
            break;
          }
        }
        if (codec.state() != CodecState::Running) {
          break;
        }
        off += piece;
      }
      REQUIRE(rec.errors.size() == 1);
      CHECK(rec.errors[0].status == c.status);
      CHECK(rec.errors[0].source == ErrorSource::Downstream);
      CHECK(std::string(rec.errors[0].counter_name()).rfind("downstream_rq_", 0) == 0);
      CHECK(rec.targets.size() == c.heads);  // never a second (smuggled) request
      CHECK(rec.completes == 0);
      CHECK(codec.state() == CodecState::Error);
      CHECK(codec.feed(p, c.in.size()) == 0);  // input is refused after an error
    }
  }
}

TEST_CASE("http: a local reply after a parse error closes the connection") {
  Counting rec;
  Http1ServerCodec codec(rec);
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n";
  codec.feed(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  REQUIRE(rec.errors.size() == 1);
  ResponseHead resp;
  resp.status = rec.errors[0].status;
  resp.content_length = 0;
  wp::buffer::Buffer out;
  codec.encode_head(resp, out);
  codec.encode_end(out);
  std::string s(out.length(), '\0');
  out.copy_out(s.data(), s.size());
  CHECK(s == "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  CHECK(codec.close_after_response());
}
