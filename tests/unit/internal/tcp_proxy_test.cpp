// TcpProxy over fake tunnels: the CONNECT answered only once the upstream tunnel is up, bytes
// both ways with windows reopened only as the far side drains, half-closes passed on, an upstream
// failure answered 503 (or a reset once sniffed), and either side going away while connecting or
// open.
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "support/fake_tunnel.h"
#include "waypoint/internal/tcp_proxy.h"

namespace {

struct Rig {
  wp::event::Loop loop;
  wp::stats::Block stats;
  wp::accesslog::Telemetry telemetry{loop, "off", stats};
  wp::test::FakeOpener opener;
  wp::test::FakeTunnel down;
  int done = 0;
  std::unique_ptr<wp::internal::TcpProxy> proxy;

  Rig() {
    wp::accesslog::TunnelRecord record;
    record.chain = "inbound-vip|9080|tcp|reviews.default.svc.cluster.local";
    proxy = std::make_unique<wp::internal::TcpProxy>(down, record, nullptr, stats, telemetry,
                                                     [this](wp::internal::TcpProxy&) { ++done; });
  }
  ~Rig() {
    proxy.reset();
    loop.drain_deferred();
  }
  static wp::hbone::UpstreamTarget target() {
    wp::hbone::UpstreamTarget t;
    t.hbone_address = *wp::net::SockAddr::parse("127.0.0.1:15008");
    t.identity = "spiffe://cluster.local/ns/default/sa/reviews";
    t.authority = "127.0.0.1:9080";
    return t;
  }
  int64_t stat(wp::stats::Id id) const { return stats.get(id); }
};

}  // namespace

TEST_CASE("tcp proxy: the CONNECT is answered once the upstream tunnel is up, then bytes flow both ways", "[tcp]") {
  Rig r;
  r.proxy->start(r.opener, Rig::target());
  REQUIRE(r.opener.authorities.size() == 1);
  CHECK(r.opener.authorities[0] == "127.0.0.1:9080");
  CHECK(r.down.responses.empty());  // not before the pod said yes
  r.down.deliver("early");          // a client that does not wait: held until the tunnel is up
  wp::test::FakeTunnel& up = r.opener.grant();
  REQUIRE(r.down.responses.size() == 1);
  CHECK(r.down.responses[0] == 200);
  CHECK(up.take_written() == "early");

  r.down.deliver("ping");
  CHECK(up.take_written() == "ping");
  CHECK(r.down.consumed == 0);  // the client's window reopens only once the pod's side drained
  up.handler()->on_tunnel_drained(up, 9);
  CHECK(r.down.consumed == 9);
  CHECK(r.stat(wp::stats::Id::tcp_bytes_downstream_to_upstream) == 9);

  up.deliver("pong");
  CHECK(r.down.take_written() == "pong");
  r.down.handler()->on_tunnel_drained(r.down, 4);
  CHECK(up.consumed == 4);

  // Half-closes cross over; both ends closing cleanly finishes the proxy.
  r.down.deliver_eof();
  CHECK(up.eof_written);
  up.deliver_eof();
  CHECK(r.down.eof_written);
  r.down.close(true);
  CHECK(r.done == 0);
  up.close(true);
  CHECK(r.done == 1);
  CHECK(r.stat(wp::stats::Id::tunnels_reset) == 0);
}

TEST_CASE("tcp proxy: an upstream failure is answered 503, or reset once the CONNECT was answered", "[tcp]") {
  {
    Rig r;
    r.proxy->start(r.opener, Rig::target());
    r.opener.fail(wp::hbone::UpstreamFailure::ConnectFailed);
    REQUIRE(r.down.responses.size() == 1);
    CHECK(r.down.responses[0] == 503);
    CHECK_FALSE(r.down.was_reset);
    CHECK(r.down.handler() == nullptr);
    CHECK(r.done == 1);
    CHECK(r.stat(wp::stats::Id::tunnels_rejected_upstream_failure) == 1);
  }
  {
    Rig r;  // sniffed: already answered 200, the sniffed bytes wait for the upstream
    wp::buffer::Buffer initial;
    initial.append("GET", 3);
    r.proxy->start_answered(r.opener, Rig::target(), std::move(initial), false);
    r.opener.fail(wp::hbone::UpstreamFailure::ConnectFailed);
    CHECK(r.down.responses.empty());
    CHECK(r.down.was_reset);
    CHECK(r.done == 1);
  }
}

TEST_CASE("tcp proxy: sniffed bytes and a sniffed EOF go to the upstream tunnel once it is up", "[tcp]") {
  Rig r;
  wp::buffer::Buffer initial;
  initial.append("\x16\x03\x01", 3);
  r.proxy->start_answered(r.opener, Rig::target(), std::move(initial), true);
  wp::test::FakeTunnel& up = r.opener.grant();
  CHECK(r.down.responses.empty());  // answered before sniffing
  CHECK(up.take_written() == "\x16\x03\x01");
  CHECK(up.eof_written);
  up.handler()->on_tunnel_drained(up, 3);
  CHECK(r.down.consumed == 3);  // the sniffed bytes were owed to the client's window
}

TEST_CASE("tcp proxy: a client that goes away while connecting cancels the upstream tunnel", "[tcp]") {
  Rig r;
  r.proxy->start(r.opener, Rig::target());
  REQUIRE(r.opener.live.size() == 1);
  r.down.close(false);  // reset by the client
  CHECK(r.opener.live.empty());
  CHECK(r.done == 1);
  CHECK(r.stat(wp::stats::Id::tunnels_reset) == 1);
}

TEST_CASE("tcp proxy: either side reset while open resets the other", "[tcp]") {
  for (bool pod_first : {true, false}) {
    INFO((pod_first ? "the pod resets" : "the client resets"));
    Rig r;
    r.proxy->start(r.opener, Rig::target());
    wp::test::FakeTunnel& up = r.opener.grant();
    wp::test::FakeTunnel& first = pod_first ? up : r.down;
    wp::test::FakeTunnel& second = pod_first ? r.down : up;
    first.close(false);
    CHECK(second.was_reset);
    CHECK(r.done == 0);
    second.close(false);
    CHECK(r.done == 1);
    CHECK(r.stat(wp::stats::Id::tunnels_reset) >= 1);
  }
}

TEST_CASE("tcp proxy: abort at shutdown resets both sides and finishes once they are gone", "[tcp]") {
  Rig r;
  r.proxy->start(r.opener, Rig::target());
  wp::test::FakeTunnel& up = r.opener.grant();
  r.proxy->abort();
  CHECK(r.down.was_reset);
  CHECK(up.was_reset);
  r.down.close(false);
  up.close(false);
  CHECK(r.done == 1);
}
