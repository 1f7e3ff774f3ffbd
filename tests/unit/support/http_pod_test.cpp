// Tests for the fake pod's HTTP behaviour (tests/support/pod_http.cpp) and the HTTP test client
// (tests/support/http_client.h), driven directly over HBONE: no waypoint in between.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/fake_pod.h"
#include "support/harness.h"
#include "support/hbone_client.h"
#include "support/http_client.h"

namespace {

using namespace wp::testing;
using std::chrono::milliseconds;

struct HttpPod {
  TestEnv env;
  Identity pod_id = env.identity("pod-a", "default", "pod-a");
  Identity client_id = env.identity("client", "default", "client");
  std::unique_ptr<FakePod> pod;
  std::unique_ptr<HboneTestClient> client;

  HttpPod() {
    FakePodOptions o;
    o.address = env.addr(1, 15008);
    o.cert = pod_id.cert;
    o.key = pod_id.key;
    o.root = env.root_pem();
    o.behavior = PodBehavior::Http;
    o.name = "pod-a";
    pod = std::make_unique<FakePod>(o);
    ClientOptions c;
    c.waypoint = o.address;
    c.expected_identity = pod_id.spiffe;
    c.cert = client_id.cert;
    c.key = client_id.key;
    c.root = env.root_pem();
    client = std::make_unique<HboneTestClient>(c);
  }

  TestTunnel& tunnel() { return client->open(env.addr(1, 8080).to_string()); }
};

std::string make_body(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('A' + (i * 31 + i / 7) % 57);
  }
  return s;
}

// The index of the first differing byte, -1 when equal (keeps big bodies out of failure messages).
long first_difference(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) {
      return static_cast<long>(i);
    }
  }
  return a.size() == b.size() ? -1 : static_cast<long>(n);
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = pod_body_byte(i);
  }
  return s;
}

}  // namespace

TEST_CASE("support: http pod echoes bodies over HTTP/1.1 keep-alive") {
  HttpPod p;
  TestTunnel& t = p.tunnel();
  Http1Conn conn(*p.client, t);
  const std::vector<size_t> sizes = {0, 1024, 1 << 20};
  for (size_t n : sizes) {
    std::string body = make_body(n);
    HttpResponse r = conn.request("POST", "/echo?n=" + std::to_string(n), {{"host", "echo.default"}}, body);
    INFO("size " << n);
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK(r.header("content-length") == std::to_string(n));
    CHECK(r.header("x-pod") == "pod-a");
    CHECK_FALSE(r.headers.has("x-request-body-bytes"));
    CHECK(r.body.size() == n);
    CHECK(first_difference(r.body, body) == -1);
  }
  CHECK_FALSE(conn.closed());
  CHECK(p.pod->tunnels() == 1);
  CHECK(p.pod->http_requests() == 3);
  CHECK(p.pod->http_errors() == 0);
  std::vector<RecordedRequest> reqs = p.pod->requests();
  REQUIRE(reqs.size() == 3);
  for (size_t i = 0; i < reqs.size(); ++i) {
    CHECK(reqs[i].method == "POST");
    CHECK(reqs[i].target == "/echo?n=" + std::to_string(sizes[i]));
    CHECK(reqs[i].authority == "echo.default");
    CHECK(reqs[i].body_bytes == sizes[i]);
    CHECK_FALSE(reqs[i].h2c);
  }

  // A chunked request body is echoed chunked; a GET without a body gets an empty 200.
  RequestOptions chunked;
  chunked.chunked = true;
  HttpResponse c = conn.request("PUT", "/c", {}, "chunky", chunked);
  CHECK(c.status == 200);
  CHECK(c.header("transfer-encoding") == "chunked");
  CHECK(c.body == "chunky");
  HttpResponse g = conn.request("GET", "/g");
  CHECK(g.status == 200);
  CHECK(g.header("content-length") == "0");
  CHECK(g.body.empty());
  CHECK(p.pod->requests().back().authority == "svc");
}

TEST_CASE("support: http pod streams a 16 MiB echo with flow control") {
  HttpPod p;
  Http1Conn conn(*p.client, p.tunnel());
  std::string body = make_body(16 << 20);
  RequestOptions o;
  o.timeout = std::chrono::seconds(60);
  HttpResponse r = conn.request("POST", "/big", {}, body, o);
  REQUIRE(r.complete);
  CHECK(r.status == 200);
  CHECK(r.body.size() == body.size());
  CHECK(first_difference(r.body, body) == -1);
}

TEST_CASE("support: http pod echo stops taking bytes while the client does not read") {
  HttpPod p;
  TestTunnel& t = p.tunnel();
  Http1Conn conn(*p.client, t);
  REQUIRE(p.client->run_until([&] { return t.done(); }));
  REQUIRE(t.established());
  t.set_reading(false);
  const size_t size = 16 << 20;
  std::string body = make_body(size);
  conn.send_raw("POST /big HTTP/1.1\r\nhost: svc\r\ncontent-length: " + std::to_string(size) + "\r\n\r\n");
  conn.send_raw(body);
  // Until nothing moves any more: at most the pod's stream window, its 1 MiB of pending output and
  // our stream window are in flight.
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    p.client->run_until([] { return false; }, milliseconds(100));
    if (t.sent_bytes == last && last > 0) {
      break;
    }
    last = t.sent_bytes;
  }
  CHECK(t.sent_bytes > (4u << 20));
  CHECK(t.sent_bytes < (13u << 20));
  CHECK(p.pod->bytes_received() < (13u << 20));
  t.set_reading(true);
  std::vector<HttpResponse> rs = conn.read_responses(1, std::chrono::seconds(60));
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].complete);
  CHECK(rs[0].body.size() == size);
  CHECK(first_difference(rs[0].body, body) == -1);
  // A 16 MiB generated body on the same tunnel.
  RequestOptions o;
  o.timeout = std::chrono::seconds(60);
  HttpResponse g = conn.request("GET", "/gen", {{"x-body-bytes", std::to_string(size)}}, "", o);
  CHECK(g.complete);
  CHECK(first_difference(g.body, pattern(size)) == -1);
}

TEST_CASE("support: http pod answers x-status, x-body-bytes, x-chunked and x-delay-ms") {
  HttpPod p;
  Http1Conn conn(*p.client, p.tunnel());

  HttpResponse s = conn.request("POST", "/s", {{"x-status", "503"}, {"x-request-id", "rid-1"}}, "abc");
  CHECK(s.status == 503);
  CHECK(s.body.empty());
  CHECK(s.header("content-length") == "0");
  CHECK(s.header("x-request-body-bytes") == "3");
  CHECK(s.header("x-seen-request-id") == "rid-1");
  CHECK_FALSE(s.headers.has("x-seen-traceparent"));

  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  HttpResponse b = conn.request("POST", "/b", {{"x-body-bytes", "100000"}, {"traceparent", tp}}, "ignored");
  CHECK(b.status == 200);
  CHECK(b.header("content-length") == "100000");
  CHECK(b.header("x-request-body-bytes") == "7");
  CHECK(b.header("x-seen-traceparent") == tp);
  CHECK(first_difference(b.body, pattern(100000)) == -1);

  HttpResponse c = conn.request("GET", "/c", {{"x-body-bytes", "40000"}, {"x-chunked", "1"}, {"x-status", "201"}});
  CHECK(c.status == 201);
  CHECK(c.header("transfer-encoding") == "chunked");
  CHECK_FALSE(c.headers.has("content-length"));
  CHECK(first_difference(c.body, pattern(40000)) == -1);

  auto t0 = std::chrono::steady_clock::now();
  HttpResponse d = conn.request("POST", "/d", {{"x-delay-ms", "200"}}, "late");
  auto elapsed = std::chrono::steady_clock::now() - t0;
  CHECK(d.status == 200);
  CHECK(d.body == "late");
  CHECK(elapsed >= milliseconds(190));  // libuv timers count from the cached loop time

  // The timeout gives back what arrived so far.
  RequestOptions quick;
  quick.timeout = milliseconds(100);
  HttpResponse slow = conn.request("GET", "/slow", {{"x-delay-ms", "2000"}}, "", quick);
  CHECK_FALSE(slow.complete);
  CHECK(slow.status == 0);
  CHECK(p.pod->http_requests() == 5);
}

TEST_CASE("support: http pod fail_next answers the next requests with a status") {
  HttpPod p;
  Http1Conn conn(*p.client, p.tunnel());
  p.pod->fail_next(2, 503);
  HttpResponse a = conn.request("POST", "/a", {{"x-body-bytes", "10"}}, "x");
  HttpResponse b = conn.request("GET", "/b", {{"x-status", "201"}});
  HttpResponse c = conn.request("POST", "/c", {}, "ok");
  CHECK(a.status == 503);
  CHECK(a.body.empty());
  CHECK(a.header("x-pod") == "pod-a");
  CHECK(b.status == 503);
  CHECK(c.status == 200);
  CHECK(c.body == "ok");
  CHECK(p.pod->http_requests() == 3);
}

TEST_CASE("support: http pod answers pipelined requests in order") {
  HttpPod p;
  Http1Conn conn(*p.client, p.tunnel());
  // The first is answered late, the second at once: answers still come in request order.
  conn.send_raw(
      "GET /first HTTP/1.1\r\nhost: svc\r\nx-delay-ms: 100\r\nx-body-bytes: 5\r\n\r\n"
      "POST /second HTTP/1.1\r\nhost: svc\r\ncontent-length: 2\r\n\r\nhi"
      "GET /third HTTP/1.1\r\nhost: svc\r\nx-status: 204\r\n\r\n");
  std::vector<HttpResponse> rs = conn.read_responses(3);
  REQUIRE(rs.size() == 3);
  CHECK(rs[0].status == 200);
  CHECK(rs[0].body == "abcde");
  CHECK(rs[1].status == 200);
  CHECK(rs[1].body == "hi");
  CHECK(rs[2].status == 204);
  std::vector<RecordedRequest> reqs = p.pod->requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].target == "/first");
  CHECK(reqs[1].target == "/second");
  CHECK(reqs[2].target == "/third");
  // The connection is still usable afterwards.
  HttpResponse r = conn.request("POST", "/after", {}, "more");
  CHECK(r.body == "more");
}

TEST_CASE("support: http pod x-close, x-reset and bad requests end the tunnel") {
  HttpPod p;
  SECTION("x-close") {
    Http1Conn conn(*p.client, p.tunnel());
    HttpResponse r = conn.request("POST", "/", {{"x-close", "1"}}, "bye");
    CHECK(r.status == 200);
    CHECK(r.body == "bye");
    CHECK(r.header("connection") == "close");
    CHECK(conn.wait_closed());
  }
  SECTION("client connection: close") {
    Http1Conn conn(*p.client, p.tunnel());
    RequestOptions o;
    o.close = true;
    HttpResponse r = conn.request("GET", "/", {}, "", o);
    CHECK(r.status == 200);
    CHECK(conn.wait_closed());
  }
  SECTION("x-reset") {
    TestTunnel& t = p.tunnel();
    Http1Conn conn(*p.client, t);
    HttpResponse r = conn.request("GET", "/", {{"x-reset", "1"}});
    CHECK(r.status == 0);
    CHECK(conn.wait_closed());
    CHECK(p.client->run_until([&] { return t.closed; }, milliseconds(5000)));
    CHECK_FALSE(t.clean);
  }
  SECTION("bad request") {
    Http1Conn conn(*p.client, p.tunnel());
    // Content-Length with Transfer-Encoding: a smuggling attempt.
    conn.send_raw(
        "POST / HTTP/1.1\r\nhost: svc\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
        "GET /smuggled HTTP/1.1\r\nhost: svc\r\n\r\n");
    std::vector<HttpResponse> rs = conn.read_responses(2);
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 400);
    CHECK(rs[0].header("connection") == "close");
    CHECK(conn.wait_closed());
    CHECK(p.pod->http_errors() == 1);
    CHECK(p.pod->http_requests() == 0);
  }
}

TEST_CASE("support: http pod serves h2c with concurrent streams") {
  HttpPod p;
  TestTunnel& t = p.tunnel();
  H2cConn conn(*p.client, t);
  struct Case {
    int32_t id;
    std::string body;
  };
  std::vector<Case> cases;
  std::vector<int32_t> ids;
  for (int i = 0; i < 20; ++i) {
    Fields h = {{"host", "h2.default"}, {"x-request-id", std::string("r").append(std::to_string(i))}};
    std::string body;
    switch (i % 4) {
      case 0:
        body = make_body(static_cast<size_t>(i) * 1000);
        break;
      case 1:
        h.push_back({"x-body-bytes", std::to_string(i * 3000)});
        break;
      case 2:
        h.push_back({"x-status", "404"});
        body = "nope";
        break;
      case 3:
        h.push_back({"x-delay-ms", "50"});
        body = make_body(1200000);  // more than a stream window (1 MiB): flow control at work
        break;
    }
    int32_t id = conn.start(i % 4 == 1 ? "GET" : "POST", "/s" + std::to_string(i), h, body);
    REQUIRE(id > 0);
    cases.push_back({id, body});
    ids.push_back(id);
  }
  REQUIRE(conn.run_until_done(ids));
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("stream " << i);
    HttpResponse& r = conn.response(cases[i].id);
    CHECK(r.complete);
    CHECK(r.reset_code == 0);
    CHECK(r.header("x-pod") == "pod-a");
    CHECK(r.header("x-seen-request-id") == "r" + std::to_string(i));
    switch (i % 4) {
      case 0:
      case 3:
        CHECK(r.status == 200);
        CHECK(first_difference(r.body, cases[i].body) == -1);
        break;
      case 1:
        CHECK(r.status == 200);
        CHECK(first_difference(r.body, pattern(i * 3000)) == -1);
        break;
      case 2:
        CHECK(r.status == 404);
        CHECK(r.body.empty());
        CHECK(r.header("x-request-body-bytes") == "4");
        break;
    }
  }
  CHECK(p.pod->tunnels() == 1);
  CHECK(p.pod->http_requests() == 20);
  std::vector<RecordedRequest> reqs = p.pod->requests();
  REQUIRE(reqs.size() == 20);
  for (const RecordedRequest& r : reqs) {
    CHECK(r.h2c);
    CHECK(r.authority == "h2.default");
  }

  // A reset stream, then the session still works.
  HttpResponse reset = conn.request("GET", "/r", {{"x-reset", "1"}});
  CHECK_FALSE(reset.complete);
  CHECK(reset.reset_code == 2);
  HttpResponse after = conn.request("POST", "/after", {}, "still here");
  CHECK(after.status == 200);
  CHECK(after.body == "still here");
  CHECK(conn.error().empty());
}

TEST_CASE("support: http pod streams a 16 MiB h2c echo") {
  HttpPod p;
  H2cConn conn(*p.client, p.tunnel());
  std::string body = make_body(16 << 20);
  HttpResponse r = conn.request("POST", "/big", {}, body, std::chrono::seconds(60));
  CHECK(r.complete);
  CHECK(r.status == 200);
  CHECK(r.header("content-length") == std::to_string(body.size()));
  CHECK(r.body.size() == body.size());
  CHECK(first_difference(r.body, body) == -1);
  HttpResponse g =
      conn.request("GET", "/gen", {{"x-body-bytes", std::to_string(16 << 20)}}, "", std::chrono::seconds(60));
  CHECK(g.complete);
  CHECK(first_difference(g.body, pattern(16 << 20)) == -1);
  CHECK(p.pod->requests().at(0).body_bytes == body.size());
}
