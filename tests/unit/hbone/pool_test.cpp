// The HBONE pool (originate) over in-memory transports: every connection it dials reaches a pod
// played by an HboneServerConnection, the test moving the bytes between the two. Covers each state
// of a pooled connection (Connecting, Ready, Busy, Draining, Closed), reuse, a second connection
// at the stream limit, cancellation before and during the dial, refusal, connect failure, the
// connect timeout and the idle timeout (on a ManualClock), and a pod's GOAWAY.
#include <catch2/catch.hpp>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/memory_transport.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/hbone/server.h"

namespace {

using namespace wp;
using namespace std::chrono_literals;
using net::ConnState;

struct Sink final : hbone::TunnelHandler {
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    t.consume(data.length());
    data.clear();
  }
  void on_tunnel_eof(hbone::Tunnel& t) override { t.write_eof(); }
  void on_tunnel_drained(hbone::Tunnel&, size_t) override {}
  void on_tunnel_closed(hbone::Tunnel&, bool) override {}
};

// One dialled connection: the pool's end (owned by its HboneClientConnection) and the pod's.
struct Link final : hbone::H2Connection::Owner, hbone::ConnectHandler {
  testing::MemoryTransport* client = nullptr;  // null once the pool's connection let go of it
  testing::MemoryTransport* server = nullptr;
  std::unique_ptr<hbone::HboneServerConnection> pod;
  int answer = 200;  // the pod's answer to each CONNECT (0: none yet, kept in `held`)
  std::vector<hbone::H2Stream*> held;
  std::vector<std::string> authorities;
  Sink sink;
  bool pod_closed = false;
  void on_connection_closed(hbone::H2Connection&) override { pod_closed = true; }
  void on_connect_request(const hbone::InboundConnect& r) override {
    authorities.push_back(r.destination.to_string());
    if (answer == 0) {
      held.push_back(&r.stream);
      return;
    }
    r.stream.respond(answer);
    if (answer == 200) {
      r.stream.set_handler(&sink);
    }
  }
};

struct MemoryDialer final : hbone::Dialer {
  event::Loop& loop;
  stats::Block& pod_stats;
  std::vector<std::unique_ptr<Link>> links;
  bool refuse = false;
  uint32_t pod_max_streams = 100;
  int answer = 200;
  MemoryDialer(event::Loop& l, stats::Block& s) : loop(l), pod_stats(s) {}
  ~MemoryDialer() override {
    for (auto& l : links) {
      if (l->pod) {
        l->pod->close();
      }
    }
  }

  std::unique_ptr<net::Transport> dial(const net::SockAddr& address, const std::string& identity) override {
    if (refuse) {
      errno = ECONNREFUSED;
      return nullptr;
    }
    auto link = std::make_unique<Link>();
    Link* raw = link.get();
    link->answer = answer;
    auto client = std::make_unique<testing::MemoryTransport>(identity);  // the pod presents the identity asked for
    client->on_destroy = [raw] { raw->client = nullptr; };
    link->client = client.get();
    auto server = std::make_unique<testing::MemoryTransport>("spiffe://cluster.local/ns/default/sa/waypoint");
    link->server = server.get();
    hbone::H2Settings s;
    s.keepalive_interval = 0ms;
    s.max_concurrent_streams = pod_max_streams;
    link->pod =
        std::make_unique<hbone::HboneServerConnection>(loop, std::move(server), address, s, *raw, pod_stats, *raw);
    link->pod->start();
    links.push_back(std::move(link));
    return client;
  }
};

struct Rig {
  event::Loop loop;
  event::ManualClock clock{loop};
  stats::Block stats;
  stats::Block pod_stats;
  MemoryDialer dialer{loop, pod_stats};
  hbone::PoolSettings settings = [] {
    hbone::PoolSettings s;
    s.h2.keepalive_interval = 0ms;
    s.connect_timeout = 1000ms;
    s.idle_timeout = 5000ms;
    return s;
  }();
  std::optional<hbone::Pool> pool;

  explicit Rig(uint32_t max_streams_per_connection = 100) {
    settings.max_streams_per_connection = max_streams_per_connection;
    pool.emplace(loop, nullptr, settings, stats, &dialer);
  }
  ~Rig() {
    pool.reset();
    loop.drain_deferred();
  }
  // Moves bytes both ways until neither side has more to say.
  void pump() {
    for (int round = 0; round < 100; ++round) {
      loop.drain_deferred();
      bool moved = false;
      for (auto& l : dialer.links) {
        if (l->client != nullptr) {
          std::string up = l->client->take_output();
          if (!up.empty()) {
            moved = true;
            l->server->push(reinterpret_cast<const uint8_t*>(up.data()), up.size());
          }
        }
        if (l->server != nullptr && l->client != nullptr) {
          std::string down = l->server->take_output();
          if (!down.empty()) {
            moved = true;
            l->client->push(reinterpret_cast<const uint8_t*>(down.data()), down.size());
          }
        }
      }
      if (!moved) {
        loop.drain_deferred();
        return;
      }
    }
    FAIL("the HBONE exchange did not settle");
  }
  int64_t stat(stats::Id id) const { return stats.get(id); }
  size_t count(ConnState s) const { return pool->connection_count(s); }
};

// A requester of one tunnel.
struct Ask final : hbone::TunnelCallbacks {
  std::unique_ptr<hbone::TunnelRequest> request;
  hbone::Tunnel* tunnel = nullptr;
  std::optional<hbone::UpstreamFailure> failure;
  int status = 0;
  Sink sink;
  void on_upstream_ready(hbone::Tunnel& t) override {
    tunnel = &t;
    t.set_handler(&sink);
  }
  void on_upstream_failed(hbone::UpstreamFailure f, int s) override {
    failure = f;
    status = s;
  }
  void open(hbone::Pool& pool, const std::string& pod = "127.0.0.1:15008") {
    hbone::UpstreamTarget t;
    t.hbone_address = *net::SockAddr::parse(pod);
    t.identity = "spiffe://cluster.local/ns/default/sa/reviews";
    t.authority = "127.0.0.1:9080";
    request = pool.open(std::move(t), *this);
  }
  void close() {
    if (tunnel != nullptr) {
      tunnel->set_handler(nullptr);
      tunnel->reset();
      tunnel = nullptr;
    }
  }
};

}  // namespace

TEST_CASE("HBONE pool: tunnels to one pod share a connection, Connecting then Ready, and it is reused",
          "[hbone][pool]") {
  Rig r;
  Ask a, b;
  a.open(*r.pool);
  b.open(*r.pool);
  r.loop.drain_deferred();  // the dial happens after open() returned
  REQUIRE(r.dialer.links.size() == 1);
  CHECK(r.count(ConnState::Connecting) == 1);
  r.pump();
  CHECK(r.count(ConnState::Ready) == 1);
  REQUIRE(a.tunnel != nullptr);
  REQUIRE(b.tunnel != nullptr);
  CHECK(r.dialer.links[0]->authorities.size() == 2);
  CHECK(r.stat(stats::Id::upstream_cx_total) == 1);
  CHECK(r.stat(stats::Id::upstream_tunnels_active) == 2);
  a.close();
  b.close();
  r.pump();
  CHECK(r.stat(stats::Id::upstream_tunnels_active) == 0);
  Ask c;
  c.open(*r.pool);
  r.pump();
  REQUIRE(c.tunnel != nullptr);
  CHECK(r.dialer.links.size() == 1);  // the idle connection carried it
  CHECK(r.stat(stats::Id::upstream_cx_total) == 1);
  c.close();
  r.pump();
}

TEST_CASE("HBONE pool: a connection at its stream limit is Busy, a second is dialled, and a closed stream frees it",
          "[hbone][pool]") {
  Rig r(2);
  Ask a, b, c;
  a.open(*r.pool);
  b.open(*r.pool);
  r.pump();
  CHECK(r.count(ConnState::Busy) == 1);
  c.open(*r.pool);
  r.pump();
  REQUIRE(c.tunnel != nullptr);
  CHECK(r.dialer.links.size() == 2);
  CHECK(r.count(ConnState::Ready) == 1);  // the second, one stream of two
  CHECK(r.count(ConnState::Busy) == 1);
  a.close();
  r.pump();
  CHECK(r.count(ConnState::Ready) == 2);
  b.close();
  c.close();
  r.pump();
}

TEST_CASE("HBONE pool: a request cancelled before its dial dials nothing, one cancelled while dialling hears nothing",
          "[hbone][pool]") {
  Rig r;
  {
    Ask a;
    a.open(*r.pool);
  }  // destroyed before the pool's end-of-iteration pump
  r.loop.drain_deferred();
  CHECK(r.dialer.links.empty());
  CHECK(r.pool->connection_count() == 0);

  Ask b;
  b.open(*r.pool);
  r.loop.drain_deferred();
  REQUIRE(r.count(ConnState::Connecting) == 1);
  b.request.reset();  // its client went away while the connection was being set up
  r.pump();
  CHECK(b.tunnel == nullptr);
  CHECK_FALSE(b.failure.has_value());
  CHECK(r.count(ConnState::Ready) == 1);  // the connection stays, idle, for the next one
  CHECK(r.dialer.links[0]->authorities.empty());
}

TEST_CASE("HBONE pool: a CONNECT the pod refuses fails as Refused with its status, the connection stays Ready",
          "[hbone][pool]") {
  Rig r;
  r.dialer.answer = 503;
  Ask a;
  a.open(*r.pool);
  r.pump();
  REQUIRE(a.failure.has_value());
  CHECK(*a.failure == hbone::UpstreamFailure::Refused);
  CHECK(a.status == 503);
  CHECK(r.stat(stats::Id::upstream_tunnels_refused) == 1);
  CHECK(r.count(ConnState::Ready) == 1);
}

TEST_CASE("HBONE pool: a dial that fails at once fails every request waiting for it", "[hbone][pool]") {
  Rig r;
  r.dialer.refuse = true;
  Ask a, b;
  a.open(*r.pool);
  b.open(*r.pool);
  r.loop.drain_deferred();
  REQUIRE(a.failure.has_value());
  REQUIRE(b.failure.has_value());
  CHECK(*a.failure == hbone::UpstreamFailure::ConnectFailed);
  CHECK(r.stat(stats::Id::upstream_cx_connect_failed) == 1);
  CHECK(r.pool->connection_count() == 0);
  r.dialer.refuse = false;
  Ask c;
  c.open(*r.pool);
  r.pump();
  CHECK(c.tunnel != nullptr);  // the next request dials again
  c.close();
  r.pump();
}

TEST_CASE("HBONE pool: connectTimeout covers the CONNECT's answer, to the millisecond", "[hbone][pool]") {
  Rig r;                // connect timeout 1 s
  r.dialer.answer = 0;  // the pod never answers
  Ask a;
  a.open(*r.pool);
  r.pump();
  REQUIRE(r.dialer.links.size() == 1);
  REQUIRE(r.dialer.links[0]->held.size() == 1);
  r.clock.advance(999ms);
  CHECK_FALSE(a.failure.has_value());
  r.clock.advance(1ms);
  REQUIRE(a.failure.has_value());
  CHECK(*a.failure == hbone::UpstreamFailure::Timeout);
  CHECK(r.stat(stats::Id::upstream_connect_timeout) == 1);
  r.pump();  // the stream is reset: the connection has its room back
  CHECK(r.stat(stats::Id::upstream_tunnels_active) == 0);
  CHECK(r.count(ConnState::Ready) == 1);
}

TEST_CASE("HBONE pool: an idle connection closes after idleTimeout, not before", "[hbone][pool]") {
  Rig r;  // idle timeout 5 s
  Ask a;
  a.open(*r.pool);
  r.pump();
  a.close();
  r.pump();
  r.clock.advance(4999ms);
  r.pump();
  CHECK(r.count(ConnState::Ready) == 1);
  r.clock.advance(1ms);
  r.pump();
  CHECK(r.stat(stats::Id::upstream_cx_idle_closed) == 1);
  CHECK(r.count(ConnState::Ready) == 0);
  CHECK(r.stat(stats::Id::upstream_cx_active) == 0);
}

TEST_CASE("HBONE pool: a pod's GOAWAY drains its connection, the tunnel open finishes, a new one dials again",
          "[hbone][pool]") {
  Rig r;
  Ask a;
  a.open(*r.pool);
  r.pump();
  REQUIRE(a.tunnel != nullptr);
  r.dialer.links[0]->pod->drain();  // the pod goes away gracefully
  r.pump();
  CHECK(r.count(ConnState::Draining) == 1);
  Ask b;
  b.open(*r.pool);
  r.pump();
  REQUIRE(b.tunnel != nullptr);
  CHECK(r.dialer.links.size() == 2);
  CHECK(r.count(ConnState::Ready) == 1);
  a.close();  // the last stream of the drained connection: it closes
  r.pump();
  CHECK(r.count(ConnState::Draining) == 0);
  b.close();
  r.pump();
}

TEST_CASE("HBONE pool: a connection the pod closes fails the tunnels on it and is Closed and gone", "[hbone][pool]") {
  Rig r;
  Ask a;
  a.open(*r.pool);
  r.pump();
  REQUIRE(a.tunnel != nullptr);
  REQUIRE(r.dialer.links[0]->client != nullptr);
  r.dialer.links[0]->client->peer_closed();
  r.loop.drain_deferred();
  CHECK(r.pool->connection_count() == 0);
  CHECK(r.stat(stats::Id::upstream_cx_active) == 0);
  CHECK(r.stat(stats::Id::upstream_tunnels_active) == 0);
}
