// UpstreamHttpPool's requests that wait for a tunnel being opened: told when it closes, silent once
// cancelled. Nothing is dialled: the HBONE pool dials only on the loop's next turn, which never comes.
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
