// UpstreamHttpPool's waiting requests: the intrusive PendingQueue they are listed in, and a tunnel
// being opened that closes (told) or whose request is cancelled (silent). Nothing is dialled: the
// HBONE pool dials only on the loop's next turn, which never comes.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>

#include "waypoint/http/upstream.h"

using namespace std::chrono_literals;

namespace {

struct Recorder : wp::http::UpstreamStreamCallbacks, wp::http::UpstreamPoolCallbacks {
  int ready = 0;
  std::optional<wp::hbone::UpstreamFailure> failure;
  void on_upstream_head(wp::http::ResponseHead&&) override {}
  void on_upstream_body(const uint8_t*, size_t) override {}
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
