// router::Router and its attempts over a fake stream pool: what each state does when the route
// timeout, the per-try timeout, a pool failure, a reset, a retriable response or the request's own
// end comes, and that every exit gives back what the attempt held (upstream_rq_active, the
// host's active request, the retry budget, the pool's waiting request, the stream).
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "router_fixtures.h"
#include "waypoint/router/router.h"

using namespace std::chrono_literals;

namespace {

using wp::stats::Id;

// One exchange the router was given: what it sent, and the pod's side of it on demand.
struct FakeStream final : wp::proxy::UpstreamStream {
  wp::proxy::UpstreamStreamCallbacks* cb = nullptr;
  std::optional<wp::http::RequestHead> head;
  std::string body;
  bool ended = false;
  bool trailers = false;
  bool abandoned = false;
  bool was_reused = false;
  bool released = false;  // ended by the pod's side (end or fail)
  size_t pending = 0;     // send_pending()
  size_t consumed = 0;

  void send_head(const wp::http::RequestHead& h, bool end_stream) override {
    head = h;
    ended = end_stream;
  }
  void send_body(wp::buffer::Buffer& data, bool end_stream) override {
    data.for_each([this](const uint8_t* p, size_t n) { body.append(reinterpret_cast<const char*>(p), n); });
    data.clear();
    ended = ended || end_stream;
  }
  void send_trailers(const wp::http::HeaderMap&) override {
    trailers = true;
    ended = true;
  }
  void abandon() override { abandoned = true; }
  void consume(size_t bytes) override { consumed += bytes; }
  size_t send_pending() const override { return pending; }
  bool reused() const override { return was_reused; }

  // The pod's side: each one is the stream's last call when it ends the exchange.
  void respond(int status) {
    wp::http::ResponseHead h;
    h.status = status;
    cb->on_upstream_head(std::move(h));
  }
  void data(const std::string& bytes) {
    wp::buffer::Buffer b;
    b.append(bytes.data(), bytes.size());
    cb->on_upstream_body(b);
    CHECK(b.empty());  // taken
  }
  void end() {
    released = true;
    cb->on_upstream_end();
  }
  void fail(wp::proxy::UpstreamError e) {
    released = true;
    cb->on_upstream_error(e);
  }
};

// A stream pool whose requests wait until the test serves or fails them.
class FakePool final : public wp::proxy::StreamPool {
 public:
  std::unique_ptr<Pending> new_stream(const wp::proxy::UpstreamKey& key, wp::proxy::UpstreamStreamCallbacks& scb,
                                      wp::proxy::UpstreamPoolCallbacks& pcb) override {
    keys.push_back(key.authority.to_string());
    auto p = std::make_unique<Pending>(key, scb, pcb);
    waiting.push_back(*p);
    if (ready_at_once) {
      serve();
      return nullptr;
    }
    return p;
  }
  bool would_overflow(const wp::proxy::UpstreamKey&) const override { return overflow; }

  // Serves the first waiting request with a new stream.
  FakeStream& serve() {
    Pending* p = waiting.pop_front();
    REQUIRE(p != nullptr);
    streams.push_back(std::make_unique<FakeStream>());
    FakeStream& s = *streams.back();
    s.cb = p->scb;
    p->pcb->on_pool_ready(s);
    return s;
  }
  void fail() {
    Pending* p = waiting.pop_front();
    REQUIRE(p != nullptr);
    p->pcb->on_pool_failure(wp::hbone::UpstreamFailure{});
  }
  FakeStream& last() { return *streams.back(); }

  PendingQueue waiting;
  std::vector<std::unique_ptr<FakeStream>> streams;
  std::vector<std::string> keys;  // the CONNECT authority of each request, in order
  bool ready_at_once = false;
  bool overflow = false;
};

// The request's side, as proxy::ActiveRequest is: each end of the request cancels the router.
struct Request final : wp::router::RouterCallbacks {
  wp::router::Router* router = nullptr;
  int status = 0;  // of the response head or the local reply
  std::string flags;
  std::string body;
  bool local = false;
  bool ended = false;
  bool aborted = false;
  size_t consumed = 0;
  size_t pending = 0;  // response_pending()
  int events_after_end = 0;

  void on_response_head(wp::http::ResponseHead&& head, const char* f) override {
    events_after_end += finished() ? 1 : 0;
    status = head.status;
    flags = f != nullptr ? f : "-";
  }
  void on_response_body(wp::buffer::Buffer& data) override {
    events_after_end += finished() ? 1 : 0;
    data.for_each([this](const uint8_t* p, size_t n) { body.append(reinterpret_cast<const char*>(p), n); });
    data.clear();
  }
  void on_response_trailers(wp::http::HeaderMap&&) override {}
  void on_response_end() override {
    events_after_end += finished() ? 1 : 0;
    ended = true;
    router->cancel(wp::router::Report::None);
  }
  void on_local_reply(int s, std::string_view b, const char* f) override {
    events_after_end += finished() ? 1 : 0;
    local = true;
    status = s;
    body = std::string(b);
    flags = f;
    router->cancel(wp::router::Report::Success);
  }
  void on_response_abort(const char* f) override {
    events_after_end += finished() ? 1 : 0;
    aborted = true;
    flags = f;
    router->cancel(wp::router::Report::None);
  }
  void consume_request(size_t bytes) override { consumed += bytes; }
  size_t response_pending() const override { return pending; }
  bool finished() const { return local || ended || aborted; }
};

// A worker's context around the reviews service (three pods) with `vs` as its VirtualService
// (and DestinationRule `rule`).
struct Rig {
  wp::event::Loop loop;
  wp::event::ManualClock clock{loop};  // every timer of the rig waits for clock.advance()
  wp::stats::Block stats;
  wp::accesslog::Telemetry log{loop, "off", stats};
  FakePool pool;
  wp::upstream::ClusterManager clusters{stats};
  wp::proxy::Mirrors mirrors{loop};
  wp::proxy::WorkerContext w{loop, stats, log, pool, clusters, mirrors};
  wp::config::SnapshotPtr snapshot;
  wp::proxy::TunnelInfo tunnel;
  wp::accesslog::TunnelRecord record;
  Request request;
  std::unique_ptr<wp::router::Router> router;
  const wp::config::Route* route = nullptr;

  explicit Rig(const std::string& vs, const std::string& rule = "") {
    snapshot = wp::router::testing::load(vs + (rule.empty() ? "" : "---\n" + rule));
    REQUIRE(snapshot != nullptr);
    const auto& table = wp::router::testing::table(*snapshot, "10.96.0.20:9080");
    route = &table.routes.at(0);
    tunnel.snapshot = snapshot;
    tunnel.chain = table.name;
    tunnel.routes = &table;
    tunnel.destination = *wp::net::SockAddr::parse("10.96.0.20:9080");
    tunnel.client = "10.1.2.3";
    router = std::make_unique<wp::router::Router>(w, tunnel, record, request);
    request.router = router.get();
  }
  ~Rig() {
    router.reset();
    loop.drain_deferred();
  }

  // Starts a GET (no body) or a POST whose body follows.
  void start(bool with_body = false) {
    wp::http::RequestHead head;
    head.method = with_body ? "POST" : "GET";
    head.target = "/reviews/1";
    head.authority = "reviews:9080";
    if (!with_body) {
      router->on_request_end();
    } else {
      head.chunked = true;
    }
    router->start(snapshot, *route, std::move(head), nullptr);
  }
  void body(const std::string& bytes) {
    wp::buffer::Buffer b;
    b.append(bytes.data(), bytes.size());
    router->on_request_body(b);
    CHECK(b.empty());  // taken
  }
  // Fires the rig's timers one after the other, in virtual time, until `cond` holds; false when no
  // timer is left within `limit`.
  template <class F>
  bool run_until(F cond, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    const uint64_t end = clock.now_ms() + static_cast<uint64_t>(limit.count());
    while (!cond()) {
      auto next = clock.next_in();
      if (!next || clock.now_ms() + static_cast<uint64_t>(next->count()) > end) {
        return false;
      }
      clock.fire_next();
    }
    return true;
  }
  void advance(std::chrono::milliseconds d) { clock.advance(d); }
  int64_t stat(Id id) const { return stats.get(id); }
  wp::upstream::ClusterState& cluster() { return clusters.get(snapshot, *route->clusters.at(0).cluster); }
  // Nothing the tries held is still held.
  void check_settled() {
    loop.drain_deferred();
    CHECK(stat(Id::upstream_rq_active) == 0);
    CHECK(cluster().active_requests() == 0);
    for (size_t i = 0; i < cluster().size(); ++i) {
      CHECK(cluster().host(i).active_requests == 0);
    }
    CHECK(pool.waiting.empty());
    for (const auto& s : pool.streams) {
      CHECK((s->abandoned || s->released));  // no stream is left open
    }
  }
};

std::string vs(const std::string& http_extra) {
  return wp::router::testing::reviews_vs("  - name: all\n" + http_extra +
                                         "    route:\n    - destination: {host: reviews}\n");
}

}  // namespace

TEST_CASE("Router: a response passes through, and the try gives back all it held", "[router][state]") {
  Rig r(vs(""));
  r.start();
  CHECK(r.stat(Id::upstream_rq_active) == 1);
  CHECK(r.cluster().active_requests() == 1);
  FakeStream& s = r.pool.serve();
  REQUIRE(s.head);
  CHECK(s.head->method == "GET");
  CHECK(s.ended);  // no body: the head ends the request
  s.respond(200);
  s.data("hello");
  CHECK(r.request.status == 200);
  CHECK(r.request.body == "hello");
  CHECK(s.consumed == 5);  // passed on, acknowledged upstream (nothing queued downstream)
  s.end();
  CHECK(r.request.ended);
  CHECK(r.router->attempts() == 1);
  CHECK(r.record.attempts == 1);
  CHECK(r.record.cluster == r.route->clusters.at(0).cluster->name);
  CHECK(r.stat(Id::upstream_rq_total) == 1);
  r.check_settled();
  CHECK_FALSE(s.abandoned);  // released by the pool, not abandoned
  CHECK(r.request.events_after_end == 0);
}

TEST_CASE("Router: the route timeout while the try waits for its stream is 504 UT, the wait cancelled",
          "[router][state]") {
  // The leak the L7 restructure was filed for: upstream_rq_active stayed at 1 for ever.
  Rig r(vs("    timeout: 40ms\n"));
  r.start();
  REQUIRE(r.pool.waiting.size() == 1);
  r.advance(39ms);
  CHECK_FALSE(r.request.finished());
  r.advance(1ms);  // at the route's timeout, to the millisecond
  REQUIRE(r.request.finished());
  CHECK(r.request.local);
  CHECK(r.request.status == 504);
  CHECK(r.request.flags == "UT");
  CHECK(r.request.body == "upstream request timeout");
  CHECK(r.stat(Id::rq_timeout) == 1);
  r.check_settled();
}

TEST_CASE("Router: the route timeout on the stream before the response abandons the stream, 504 UT",
          "[router][state]") {
  Rig r(vs("    timeout: 40ms\n"));
  r.start();
  r.advance(25ms);  // the stream comes late: the route timeout still counts from the start
  FakeStream& s = r.pool.serve();
  r.advance(14ms);
  CHECK_FALSE(r.request.finished());
  r.advance(1ms);
  REQUIRE(r.request.finished());
  CHECK(r.request.status == 504);
  CHECK(s.abandoned);
  r.check_settled();
}

TEST_CASE("Router: a response cut short mid-body is aborted: by the route timeout (UT), by a reset (UC)",
          "[router][state]") {
  Rig r(vs("    timeout: 40ms\n"));
  r.start();
  FakeStream& s = r.pool.serve();
  s.respond(200);
  s.data("partial");
  SECTION("route timeout") {
    REQUIRE(r.run_until([&] { return r.request.finished(); }));
    CHECK(r.request.flags == "UT");
    CHECK(s.abandoned);
  }
  SECTION("reset") {
    s.fail(wp::proxy::UpstreamError::Reset);
    CHECK(r.request.flags == "UC");
    CHECK_FALSE(s.abandoned);  // the stream is gone already
  }
  CHECK(r.request.aborted);
  r.check_settled();
}

TEST_CASE("Router: a per-try timeout while waiting for the stream is retried, and the first wait cancelled",
          "[router][state]") {
  Rig r(vs("    retries: {attempts: 2, perTryTimeout: 30ms, retryOn: gateway-error}\n"));
  r.start();
  REQUIRE(r.pool.waiting.size() == 1);
  r.advance(29ms);
  CHECK(r.stat(Id::upstream_rq_per_try_timeout) == 0);
  r.advance(1ms);
  CHECK(r.stat(Id::upstream_rq_per_try_timeout) == 1);
  CHECK(r.pool.waiting.empty());  // the first wait is cancelled at once; the retry backs off
  CHECK(r.stat(Id::upstream_rq_active) == 0);
  REQUIRE(r.run_until([&] { return r.router->attempts() == 2; }));
  CHECK(r.stat(Id::upstream_rq_retry) == 1);
  CHECK(r.pool.waiting.size() == 1);  // the second try's; the first one's wait is gone
  CHECK(r.stat(Id::upstream_rq_active) == 1);
  FakeStream& s = r.pool.serve();
  s.respond(200);
  s.end();
  CHECK(r.request.status == 200);
  CHECK(r.pool.keys.at(0) != r.pool.keys.at(1));  // the retry prefers another host
  r.check_settled();
}

TEST_CASE("Router: per-try timeouts until the attempts are used up answer 504 URX,UT", "[router][state]") {
  Rig r(vs("    retries: {attempts: 1, perTryTimeout: 20ms, retryOn: gateway-error}\n"));
  r.start();
  FakeStream& first = r.pool.serve();
  REQUIRE(r.run_until([&] { return r.request.finished(); }));
  CHECK(first.abandoned);
  CHECK(r.request.status == 504);
  CHECK(r.request.flags == "URX,UT");
  CHECK(r.router->attempts() == 2);
  CHECK(r.stat(Id::upstream_rq_retry_limit_exceeded) == 1);
  r.check_settled();
}

TEST_CASE("Router: pool failures are retried on connect-failure, then 503 URX,UF", "[router][state]") {
  Rig r(vs("    retries: {attempts: 2, retryOn: connect-failure}\n"));
  r.start();
  r.pool.fail();
  CHECK(r.stat(Id::upstream_rq_active) == 0);  // the failed try is settled at once
  REQUIRE(r.run_until([&] { return !r.pool.waiting.empty(); }));
  r.pool.fail();
  REQUIRE(r.run_until([&] { return !r.pool.waiting.empty(); }));
  r.pool.fail();
  CHECK(r.request.local);
  CHECK(r.request.status == 503);
  CHECK(r.request.flags == "URX,UF");
  CHECK(r.router->attempts() == 3);
  CHECK(r.stat(Id::upstream_rq_connect_failure) == 3);
  r.check_settled();
}

TEST_CASE("Router: the retry back-off is Envoy's (at most 25 ms after the first try), and the route timeout ends it",
          "[router][state]") {
  Rig r(vs("    timeout: 40ms\n    retries: {attempts: 3, retryOn: connect-failure}\n"));
  r.start();
  r.advance(39ms);
  r.pool.fail();  // the first try fails at 39 ms: the retry waits for its back-off
  REQUIRE(r.pool.waiting.empty());
  CHECK(r.clock.armed() == 2);  // the route timer and the back-off
  // With this rig's random numbers the back-off outlasts the route's last millisecond.
  REQUIRE(r.clock.next_in() == 1ms);
  r.advance(1ms);
  REQUIRE(r.request.finished());
  CHECK(r.request.status == 504);
  CHECK(r.request.flags == "UT");
  CHECK(r.clock.armed() == 0);  // the back-off went with the request
  r.advance(1s);
  CHECK(r.pool.keys.size() == 1);  // no second try was asked for
  r.check_settled();

  for (uint64_t i = 0; i < 20; ++i) {
    Rig b(vs("    retries: {attempts: 3, retryOn: connect-failure}\n"));
    b.w.rng_state = 0x9e3779b97f4a7c15ull + i * 7919;
    b.start();
    b.pool.fail();
    REQUIRE(b.clock.armed() == 1);
    CHECK(*b.clock.next_in() <= 25ms);  // in [0, (2^1 - 1) x 25 ms] after the first try
  }
}

TEST_CASE("Router: a mirrored copy keeps its own client address and CONNECT headers, and outlives its request",
          "[router][state]") {
  Rig r(vs("    mirror: {host: reviews}\n    mirrorPercentage: {value: 100}\n"));
  r.tunnel.connect_headers.emplace_back("forwarded", "for=10.1.2.3");
  r.start();
  REQUIRE(r.pool.waiting.size() == 2);  // the try and the mirror
  CHECK(r.mirrors.size() == 1);
  r.router->cancel(wp::router::Report::None);  // the client goes: its try's wait goes with it
  r.router.reset();
  r.loop.drain_deferred();
  REQUIRE(r.pool.waiting.size() == 1);
  // The tunnel the request came on is gone too: what the mirror's key points at is its own.
  r.tunnel.client = "overwritten";
  r.tunnel.connect_headers.clear();
  const wp::proxy::UpstreamKey& key = r.pool.waiting.front()->key;
  CHECK(key.client == "10.1.2.3");
  REQUIRE(key.connect_headers != nullptr);
  REQUIRE(key.connect_headers->size() == 1);
  CHECK(key.connect_headers->at(0).second == "for=10.1.2.3");
  FakeStream& s = r.pool.serve();
  REQUIRE(s.head);
  CHECK(s.head->authority == "reviews:9080-shadow");
  s.respond(200);
  s.end();
  r.loop.drain_deferred();
  CHECK(r.mirrors.size() == 0);
  CHECK(r.stat(Id::upstream_rq_mirrored) == 1);
}

TEST_CASE("Router: outlier ejections run on the loop's clock: a host is ejected for baseEjectionTime from the 5xx",
          "[router][state]") {
  Rig r(vs("    retries: {attempts: 0}\n"),
        wp::router::testing::reviews_rule("  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1, "
                                          "interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}}\n"));
  r.advance(100s);  // well past the real clock: an ejection timed by it would be over already
  r.start();
  FakeStream& s = r.pool.serve();
  s.respond(503);
  s.end();
  REQUIRE(r.request.status == 503);
  const auto& endpoints = r.cluster().cluster().endpoints;
  size_t host = endpoints.size();
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (endpoints[i].address.to_string() == r.pool.keys.at(0)) {
      host = i;
    }
  }
  REQUIRE(host < endpoints.size());
  CHECK(r.cluster().ejected_count() == 1);
  r.advance(29'999ms);
  CHECK(r.cluster().ejected(host, r.loop.now()));
  for (int i = 0; i < 10; ++i) {
    auto picked = r.cluster().pick(r.loop.now(), {}, std::nullopt);
    REQUIRE(picked.has_value());
    CHECK(*picked != host);
  }
  r.advance(1ms);
  CHECK_FALSE(r.cluster().ejected(host, r.loop.now()));
  r.check_settled();
}

TEST_CASE("Router: a 503 is retried once the request is complete, the last one passed on with URX", "[router][state]") {
  Rig r(vs("    retries: {attempts: 1, retryOn: 5xx}\n"));
  r.start(true);
  r.body("abc");
  r.router->on_request_end();
  FakeStream& first = r.pool.serve();
  CHECK(first.body == "abc");
  first.respond(503);
  CHECK(first.abandoned);
  CHECK_FALSE(r.request.finished());
  REQUIRE(r.run_until([&] { return !r.pool.waiting.empty(); }));
  FakeStream& second = r.pool.serve();
  CHECK(second.body == "abc");  // the body was kept and sent again
  CHECK(second.ended);
  second.respond(503);
  CHECK(r.request.status == 503);
  CHECK(r.request.flags == "URX");
  second.end();
  CHECK(r.request.ended);
  r.check_settled();
}

TEST_CASE("Router: the request's end in every state gives back what the try held, and silences it", "[router][state]") {
  SECTION("before start") {
    Rig r(vs(""));
    r.router->cancel(wp::router::Report::None);
    r.check_settled();
    CHECK(r.pool.keys.empty());
  }
  SECTION("waiting for the stream") {
    Rig r(vs(""));
    r.start();
    r.router->cancel(wp::router::Report::None);
    r.check_settled();
  }
  SECTION("on the stream, before the response") {
    Rig r(vs(""));
    r.start();
    FakeStream& s = r.pool.serve();
    r.router->cancel(wp::router::Report::None);
    CHECK(s.abandoned);
    r.check_settled();
  }
  SECTION("while the response streams") {
    Rig r(vs(""));
    r.start();
    FakeStream& s = r.pool.serve();
    s.respond(200);
    r.router->cancel(wp::router::Report::None);
    CHECK(s.abandoned);
    r.check_settled();
  }
  SECTION("in the retry back-off, which also gives back the retry budget") {
    Rig r(vs("    retries: {attempts: 3, retryOn: connect-failure}\n"),
          wp::router::testing::reviews_rule("  trafficPolicy: {connectionPool: {http: {maxRetries: 1}}}\n"));
    r.start();
    r.pool.fail();  // the retry waits for its back-off, holding the cluster's one retry
    REQUIRE(r.pool.waiting.empty());
    CHECK_FALSE(r.cluster().hold_retry());
    r.router->cancel(wp::router::Report::None);
    r.check_settled();
    CHECK(r.cluster().hold_retry());  // the budget is back
    CHECK(r.clock.armed() == 0);      // the back-off timer went with the cancelled try
    r.advance(10s);
    CHECK(r.pool.keys.size() == 1);
  }
}

TEST_CASE("Router: a kept-alive tunnel reset before the response is retried once, not counted as an attempt",
          "[router][state]") {
  Rig r(vs("    retries: {attempts: 0}\n"));
  r.start();
  FakeStream& stale = r.pool.serve();
  stale.was_reused = true;
  stale.fail(wp::proxy::UpstreamError::Reset);
  REQUIRE(r.pool.waiting.size() == 1);  // at once, no back-off
  CHECK(r.router->attempts() == 1);
  FakeStream& fresh = r.pool.serve();
  fresh.was_reused = true;
  fresh.fail(wp::proxy::UpstreamError::Reset);  // only once
  CHECK(r.request.status == 503);
  CHECK(r.request.flags == "UC");
  r.check_settled();
}

TEST_CASE(
    "Router: request bytes are acknowledged once the stream's queue drains, response bytes once downstream's does",
    "[router][state]") {
  Rig r(vs(""));
  r.start(true);
  FakeStream& s = r.pool.serve();
  s.pending = 100 * 1024;  // the tunnel's queue is over the high watermark
  r.body("0123456789");
  CHECK(s.body == "0123456789");
  CHECK(r.request.consumed == 0);
  s.pending = 0;
  s.cb->on_upstream_drained();
  CHECK(r.request.consumed == 10);

  s.respond(200);
  r.request.pending = 100 * 1024;  // downstream is slow
  s.data("abcdef");
  CHECK(s.consumed == 0);
  r.request.pending = 0;
  r.router->on_downstream_drained();
  CHECK(s.consumed == 6);
  r.router->on_request_end();
  s.end();
  r.check_settled();
}

TEST_CASE("Router: connectionPool limits answer 503 UO and hold nothing", "[router][state]") {
  SECTION("http2MaxRequests") {
    Rig r(vs(""),
          wp::router::testing::reviews_rule("  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1}}}\n"));
    auto held = r.cluster().hold_request(0);  // another request in flight
    r.start();
    CHECK(r.request.status == 503);
    CHECK(r.request.flags == "UO");
    held.reset();
    r.check_settled();
    CHECK(r.pool.keys.empty());
  }
  SECTION("the waiting line full (http1MaxPendingRequests)") {
    Rig r(vs(""),
          wp::router::testing::reviews_rule(
              "  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}}\n"));
    r.pool.overflow = true;
    r.start();
    CHECK(r.request.status == 503);
    CHECK(r.request.flags == "UO");
    CHECK(r.stat(Id::upstream_rq_pending_overflow) == 1);
    r.check_settled();
  }
}

TEST_CASE("Router: a stream ready at once (an idle tunnel) is used before new_stream returns", "[router][state]") {
  Rig r(vs(""));
  r.pool.ready_at_once = true;
  r.start();
  FakeStream& s = r.pool.last();
  REQUIRE(s.head);
  s.respond(204);
  s.end();
  CHECK(r.request.status == 204);
  r.check_settled();
}
