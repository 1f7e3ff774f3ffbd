// HTTP/1.1 codec: parsing (server and client roles) fed whole, byte by byte and in random splits.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "waypoint/http/http1_codec.h"

namespace {

using namespace wp::http;

std::string to_string(const HeaderMap& h) {
  std::string s;
  for (const Header& f : h) {
    s += f.name + "=" + f.value + ";";
  }
  return s;
}

// Records events as text; consecutive body pieces are merged so that splits do not matter.
template <class Head>
struct Recorder : Http1Callbacks<Head> {
  std::vector<std::string> events;
  std::vector<Head> heads;
  std::vector<CodecError> errors;
  size_t completes = 0;
  size_t body_bytes = 0;
  std::vector<const uint8_t*> body_slices;  // where each body slice handed over lived
  bool keep_body_text = true;

  void on_head(Head&& h) override {
    if constexpr (std::is_same_v<Head, RequestHead>) {
      events.push_back("head " + h.method + " " + h.target + " host=" + h.authority +
                       " v=" + (h.version == Version::Http11 ? "1.1" : "1.0") +
                       " cl=" + (h.content_length ? std::to_string(*h.content_length) : "-") +
                       " chunked=" + std::to_string(h.chunked) + " ka=" + std::to_string(h.keep_alive) +
                       " expect=" + std::to_string(h.expect_continue) + " [" + to_string(h.headers) + "]");
    } else {
      events.push_back("head " + std::to_string(h.status) + " " + h.reason +
                       " v=" + (h.version == Version::Http11 ? "1.1" : "1.0") +
                       " cl=" + (h.content_length ? std::to_string(*h.content_length) : "-") +
                       " chunked=" + std::to_string(h.chunked) + " ka=" + std::to_string(h.keep_alive) + " [" +
                       to_string(h.headers) + "]");
    }
    heads.push_back(std::move(h));
  }
  void on_body(wp::buffer::Buffer& b) override {
    body_bytes += b.length();
    b.for_each([&](const uint8_t* d, size_t n) {
      body_slices.push_back(d);
      if (!keep_body_text) {
        return;
      }
      if (events.empty() || events.back().rfind("body ", 0) != 0) {
        events.push_back("body ");
      }
      events.back().append(reinterpret_cast<const char*>(d), n);
    });
    b.clear();
  }
  void on_trailers(HeaderMap&& t) override { events.push_back("trailers [" + to_string(t) + "]"); }
  void on_message_complete() override {
    ++completes;
    events.push_back("complete");
  }
  void on_error(const CodecError& e) override {
    errors.push_back(e);
    events.push_back("error " + std::to_string(e.status) + " " + e.counter_name() + " " + e.reason);
  }
};

using ServerRecorder = Recorder<RequestHead>;
using ClientRecorder = Recorder<ResponseHead>;

enum class Split { Whole, Bytes, Random };

std::vector<size_t> split_sizes(size_t len, Split split, uint32_t seed) {
  std::vector<size_t> out;
  if (split == Split::Whole) {
    out.push_back(len);
  } else if (split == Split::Bytes) {
    out.assign(len, 1);
  } else {
    std::mt19937 rng(seed);
    size_t left = len;
    while (left > 0) {
      size_t n = std::min<size_t>(left, 1 + rng() % 23);
      out.push_back(n);
      left -= n;
    }
  }
  return out;
}

// Feeds `in` in pieces; resumes after each completed message (answering is the caller's business).
template <class Codec, class Rec>
void drive(Codec& codec, Rec& rec, const std::string& in, Split split, uint32_t seed = 1) {
  const auto* base = reinterpret_cast<const uint8_t*>(in.data());
  size_t off = 0;
  for (size_t piece : split_sizes(in.size(), split, seed)) {
    size_t done = 0;
    while (done < piece) {
      size_t n = codec.feed(base + off + done, piece - done);
      done += n;
      if (codec.state() == CodecState::Error) {
        return;
      }
      if constexpr (std::is_same_v<Codec, Http1ServerCodec>) {
        if (codec.state() == CodecState::Paused) {
          codec.resume();
          continue;
        }
      }
      if (n == 0) {
        FAIL("feed made no progress");
      }
    }
    off += piece;
  }
}

std::vector<std::string> parse_requests(const std::string& in, Split split, uint32_t seed = 1) {
  ServerRecorder rec;
  Http1ServerCodec codec(rec);
  drive(codec, rec, in, split, seed);
  return rec.events;
}

// Every split must give the same events; returns them.
std::vector<std::string> parse_requests_all_splits(const std::string& in) {
  auto whole = parse_requests(in, Split::Whole);
  CHECK(parse_requests(in, Split::Bytes) == whole);
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    CHECK(parse_requests(in, Split::Random, seed) == whole);
  }
  return whole;
}

std::vector<std::string> parse_responses(const std::vector<std::string>& methods, const std::string& in, Split split,
                                         uint32_t seed = 1, bool finish = false) {
  ClientRecorder rec;
  Http1ClientCodec codec(rec);
  wp::buffer::Buffer sink;
  for (const std::string& m : methods) {
    RequestHead r;
    r.method = m;
    r.target.assign(1, '/');
    r.authority.assign(1, 'a');
    codec.encode_head(r, sink);
    codec.encode_end(sink);
  }
  drive(codec, rec, in, split, seed);
  if (finish) {
    codec.finish();
  }
  return rec.events;
}

std::vector<std::string> parse_responses_all_splits(const std::vector<std::string>& methods, const std::string& in,
                                                    bool finish = false) {
  auto whole = parse_responses(methods, in, Split::Whole, 1, finish);
  CHECK(parse_responses(methods, in, Split::Bytes, 1, finish) == whole);
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    CHECK(parse_responses(methods, in, Split::Random, seed, finish) == whole);
  }
  return whole;
}

const uint8_t* bytes(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

}  // namespace

TEST_CASE("http: a GET request parses into the model in any split") {
  auto ev = parse_requests_all_splits(
      "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nX-Foo:  bar \r\n"
      "Accept: */*\r\nX-Empty:\r\n\r\n");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0] ==
        "head GET /a/b?c=d host=example.com:8080 v=1.1 cl=- chunked=0 ka=1 expect=0 "
        "[host=example.com:8080;x-foo=bar;accept=*/*;x-empty=;]");
  CHECK(ev[1] == "complete");
}

TEST_CASE("http: HTTP/1.0 requests: no Host needed, keep-alive only when asked") {
  auto ev = parse_requests_all_splits("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].find("host= v=1.0") != std::string::npos);
  CHECK(ev[0].find("ka=0") != std::string::npos);
  ev = parse_requests_all_splits("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n");
  REQUIRE(ev.size() == 4);
  CHECK(ev[0].find("ka=1") != std::string::npos);
  CHECK(ev[2].find("head GET /2") == 0);
}

TEST_CASE("http: leading empty lines before a request are skipped") {
  auto ev = parse_requests_all_splits("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(ev.size() == 2);
  CHECK(ev[1] == "complete");
}

TEST_CASE("http: content-length bodies of 0 B, 1 B and 1 MiB are streamed in place") {
  auto ev = parse_requests_all_splits("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].find("cl=0") != std::string::npos);
  ev = parse_requests_all_splits(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(ev.size() == 5);
  CHECK(ev[1] == "body x");
  CHECK(ev[3].rfind("head GET /next", 0) == 0);

  std::string big(1 << 20, 'z');
  for (size_t i = 0; i < big.size(); i += 997) {
    big[i] = static_cast<char>('a' + i % 26);
  }
  std::string in = "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n" + big;
  for (Split split : {Split::Whole, Split::Random}) {
    ServerRecorder rec;
    Http1ServerCodec codec(rec);
    drive(codec, rec, in, split, 7);
    REQUIRE(rec.events.size() == 3);
    CHECK(rec.events[1] == "body " + big);
    CHECK(rec.completes == 1);
  }
  // Fed in 64 KiB reads from a reused read buffer: the body is delivered per read, never held.
  ServerRecorder rec;
  rec.keep_body_text = false;
  Http1ServerCodec codec(rec);
  std::vector<uint8_t> read_buf(65536);
  size_t off = 0;
  size_t max_after_feed = 0;
  while (off < in.size()) {
    size_t n = std::min(read_buf.size(), in.size() - off);
    std::memcpy(read_buf.data(), in.data() + off, n);
    size_t before = rec.body_bytes;
    REQUIRE(codec.feed(read_buf.data(), n) == n);
    off += n;
    if (off > in.size() - big.size()) {
      // All body bytes of this read were delivered during this feed call.
      size_t body_in_read = std::min(n, off - (in.size() - big.size()));
      CHECK(rec.body_bytes - before == body_in_read);
    }
    max_after_feed = std::max(max_after_feed, rec.body_bytes);
  }
  CHECK(rec.body_bytes == big.size());
  CHECK(rec.completes == 1);
}

TEST_CASE("http: fed a Buffer, body slices are moved to on_body and never copied") {
  using wp::buffer::Buffer;
  // The input as a tunnel delivers it: the head (and the body's first bytes) in one slice, then
  // 16 KiB slices of body only. Content-Length and chunked (a chunk per slice) alike.
  for (bool chunked : {false, true}) {
    const size_t kSlices = 8;
    const size_t kSlice = wp::buffer::Slice::kLarge;
    std::string head = "PUT /big HTTP/1.1\r\nHost: a\r\n";
    head += chunked ? "Transfer-Encoding: chunked\r\n\r\n" + std::string("4000\r\n")
                    : "Content-Length: " + std::to_string(kSlices * kSlice) + "\r\n\r\n";
    Buffer in;
    std::vector<const uint8_t*> body_ptrs;  // the input slices that are body only
    std::string expect;
    for (size_t i = 0; i < kSlices; ++i) {
      std::string piece(kSlice, static_cast<char>('a' + i));
      expect += piece;
      if (i == 0) {
        // The first chunk's data is split: its start rides with the head.
        Buffer first;
        std::string lead = head + piece.substr(0, 100);
        first.append(lead.data(), lead.size());
        in.move_from(first);
        Buffer rest;
        rest.append(piece.data() + 100, piece.size() - 100);
        body_ptrs.push_back(rest.front().data());
        in.move_from(rest);
      } else {
        if (chunked) {
          Buffer framing;
          const std::string line = "\r\n4000\r\n";
          framing.append(line.data(), line.size());
          in.move_from(framing);
        }
        Buffer slice;
        slice.append(piece.data(), piece.size());
        body_ptrs.push_back(slice.front().data());
        in.move_from(slice);
      }
    }
    if (chunked) {
      Buffer end;
      const std::string last = "\r\n0\r\n\r\n";
      end.append(last.data(), last.size());
      in.move_from(end);
    }
    ServerRecorder rec;
    Http1ServerCodec codec(rec);
    size_t fed = 0;
    const size_t total = in.length();
    while (!in.empty()) {
      size_t before = in.length();
      size_t n = codec.feed(in);
      fed += n;
      REQUIRE(in.length() == before - n);  // what was consumed left the input, moved or drained
      if (codec.state() == CodecState::Paused) {
        codec.resume();
      }
      REQUIRE(n > 0);
    }
    CHECK(fed == total);
    REQUIRE(rec.events.size() == 3);
    CHECK(rec.events[1] == "body " + expect);
    CHECK(rec.completes == 1);
    for (const uint8_t* p : body_ptrs) {
      CHECK(std::find(rec.body_slices.begin(), rec.body_slices.end(), p) != rec.body_slices.end());
    }
  }
}

TEST_CASE("http: chunked request bodies with extensions and trailers") {
  auto ev = parse_requests_all_splits(
      "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
      "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n"
      "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(ev.size() == 6);
  CHECK(ev[0].find("cl=- chunked=1") != std::string::npos);
  CHECK(ev[1] == "body hello 0123456789");
  CHECK(ev[2] == "trailers [x-sum=42;x-other=y;]");
  CHECK(ev[3] == "complete");
  CHECK(ev[4].rfind("head GET /after", 0) == 0);

  ev = parse_requests_all_splits("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n");
  REQUIRE(ev.size() == 2);  // empty chunked body; "Chunked" is accepted (codings are case-insensitive)
  CHECK(ev[1] == "complete");

  std::string big;
  std::string expect;
  for (int i = 0; i < 64; ++i) {
    std::string piece(16384, static_cast<char>('a' + i % 26));
    big += "4000\r\n" + piece + "\r\n";
    expect += piece;
  }
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + big + "0\r\n\r\n";
  ServerRecorder rec;
  Http1ServerCodec codec(rec);
  drive(codec, rec, in, Split::Random, 3);
  REQUIRE(rec.events.size() == 3);
  CHECK(rec.events[1] == "body " + expect);
}

TEST_CASE("http: pipelined requests are paused after each message and answered in order") {
  std::string in =
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
      "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
  ServerRecorder rec;
  Http1ServerCodec codec(rec);
  std::string wire;
  size_t off = 0;
  int answered = 0;
  while (off < in.size()) {
    size_t n = codec.feed(bytes(in) + off, in.size() - off);
    off += n;
    REQUIRE(codec.state() == CodecState::Paused);
    // Exactly one more request is complete; nothing of the next one has been seen yet.
    REQUIRE(rec.completes == static_cast<size_t>(answered + 1));
    REQUIRE(rec.heads.size() == static_cast<size_t>(answered + 1));
    CHECK(codec.feed(bytes(in) + off, in.size() - off) == 0);  // refused while paused
    ResponseHead resp;
    std::string body = "r" + std::to_string(answered + 1);
    resp.content_length = body.size();
    wp::buffer::Buffer out;
    codec.encode_head(resp, out);
    codec.encode_body(bytes(body), body.size(), out);
    CHECK(codec.encode_end(out));
    std::string chunk(out.length(), '\0');
    out.copy_out(chunk.data(), chunk.size());
    wire += chunk;
    ++answered;
    codec.resume();
  }
  CHECK(answered == 3);
  CHECK(rec.heads[0].target == "/1");
  CHECK(rec.heads[1].target == "/2");
  CHECK(rec.heads[2].target == "/3");
  CHECK(wire ==
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nr1"
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nr2"
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nr3");
}

TEST_CASE("http: nothing after a Connection: close request is parsed") {
  std::string in = "GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  auto ev = parse_requests_all_splits(in);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].find("ka=0") != std::string::npos);
  ServerRecorder rec;
  Http1ServerCodec codec(rec);
  CHECK(codec.feed(bytes(in), in.size()) == in.size());  // the rest is consumed and discarded
  CHECK(codec.state() == CodecState::Closed);
  CHECK(codec.feed(bytes(in), in.size()) == in.size());
  CHECK(rec.heads.size() == 1);
  wp::buffer::Buffer out;
  ResponseHead resp;
  resp.content_length = 0;
  codec.encode_head(resp, out);
  CHECK(codec.close_after_response());
}

TEST_CASE("http: Expect: 100-continue is exposed and answered") {
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi";
  auto ev = parse_requests_all_splits(in);
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].find("expect=1") != std::string::npos);
  wp::buffer::Buffer out;
  Http1ServerCodec::encode_continue(out);
  std::string s(out.length(), '\0');
  out.copy_out(s.data(), s.size());
  CHECK(s == "HTTP/1.1 100 Continue\r\n\r\n");
  // Expect on HTTP/1.0 is ignored; an unknown expectation is refused.
  ev = parse_requests_all_splits("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
  CHECK(ev[0].find("expect=0") != std::string::npos);
  ev = parse_requests_all_splits("GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].rfind("error 417 downstream_rq_expectation_failed", 0) == 0);
}

TEST_CASE("http: an Upgrade request is handled as plain HTTP") {
  auto ev = parse_requests_all_splits(
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(ev.size() == 4);
  CHECK(ev[2].rfind("head GET /next", 0) == 0);
}

TEST_CASE("http: a request cut short by the end of the connection is an error") {
  ServerRecorder rec;
  Http1ServerCodec codec(rec);
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc";
  CHECK(codec.feed(bytes(in), in.size()) == in.size());
  CHECK_FALSE(codec.finish());
  REQUIRE(rec.errors.size() == 1);
  CHECK(std::string(rec.errors[0].counter_name()) == "downstream_rq_incomplete");
  // A clean close between requests is fine.
  ServerRecorder rec2;
  Http1ServerCodec idle(rec2);
  CHECK(idle.finish());
  CHECK(rec2.errors.empty());
}

// ---------------------------------------------------------------------------------------------
// Limits

TEST_CASE("http: request limits trip with their status and counter") {
  Http1Limits limits;
  limits.max_head_bytes = 1024;
  limits.max_headers = 10;
  limits.max_url_bytes = 100;
  struct Case {
    std::string in;
    int status;
    std::string counter;
  };
  std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(1100, 'x') + "\r\n\r\n", 431,
       "downstream_rq_header_bytes_overflow"},
      {"GET /" + std::string(2000, 'p') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414, "downstream_rq_url_overflow"},
      {"GET /" + std::string(200, 'p') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414, "downstream_rq_url_overflow"},
      {"GET / HTTP/1.1\r\nHost: a\r\n" +
           [] {
             std::string s;
             for (int i = 0; i < 11; ++i) {
               s += "X-" + std::to_string(i) + ": v\r\n";
             }
             return s;
           }() +
           "\r\n",
       431, "downstream_rq_header_count_overflow"},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + std::string(1100, 't') +
           "\r\n\r\n",
       431, "downstream_rq_header_bytes_overflow"},
  };
  for (const Case& c : cases) {
    for (Split split : {Split::Whole, Split::Bytes, Split::Random}) {
      ServerRecorder rec;
      Http1ServerCodec codec(rec, limits);
      drive(codec, rec, c.in, split, 11);
      REQUIRE(rec.errors.size() == 1);
      CHECK(rec.errors[0].status == c.status);
      CHECK(std::string(rec.errors[0].counter_name()) == c.counter);
      CHECK(rec.completes == 0);
    }
  }
  // Exactly at the limits is fine.
  std::string ok = "GET /" + std::string(99, 'p') + " HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 9; ++i) {
    ok += "X-" + std::to_string(i) + ": v\r\n";
  }
  ok += "\r\n";
  ServerRecorder rec;
  Http1ServerCodec codec(rec, limits);
  drive(codec, rec, ok, Split::Bytes);
  CHECK(rec.errors.empty());
  CHECK(rec.completes == 1);
}

// ---------------------------------------------------------------------------------------------
// Client side: responses

TEST_CASE("http: responses with content-length, chunked and trailers in any split") {
  auto ev = parse_responses_all_splits(
      {"GET", "GET"},
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello"
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n");
  REQUIRE(ev.size() == 7);
  CHECK(ev[0] == "head 200 OK v=1.1 cl=5 chunked=0 ka=1 [content-length=5;server=x;]");
  CHECK(ev[1] == "body hello");
  CHECK(ev[3] == "head 404 Not Found v=1.1 cl=- chunked=1 ka=1 [transfer-encoding=chunked;]");
  CHECK(ev[4] == "body abc");
  CHECK(ev[5] == "trailers [x-t=1;]");
  CHECK(ev[6] == "complete");
}

TEST_CASE("http: HEAD, 204 and 304 responses have no body") {
  auto ev = parse_responses_all_splits({"HEAD", "GET", "GET", "GET"},
                                       "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                                       "HTTP/1.1 204 No Content\r\n\r\n"
                                       "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
                                       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  REQUIRE(ev.size() == 9);
  CHECK(ev[0].find("cl=100") != std::string::npos);
  CHECK(ev[1] == "complete");
  CHECK(ev[2].rfind("head 204", 0) == 0);
  CHECK(ev[3] == "complete");
  CHECK(ev[4].rfind("head 304", 0) == 0);
  CHECK(ev[5] == "complete");
  CHECK(ev[7] == "body ok");
}

TEST_CASE("http: 1xx responses precede the final response") {
  auto ev = parse_responses_all_splits({"POST"},
                                       "HTTP/1.1 100 Continue\r\n\r\n"
                                       "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                       "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(ev.size() == 4);
  CHECK(ev[0].rfind("head 100 Continue", 0) == 0);
  CHECK(ev[1].rfind("head 103 Early Hints", 0) == 0);
  CHECK(ev[2].rfind("head 201", 0) == 0);
  CHECK(ev[3] == "complete");
}

TEST_CASE("http: a close-delimited HTTP/1.0 response ends at finish()") {
  auto ev = parse_responses_all_splits({"GET"}, "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nsome body bytes", true);
  REQUIRE(ev.size() == 3);
  CHECK(ev[0] == "head 200 OK v=1.0 cl=- chunked=0 ka=0 [server=old;]");
  CHECK(ev[1] == "body some body bytes");
  CHECK(ev[2] == "complete");
  // A truncated content-length response is an error at finish().
  ev = parse_responses({"GET"}, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Split::Whole, 1, true);
  REQUIRE(ev.size() == 3);
  CHECK(ev[2].rfind("error 502 upstream_rs_incomplete", 0) == 0);
}

TEST_CASE("http: bad responses are upstream errors (502)") {
  struct Case {
    std::string in;
    std::string counter;
  };
  std::vector<Case> cases = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "upstream_rs_framing_rejected"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       "upstream_rs_framing_rejected"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", "upstream_rs_framing_rejected"},
      {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "upstream_rs_framing_rejected"},
      {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", "upstream_rs_malformed"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\n", "upstream_rs_unexpected"},
      {"HTTP/2.0 200 OK\r\n\r\n", "upstream_rs_unsupported_version"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
       "upstream_rs_unexpected"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", "upstream_rs_malformed"},
  };
  for (const Case& c : cases) {
    INFO(c.in);
    for (Split split : {Split::Whole, Split::Bytes}) {
      ClientRecorder rec;
      Http1ClientCodec codec(rec);
      wp::buffer::Buffer sink;
      RequestHead r;
      r.method = "GET";
      r.target = "/";
      r.authority = "a";
      codec.encode_head(r, sink);
      drive(codec, rec, c.in, split);
      REQUIRE(rec.errors.size() == 1);
      CHECK(rec.errors[0].status == 502);
      CHECK(rec.errors[0].source == ErrorSource::Upstream);
      CHECK(std::string(rec.errors[0].counter_name()) == c.counter);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Mutation run (a deterministic mini-fuzzer): whatever the bytes, the events do not depend on how
// the input is split, and a smuggled second request never appears after an error.

TEST_CASE("http: mutated requests give the same events in every split") {
  const std::vector<std::string> seeds = {
      "GET /a?b HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
      "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
  };
  const char interesting[] = {'\r', '\n', ' ', '\t', ':', '0', 'a', '\0', ',', ';', 'G', '\x7f', '\x80'};
  std::mt19937 rng(12345);
  size_t errors = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    std::string in = seeds[rng() % seeds.size()];
    int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations && !in.empty(); ++m) {
      size_t at = rng() % in.size();
      char c = interesting[rng() % sizeof(interesting)];
      switch (rng() % 3) {
        case 0:
          in[at] = c;
          break;
        case 1:
          in.insert(in.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          in.erase(at, 1);
          break;
      }
    }
    INFO(in);
    auto whole = parse_requests(in, Split::Whole);
    REQUIRE(parse_requests(in, Split::Bytes) == whole);
    REQUIRE(parse_requests(in, Split::Random, static_cast<uint32_t>(iter)) == whole);
    for (size_t i = 0; i < whole.size(); ++i) {
      if (whole[i].rfind("error", 0) == 0) {
        ++errors;
        CHECK(i + 1 == whole.size());  // nothing after an error
      }
    }
  }
  CHECK(errors > 100);  // the mutations did reach the error paths
}

TEST_CASE("http: mutated responses give the same events in every split") {
  const std::vector<std::string> seeds = {
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
      "HTTP/1.0 200 OK\r\nServer: s\r\n\r\nbody",
  };
  const char interesting[] = {'\r', '\n', ' ', '\t', ':', '0', '1', '\0', ','};
  std::mt19937 rng(777);
  for (int iter = 0; iter < 800; ++iter) {
    std::string in = seeds[rng() % seeds.size()];
    size_t at = rng() % in.size();
    char c = interesting[rng() % sizeof(interesting)];
    switch (rng() % 3) {
      case 0:
        in[at] = c;
        break;
      case 1:
        in.insert(in.begin() + static_cast<std::ptrdiff_t>(at), c);
        break;
      default:
        in.erase(at, 1);
        break;
    }
    INFO(in);
    auto whole = parse_responses({"GET", "GET"}, in, Split::Whole, 1, true);
    REQUIRE(parse_responses({"GET", "GET"}, in, Split::Bytes, 1, true) == whole);
    REQUIRE(parse_responses({"GET", "GET"}, in, Split::Random, static_cast<uint32_t>(iter), true) == whole);
  }
}

TEST_CASE("http: OPTIONS * is the only asterisk-form target") {
  auto ev = parse_requests_all_splits("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].rfind("head OPTIONS * host=a", 0) == 0);
}

TEST_CASE("http: response head limits are upstream errors with their own counters") {
  Http1Limits limits;
  limits.max_head_bytes = 256;
  limits.max_headers = 4;
  struct Case {
    std::string in;
    std::string counter;
  };
  std::vector<Case> cases = {
      {"HTTP/1.1 200 " + std::string(300, 'r') + "\r\n\r\n", "upstream_rs_header_bytes_overflow"},
      {"HTTP/1.1 200 OK\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", "upstream_rs_header_count_overflow"},
  };
  for (const Case& c : cases) {
    ClientRecorder rec;
    Http1ClientCodec codec(rec, limits);
    wp::buffer::Buffer sink;
    RequestHead r;
    r.method = "GET";
    r.target = "/";
    r.authority = "a";
    codec.encode_head(r, sink);
    drive(codec, rec, c.in, Split::Bytes);
    REQUIRE(rec.errors.size() == 1);
    CHECK(rec.errors[0].status == 502);
    CHECK(std::string(rec.errors[0].counter_name()) == c.counter);
  }
}
