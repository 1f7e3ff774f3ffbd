// h2c codecs: a client codec wired to a server codec in memory (each one's output() fed to the
// other until both are quiet), plus hand-made bytes for the error paths.
#include <nghttp2/nghttp2.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "support/buffer_text.h"
#include "waypoint/http/h2c_codec.h"

namespace {

using namespace wp::http;
using wp::buffer::Buffer;

std::string to_string(const HeaderMap& h) {
  std::string s;
  for (const Header& f : h) {
    s += f.name + "=" + f.value + ";";
  }
  return s;
}

std::string text(const Buffer& b) {
  std::string s(b.length(), '\0');
  b.copy_out(s.data(), s.size());
  return s;
}

Buffer buf(const std::string& s) {
  Buffer b;
  b.append(s.data(), s.size());
  return b;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + i / 4099) & 0xff);
  }
  return s;
}

struct ServerRec : H2cServerCallbacks {
  H2cServerCodec* codec = nullptr;
  std::vector<std::string> events;  // text log (body pieces merged per stream in `bodies`)
  std::map<int32_t, RequestHead> heads;
  std::map<int32_t, std::string> bodies;
  std::map<int32_t, HeaderMap> trailers;
  std::map<int32_t, bool> ended;
  std::map<int32_t, uint32_t> closed;
  std::vector<CodecError> errors;
  std::vector<int32_t> order;  // streams in on_request order
  bool auto_consume = true;
  std::function<void(int32_t)> on_req;
  std::function<void(int32_t, const uint8_t*, size_t)> on_body;
  std::function<void(int32_t)> on_end;
  std::function<void(int32_t)> on_drained;

  void on_request(int32_t s, RequestHead&& h, bool) override {
    events.push_back("request " + std::to_string(s) + " " + h.method + " " + h.target + " @" + h.authority + " cl=" +
                     (h.content_length ? std::to_string(*h.content_length) : "-") + " [" + to_string(h.headers) + "]");
    heads[s] = std::move(h);
    order.push_back(s);
    if (on_req) {
      on_req(s);
    }
  }
  void on_request_body(int32_t s, wp::buffer::Buffer& b) override {
    const std::string text = wp::test::take_text(b);
    const auto* d = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    bodies[s] += text;
    if (events.empty() || events.back().rfind("body ", 0) != 0) {
      events.push_back("body ");
    }
    events.back() += text;
    if (on_body) {
      on_body(s, d, n);
    }
    if (auto_consume) {
      codec->consume(s, n);
    }
  }
  void on_request_trailers(int32_t s, HeaderMap&& t) override {
    events.push_back("trailers [" + to_string(t) + "]");
    trailers[s] = std::move(t);
  }
  void on_request_end(int32_t s) override {
    events.push_back("end " + std::to_string(s));
    ended[s] = true;
    if (on_end) {
      on_end(s);
    }
  }
  void on_stream_closed(int32_t s, uint32_t code) override {
    events.push_back("closed " + std::to_string(s) + " " + std::to_string(code));
    CHECK(closed.count(s) == 0);
    closed[s] = code;
  }
  void on_stream_drained(int32_t s) override {
    if (on_drained) {
      on_drained(s);
    }
  }
  void on_error(const CodecError& e) override { errors.push_back(e); }
};

struct ClientRec : H2cClientCallbacks {
  H2cClientCodec* codec = nullptr;
  std::map<int32_t, ResponseHead> heads;
  std::map<int32_t, int> head_count;
  std::map<int32_t, std::string> bodies;
  std::map<int32_t, HeaderMap> trailers;
  std::map<int32_t, bool> ended;
  std::map<int32_t, uint32_t> closed;
  std::vector<CodecError> errors;
  size_t capacity_calls = 0;
  bool auto_consume = true;
  std::function<void(int32_t)> on_drained;

  void on_response(int32_t s, ResponseHead&& h) override {
    ++head_count[s];
    heads[s] = std::move(h);
  }
  void on_response_body(int32_t s, wp::buffer::Buffer& b) override {
    const size_t n = b.length();
    bodies[s] += wp::test::take_text(b);
    if (auto_consume) {
      codec->consume(s, n);
    }
  }
  void on_response_trailers(int32_t s, HeaderMap&& t) override { trailers[s] = std::move(t); }
  void on_response_end(int32_t s) override { ended[s] = true; }
  void on_stream_closed(int32_t s, uint32_t code) override {
    CHECK(closed.count(s) == 0);
    closed[s] = code;
  }
  void on_stream_drained(int32_t s) override {
    if (on_drained) {
      on_drained(s);
    }
  }
  void on_capacity() override { ++capacity_calls; }
  void on_error(const CodecError& e) override { errors.push_back(e); }
};

template <class Codec>
bool feed_all(Codec& c, Buffer& b) {
  bool ok = true;
  while (!b.empty()) {
    auto f = b.front();
    ok = c.feed(f.data(), f.size()) && ok;
    b.drain(f.size());
  }
  return ok;
}

struct Pair {
  explicit Pair(const H2cSettings& server_settings = {}, const H2cSettings& client_settings = {})
      : server(srec, server_settings), client(crec, client_settings) {
    srec.codec = &server;
    crec.codec = &client;
  }
  // Shuttles bytes both ways until neither side has anything to say.
  void pump() {
    for (int i = 0; i < 200000; ++i) {
      Buffer a;
      Buffer b;
      client.output(a);
      server.output(b);
      if (a.empty() && b.empty()) {
        CHECK_FALSE(client.want_output());
        CHECK_FALSE(server.want_output());
        return;
      }
      c2s += a.length();
      feed_all(server, a);
      feed_all(client, b);
    }
    FAIL("pump did not settle");
  }

  ServerRec srec;
  ClientRec crec;
  H2cServerCodec server;
  H2cClientCodec client;
  size_t c2s = 0;
};

RequestHead get(const std::string& target, const std::string& authority = "svc.local") {
  RequestHead h;
  h.method = "GET";
  h.target = target;
  h.authority = authority;
  return h;
}

ResponseHead ok_head(std::optional<uint64_t> cl = std::nullopt) {
  ResponseHead h;
  h.status = 200;
  h.content_length = cl;
  return h;
}

}  // namespace

TEST_CASE("h2c: GET round trip with headers") {
  Pair p;
  p.srec.on_req = [&](int32_t s) {
    // Answered from inside the callback; output() here is a no-op until feed() returns.
    ResponseHead h = ok_head(5);
    h.headers.add("x-resp", "yes");
    h.headers.add("cache-control", "no-store");
    p.server.respond(s, h, false);
    Buffer b = buf("hello");
    p.server.send_body(s, b, true);
    CHECK(b.empty());
    Buffer out;
    p.server.output(out);
    CHECK(out.empty());
  };
  RequestHead req = get("/a/b?c=d");
  req.headers.add("x-foo", "bar");
  req.headers.add("accept", "*/*");
  int32_t id = p.client.submit_request(req, true);
  REQUIRE(id == 1);
  CHECK(p.client.active_streams() == 1);
  p.pump();

  REQUIRE(p.srec.heads.count(id) == 1);
  const RequestHead& got = p.srec.heads[id];
  CHECK(got.method == "GET");
  CHECK(got.target == "/a/b?c=d");
  CHECK(got.authority == "svc.local");
  CHECK(to_string(got.headers) == "x-foo=bar;accept=*/*;");
  CHECK_FALSE(got.content_length.has_value());
  CHECK(p.srec.ended[id]);
  CHECK(p.srec.closed.at(id) == 0);

  REQUIRE(p.crec.heads.count(id) == 1);
  CHECK(p.crec.heads[id].status == 200);
  CHECK(to_string(p.crec.heads[id].headers) == "x-resp=yes;cache-control=no-store;content-length=5;");
  CHECK(p.crec.heads[id].content_length == 5u);
  CHECK(p.crec.bodies[id] == "hello");
  CHECK(p.crec.ended[id]);
  CHECK(p.crec.closed.at(id) == 0);
  CHECK(p.client.active_streams() == 0);
  CHECK(p.server.active_streams() == 0);
  CHECK(p.srec.errors.empty());
  CHECK(p.crec.errors.empty());
}

TEST_CASE("h2c: authority falls back to the host header") {
  Pair p;
  RequestHead req = get("/", "");
  req.headers.add("host", "from-host:8080");
  int32_t id = p.client.submit_request(req, true);
  p.pump();
  REQUIRE(p.srec.heads.count(id) == 1);
  CHECK(p.srec.heads[id].authority == "from-host:8080");  // sent as :authority
  CHECK_FALSE(p.srec.heads[id].headers.has("host"));
}

TEST_CASE("h2c: 3 MiB POST echoed back intact, receivers consume only what they passed on") {
  H2cSettings s;
  s.initial_window_size = 256 * 1024;
  s.connection_window_size = 1024 * 1024;
  Pair p(s, s);
  const std::string body = pattern(3 * 1024 * 1024 + 17);

  // The server echoes every byte; it reopens the window for a byte only once the echo of that byte
  // has been framed (on_stream_drained), like a proxy passing bytes on.
  p.srec.auto_consume = false;
  std::map<int32_t, size_t> received, consumed;
  size_t max_held = 0;
  p.srec.on_req = [&](int32_t id) {
    ResponseHead h = ok_head();
    p.server.respond(id, h, false);
  };
  p.srec.on_body = [&](int32_t id, const uint8_t* d, size_t n) {
    received[id] += n;
    Buffer b;
    b.append(d, n);
    p.server.send_body(id, b, false);
    max_held = std::max(max_held, received[id] - consumed[id]);
  };
  p.srec.on_end = [&](int32_t id) {
    Buffer empty;
    p.server.send_body(id, empty, true);
  };
  p.srec.on_drained = [&](int32_t id) {
    size_t passed_on = received[id] - p.server.pending_body(id);
    p.server.consume(id, passed_on - consumed[id]);
    consumed[id] = passed_on;
  };

  RequestHead req;
  req.method = "POST";
  req.target = "/upload";
  req.authority = "svc.local";
  req.content_length = body.size();
  int32_t id = p.client.submit_request(req, false);
  Buffer b = buf(body);
  p.client.send_body(id, b, true);
  CHECK(p.client.pending_body(id) == body.size());
  p.pump();

  REQUIRE(p.srec.heads.count(id) == 1);
  CHECK(p.srec.heads[id].content_length == body.size());
  CHECK(p.srec.bodies[id].size() == body.size());
  CHECK(p.srec.bodies[id] == body);
  CHECK(p.crec.bodies[id].size() == body.size());
  CHECK(p.crec.bodies[id] == body);
  CHECK(p.crec.ended[id]);
  CHECK(p.crec.closed.at(id) == 0);
  CHECK(p.srec.closed.at(id) == 0);
  CHECK(p.client.pending_body(id) == 0);
  // Never more than one stream window held unconsumed by the server.
  CHECK(max_held <= s.initial_window_size);
  CHECK(max_held > 0);
}

TEST_CASE("h2c: without consume() the sender stalls at the window and resumes after consume") {
  H2cSettings server_settings;
  server_settings.initial_window_size = 128 * 1024;
  server_settings.connection_window_size = 4 * 1024 * 1024;
  Pair p(server_settings);
  p.srec.auto_consume = false;
  const std::string body = pattern(3 * 1024 * 1024);

  size_t drained_calls = 0;
  p.crec.on_drained = [&](int32_t) { ++drained_calls; };
  RequestHead req;
  req.method = "PUT";
  req.target = "/blob";
  req.authority = "svc.local";
  int32_t id = p.client.submit_request(req, false);
  Buffer b = buf(body);
  p.client.send_body(id, b, true);
  p.pump();

  // Exactly one stream window got through, the rest waits queued in the client.
  CHECK(p.srec.bodies[id].size() == server_settings.initial_window_size);
  CHECK(p.client.pending_body(id) == body.size() - server_settings.initial_window_size);
  CHECK(drained_calls > 0);
  p.pump();  // nothing moves while nobody consumes
  CHECK(p.srec.bodies[id].size() == server_settings.initial_window_size);

  size_t consumed = 0;
  int rounds = 0;
  while (!p.srec.ended[id] && rounds++ < 1000) {
    size_t have = p.srec.bodies[id].size();
    p.server.consume(id, have - consumed);
    consumed = have;
    p.pump();
    CHECK(p.srec.bodies[id].size() - consumed <= server_settings.initial_window_size);
    CHECK(p.srec.bodies[id].size() > have);  // consuming let more through
  }
  CHECK(p.srec.ended[id]);
  CHECK(p.srec.bodies[id] == body);
  CHECK(p.client.pending_body(id) == 0);
  CHECK(rounds > 10);
}

TEST_CASE("h2c: 100 concurrent streams answered independently and out of order") {
  Pair p;
  std::vector<int32_t> ids;
  for (int i = 0; i < 100; ++i) {
    int32_t id = p.client.submit_request(get("/item/" + std::to_string(i)), true);
    REQUIRE(id > 0);
    ids.push_back(id);
  }
  // 100 is assumed until the server's SETTINGS arrive: no 101st stream.
  CHECK(p.client.available_streams() == 0);
  CHECK(p.client.submit_request(get("/too-many"), true) == -1);
  p.pump();
  REQUIRE(p.srec.heads.size() == 100);
  CHECK(p.server.active_streams() == 100);

  std::vector<int32_t> order = p.srec.order;
  std::mt19937 rng(42);
  std::shuffle(order.begin(), order.end(), rng);
  // Half get their heads now and bodies later, in another order; the rest answer in one go.
  for (size_t i = 0; i < order.size(); ++i) {
    int32_t s = order[i];
    ResponseHead h = ok_head();
    h.headers.add("x-stream", std::to_string(s));
    p.server.respond(s, h, false);
    if (i % 2 == 0) {
      Buffer b = buf("body of " + p.srec.heads[s].target);
      p.server.send_body(s, b, true);
    }
  }
  p.pump();
  std::shuffle(order.begin(), order.end(), rng);
  for (int32_t s : order) {
    if (!p.crec.ended[s]) {
      Buffer b = buf("late body of " + p.srec.heads[s].target);
      p.server.send_body(s, b, true);
    }
  }
  p.pump();

  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t id = ids[i];
    const std::string target = "/item/" + std::to_string(i);
    CHECK(p.srec.heads[id].target == target);
    CHECK(p.crec.heads[id].headers.get("x-stream") == std::to_string(id));
    const std::string& got = p.crec.bodies[id];
    CHECK((got == "body of " + target || got == "late body of " + target));
    CHECK(p.crec.closed.at(id) == 0);
  }
  CHECK(p.client.active_streams() == 0);
  CHECK(p.client.available_streams() == 100);
}

TEST_CASE("h2c: trailers both ways") {
  Pair p;
  p.srec.on_end = [&](int32_t s) {
    p.server.respond(s, ok_head(), false);
    Buffer b = buf("response-data");
    p.server.send_body(s, b, false);
    HeaderMap t;
    t.add("grpc-status", "0");
    t.add("grpc-message", "fine");
    t.add("connection", "close");  // hop-by-hop: dropped from trailers too
    p.server.send_trailers(s, t);
  };
  RequestHead req;
  req.method = "POST";
  req.target = "/pkg.Svc/Call";
  req.authority = "svc.local";
  req.headers.add("content-type", "application/grpc");
  req.headers.add("te", "trailers");
  int32_t id = p.client.submit_request(req, false);
  Buffer b = buf("request-data");
  p.client.send_body(id, b, false);
  HeaderMap t;
  t.add("x-checksum", "abc123");
  p.client.send_trailers(id, t);
  p.pump();

  CHECK(p.srec.bodies[id] == "request-data");
  CHECK(to_string(p.srec.trailers[id]) == "x-checksum=abc123;");
  CHECK(p.srec.ended[id]);
  CHECK(p.crec.bodies[id] == "response-data");
  CHECK(to_string(p.crec.trailers[id]) == "grpc-status=0;grpc-message=fine;");
  CHECK(p.crec.ended[id]);
  CHECK(p.crec.closed.at(id) == 0);
  CHECK(p.srec.closed.at(id) == 0);
}

TEST_CASE("h2c: trailers right after the head, without a body") {
  Pair p;
  p.srec.on_req = [&](int32_t s) {
    p.server.respond(s, ok_head(), false);
    HeaderMap t;
    t.add("grpc-status", "12");
    p.server.send_trailers(s, t);
  };
  int32_t id = p.client.submit_request(get("/x"), true);
  p.pump();
  CHECK(p.crec.heads[id].status == 200);
  CHECK(p.crec.bodies[id].empty());
  CHECK(to_string(p.crec.trailers[id]) == "grpc-status=12;");
  CHECK(p.crec.ended[id]);
  CHECK(p.crec.closed.at(id) == 0);
}

TEST_CASE("h2c: hop-by-hop fields, host and stale content-length are not sent") {
  Pair p;
  p.srec.on_req = [&](int32_t s) {
    ResponseHead h = ok_head(2);
    h.headers.add("connection", "close, x-private");
    h.headers.add("x-private", "secret");
    h.headers.add("transfer-encoding", "chunked");
    h.headers.add("keep-alive", "timeout=5");
    h.headers.add("content-length", "999");
    h.headers.add("x-ok", "1");
    p.server.respond(s, h, false);
    Buffer b = buf("ok");
    p.server.send_body(s, b, true);
  };
  RequestHead req;
  req.method = "POST";
  req.target = "/";
  req.authority = "svc.local";
  req.content_length = 3;
  req.headers.add("host", "svc.local");
  req.headers.add("connection", "keep-alive, x-drop");
  req.headers.add("x-drop", "1");
  req.headers.add("keep-alive", "timeout=5");
  req.headers.add("proxy-connection", "keep-alive");
  req.headers.add("transfer-encoding", "chunked");
  req.headers.add("upgrade", "websocket");
  req.headers.add("te", "gzip, trailers");
  req.headers.add("content-length", "999");
  req.headers.add("x-keep", "1");
  int32_t id = p.client.submit_request(req, false);
  Buffer b = buf("abc");
  p.client.send_body(id, b, true);
  p.pump();

  REQUIRE(p.srec.heads.count(id) == 1);
  // nghttp2 would have reset the stream had any connection-specific field crossed.
  CHECK(to_string(p.srec.heads[id].headers) == "te=trailers;x-keep=1;content-length=3;");
  CHECK(p.srec.heads[id].content_length == 3u);
  CHECK(p.srec.bodies[id] == "abc");
  REQUIRE(p.crec.heads.count(id) == 1);
  CHECK(to_string(p.crec.heads[id].headers) == "x-ok=1;content-length=2;");
  CHECK(p.crec.bodies[id] == "ok");
  CHECK(p.crec.closed.at(id) == 0);
}

TEST_CASE("h2c: 1xx responses are skipped by the client") {
  Pair p;
  p.srec.on_req = [&](int32_t s) {
    ResponseHead c;
    c.status = 100;
    p.server.respond(s, c, false);
    ResponseHead early;
    early.status = 103;
    early.headers.add("link", "</style.css>; rel=preload");
    p.server.respond(s, early, false);
  };
  RequestHead req = get("/");
  req.headers.add("expect", "100-continue");
  int32_t id = p.client.submit_request(req, true);
  p.pump();
  CHECK(p.srec.heads[id].expect_continue);
  CHECK(p.crec.head_count[id] == 0);

  ResponseHead h = ok_head();
  h.headers.add("x-final", "1");
  p.server.respond(id, h, true);
  p.pump();
  CHECK(p.crec.head_count[id] == 1);
  CHECK(p.crec.heads[id].status == 200);
  CHECK(to_string(p.crec.heads[id].headers) == "x-final=1;");
  CHECK(p.crec.ended[id]);
  CHECK(p.crec.closed.at(id) == 0);
}

TEST_CASE("h2c: a request header block over the limit is answered 431 by the codec") {
  H2cSettings s;
  s.max_header_list_bytes = 4096;
  Pair p(s);
  size_t requests = 0;
  p.srec.on_req = [&](int32_t) { ++requests; };

  SECTION("without a body") {
    RequestHead req = get("/big");
    req.headers.add("x-big", std::string(5000, 'a'));
    int32_t id = p.client.submit_request(req, true);
    p.pump();
    CHECK(requests == 0);
    CHECK(p.srec.closed.empty());
    REQUIRE(p.crec.heads.count(id) == 1);
    CHECK(p.crec.heads[id].status == 431);
    CHECK(p.crec.ended[id]);
    CHECK(p.crec.closed.at(id) == 0);
  }
  SECTION("with a body still coming: 431 then RST_STREAM(NO_ERROR)") {
    RequestHead req = get("/big");
    req.method = "POST";
    for (int i = 0; i < 50; ++i) {
      req.headers.add("x-field-" + std::to_string(i), std::string(100, 'b'));
    }
    int32_t id = p.client.submit_request(req, false);
    Buffer b = buf(pattern(100000));
    p.client.send_body(id, b, false);
    p.pump();
    CHECK(requests == 0);
    CHECK(p.srec.closed.empty());
    REQUIRE(p.crec.heads.count(id) == 1);
    CHECK(p.crec.heads[id].status == 431);
    CHECK(p.crec.closed.count(id) == 1);
    CHECK(p.server.active_streams() == 0);
  }
  // The session is fine: a normal request still goes through.
  p.srec.on_req = [&](int32_t id) { p.server.respond(id, ok_head(), true); };
  int32_t id2 = p.client.submit_request(get("/small"), true);
  p.pump();
  CHECK(p.crec.heads[id2].status == 200);
  CHECK(p.srec.errors.empty());
  CHECK(p.crec.errors.empty());
}

TEST_CASE("h2c: a response header block over the client's limit resets the stream") {
  H2cSettings cs;
  cs.max_header_list_bytes = 4096;
  Pair p({}, cs);
  p.srec.on_req = [&](int32_t s) {
    ResponseHead h = ok_head();
    h.headers.add("x-big", std::string(5000, 'z'));
    p.server.respond(s, h, true);
  };
  int32_t id = p.client.submit_request(get("/"), true);
  p.pump();
  CHECK(p.crec.head_count[id] == 0);
  REQUIRE(p.crec.closed.count(id) == 1);
  CHECK(p.crec.closed.at(id) != 0);
  CHECK(p.crec.errors.empty());
}

TEST_CASE("h2c: a server reset reaches the client with its code") {
  Pair p;
  const uint32_t code = GENERATE(NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM);
  p.srec.on_req = [&](int32_t s) { p.server.reset(s, code); };
  RequestHead req = get("/");
  req.method = "POST";
  int32_t id = p.client.submit_request(req, false);
  Buffer b = buf("data");
  p.client.send_body(id, b, false);
  p.pump();
  REQUIRE(p.crec.closed.count(id) == 1);
  CHECK(p.crec.closed.at(id) == code);
  CHECK(p.srec.closed.at(id) == code);
  CHECK(p.srec.bodies[id].empty());  // nothing delivered after the owner's reset
  CHECK(p.crec.head_count[id] == 0);
  CHECK(p.client.active_streams() == 0);
  CHECK(p.client.usable());
}

TEST_CASE("h2c: a client reset reaches the server") {
  Pair p;
  RequestHead req = get("/");
  req.method = "POST";
  int32_t id = p.client.submit_request(req, false);
  p.pump();
  REQUIRE(p.srec.heads.count(id) == 1);
  p.client.reset(id, NGHTTP2_CANCEL);
  p.pump();
  CHECK(p.srec.closed.at(id) == NGHTTP2_CANCEL);
  CHECK(p.crec.closed.at(id) == NGHTTP2_CANCEL);
  CHECK(p.server.active_streams() == 0);
}

TEST_CASE("h2c: available_streams follows the server's SETTINGS") {
  H2cSettings s;
  s.max_concurrent_streams = 3;
  Pair p(s);
  CHECK(p.client.available_streams() == 100);  // assumed before the server speaks
  p.pump();
  CHECK(p.client.available_streams() == 3);
  CHECK(p.crec.capacity_calls >= 1);
  int32_t a = p.client.submit_request(get("/a"), true);
  CHECK(p.client.available_streams() == 2);
  p.client.submit_request(get("/b"), true);
  p.client.submit_request(get("/c"), true);
  CHECK(p.client.available_streams() == 0);
  CHECK(p.client.submit_request(get("/d"), true) == -1);
  p.pump();
  CHECK(p.srec.heads.size() == 3);
  size_t before = p.crec.capacity_calls;
  p.server.respond(a, ok_head(), true);
  p.pump();
  CHECK(p.crec.closed.at(a) == 0);
  CHECK(p.crec.capacity_calls > before);
  CHECK(p.client.available_streams() == 1);
}

TEST_CASE("h2c: garbage instead of the preface fails the server session once") {
  ServerRec rec;
  H2cServerCodec server(rec);
  rec.codec = &server;
  const std::string http1 = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK_FALSE(server.feed(reinterpret_cast<const uint8_t*>(http1.data()), http1.size()));
  REQUIRE(rec.errors.size() == 1);
  CHECK(rec.errors[0].status == 400);
  CHECK(std::string(rec.errors[0].counter_name()) == "downstream_h2c_protocol_error");
  CHECK(rec.errors[0].source == ErrorSource::Downstream);
  CHECK_FALSE(server.feed(reinterpret_cast<const uint8_t*>(http1.data()), http1.size()));
  CHECK(rec.errors.size() == 1);
  Buffer out;
  server.output(out);  // SETTINGS + GOAWAY(PROTOCOL_ERROR)
  CHECK_FALSE(out.empty());
  CHECK_FALSE(server.want_output());
  CHECK(rec.events.empty());
}

TEST_CASE("h2c: a connection error after the preface fails the session during feed") {
  Pair p;
  int32_t id = p.client.submit_request(get("/"), false);
  p.pump();
  REQUIRE(p.srec.heads.count(id) == 1);
  // DATA on stream 0 is a connection error (PROTOCOL_ERROR): nghttp2 answers with GOAWAY.
  const uint8_t bad[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 'x'};
  CHECK_FALSE(p.server.feed(bad, sizeof(bad)));
  REQUIRE(p.srec.errors.size() == 1);
  CHECK(p.srec.errors[0].status == 400);
  CHECK(std::string(p.srec.errors[0].counter_name()) == "downstream_h2c_protocol_error");
  CHECK(p.srec.closed.at(id) != 0);  // the open stream is lost with the session
  CHECK(p.server.active_streams() == 0);
  CHECK_FALSE(p.server.feed(bad, sizeof(bad)));
  CHECK(p.srec.errors.size() == 1);
  // The GOAWAY it queued reaches the client, which reports it.
  Buffer out;
  p.server.output(out);
  feed_all(p.client, out);
  REQUIRE(p.crec.errors.size() == 1);
  CHECK(p.crec.errors[0].status == 502);
  CHECK(std::string(p.crec.errors[0].counter_name()) == "upstream_rs_malformed");
  CHECK(p.crec.errors[0].source == ErrorSource::Upstream);
  CHECK_FALSE(p.client.usable());
}

TEST_CASE("h2c: GOAWAY from the server makes the client unusable, streams in flight finish") {
  Pair p;
  int32_t id = p.client.submit_request(get("/inflight"), true);
  p.pump();
  REQUIRE(p.srec.heads.count(id) == 1);
  p.server.goaway();
  p.pump();
  CHECK_FALSE(p.client.usable());
  CHECK(p.client.available_streams() == 0);
  CHECK(p.client.submit_request(get("/after"), true) == -1);
  REQUIRE(p.crec.errors.size() == 1);
  CHECK(p.crec.errors[0].status == 502);
  CHECK(p.crec.errors[0].source == ErrorSource::Upstream);

  p.server.respond(id, ok_head(), true);
  p.pump();
  CHECK(p.crec.heads[id].status == 200);
  CHECK(p.crec.closed.at(id) == 0);
  CHECK(p.crec.errors.size() == 1);
}

TEST_CASE("h2c: the server parses a request fed byte by byte identically") {
  // The client's first flight (preface, SETTINGS, HEADERS, DATA, trailers) needs no answer.
  ClientRec crec;
  H2cClientCodec client(crec);
  crec.codec = &client;
  RequestHead req;
  req.method = "POST";
  req.target = "/path?q=1";
  req.authority = "svc.local:8080";
  req.content_length = 3000;
  req.headers.add("content-type", "text/plain");
  req.headers.add("cookie", "a=1");
  req.headers.add("cookie", "b=2");
  req.headers.add("x-multi", "1");
  req.headers.add("x-multi", "2");
  int32_t id = client.submit_request(req, false);
  Buffer body = buf(pattern(3000));
  client.send_body(id, body, false);
  HeaderMap t;
  t.add("x-trailer", "t");
  client.send_trailers(id, t);
  Buffer flight;
  client.output(flight);
  const std::string bytes = text(flight);

  ServerRec whole_rec;
  H2cServerCodec whole(whole_rec);
  whole_rec.codec = &whole;
  CHECK(whole.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));

  ServerRec split_rec;
  H2cServerCodec split(split_rec);
  split_rec.codec = &split;
  for (char c : bytes) {
    const auto byte = static_cast<uint8_t>(c);
    REQUIRE(split.feed(&byte, 1));
  }
  REQUIRE(whole_rec.events.size() == 4);
  CHECK(whole_rec.events[0] ==
        "request 1 POST /path?q=1 @svc.local:8080 cl=3000 [content-type=text/plain;cookie=a=1; b=2;x-multi=1;"
        "x-multi=2;content-length=3000;]");
  CHECK(whole_rec.events[1] == "body " + pattern(3000));
  CHECK(whole_rec.events[2] == "trailers [x-trailer=t;]");
  CHECK(whole_rec.events[3] == "end 1");
  CHECK(split_rec.events == whole_rec.events);
  CHECK(split_rec.errors.empty());
}

TEST_CASE("h2c: finish() closes the streams still open with an error") {
  Pair p;
  int32_t id = p.client.submit_request(get("/"), false);
  p.pump();
  REQUIRE(p.srec.heads.count(id) == 1);
  p.server.finish();
  CHECK(p.srec.closed.at(id) != 0);
  CHECK(p.server.active_streams() == 0);
  p.client.finish();
  CHECK(p.crec.closed.at(id) != 0);
  CHECK(p.client.active_streams() == 0);
  CHECK_FALSE(p.client.usable());
  CHECK(p.client.submit_request(get("/"), true) == -1);
  const uint8_t x = 0;
  CHECK_FALSE(p.server.feed(&x, 1));
  CHECK(p.srec.errors.empty());
}

TEST_CASE("h2c: a stream above GOAWAY's last stream id closes with REFUSED_STREAM") {
  Pair p;
  int32_t first = p.client.submit_request(get("/first"), true);
  p.pump();
  REQUIRE(p.srec.heads.count(first) == 1);
  // The request crosses the server's GOAWAY on the wire.
  int32_t late = p.client.submit_request(get("/late"), true);
  REQUIRE(late > first);
  Buffer to_server;
  p.client.output(to_server);
  p.server.goaway();
  Buffer to_client;
  p.server.output(to_client);
  feed_all(p.server, to_server);
  feed_all(p.client, to_client);
  p.pump();
  CHECK(p.srec.heads.count(late) == 0);
  REQUIRE(p.crec.closed.count(late) == 1);
  CHECK(p.crec.closed.at(late) == NGHTTP2_REFUSED_STREAM);  // safe to retry elsewhere
  CHECK(p.crec.closed.count(first) == 0);
  p.server.respond(first, ok_head(), true);
  p.pump();
  CHECK(p.crec.closed.at(first) == 0);
}

TEST_CASE("h2c: feed() from inside a callback is queued and processed in order") {
  ClientRec crec;
  H2cClientCodec client(crec);
  crec.codec = &client;
  RequestHead req = get("/");
  req.method = "POST";
  int32_t id = client.submit_request(req, false);
  Buffer flight;
  client.output(flight);
  Buffer body = buf("payload");
  client.send_body(id, body, true);
  Buffer rest;
  client.output(rest);
  const std::string tail = text(rest);

  ServerRec rec;
  H2cServerCodec server(rec);
  rec.codec = &server;
  rec.on_req = [&](int32_t) {
    CHECK(server.feed(reinterpret_cast<const uint8_t*>(tail.data()), tail.size()));
    CHECK(rec.bodies.empty());  // not yet: nghttp2 is busy with the outer call
  };
  CHECK(feed_all(server, flight));
  CHECK(rec.bodies[id] == "payload");
  CHECK(rec.ended[id]);
  CHECK(server.want_output());  // SETTINGS, ACK, WINDOW_UPDATE staged during feed()
}
