// UpstreamHttpPool's waiting requests: the intrusive PendingQueue they are listed in, and a tunnel
// being opened that closes (told) or whose request is cancelled (silent). Nothing is dialled: the
// HBONE pool dials only on the loop's next turn, which never comes.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>

#include <set>
#include <string>
#include <vector>

#include "support/fake_tunnel.h"
#include "waypoint/http/upstream.h"

using namespace std::chrono_literals;

namespace {

struct Recorder : wp::http::UpstreamStreamCallbacks, wp::http::UpstreamPoolCallbacks {
  int ready = 0;
  std::optional<wp::hbone::UpstreamFailure> failure;
  void on_upstream_head(wp::http::ResponseHead&&) override {}
  void on_upstream_body(wp::buffer::Buffer& data) override { data.clear(); }
  void on_upstream_trailers(wp::http::HeaderMap&&) override {}
  void on_upstream_end() override {}
  void on_upstream_error(wp::http::UpstreamError) override {}
  void on_upstream_drained() override {}
  void on_pool_ready(wp::http::UpstreamStream&) override { ++ready; }
  void on_pool_failure(wp::hbone::UpstreamFailure f) override { failure = f; }
};

using Pending = wp::http::UpstreamHttpPool::Pending;
using PendingQueue = wp::http::UpstreamHttpPool::PendingQueue;

std::unique_ptr<Pending> make(Recorder& cb, const char* cluster) {
  wp::http::UpstreamKey key;
  key.cluster = cluster;
  return std::make_unique<Pending>(key, cb, cb);
}

struct Rig {
  wp::event::Loop loop;
  wp::stats::Block stats;
  wp::hbone::Pool tunnels{loop, nullptr, wp::hbone::PoolSettings{}, stats};
  std::optional<wp::http::UpstreamHttpPool> pool{std::in_place, loop, tunnels, stats, 1s};
  ~Rig() {
    pool.reset();
    loop.drain_deferred();
  }
  static wp::http::UpstreamKey key(bool h2c) {
    wp::http::UpstreamKey k;
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
  auto a = make(cb, "a");
  auto b = make(cb, "b");
  auto c = make(cb, "c");
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
  auto a = make(cb, "a");
  auto b = make(cb, "b");
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
  auto a = make(cb, "a");
  auto b = make(cb, "b");
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

// Upstream tunnels handed out on demand as FakeTunnels.
class FakeOpener final : public wp::hbone::TunnelOpener {
 public:
  struct Request final : wp::hbone::TunnelRequest {
    FakeOpener* owner = nullptr;
    wp::hbone::TunnelCallbacks* cb = nullptr;
    ~Request() override { owner->live.erase(this); }
  };
  std::unique_ptr<wp::hbone::TunnelRequest> open(wp::hbone::UpstreamTarget target,
                                                 wp::hbone::TunnelCallbacks& cb) override {
    authorities.push_back(target.authority);
    auto r = std::make_unique<Request>();
    r->owner = this;
    r->cb = &cb;
    live.insert(r.get());
    order.push_back(r.get());
    return r;
  }
  // Opens the oldest request still live: its tunnel is ready.
  wp::test::FakeTunnel& grant() {
    Request* r = nullptr;
    for (Request* o : order) {
      if (live.count(o) != 0) {
        r = o;
        break;
      }
    }
    REQUIRE(r != nullptr);
    std::erase(order, r);
    tunnels.push_back(std::make_unique<wp::test::FakeTunnel>());
    r->cb->on_upstream_ready(*tunnels.back());
    return *tunnels.back();
  }
  std::set<Request*> live;  // asked for and not cancelled (nor answered: its owner keeps it until then)
  std::vector<Request*> order;
  std::vector<std::string> authorities;
  std::vector<std::unique_ptr<wp::test::FakeTunnel>> tunnels;
};

// One exchange's requester: sends a GET once it has its stream, records the response.
struct Exchange : wp::http::UpstreamStreamCallbacks, wp::http::UpstreamPoolCallbacks {
  wp::http::UpstreamStream* stream = nullptr;
  int status = 0;
  bool ended = false;
  std::optional<wp::http::UpstreamError> error;
  std::unique_ptr<wp::http::StreamPool::Pending> pending;
  bool reused = false;

  void on_pool_ready(wp::http::UpstreamStream& s) override {
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
  void on_upstream_error(wp::http::UpstreamError e) override {
    error = e;
    stream = nullptr;
  }
  void on_upstream_drained() override {}
};

struct Http1Rig {
  wp::event::Loop loop;
  wp::stats::Block stats;
  FakeOpener opener;
  std::optional<wp::http::UpstreamHttpPool> pool{std::in_place, loop, opener, stats, 1s};
  ~Http1Rig() {
    pool.reset();
    loop.drain_deferred();
  }
  void ask(Exchange& e, uint32_t max_requests_per_connection = 0) {
    wp::http::UpstreamKey k = Rig::key(false);
    k.client = "10.1.2.3";
    if (max_requests_per_connection > 0) {
      k.cluster = "reviews";
      k.max_requests_per_connection = max_requests_per_connection;
    }
    e.pending = pool->new_stream(k, e, e);
  }
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
