// Http1Session and H2cSession over a FakeTunnel: what they write, when they end, what they count,
// with requests that the pipeline answers itself (no route: 404 NR), so that no upstream is needed.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "support/fake_tunnel.h"
#include "waypoint/proxy/session.h"

using namespace std::chrono_literals;
using wp::test::FakeTunnel;

namespace {

// One worker's context, as the internal listener builds it, around a snapshot with no route.
struct Rig {
  wp::event::Loop loop;
  wp::event::ManualClock clock{loop};  // the sessions' timers wait for clock.advance()
  wp::stats::Block stats;
  wp::accesslog::Telemetry log{loop, "off", stats};
  wp::hbone::Pool tunnels{loop, nullptr, wp::hbone::PoolSettings{}, stats};
  wp::proxy::UpstreamHttpPool upstream{loop, tunnels, stats, 1s};
  wp::upstream::ClusterManager clusters{stats};
  wp::proxy::Mirrors mirrors{loop};
  wp::proxy::WorkerContext w{loop, stats, log, upstream, clusters, mirrors};
  std::shared_ptr<wp::config::Snapshot> snapshot = std::make_shared<wp::config::Snapshot>();
  wp::config::RouteTable no_routes;  // nothing matches: every request is answered 404 (NR)
  std::unique_ptr<wp::proxy::Session> session;
  int done = 0;

  Rig() { no_routes.name = "inbound-vip|80|http|svc.default.svc.cluster.local"; }
  ~Rig() {
    session.reset();
    loop.drain_deferred();
  }

  wp::proxy::TunnelInfo info() {
    wp::proxy::TunnelInfo i;
    i.snapshot = snapshot;
    i.chain = no_routes.name;
    i.routes = &no_routes;
    i.source_principal = "spiffe://cluster.local/ns/default/sa/client";
    i.opened = loop.now();
    return i;
  }
  void start_http1(FakeTunnel& t, const std::string& early = "") {
    wp::buffer::Buffer initial;
    initial.append(early.data(), early.size());
    session = std::make_unique<wp::proxy::Http1Session>(w, info(), t, std::move(initial), false,
                                                        [this](wp::proxy::Session&) { ++done; });
  }
  void start_h2c(FakeTunnel& t, const std::string& early) {
    wp::buffer::Buffer initial;
    initial.append(early.data(), early.size());
    session = std::make_unique<wp::proxy::H2cSession>(w, info(), t, std::move(initial), false,
                                                      [this](wp::proxy::Session&) { ++done; });
  }
  // The end of the current loop iteration: Deferreds (a session's first parse, its resume after a
  // response) and deferred deletions.
  void turn() { loop.drain_deferred(); }
  int64_t stat(wp::stats::Id id) const { return stats.get(id); }
};

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("Http1Session: nothing is parsed before the owner has stored it, then the early bytes go first",
          "[http][session]") {
  FakeTunnel t;  // first: the session (in the Rig) lets go of it as the Rig goes
  Rig r;
  r.start_http1(t, "GET /early HTTP/1.1\r\nHost: svc\r\n\r\n");
  CHECK(t.handler() != nullptr);  // it reads the tunnel at once (bytes queue in the session)
  CHECK(t.written.empty());       // the first parse waits for the end of the iteration
  r.turn();
  auto out = t.take_written();
  CHECK(out.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
  CHECK(r.stat(wp::stats::Id::rq_no_route) == 1);
  CHECK_FALSE(t.eof_written);  // kept alive
}

TEST_CASE("Http1Session: pipelined requests are answered in order, one response each, on one tunnel",
          "[http][session]") {
  FakeTunnel t;  // first: the session (in the Rig) lets go of it as the Rig goes
  Rig r;
  r.start_http1(t);
  r.turn();
  t.deliver(
      "GET /1 HTTP/1.1\r\nHost: svc\r\n\r\n"
      "GET /2 HTTP/1.1\r\nHost: svc\r\n\r\n"
      "GET /3 HTTP/1.1\r\nHost: svc\r\n\r\n");
  // One response per turn: the codec pauses after each request until its response is complete.
  for (int i = 0; i < 5; ++i) {
    r.turn();
  }
  auto out = t.take_written();
  CHECK(count(out, "HTTP/1.1 404 Not Found\r\n") == 3);
  CHECK(r.stat(wp::stats::Id::rq_no_route) == 3);
  CHECK(t.consumed == t.delivered);  // every request byte acknowledged
  CHECK_FALSE(t.eof_written);
  CHECK(r.done == 0);
}

TEST_CASE("Http1Session: a malformed request is answered 400 and the tunnel ends, counted", "[http][session]") {
  FakeTunnel t;  // first: the session (in the Rig) lets go of it as the Rig goes
  Rig r;
  r.start_http1(t);
  r.turn();
  t.deliver("GET /a HTTP/1.1\r\nHost: svc\r\nBad Header: x\r\n\r\n");
  r.turn();
  auto out = t.take_written();
  CHECK(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  CHECK(out.find("connection: close") != std::string::npos);
  CHECK(t.eof_written);
  CHECK(r.stat(wp::stats::Id::downstream_rq_malformed) == 1);
  // The client ends its side too: the session is done.
  t.deliver_eof();
  t.close(true);
  r.turn();
  CHECK(r.done == 1);
}

TEST_CASE("Http1Session: a head not complete within requestHeadersTimeout is answered 408", "[http][session]") {
  FakeTunnel t;  // first: the session (in the Rig) lets go of it as the Rig goes
  Rig r;
  r.snapshot->bootstrap.http.request_headers_timeout = 50ms;
  r.start_http1(t);
  r.turn();
  r.clock.advance(30ms);  // the head's deadline counts from the tunnel's opening
  t.deliver("GET /slow HTTP/1.1\r\nHost: sv");
  r.clock.advance(19ms);
  CHECK(t.written.empty());
  r.clock.advance(1ms);
  CHECK(t.take_written().rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
  CHECK(r.stat(wp::stats::Id::downstream_rq_header_timeout) == 1);
  CHECK(t.eof_written);
}

// Until the fake clock showed it, a tunnel whose request was answered locally (404 here) waited for
// the next head with requestHeadersTimeout instead of idleTimeout, and got an unasked-for 408.
TEST_CASE("Http1Session: a kept-alive tunnel idle for idleTimeout is closed, a new request restarts the clock",
          "[http][session]") {
  FakeTunnel t;  // first: the session (in the Rig) lets go of it as the Rig goes
  Rig r;
  r.snapshot->bootstrap.http.request_headers_timeout = 50ms;
  r.snapshot->bootstrap.http.idle_timeout = 100ms;
  r.start_http1(t, "GET /1 HTTP/1.1\r\nHost: svc\r\n\r\n");
  r.turn();
  REQUIRE(t.take_written().rfind("HTTP/1.1 404", 0) == 0);
  r.clock.advance(99ms);
  t.deliver("GET /2 HTTP/1.1\r\nHost: svc\r\n\r\n");  // just in time
  r.turn();
  REQUIRE(t.take_written().rfind("HTTP/1.1 404", 0) == 0);
  r.clock.advance(99ms);
  CHECK_FALSE(t.eof_written);
  CHECK_FALSE(t.was_reset);
  r.clock.advance(1ms);
  CHECK((t.eof_written || t.was_reset));
  CHECK(r.stat(wp::stats::Id::downstream_http_idle_timeout) == 1);
}

TEST_CASE("Http1Session: a second head begun on a kept-alive tunnel is due within requestHeadersTimeout",
          "[http][session]") {
  FakeTunnel t;  // first: the session (in the Rig) lets go of it as the Rig goes
  Rig r;
  r.snapshot->bootstrap.http.request_headers_timeout = 50ms;
  r.snapshot->bootstrap.http.idle_timeout = 1000ms;
  SECTION("pipelined behind the first") {
    r.start_http1(t, "GET /1 HTTP/1.1\r\nHost: svc\r\n\r\nGET /2 HTTP/1.1\r\nHo");
    r.turn();
  }
  SECTION("arriving later") {
    r.start_http1(t, "GET /1 HTTP/1.1\r\nHost: svc\r\n\r\n");
    r.turn();
    r.clock.advance(500ms);
    t.deliver("GET /2 HTTP/1.1\r\nHo");
    r.turn();
  }
  REQUIRE(t.take_written().rfind("HTTP/1.1 404", 0) == 0);
  r.clock.advance(49ms);
  CHECK(t.written.empty());
  r.clock.advance(1ms);
  CHECK(t.take_written().rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
}

TEST_CASE("Http1Session: the client's reset in the middle of a request ends the session, no reply", "[http][session]") {
  FakeTunnel t;  // first: the session (in the Rig) lets go of it as the Rig goes
  Rig r;
  r.start_http1(t);
  r.turn();
  t.deliver("POST /up HTTP/1.1\r\nHost: svc\r\nContent-Length: 100\r\n\r\n0123456789");
  r.turn();
  t.take_written();  // the 404 may already be on its way: the route decides at the head
  t.close(false);
  r.turn();
  CHECK(r.done == 1);
  CHECK(t.take_written().empty());
}

TEST_CASE("H2cSession: a request on a stream is answered on that stream, then GOAWAY on a bad frame",
          "[http][session][h2c]") {
  FakeTunnel t;  // first: the session (in the Rig) lets go of it as the Rig goes
  Rig r;
  // The client preface, an empty SETTINGS, then a HEADERS frame with an invalid HPACK block.
  std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string settings("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  r.start_h2c(t, preface + settings);
  r.turn();
  auto out = t.take_written();
  REQUIRE(out.size() >= 9);
  CHECK(static_cast<uint8_t>(out[3]) == 0x04);                              // our SETTINGS first
  std::string bad_headers("\x00\x00\x01\x01\x05\x00\x00\x00\x01\xff", 10);  // END_STREAM|END_HEADERS, bad HPACK
  t.deliver(bad_headers);
  r.turn();
  out = t.take_written();
  // A GOAWAY (type 7) with COMPRESSION_ERROR (9), then the tunnel ends.
  bool goaway = false;
  for (size_t pos = 0; pos + 9 <= out.size();) {
    size_t len = (static_cast<uint8_t>(out[pos]) << 16) | (static_cast<uint8_t>(out[pos + 1]) << 8) |
                 static_cast<uint8_t>(out[pos + 2]);
    if (static_cast<uint8_t>(out[pos + 3]) == 0x07 && pos + 9 + 8 <= out.size()) {
      goaway = static_cast<uint8_t>(out[pos + 9 + 7]) == 9;
    }
    pos += 9 + len;
  }
  CHECK(goaway);
  CHECK(r.stat(wp::stats::Id::downstream_h2c_protocol_error) == 1);
  CHECK(t.eof_written);
}
