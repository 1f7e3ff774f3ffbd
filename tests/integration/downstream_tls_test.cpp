// Downstream TLS and HTTP/2 limits on 15008: every handshake failure closes the connection and is
// counted by reason; each configured limit trips and is counted.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>

#include "integration/fixture.h"

using namespace wp::testing;
using namespace std::chrono_literals;

TEST_CASE("handshake failures close the connection and are counted by reason", "[tls]") {
  Mesh m;
  m.add_pod("echo", 1, {{"app", "echo"}});
  REQUIRE(m.start() == "");
  const auto addr = m.spec.hbone;

  ProbeOptions good{m.client_id.cert, m.client_id.key, m.env.root_pem()};
  CHECK(tls_probe(addr, good));

  struct Case {
    const char* what;
    ProbeOptions probe;
    const char* counter;
  };
  Identity foreign = m.env.foreign_identity("foreign", "spiffe://cluster.local/ns/default/sa/client");
  Identity other_td = m.env.identity("other-td", "default", "client", "evil.example");
  Identity no_spiffe = m.env.leaf("no-spiffe", "");  // right root, no URI SAN at all
  Identity not_spiffe = m.env.leaf("not-spiffe", "https://cluster.local/ns/default/sa/client");
  Identity bad_path = m.env.leaf("bad-path", "spiffe://cluster.local/default/client");
  std::vector<Case> cases = {
      {"no client certificate", {"", "", m.env.root_pem()}, "handshake_failed_no_certificate"},
      {"certificate from another CA",
       {foreign.cert, foreign.key, m.env.root_pem()},
       "handshake_failed_untrusted_chain"},
      {"another trust domain", {other_td.cert, other_td.key, m.env.root_pem()}, "handshake_failed_bad_identity"},
      {"no URI SAN", {no_spiffe.cert, no_spiffe.key, m.env.root_pem()}, "handshake_failed_bad_identity"},
      {"a URI SAN that is not spiffe://",
       {not_spiffe.cert, not_spiffe.key, m.env.root_pem()},
       "handshake_failed_bad_identity"},
      {"a SPIFFE ID without ns/sa", {bad_path.cert, bad_path.key, m.env.root_pem()}, "handshake_failed_bad_identity"},
      {"plaintext on 15008", {"", "", "", false, true, true}, "handshake_failed_not_tls"},
      {"TLS 1.2 only",
       {m.client_id.cert, m.client_id.key, m.env.root_pem(), true},
       "handshake_failed_protocol_version"},
      {"no h2 ALPN", {m.client_id.cert, m.client_id.key, m.env.root_pem(), false, false}, "handshake_failed_no_alpn"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    int64_t before = std::max<int64_t>(0, m.waypoint->stat(c.counter));
    CHECK_FALSE(tls_probe(addr, c.probe));
    CHECK(m.waypoint->wait_stat(c.counter, [before](int64_t v) { return v == before + 1; }));
  }
  CHECK(m.waypoint->stat("handshake_failed_other") == 0);
  // Nothing reached the data path.
  CHECK(m.waypoint->stat("tunnels_total") == 0);
  CHECK(tls_probe(addr, good));
}

TEST_CASE("downstream.handshakeTimeout closes a silent connection and counts it", "[tls][limits]") {
  Mesh m;
  m.spec.extra_bootstrap = "  downstream: {handshakeTimeout: 200ms}\n";
  REQUIRE(m.start() == "");
  sockaddr_storage ss;
  unsigned len = m.spec.hbone.to_sockaddr(&ss);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[16];
  auto t0 = std::chrono::steady_clock::now();
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);  // the server closes: EOF
  auto waited = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  CHECK(n == 0);
  CHECK(waited < 3s);
  CHECK(m.waypoint->wait_stat("handshake_failed_timeout", [](int64_t v) { return v == 1; }));
}

TEST_CASE("downstream.maxConnections refuses connections over the limit and counts them", "[limits]") {
  Mesh m;
  m.spec.concurrency = 1;
  m.spec.extra_bootstrap = "  downstream: {maxConnections: 2}\n";
  m.add_pod("echo", 1, {{"app", "echo"}});
  REQUIRE(m.start() == "");
  // Two clients hold one connection each; the third is closed at accept.
  auto c1 = m.client();
  auto c2 = m.client();
  TestTunnel& t1 = c1->open(m.env.addr(1, 80).to_string());
  TestTunnel& t2 = c2->open(m.env.addr(1, 80).to_string());
  REQUIRE(c1->run_until([&] { return t1.done(); }));
  REQUIRE(c2->run_until([&] { return t2.done(); }));
  CHECK(t1.established());
  CHECK(t2.established());
  ProbeOptions good{m.client_id.cert, m.client_id.key, m.env.root_pem()};
  CHECK_FALSE(tls_probe(m.spec.hbone, good));
  CHECK(m.waypoint->wait_stat("downstream_cx_overflow", [](int64_t v) { return v == 1; }));
}

TEST_CASE("a CONNECT whose header list exceeds downstream.maxHeaderListBytes gets 431", "[limits]") {
  Mesh m;
  m.spec.extra_bootstrap = "  downstream: {maxHeaderListBytes: 2048}\n";
  FakePod* pod = m.add_pod("echo", 1, {{"app", "echo"}});
  m.add_service("echo", 100, 80, 80, {{"app", "echo"}});  // TCP: established means the pod answered
  REQUIRE(m.start() == "");
  auto client = m.client();
  std::string vip = m.env.addr(100, 80).to_string();
  TestTunnel& big = client->open(vip, {{"baggage", std::string(3000, 'b')}});
  REQUIRE(client->run_until([&] { return big.done(); }));
  CHECK(big.status == 431);
  CHECK(m.waypoint->stat("tunnels_rejected_header_overflow") == 1);
  TestTunnel& ok = client->open(vip, {{"baggage", std::string(100, 'b')}});
  REQUIRE(client->run_until([&] { return ok.done(); }));
  CHECK(ok.established());
  CHECK(pod->tunnels() == 1);
}

TEST_CASE("a client that never answers PING is dropped after the keepalive timeout", "[limits]") {
  Mesh m;
  m.spec.extra_bootstrap = "  downstream: {keepaliveInterval: 100ms, keepaliveTimeout: 300ms}\n";
  REQUIRE(m.start() == "");
  // A raw TLS client: sends the HTTP/2 preface and SETTINGS, then never reads or answers anything.
  sockaddr_storage ss;
  unsigned len = m.spec.hbone.to_sockaddr(&ss);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_use_certificate_chain_file(ctx, m.client_id.cert.c_str());
  SSL_CTX_use_PrivateKey_file(ctx, m.client_id.key.c_str(), SSL_FILETYPE_PEM);
  static const unsigned char alpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  REQUIRE(SSL_connect(ssl) == 1);
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
  REQUIRE(SSL_write(ssl, preface, sizeof(preface) - 1) > 0);
  CHECK(m.waypoint->wait_stat(
      "downstream_cx_keepalive_timeout", [](int64_t v) { return v == 1; }, 5s));
  CHECK(m.waypoint->wait_stat("downstream_cx_active", [](int64_t v) { return v == 0; }));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
}

TEST_CASE("downstream.maxConcurrentStreams is advertised and obeyed", "[limits]") {
  Mesh m;
  m.spec.concurrency = 1;
  m.spec.extra_bootstrap = "  downstream: {maxConcurrentStreams: 5}\n";
  FakePod* pod = m.add_pod("echo", 1, {{"app", "echo"}});
  REQUIRE(m.start() == "");
  auto client = m.client(100);  // would put 100 streams on one connection if the server allowed it
  std::vector<TestTunnel*> ts;
  for (int i = 0; i < 10; ++i) {
    TestTunnel& t = client->open(m.env.addr(1, 80).to_string());
    t.send("x");
    ts.push_back(&t);
  }
  REQUIRE(client->run_until(
      [&] { return std::all_of(ts.begin(), ts.end(), [](TestTunnel* t) { return t->received == "x"; }); }));
  CHECK(pod->active_tunnels() == 10);
  CHECK(client->connection_count() == 2);
  CHECK(m.waypoint->stat("downstream_cx_total") == 2);
}

TEST_CASE("out of file descriptors: accepting pauses, is counted, and recovers", "[limits]") {
  Mesh m;
  m.spec.concurrency = 1;
  REQUIRE(m.start({"prlimit", "--nofile=48:48"}) == "");
  // Plain TCP connections that never handshake: each holds one of the waypoint's descriptors.
  std::vector<int> fds;
  sockaddr_storage ss;
  unsigned len = m.spec.hbone.to_sockaddr(&ss);
  for (int i = 0; i < 80; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);  // the kernel's backlog accepts
    fds.push_back(fd);
  }
  // The admin listener shares the descriptor shortage: /stats answers once the handshake timeout
  // (10 s) has freed some, hence the long wait.
  CHECK(m.waypoint->wait_stat("downstream_accept_paused", [](int64_t v) { return v >= 1; }, std::chrono::seconds(40)));
  for (int fd : fds) {
    ::close(fd);
  }
  // Descriptors come back as the waypoint notices the closes; then it accepts and serves again.
  ProbeOptions good{m.client_id.cert, m.client_id.key, m.env.root_pem()};
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {
    recovered = tls_probe(m.spec.hbone, good);
  }
  CHECK(recovered);
}
