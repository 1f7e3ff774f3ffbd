// The L4 HBONE path end to end: the real waypoint binary, fake pods and an HBONE client on
// loopback. Every check is about bytes and statuses seen at the edges, plus the waypoint's counters.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "integration/fixture.h"

using namespace wp::testing;
using namespace std::chrono_literals;

namespace {

// Offset of the first byte that differs from the test pattern (-1: all match). Comparing this
// way keeps a failure message short even for 64 MiB.
int64_t pattern_mismatch(const std::string& s) {
  for (uint64_t i = 0; i < s.size(); ++i) {
    if (s[i] != TestTunnel::pattern_byte(i)) {
      return static_cast<int64_t>(i);
    }
  }
  return -1;
}

std::string vip(Mesh& m, int host, uint16_t port) {
  return m.env.addr(host, port).to_string();
}

// Under AddressSanitizer freed memory sits in a quarantine, so RSS says nothing about the bound.
#ifdef __SANITIZE_ADDRESS__
constexpr bool kRssMeaningful = false;
#else
constexpr bool kRssMeaningful = true;
#endif

}  // namespace

TEST_CASE("TCP through a service VIP: 1 byte and 16 MiB arrive intact both ways", "[l4]") {
  Mesh m;
  FakePod* pod = m.add_pod("echo-1", 1, {{"app", "echo"}});
  m.add_service("echo", 100, 7000, 7007, {{"app", "echo"}});
  REQUIRE(m.start() == "");
  auto client = m.client();

  TestTunnel& one = client->open(vip(m, 100, 7000));
  one.send("x");
  one.send_eof();
  REQUIRE(client->run_until([&] { return one.closed; }));
  CHECK(one.status == 200);
  CHECK(one.received == "x");
  CHECK(one.eof);
  CHECK(one.clean);

  constexpr uint64_t k16MiB = 16u << 20;
  TestTunnel& big = client->open(vip(m, 100, 7000));
  big.send_pattern(k16MiB, true);
  REQUIRE(client->run_until([&] { return big.closed; }, 60s));
  CHECK(big.status == 200);
  REQUIRE(big.received.size() == k16MiB);
  CHECK(pattern_mismatch(big.received) == -1);
  CHECK(big.clean);

  // The pod saw CONNECT podIP:targetPort, from the waypoint's identity, with forwarded for=client.
  auto auths = pod->authorities();
  REQUIRE(auths.size() == 2);
  CHECK(auths[0] == m.env.addr(1, 7007).to_string());
  CHECK(pod->peer_identities()[0] == m.env.waypoint().spiffe);
  CHECK(pod->forwarded()[0] == "for=\"127.0.0.1\"");  // the client's TCP source address on loopback
  CHECK(m.waypoint->stat("tcp_bytes_downstream_to_upstream") == static_cast<int64_t>(k16MiB + 1));
  CHECK(m.waypoint->stat("tcp_bytes_upstream_to_downstream") == static_cast<int64_t>(k16MiB + 1));
}

TEST_CASE("the forwarded header from the client becomes the upstream forwarded address", "[l4]") {
  Mesh m;
  FakePod* pod = m.add_pod("echo-1", 1, {{"app", "echo"}});
  m.add_service("echo", 100, 7000, 7000, {{"app", "echo"}});
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t =
      client->open(vip(m, 100, 7000), {{"forwarded", "for=\"10.1.2.3:5555\""}, {"traceparent", "00-abc-def-01"}});
  t.send_eof();
  REQUIRE(client->run_until([&] { return t.closed; }));
  CHECK(t.status == 200);
  REQUIRE(pod->forwarded().size() == 1);
  CHECK(pod->forwarded()[0] == "for=\"10.1.2.3\"");
}

TEST_CASE("a pod IP destination is forwarded to that same pod and port (direct chain)", "[l4]") {
  Mesh m;
  FakePod* pod = m.add_pod("solo", 3, {{"app", "solo"}});
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(m.env.addr(3, 9999).to_string());
  t.send("direct");
  t.send_eof();
  REQUIRE(client->run_until([&] { return t.closed; }));
  CHECK(t.status == 200);
  CHECK(t.received == "direct");
  REQUIRE(pod->authorities().size() == 1);
  CHECK(pod->authorities()[0] == m.env.addr(3, 9999).to_string());
}

TEST_CASE("round robin over the service's ready pods", "[l4]") {
  Mesh m;
  FakePod* a = m.add_pod("rr-a", 1, {{"app", "rr"}});
  FakePod* b = m.add_pod("rr-b", 2, {{"app", "rr"}});
  m.spec.pods.push_back({"rr-notready", m.env.ip(9), {{"app", "rr"}}, "default", false});
  m.add_service("rr", 100, 80, 8080, {{"app", "rr"}});
  REQUIRE(m.start() == "");
  auto client = m.client();
  std::vector<TestTunnel*> ts;
  for (int i = 0; i < 10; ++i) {
    TestTunnel& t = client->open(vip(m, 100, 80));
    t.send_eof();
    REQUIRE(client->run_until([&] { return t.closed; }));  // one at a time: strict alternation
    ts.push_back(&t);
  }
  for (auto* t : ts) {
    CHECK(t->status == 200);
  }
  // Two workers each keep their own cursor, so each pod gets between 3 and 7 of 10; with one
  // connection all streams land on one worker and the split is exactly 5/5.
  CHECK(a->tunnels() == 5);
  CHECK(b->tunnels() == 5);
}

TEST_CASE("a VirtualService tcp[] route splits TCP tunnels by weight over subsets", "[l4]") {
  auto run = [](int w1, int w2, int tunnels, uint64_t* to_v1, uint64_t* to_v2) {
    Mesh m;
    FakePod* v1 = m.add_pod("db-v1", 1, {{"app", "db"}, {"version", "v1"}});
    FakePod* v2 = m.add_pod("db-v2", 2, {{"app", "db"}, {"version", "v2"}});
    m.add_service("db", 100, 5432, 5432, {{"app", "db"}});
    m.spec.extra_documents +=
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: db, namespace: default}\n"
        "spec:\n  host: db\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: db, namespace: default}\n"
        "spec:\n  hosts: [db]\n  tcp:\n  - route:\n    - {destination: {host: db, subset: v1}, weight: " +
        std::to_string(w1) + "}\n    - {destination: {host: db, subset: v2}, weight: " + std::to_string(w2) + "}\n";
    REQUIRE(m.start() == "");
    auto client = m.client();
    for (int i = 0; i < tunnels; ++i) {
      TestTunnel& t = client->open(vip(m, 100, 5432));
      t.send("x");
      t.send_eof();
      REQUIRE(client->run_until([&] { return t.closed; }));
      CHECK(t.status == 200);
    }
    *to_v1 = v1->tunnels();
    *to_v2 = v2->tunnels();
  };
  uint64_t a = 0, b = 0;
  run(0, 100, 8, &a, &b);
  CHECK(a == 0);
  CHECK(b == 8);
  run(50, 50, 60, &a, &b);
  CHECK(a + b == 60);
  CHECK(a >= 15);  // fewer than 15 of 60 at 50 % is a 1-in-10^5 event
  CHECK(b >= 15);
}

TEST_CASE("200 concurrent tunnels over two downstream connections", "[l4]") {
  Mesh m;
  FakePod* pod = m.add_pod("echo-1", 1, {{"app", "echo"}});
  m.add_service("echo", 100, 7000, 7000, {{"app", "echo"}});
  REQUIRE(m.start() == "");
  auto client = m.client(100);
  std::vector<TestTunnel*> ts;
  for (int i = 0; i < 200; ++i) {
    TestTunnel& t = client->open(vip(m, 100, 7000));
    t.send("tunnel-" + std::to_string(i) + "-" + std::string(4096, 'z'));
    ts.push_back(&t);
  }
  // All 200 are open at once before any is closed.
  REQUIRE(client->run_until(
      [&] { return std::all_of(ts.begin(), ts.end(), [](TestTunnel* t) { return t->received.size() >= 4096 + 8; }); },
      30s));
  CHECK(pod->active_tunnels() == 200);
  CHECK(client->connection_count() == 2);
  CHECK(m.waypoint->stat("downstream_cx_active") == 2);
  for (auto* t : ts) {
    t->send_eof();
  }
  REQUIRE(client->run_until([&] { return std::all_of(ts.begin(), ts.end(), [](TestTunnel* t) { return t->closed; }); },
                            30s));
  for (size_t i = 0; i < ts.size(); ++i) {
    CHECK(ts[i]->received == "tunnel-" + std::to_string(i) + "-" + std::string(4096, 'z'));
    CHECK(ts[i]->clean);
  }
}

TEST_CASE("upstream pooling: 400 tunnels share at most 4 connections, a burst to a new pod dials once", "[l4][pool]") {
  Mesh m;
  FakePod* pod = m.add_pod("busy", 1, {{"app", "busy"}});
  FakePod* fresh = m.add_pod("fresh", 2, {{"app", "fresh"}});
  m.spec.concurrency = 1;  // one worker owns one pool: the bound is exact
  REQUIRE(m.start() == "");
  auto client = m.client(100);

  std::vector<TestTunnel*> ts;
  for (int i = 0; i < 400; ++i) {
    TestTunnel& t = client->open(m.env.addr(1, 80).to_string());
    t.send("a");
    ts.push_back(&t);
  }
  REQUIRE(client->run_until(
      [&] { return std::all_of(ts.begin(), ts.end(), [](TestTunnel* t) { return t->received == "a"; }); }, 30s));
  CHECK(pod->active_tunnels() == 400);
  CHECK(pod->connections() <= 4);
  CHECK(pod->connections() >= 4);  // 100 streams per connection: exactly four are needed

  std::vector<TestTunnel*> burst;
  for (int i = 0; i < 50; ++i) {
    TestTunnel& t = client->open(m.env.addr(2, 80).to_string());
    t.send("b");
    burst.push_back(&t);
  }
  REQUIRE(client->run_until(
      [&] { return std::all_of(burst.begin(), burst.end(), [](TestTunnel* t) { return t->received == "b"; }); }, 30s));
  CHECK(fresh->connections() == 1);
  CHECK(fresh->tunnels() == 50);
}

TEST_CASE("idle upstream connections close after upstream.idleTimeout", "[l4][pool]") {
  Mesh m;
  FakePod* pod = m.add_pod("idle", 1, {{"app", "idle"}});
  m.spec.extra_bootstrap = "  upstream: {idleTimeout: 200ms}\n";
  m.spec.concurrency = 1;
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(m.env.addr(1, 80).to_string());
  t.send_eof();
  REQUIRE(client->run_until([&] { return t.closed; }));
  CHECK(pod->connections() == 1);
  CHECK(m.waypoint->wait_stat("upstream_cx_idle_closed", [](int64_t v) { return v == 1; }));
  CHECK(m.waypoint->wait_stat("upstream_cx_active", [](int64_t v) { return v == 0; }));
}

TEST_CASE("CONNECT errors: 400 bad authority, 503 not served, 503 pod down, 503 pod refuses", "[l4]") {
  Mesh m;
  m.add_pod("down", 5, {{"app", "down"}}, {.listening = false});
  m.add_service("down", 101, 80, 80, {{"app", "down"}});
  m.add_pod("refuser", 6, {{"app", "refuser"}}, {.behavior = PodBehavior::Refuse});
  m.add_service("refuser", 102, 80, 80, {{"app", "refuser"}});
  m.add_service("empty", 103, 80, 80, {{"app", "nobody"}});
  REQUIRE(m.start() == "");
  auto client = m.client();

  struct Case {
    std::string authority;
    int status;
    const char* counter;
  };
  std::vector<Case> cases = {
      {"example.com:80", 400, "tunnels_rejected_bad_request"},
      {m.env.addr(100, 80).to_string() + "x", 400, "tunnels_rejected_bad_request"},
      {m.env.ip(100).to_string(), 400, "tunnels_rejected_bad_request"},
      {m.env.addr(200, 80).to_string(), 503, "tunnels_rejected_not_served"},
      {m.env.addr(101, 81).to_string(), 503, "tunnels_rejected_not_served"},  // served VIP, port not served
      {m.env.addr(103, 80).to_string(), 503, "tunnels_rejected_no_endpoint"},
      {m.env.addr(101, 80).to_string(), 503, "tunnels_rejected_upstream_failure"},
      {m.env.addr(102, 80).to_string(), 503, "tunnels_rejected_upstream_failure"},
  };
  std::map<std::string, int64_t> expected;
  for (const auto& c : cases) {
    INFO(c.authority);
    TestTunnel& t = client->open(c.authority);
    t.send("never forwarded");
    REQUIRE(client->run_until([&] { return t.done(); }));
    CHECK(t.status == c.status);
    expected[c.counter]++;
  }
  for (const auto& [name, n] : expected) {
    INFO(name);
    CHECK(m.waypoint->stat(name) == n);
  }
  CHECK(m.pods[0]->bytes_received() == 0);
}

TEST_CASE("a pod presenting the wrong identity is refused (503), never spoken to", "[l4][tls]") {
  Mesh m;
  // The config says the pod runs as service account "reviews"; the fake pod presents "default".
  m.add_pod("impostor", 7, {{"app", "imp"}}, {.service_account = "reviews", .presented_account = "default"});
  m.add_service("imp", 100, 80, 80, {{"app", "imp"}});  // a TCP service: the CONNECT waits for the pod
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(vip(m, 100, 80));
  REQUIRE(client->run_until([&] { return t.done(); }));
  CHECK(t.status == 503);
  CHECK(m.pods[0]->tunnels() == 0);
  CHECK(m.waypoint->stat("upstream_cx_connect_failed") >= 1);
}

TEST_CASE("upstream.connectTimeout bounds the wait for a pod that never answers the CONNECT", "[l4][limits]") {
  Mesh m;
  m.spec.extra_bootstrap = "  upstream: {connectTimeout: 300ms}\n";
  m.add_pod("sleepy", 8, {{"app", "sleepy"}}, {.respond_delay_ms = 20'000});
  m.add_service("sleepy", 100, 80, 80, {{"app", "sleepy"}});
  REQUIRE(m.start() == "");
  auto client = m.client();
  auto t0 = std::chrono::steady_clock::now();
  TestTunnel& t = client->open(vip(m, 100, 80));
  REQUIRE(client->run_until([&] { return t.done(); }));
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(t.status == 503);
  CHECK(waited >= 250ms);
  CHECK(waited < 5s);
  CHECK(m.pods[0]->tunnels() == 1);  // the CONNECT did reach the pod; its answer never came in time
  CHECK(m.waypoint->stat("upstream_connect_timeout") == 1);
  CHECK(m.waypoint->stat("tunnels_rejected_upstream_failure") == 1);
}

TEST_CASE("half-close propagates both ways", "[l4]") {
  Mesh m;
  FakePod* greeter = m.add_pod("greeter", 1, {{"app", "greet"}}, {.behavior = PodBehavior::Greet});
  REQUIRE(m.start() == "");
  auto client = m.client();
  // The pod closes its side first ("hello\n", END_STREAM); the client keeps sending afterwards.
  TestTunnel& t = client->open(m.env.addr(1, 80).to_string());
  REQUIRE(client->run_until([&] { return t.eof; }));
  CHECK(t.received == "hello\n");
  CHECK_FALSE(t.closed);
  t.send_pattern(1u << 20, true);
  bool closed = client->run_until([&] { return t.closed; });
  INFO("client sent " << t.sent_bytes << ", pod received " << greeter->bytes_received() << ", pod EOFs "
                      << greeter->eofs_received());
  REQUIRE(closed);
  CHECK(t.clean);
  // The client's stream is done once its bytes left; the waypoint still delivers them after.
  REQUIRE(client->run_until([&] { return greeter->eofs_received() == 1; }));
  CHECK(greeter->bytes_received() == (1u << 20));
  CHECK(greeter->eofs_received() == 1);
}

TEST_CASE("client half-close: the pod sees EOF and its answer still comes back", "[l4]") {
  Mesh m;
  FakePod* pod = m.add_pod("echo", 1, {{"app", "echo"}});
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(m.env.addr(1, 80).to_string());
  t.send("ping");
  t.send_eof();
  REQUIRE(client->run_until([&] { return t.closed; }));
  CHECK(pod->eofs_received() == 1);
  CHECK(t.received == "ping");
  CHECK(t.eof);
  CHECK(t.clean);
}

TEST_CASE("a reset on either side resets the other", "[l4]") {
  Mesh m;
  FakePod* resetter = m.add_pod("resetter", 1, {{"app", "r"}}, {.behavior = PodBehavior::Reset});
  FakePod* echo = m.add_pod("echo", 2, {{"app", "e"}});
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& a = client->open(m.env.addr(1, 80).to_string());
  a.send("boom");
  REQUIRE(client->run_until([&] { return a.closed; }));
  CHECK(a.status == 200);
  CHECK_FALSE(a.clean);
  CHECK(resetter->bytes_received() == 4);

  TestTunnel& b = client->open(m.env.addr(2, 80).to_string());
  b.send("x");
  REQUIRE(client->run_until([&] { return b.received == "x"; }));
  b.reset();
  REQUIRE(client->run_until([&] { return echo->active_tunnels() == 0; }));
  CHECK(m.waypoint->wait_stat("tunnels_active", [](int64_t v) { return v == 0; }));
}

TEST_CASE("a slow reader holds the waypoint's memory bounded and loses nothing", "[l4][flow]") {
  Mesh m;
  FakePod* pod = m.add_pod("slow", 1, {{"app", "slow"}});
  m.spec.concurrency = 1;
  REQUIRE(m.start() == "");
  auto client = m.client();
  long rss_before = m.waypoint->rss_kb();

  // The pod stops reading: its window (4 MiB) and the waypoint's (4 MiB per stream) fill, then
  // the client is held back. 64 MiB offered; far less than that can be in flight.
  pod->set_reading(false);
  constexpr uint64_t kTotal = 64u << 20;
  TestTunnel& t = client->open(m.env.addr(1, 80).to_string());
  t.discard_received = false;
  t.send_pattern(kTotal, true);
  // The pod's window (4 MiB, received but never consumed) fills, then the waypoint's: the waypoint
  // reopens the client's window as bytes leave towards the pod, but nghttp2 sends WINDOW_UPDATE
  // only once half the window (2 MiB) has been consumed, so the client stalls after between
  // 4 + 2 and 4 + 4 MiB depending on how the consumption was batched.
  bool filled = client->run_until([&] { return pod->bytes_received() >= (4u << 20) && t.sent_bytes >= (6u << 20); });
  INFO("client sent " << t.sent_bytes << " B, received " << t.received_bytes << " B; pod received "
                      << pod->bytes_received() << " B; waypoint copied "
                      << m.waypoint->stat("tcp_bytes_downstream_to_upstream") << " B up, "
                      << m.waypoint->stat("tcp_bytes_upstream_to_downstream") << " B down");
  REQUIRE(filled);
  client->run_until([] { return false; }, 300ms);  // an observation window: nothing more may move
  uint64_t sent_while_stalled = t.sent_bytes;
  long rss_stalled = m.waypoint->rss_kb();
  WARN("measured: sent while the pod was not reading: " << sent_while_stalled << " B; waypoint RSS " << rss_before
                                                        << " -> " << rss_stalled << " KiB");
  CHECK(sent_while_stalled >= 6u << 20);
  CHECK(sent_while_stalled <= 8u << 20);  // never more than the pod's window plus the waypoint's
  CHECK(pod->bytes_received() == 4u << 20);
  if (kRssMeaningful) {
    CHECK(rss_stalled - rss_before < 12 * 1024);
  }  // bounded by one stream window, not by 64 MiB

  pod->set_reading(true);
  REQUIRE(client->run_until([&] { return t.closed; }, 60s));
  CHECK(t.clean);
  REQUIRE(t.received.size() == kTotal);
  CHECK(pattern_mismatch(t.received) == -1);
}

TEST_CASE("a client that stops reading stalls the pod's data, not the waypoint's memory", "[l4][flow]") {
  Mesh m;
  FakePod* pod = m.add_pod("echo", 1, {{"app", "echo"}});
  m.spec.concurrency = 1;
  REQUIRE(m.start() == "");
  auto client = m.client();
  long rss_before = m.waypoint->rss_kb();
  TestTunnel& t = client->open(m.env.addr(1, 80).to_string());
  t.discard_received = true;
  t.set_reading(false);
  t.send_pattern(48u << 20, true);
  REQUIRE(client->run_until([&] { return t.received_bytes >= (4u << 20); }));
  client->run_until([] { return false; }, 300ms);  // an observation window: nothing more may arrive
  long rss_stalled = m.waypoint->rss_kb();
  WARN("measured: received while the client was not reading: " << t.received_bytes << " B; waypoint RSS " << rss_before
                                                               << " -> " << rss_stalled << " KiB");
  CHECK(t.received_bytes == (4u << 20));  // exactly our stream window
  if (kRssMeaningful) {
    CHECK(rss_stalled - rss_before < 16 * 1024);
  }
  t.set_reading(true);
  REQUIRE(client->run_until([&] { return t.closed; }, 60s));
  CHECK(t.received_bytes == (48u << 20));
  CHECK(pod->bytes_received() == (48u << 20));
}

TEST_CASE("every tunnel gets one JSON access-log line explaining its outcome", "[l4][log]") {
  Mesh m;
  m.add_pod("echo", 1, {{"app", "echo"}});
  m.add_service("echo", 100, 7000, 7000, {{"app", "echo"}});
  m.add_pod("down", 5, {{"app", "down"}}, {.listening = false});
  m.add_service("empty", 103, 80, 80, {{"app", "nobody"}});
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& ok = client->open(vip(m, 100, 7000));
  ok.send("12345");
  ok.send_eof();
  TestTunnel& nr = client->open(m.env.addr(200, 80).to_string());
  TestTunnel& uh = client->open(m.env.addr(103, 80).to_string());
  TestTunnel& uf = client->open(m.env.addr(5, 80).to_string());
  REQUIRE(client->run_until([&] { return ok.closed && nr.done() && uh.done() && uf.done(); }));
  auto lines = [&] {
    std::vector<std::string> out;
    std::istringstream in(m.waypoint->log());
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line[0] == '{') {
        out.push_back(line);
      }
    }
    return out;
  };
  auto find = [&](const std::string& needle) {
    for (const auto& l : lines()) {
      if (l.find(needle) != std::string::npos) {
        return l;
      }
    }
    return std::string();
  };
  // Lines are written at the end of a loop iteration: poll for all four.
  for (int i = 0; i < 200 && lines().size() < 4; ++i) {
    client->run_until([] { return false; }, 10ms);
  }
  REQUIRE(lines().size() == 4);
  std::string l = find("\"authority\":\"" + vip(m, 100, 7000) + "\"");
  CHECK(l.find("\"response_code\":200") != std::string::npos);
  CHECK(l.find("\"response_flags\":\"-\"") != std::string::npos);
  CHECK(l.find("\"route_name\":\"inbound-vip|7000|tcp|echo.default.svc.cluster.local\"") != std::string::npos);
  CHECK(l.find("\"upstream_host\":\"" + m.env.addr(1, 7000).to_string() + "\"") != std::string::npos);
  INFO(l);
  CHECK(l.find("\"bytes_received\":5,\"bytes_sent\":5") != std::string::npos);
  CHECK(l.find("\"source_principal\":\"" + m.client_id.spiffe + "\"") != std::string::npos);
  CHECK(find("\"authority\":\"" + m.env.addr(200, 80).to_string() + "\"")
            .find("\"response_code\":503,\"response_flags\":\"NR\"") != std::string::npos);
  CHECK(find("\"authority\":\"" + m.env.addr(103, 80).to_string() + "\"")
            .find("\"response_code\":503,\"response_flags\":\"UH\"") != std::string::npos);
  CHECK(find("\"authority\":\"" + m.env.addr(5, 80).to_string() + "\"")
            .find("\"response_code\":503,\"response_flags\":\"UF\"") != std::string::npos);
}

TEST_CASE("the harness's fd check sees a connection left open, and its end", "[l4][harness]") {
  Mesh m;
  m.add_pod("echo-1", 1, {{"app", "echo"}});
  m.add_service("echo", 100, 7000, 7007, {{"app", "echo"}});
  REQUIRE(m.start() == "");
  const int baseline = m.waypoint->open_fds();
  REQUIRE(baseline > 0);
  {
    auto client = m.client();
    TestTunnel& t = client->open(vip(m, 100, 7000));
    REQUIRE(client->run_until([&] { return t.established(); }));
    // The client's HBONE connection and the upstream one to the pod: at least two more.
    CHECK(m.waypoint->open_fds() >= baseline + 2);
    CHECK_FALSE(m.waypoint->fds_off_baseline(200ms).empty());
  }
  m.pods.clear();  // the pooled upstream connection ends with its pod
  CHECK(m.waypoint->fds_off_baseline(5s) == "");
}
