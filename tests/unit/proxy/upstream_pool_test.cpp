// UpstreamHttpPool's waiting requests: the intrusive PendingQueue they are listed in, and a tunnel
// being opened that closes (told) or whose request is cancelled (silent). Nothing is dialled: the
// HBONE pool dials only on the loop's next turn, which never comes.
#include <catch2/catch.hpp>

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include <set>
#include <string>
#include <vector>

#include "support/buffer_text.h"
#include "support/fake_tunnel.h"
#include "waypoint/http/h2c_codec.h"
#include "waypoint/proxy/upstream.h"

using namespace std::chrono_literals;

namespace {

struct Recorder : wp::proxy::UpstreamStreamCallbacks, wp::proxy::UpstreamPoolCallbacks {
  int ready = 0;
  std::optional<wp::hbone::UpstreamFailure> failure;
  void on_upstream_head(wp::http::ResponseHead&&) override {}
  void on_upstream_body(wp::buffer::Buffer& data) override { data.clear(); }
  void on_upstream_trailers(wp::http::HeaderMap&&) override {}
  void on_upstream_end() override {}
  void on_upstream_error(wp::proxy::UpstreamError) override {}
  void on_upstream_drained() override {}
  void on_pool_ready(wp::proxy::UpstreamStream&) override { ++ready; }
  void on_pool_failure(wp::hbone::UpstreamFailure f) override { failure = f; }
};

using Pending = wp::proxy::UpstreamHttpPool::Pending;
using PendingQueue = wp::proxy::UpstreamHttpPool::PendingQueue;

std::unique_ptr<Pending> make(Recorder& cb) {
  return std::make_unique<Pending>(wp::proxy::UpstreamKey{}, cb, cb);
}

struct Rig {
  wp::event::Loop loop;
  wp::stats::Block stats;
  wp::hbone::Pool tunnels{loop, nullptr, wp::hbone::PoolSettings{}, stats};
  std::optional<wp::proxy::UpstreamHttpPool> pool{std::in_place, loop, tunnels, stats, 1s};
  ~Rig() {
    pool.reset();
    loop.drain_deferred();
  }
  static wp::proxy::UpstreamKey key(bool h2c) {
    wp::proxy::UpstreamKey k;
    k.hbone_address = *wp::net::SockAddr::parse("127.0.0.1:1");
    k.identity = "spiffe://cluster.local/ns/default/sa/pod";
    k.authority = *wp::net::SockAddr::parse("127.0.0.1:8080");
    k.h2c = h2c;
    return k;
  }
};

}  // namespace

TEST_CASE("upstream pool: a tunnel closed while being opened tells the request waiting for it", "[http][pool]") {
  for (bool h2c : {false, true}) {
    INFO((h2c ? "h2c" : "HTTP/1.1"));
    Rig r;
    Recorder rec;
    auto pending = r.pool->new_stream(Rig::key(h2c), rec, rec);
    REQUIRE(pending != nullptr);  // no tunnel yet: it waits
    r.pool->close_all();          // shutdown
    REQUIRE(rec.failure.has_value());
    CHECK(*rec.failure == wp::hbone::UpstreamFailure::Reset);
    CHECK(rec.ready == 0);
    pending.reset();  // listed nowhere any more: nothing to cancel
  }
}

TEST_CASE("upstream pool: a cancelled request hears nothing, and its tunnel being opened is closed", "[http][pool]") {
  for (bool h2c : {false, true}) {
    INFO((h2c ? "h2c" : "HTTP/1.1"));
    Rig r;
    Recorder rec;
    auto pending = r.pool->new_stream(Rig::key(h2c), rec, rec);
    REQUIRE(pending != nullptr);
    pending.reset();
    r.pool->close_all();
    CHECK_FALSE(rec.failure.has_value());
    CHECK(rec.ready == 0);
  }
}

TEST_CASE("PendingQueue: first in first out, and a destroyed request leaves its queue", "[http][pool]") {
  Recorder cb;
  int cancelled = 0;
  PendingQueue q([&] { ++cancelled; });
  auto a = make(cb);
  auto b = make(cb);
  auto c = make(cb);
  q.push_back(*a);
  q.push_back(*b);
  q.push_back(*c);
  CHECK(q.size() == 3);
  CHECK(q.front() == a.get());

  b.reset();  // the requester went away: the cancellation
  CHECK(cancelled == 1);
  CHECK(q.size() == 2);
  CHECK(q.pop_front() == a.get());
  CHECK(q.pop_front() == c.get());
  CHECK(q.pop_front() == nullptr);
  CHECK(q.empty());

  // Popped requests are in no queue: destroying them cancels nothing.
  a.reset();
  c.reset();
  CHECK(cancelled == 1);
}

TEST_CASE("PendingQueue: a request moves from one queue to another, and only the last one hears of it",
          "[http][pool]") {
  Recorder cb;
  int first_cancelled = 0;
  int second_cancelled = 0;
  PendingQueue first([&] { ++first_cancelled; });
  PendingQueue second([&] { ++second_cancelled; });
  auto a = make(cb);
  auto b = make(cb);
  first.push_back(*a);
  first.push_back(*b);
  second.push_back(*a);  // a cluster's waiting line hands the request to a tunnel being opened
  CHECK(first.size() == 1);
  CHECK(first.front() == b.get());
  CHECK(second.size() == 1);
  a.reset();
  CHECK(first_cancelled == 0);
  CHECK(second_cancelled == 1);
  CHECK(second.empty());
  CHECK(first.size() == 1);
}

TEST_CASE("PendingQueue: a queue destroyed first leaves its requests safe to destroy", "[http][pool]") {
  Recorder cb;
  int cancelled = 0;
  auto a = make(cb);
  auto b = make(cb);
  {
    PendingQueue q([&] { ++cancelled; });
    q.push_back(*a);
    q.push_back(*b);
    a.reset();
    CHECK(cancelled == 1);
  }
  b.reset();  // its queue is gone: nothing to unlink, nobody to tell
  CHECK(cancelled == 1);
}

// ---- HTTP/1.1 tunnels over a fake opener: reuse, a stale idle tunnel, maxRequestsPerConnection,
// cancellation while a tunnel opens ------------------------------------------------------------------

namespace {

using wp::test::FakeOpener;

// One exchange's requester: sends a GET once it has its stream, records the response.
struct Exchange : wp::proxy::UpstreamStreamCallbacks, wp::proxy::UpstreamPoolCallbacks {
  wp::proxy::UpstreamStream* stream = nullptr;
  int status = 0;
  bool ended = false;
  std::optional<wp::proxy::UpstreamError> error;
  std::unique_ptr<wp::proxy::StreamPool::Pending> pending;
  bool reused = false;

  void on_pool_ready(wp::proxy::UpstreamStream& s) override {
    pending.reset();
    stream = &s;
    reused = s.reused();
    wp::http::RequestHead head;
    head.method = "GET";
    head.target.assign(1, '/');
    head.authority = "svc";
    s.send_head(head, true);
  }
  void on_pool_failure(wp::hbone::UpstreamFailure) override { pending.reset(); }
  void on_upstream_head(wp::http::ResponseHead&& h) override { status = h.status; }
  void on_upstream_body(wp::buffer::Buffer& data) override {
    stream->consume(data.length());
    data.clear();
  }
  void on_upstream_trailers(wp::http::HeaderMap&&) override {}
  void on_upstream_end() override {
    ended = true;
    stream = nullptr;
  }
  void on_upstream_error(wp::proxy::UpstreamError e) override {
    error = e;
    stream = nullptr;
  }
  void on_upstream_drained() override {}
};

struct Http1Rig {
  wp::event::Loop loop;
  wp::event::ManualClock clock{loop};  // the pool's idle timers wait for clock.advance()
  wp::stats::Block stats;
  FakeOpener opener;
  // The cluster's circuit breakers (a ClusterState holds them on the data path).
  std::shared_ptr<wp::upstream::ResourceManager> resources =
      std::make_shared<wp::upstream::ResourceManager>("reviews", stats);
  std::optional<wp::proxy::UpstreamHttpPool> pool{std::in_place, loop, opener, stats, 1s};
  ~Http1Rig() {
    pool.reset();
    loop.drain_deferred();
  }
  struct Limits {
    uint32_t max_requests_per_connection = 0;
    uint32_t max_connections = 0;
    uint32_t max_pending = 0;
    std::string authority = "127.0.0.1:8080";
  };
  wp::proxy::UpstreamKey key(const Limits& l) const {
    wp::proxy::UpstreamKey k = Rig::key(false);
    k.authority = *wp::net::SockAddr::parse(l.authority);
    k.client = "10.1.2.3";
    k.resources = resources.get();
    k.max_requests_per_connection = l.max_requests_per_connection;
    k.max_connections = l.max_connections;
    k.max_pending = l.max_pending;
    return k;
  }
  void ask(Exchange& e, uint32_t max_requests_per_connection = 0) { ask(e, Limits{max_requests_per_connection}); }
  void ask(Exchange& e, const Limits& l) { e.pending = pool->new_stream(key(l), e, e); }
  uint32_t count(wp::upstream::Resource r) const { return resources->count(r); }
  static void answer(wp::test::FakeTunnel& t) { t.deliver("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"); }
  int64_t stat(wp::stats::Id id) const { return stats.get(id); }
};

}  // namespace

TEST_CASE("upstream pool: an HTTP/1.1 tunnel is kept alive and reused by the next request", "[http][pool]") {
  Http1Rig r;
  Exchange a;
  r.ask(a);
  REQUIRE(r.opener.live.size() == 1);
  wp::test::FakeTunnel& t = r.opener.grant();
  CHECK(t.take_written().rfind("GET / HTTP/1.1\r\n", 0) == 0);
  Http1Rig::answer(t);
  CHECK(a.status == 200);
  CHECK(a.ended);
  CHECK_FALSE(a.reused);
  r.loop.drain_deferred();

  Exchange b;
  r.ask(b);  // ready at once on the idle tunnel: nothing opened
  CHECK(b.stream != nullptr);
  CHECK(b.reused);
  CHECK(r.opener.authorities.size() == 1);
  CHECK(t.take_written().rfind("GET / HTTP/1.1\r\n", 0) == 0);
  Http1Rig::answer(t);
  CHECK(b.ended);
  CHECK(r.stat(wp::stats::Id::upstream_http_tunnels_opened) == 1);
}

TEST_CASE("upstream pool: an idle HTTP/1.1 tunnel is closed after the pool's idle timeout, not before",
          "[http][pool]") {
  Http1Rig r;  // idle timeout 1 s
  Exchange a;
  r.ask(a);
  wp::test::FakeTunnel& t = r.opener.grant();
  Http1Rig::answer(t);
  r.loop.drain_deferred();
  REQUIRE(r.stat(wp::stats::Id::upstream_http_tunnels_idle) == 1);
  r.clock.advance(999ms);
  CHECK(r.stat(wp::stats::Id::upstream_http_tunnels_idle) == 1);
  CHECK_FALSE(t.was_reset);
  r.clock.advance(1ms);
  CHECK(r.stat(wp::stats::Id::upstream_http_tunnels_idle) == 0);
  CHECK(t.was_reset);
  Exchange b;
  r.ask(b);  // opens another
  CHECK(r.opener.authorities.size() == 2);
}

TEST_CASE("upstream pool: an idle HTTP/1.1 tunnel the pod closed is forgotten, the next request opens another",
          "[http][pool]") {
  Http1Rig r;
  Exchange a;
  r.ask(a);
  wp::test::FakeTunnel& t = r.opener.grant();
  Http1Rig::answer(t);
  REQUIRE(a.ended);
  t.deliver_eof();
  t.close(true);  // the pod's keep-alive timeout
  r.loop.drain_deferred();

  Exchange b;
  r.ask(b);
  CHECK(b.stream == nullptr);  // waits for a new tunnel
  CHECK(r.opener.live.size() == 1);
  CHECK(r.opener.authorities.size() == 2);
  wp::test::FakeTunnel& t2 = r.opener.grant();
  CHECK_FALSE(b.reused);
  Http1Rig::answer(t2);
  CHECK(b.ended);
}

TEST_CASE("upstream pool: maxRequestsPerConnection closes an HTTP/1.1 tunnel after its N-th exchange", "[http][pool]") {
  Http1Rig r;
  Exchange a;
  r.ask(a, 1);
  wp::test::FakeTunnel& t = r.opener.grant();
  Http1Rig::answer(t);
  REQUIRE(a.ended);
  r.loop.drain_deferred();
  CHECK((t.eof_written || t.was_reset || t.handler() == nullptr));  // not kept
  Exchange b;
  r.ask(b, 1);
  CHECK(b.stream == nullptr);
  CHECK(r.opener.authorities.size() == 2);  // a new tunnel for the second
}

TEST_CASE("upstream pool: a request cancelled while its HTTP/1.1 tunnel opens cancels nothing it does not own",
          "[http][pool]") {
  Http1Rig r;
  Exchange a;
  r.ask(a);
  REQUIRE(a.pending != nullptr);
  REQUIRE(r.opener.live.size() == 1);
  a.pending.reset();  // the requester is gone (its route timeout, its client)
  r.loop.drain_deferred();
  // The tunnel being opened is given up with it (nobody would use it), and nothing is called.
  CHECK(r.opener.live.empty());
  CHECK(a.stream == nullptr);
  CHECK(a.status == 0);
}

using wp::upstream::Resource;

TEST_CASE("upstream pool: over maxConnections a request waits in its cluster's line and takes the tunnel once free",
          "[http][pool][limits]") {
  Http1Rig r;
  const Http1Rig::Limits one{.max_connections = 1};
  Exchange a, b;
  r.ask(a, one);
  REQUIRE(r.opener.authorities.size() == 1);
  CHECK(r.count(Resource::Connections) == 1);
  CHECK(r.count(Resource::PendingRequests) == 1);  // a waits on the tunnel being opened
  r.ask(b, one);                                   // the cluster's only tunnel is a's: b waits
  r.loop.drain_deferred();
  CHECK(r.opener.authorities.size() == 1);
  CHECK(r.stat(wp::stats::Id::upstream_cx_overflow) == 1);
  CHECK(r.count(Resource::PendingRequests) == 2);
  CHECK(r.stat(wp::stats::Id::upstream_rq_pending_active) == 2);
  wp::test::FakeTunnel& t = r.opener.grant();
  REQUIRE(a.stream != nullptr);
  CHECK(b.stream == nullptr);
  CHECK(r.count(Resource::PendingRequests) == 1);
  Http1Rig::answer(t);
  REQUIRE(a.ended);
  CHECK(b.stream == nullptr);  // served after the finishing exchange's callbacks, not inside them
  r.loop.drain_deferred();
  REQUIRE(b.stream != nullptr);
  CHECK(b.reused);
  CHECK(r.opener.authorities.size() == 1);
  CHECK(r.count(Resource::PendingRequests) == 0);
  CHECK(r.stat(wp::stats::Id::upstream_rq_pending_active) == 0);
  Http1Rig::answer(t);
  CHECK(b.ended);
  r.pool.reset();
  r.loop.drain_deferred();
  CHECK(r.count(Resource::Connections) == 0);
}

TEST_CASE("upstream pool: http1MaxPendingRequests counts every request waiting for a stream, as Envoy does",
          "[http][pool][limits]") {
  Http1Rig r;
  const Http1Rig::Limits l{.max_connections = 1, .max_pending = 1};
  Exchange a, b;
  CHECK_FALSE(r.pool->would_overflow(r.key(l)));
  r.ask(a, l);
  CHECK(r.pool->would_overflow(r.key(l)));  // a waits for its tunnel: the line is full
  wp::test::FakeTunnel& t = r.opener.grant();
  CHECK_FALSE(r.pool->would_overflow(r.key(l)));
  r.ask(b, l);  // a has the tunnel: b waits for it
  CHECK(r.pool->would_overflow(r.key(l)));
  Http1Rig::answer(t);
  r.loop.drain_deferred();
  REQUIRE(b.stream != nullptr);
  CHECK_FALSE(r.pool->would_overflow(r.key(l)));
  Http1Rig::answer(t);
  r.loop.drain_deferred();
  CHECK_FALSE(r.pool->would_overflow(r.key(l)));  // an idle tunnel takes the next one at once
  CHECK(r.stat(wp::stats::Id::upstream_rq_pending_active) == 0);
}

TEST_CASE("upstream pool: a waiting request cancelled gives its place in the line back", "[http][pool][limits]") {
  Http1Rig r;
  const Http1Rig::Limits one{.max_connections = 1};
  Exchange a, b;
  r.ask(a, one);
  r.ask(b, one);
  REQUIRE(r.count(Resource::PendingRequests) == 2);
  b.pending.reset();  // its client went away
  CHECK(r.count(Resource::PendingRequests) == 1);
  CHECK(r.stat(wp::stats::Id::upstream_rq_pending_active) == 1);
  r.opener.grant();
  r.loop.drain_deferred();
  CHECK(a.stream != nullptr);
  CHECK(b.stream == nullptr);
  CHECK(r.count(Resource::PendingRequests) == 0);
  CHECK(r.stat(wp::stats::Id::upstream_rq_pending_active) == 0);
}

TEST_CASE("upstream pool: at maxConnections an idle tunnel to another endpoint is closed for a waiting request",
          "[http][pool][limits]") {
  Http1Rig r;
  const Http1Rig::Limits x{.max_connections = 1, .authority = "127.0.0.1:8080"};
  const Http1Rig::Limits y{.max_connections = 1, .authority = "127.0.0.2:8080"};
  Exchange a, b;
  r.ask(a, x);
  wp::test::FakeTunnel& tx = r.opener.grant();
  Http1Rig::answer(tx);
  r.loop.drain_deferred();
  REQUIRE(r.stat(wp::stats::Id::upstream_http_tunnels_idle) == 1);
  r.ask(b, y);  // the cluster's one connection is the idle one to x
  CHECK(r.opener.authorities.size() == 1);
  r.loop.drain_deferred();  // the line is served: x's idle tunnel closes, y's is opened
  CHECK(tx.was_reset);      // an idle tunnel is closed by a reset (no exchange in progress)
  REQUIRE(r.opener.authorities.size() == 2);
  CHECK(r.opener.authorities[1] == "127.0.0.2:8080");
  CHECK(r.count(Resource::Connections) == 1);
  CHECK(r.stat(wp::stats::Id::upstream_http_tunnels_idle) == 0);
  wp::test::FakeTunnel& ty = r.opener.grant();
  REQUIRE(b.stream != nullptr);
  Http1Rig::answer(ty);
  CHECK(b.status == 200);
}

// ---- h2c tunnels over a fake opener, the pod played by an h2c server codec: streams multiplexed
// on one tunnel, REFUSED_STREAM, a GOAWAY that drains the tunnel, the tunnel lost mid-stream ------

namespace {

// The pod's end of one h2c upstream tunnel.
struct H2cPod : wp::http::H2cServerCallbacks {
  explicit H2cPod(wp::test::FakeTunnel& tunnel) : t(tunnel) {}
  wp::test::FakeTunnel& t;
  wp::http::H2cServerCodec codec{*this};
  std::vector<int32_t> requests;  // stream ids, in arrival order
  std::vector<std::string> paths;
  std::map<int32_t, uint32_t> closed;
  bool error = false;

  void on_request(int32_t id, wp::http::RequestHead&& head, bool) override {
    requests.push_back(id);
    paths.push_back(head.target);
  }
  void on_request_body(int32_t id, wp::buffer::Buffer& data) override {
    codec.consume(id, data.length());
    data.clear();
  }
  void on_request_trailers(int32_t, wp::http::HeaderMap&&) override {}
  void on_request_end(int32_t) override {}
  void on_stream_closed(int32_t id, uint32_t code) override { closed[id] = code; }
  void on_error(const wp::http::CodecError&) override { error = true; }

  // Moves bytes both ways until neither side has anything more to say.
  void pump(wp::event::Loop& loop) {
    for (int round = 0; round < 50; ++round) {
      loop.drain_deferred();
      std::string in = t.take_written();
      if (!in.empty()) {
        codec.feed(reinterpret_cast<const uint8_t*>(in.data()), in.size());
      }
      wp::buffer::Buffer out;
      wp::http::collect_output(codec, out);
      if (in.empty() && out.empty()) {
        return;
      }
      if (!out.empty()) {
        t.deliver(wp::test::take_text(out));
      }
    }
    FAIL("the h2c exchange did not settle");
  }
  void answer(int32_t id, int status, wp::event::Loop& loop) {
    wp::http::ResponseHead h;
    h.status = status;
    h.content_length = 2;
    codec.respond(id, h, false);
    wp::buffer::Buffer body;
    body.append("ok", 2);
    codec.send_body(id, body, true);
    pump(loop);
  }
};

struct H2cRig {
  wp::event::Loop loop;
  wp::stats::Block stats;
  FakeOpener opener;
  std::optional<wp::proxy::UpstreamHttpPool> pool{std::in_place, loop, opener, stats, 1s};
  std::vector<std::unique_ptr<H2cPod>> pods;
  ~H2cRig() {
    pool.reset();
    loop.drain_deferred();
  }
  void ask(Exchange& e) {
    wp::proxy::UpstreamKey k = Rig::key(true);
    k.client = "10.1.2.3";
    e.pending = pool->new_stream(k, e, e);
  }
  // Opens the oldest tunnel asked for; its pod reads the preface and the requests queued on it.
  H2cPod& grant() {
    wp::test::FakeTunnel& t = opener.grant();
    pods.push_back(std::make_unique<H2cPod>(t));
    pods.back()->pump(loop);
    return *pods.back();
  }
};

}  // namespace

TEST_CASE("upstream pool: h2c requests share one tunnel as streams, and a later one reuses it", "[http][pool]") {
  H2cRig r;
  Exchange a, b;
  r.ask(a);
  r.ask(b);  // while the first tunnel opens: waits on it rather than opening another
  REQUIRE(r.opener.live.size() == 1);
  H2cPod& pod = r.grant();
  REQUIRE(pod.requests.size() == 2);
  CHECK(a.stream != nullptr);
  CHECK(b.stream != nullptr);
  pod.answer(pod.requests[1], 200, r.loop);
  pod.answer(pod.requests[0], 200, r.loop);
  CHECK(a.status == 200);
  CHECK(b.status == 200);
  CHECK(a.ended);
  CHECK(b.ended);
  CHECK_FALSE(pod.error);
  r.loop.drain_deferred();

  Exchange c;
  r.ask(c);  // a stream on the open tunnel at once
  REQUIRE(c.stream != nullptr);
  CHECK(c.reused);
  pod.pump(r.loop);
  REQUIRE(pod.requests.size() == 3);
  pod.answer(pod.requests[2], 200, r.loop);
  CHECK(c.ended);
  CHECK(r.opener.authorities.size() == 1);
  CHECK(r.stats.get(wp::stats::Id::upstream_http_tunnels_opened) == 1);
}

TEST_CASE("upstream pool: an h2c stream the pod refuses fails as REFUSED_STREAM, the tunnel stays", "[http][pool]") {
  H2cRig r;
  Exchange a;
  r.ask(a);
  H2cPod& pod = r.grant();
  REQUIRE(pod.requests.size() == 1);
  pod.codec.reset(pod.requests[0], NGHTTP2_REFUSED_STREAM);
  pod.pump(r.loop);
  REQUIRE(a.error.has_value());
  CHECK(*a.error == wp::proxy::UpstreamError::RefusedStream);  // never processed: the router retries it
  r.loop.drain_deferred();

  Exchange b;
  r.ask(b);
  REQUIRE(b.stream != nullptr);  // the same tunnel carries the next one
  pod.pump(r.loop);
  REQUIRE(pod.requests.size() == 2);
  pod.answer(pod.requests[1], 200, r.loop);
  CHECK(b.ended);
  CHECK(r.opener.authorities.size() == 1);
}

TEST_CASE("upstream pool: an h2c GOAWAY drains the tunnel, its stream completes, new requests open another",
          "[http][pool]") {
  H2cRig r;
  Exchange a;
  r.ask(a);
  H2cPod& pod = r.grant();
  REQUIRE(pod.requests.size() == 1);
  pod.codec.goaway();
  pod.pump(r.loop);
  r.loop.drain_deferred();

  Exchange b;
  r.ask(b);  // not on the draining tunnel
  CHECK(b.stream == nullptr);
  CHECK(r.opener.authorities.size() == 2);
  pod.answer(pod.requests[0], 200, r.loop);  // the stream in flight still completes
  CHECK(a.status == 200);
  CHECK(a.ended);
  H2cPod& pod2 = r.grant();
  REQUIRE(pod2.requests.size() == 1);
  pod2.answer(pod2.requests[0], 200, r.loop);
  CHECK(b.ended);
}

TEST_CASE("upstream pool: an h2c tunnel lost mid-stream fails its streams as resets", "[http][pool]") {
  H2cRig r;
  Exchange a, b;
  r.ask(a);
  r.ask(b);
  H2cPod& pod = r.grant();
  REQUIRE(pod.requests.size() == 2);
  pod.t.close(false);  // the pod's node went away
  REQUIRE(a.error.has_value());
  REQUIRE(b.error.has_value());
  CHECK(*a.error == wp::proxy::UpstreamError::Reset);
  CHECK(*b.error == wp::proxy::UpstreamError::Reset);
  r.loop.drain_deferred();

  Exchange c;
  r.ask(c);  // a new tunnel
  CHECK(c.stream == nullptr);
  CHECK(r.opener.authorities.size() == 2);
}
