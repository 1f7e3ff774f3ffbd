// L7 inside the tunnel: HTTP/1.1 and h2c chains, routes, weighted subsets, retries, timeouts,
// faults, load balancing and outlier detection, against the real binary and HTTP fake pods.
#include <catch2/catch.hpp>

#include <re2/re2.h>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "fixture.h"
#include "support/http_client.h"

using namespace wp::testing;
using namespace std::chrono_literals;

namespace {

// reviews: two v1 pods and one v2 pod behind one http service; subsets by version.
void bookinfo_reviews(Mesh& m, const std::string& virtual_service) {
  m.add_pod("reviews-v1-a", 1, {{"app", "reviews"}, {"version", "v1"}}, http_pod());
  m.add_pod("reviews-v1-b", 2, {{"app", "reviews"}, {"version", "v1"}}, http_pod());
  m.add_pod("reviews-v2", 3, {{"app", "reviews"}, {"version", "v2"}}, http_pod());
  m.add_service("reviews", 100, 9080, 9080, {{"app", "reviews"}}, "http");
  m.spec.extra_documents +=
      "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
      "metadata: {name: reviews, namespace: default}\n"
      "spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"
      "  - {name: v2, labels: {version: v2}}\n---\n" +
      virtual_service;
}

std::string reviews_vip(Mesh& m) {
  return m.env.addr(100, 9080).to_string();
}

// One service "svc" on VIP .100:80 (http) over the given pods, with an optional VirtualService body
// (the part under spec: after hosts).
void one_service(Mesh& m, int pods, const std::string& vs_http = "", const std::string& dr_policy = "") {
  for (int i = 0; i < pods; ++i) {
    m.add_pod("svc-" + std::to_string(i), 1 + i, {{"app", "svc"}}, http_pod());
  }
  m.add_service("svc", 100, 80, 8080, {{"app", "svc"}}, "http");
  if (!vs_http.empty()) {
    m.spec.extra_documents +=
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: svc, namespace: default}\nspec:\n  hosts: [svc]\n" +
        vs_http;
  }
  if (!dr_policy.empty()) {
    m.spec.extra_documents +=
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: svc, namespace: default}\nspec:\n  host: svc\n" +
        dr_policy;
  }
}

std::string svc_vip(Mesh& m) {
  return m.env.addr(100, 80).to_string();
}

// The access log reaches the waypoint's stdout at the end of a loop iteration, which may be just
// after the client saw the response: poll for the line.
bool log_has(Mesh& m, const std::string& text) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (m.waypoint->log().find(text) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

bool is_zero(int64_t v) {
  return v == 0;
}

}  // namespace

TEST_CASE("bookinfo reviews: 90 % v1 / 10 % v2 over 2,000 requests in one tunnel", "[l7][routing]") {
  Mesh m;
  bookinfo_reviews(m,
                   "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                   "metadata: {name: reviews, namespace: default}\n"
                   "spec:\n  hosts: [reviews]\n  http:\n  - route:\n"
                   "    - {destination: {host: reviews, subset: v1}, weight: 90}\n"
                   "    - {destination: {host: reviews, subset: v2}, weight: 10}\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(reviews_vip(m));
  Http1Conn c(*client, t);
  std::map<std::string, int> by_pod;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    HttpResponse r = c.request("GET", "/reviews/0", {{"host", "reviews:9080"}});
    REQUIRE(r.status == 200);
    by_pod[r.header("x-pod")]++;
  }
  int v2 = by_pod["reviews-v2"];
  int v1 = by_pod["reviews-v1-a"] + by_pod["reviews-v1-b"];
  WARN("measured: v1 " << v1 << " (a " << by_pod["reviews-v1-a"] << ", b " << by_pod["reviews-v1-b"] << "), v2 " << v2);
  CHECK(v1 + v2 == n);
  // Binomial(2000, 0.1): mean 200, sd 13.4; ±5 sd.
  CHECK(v2 >= 133);
  CHECK(v2 <= 267);
  // Round robin inside the v1 subset (two workers: each keeps its own cursor).
  CHECK(by_pod["reviews-v1-a"] > v1 / 3);
  CHECK(by_pod["reviews-v1-b"] > v1 / 3);
  CHECK(m.waypoint->stat("downstream_rq_2xx") == n);
}

TEST_CASE("header-match routing: end-user jason goes to v2, everyone else to v1", "[l7][routing]") {
  Mesh m;
  bookinfo_reviews(m,
                   "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                   "metadata: {name: reviews, namespace: default}\n"
                   "spec:\n  hosts: [reviews]\n  http:\n"
                   "  - match: [{headers: {end-user: {exact: jason}}}]\n"
                   "    route: [{destination: {host: reviews, subset: v2}}]\n"
                   "  - match: [{uri: {prefix: /reviews}}]\n"
                   "    route: [{destination: {host: reviews, subset: v1}}]\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(reviews_vip(m));
  Http1Conn c(*client, t);
  for (int i = 0; i < 10; ++i) {
    CHECK(c.request("GET", "/reviews/1", {{"end-user", "jason"}}).header("x-pod") == "reviews-v2");
    std::string other = c.request("GET", "/reviews/1", {{"end-user", "bob"}}).header("x-pod");
    CHECK(other.rfind("reviews-v1", 0) == 0);
  }
  // No route matches: 404 with flag NR, and nothing reaches a pod.
  uint64_t before = m.pods[0]->http_requests() + m.pods[1]->http_requests() + m.pods[2]->http_requests();
  HttpResponse r = c.request("GET", "/ratings");
  CHECK(r.status == 404);
  CHECK(r.body.empty());
  CHECK(m.pods[0]->http_requests() + m.pods[1]->http_requests() + m.pods[2]->http_requests() == before);
  CHECK(m.waypoint->stat("rq_no_route") == 1);
  CHECK(log_has(m, "\"response_flags\":\"NR\""));
}

TEST_CASE("1,000 sequential requests in one tunnel reuse one upstream tunnel", "[l7][upstream]") {
  Mesh m;
  one_service(m, 1);
  m.spec.concurrency = 1;
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  for (int i = 0; i < 1000; ++i) {
    HttpResponse r = c.request("GET", "/n/" + std::to_string(i));
    REQUIRE(r.status == 200);
  }
  CHECK(m.pods[0]->tunnels() == 1);
  CHECK(m.pods[0]->http_requests() == 1000);
  CHECK(m.waypoint->stat("upstream_http_tunnels_opened") == 1);
  CHECK(m.waypoint->stat("upstream_http_tunnels_reused") == 999);
}

TEST_CASE("the request arrives with x-forwarded-for, a generated x-request-id and traceparent passed on",
          "[l7][headers]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m), {{"forwarded", "for=\"10.1.2.3:4444\""}});
  Http1Conn c(*client, t);
  HttpResponse r = c.request("GET", "/a", {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
  REQUIRE(r.status == 200);
  HttpResponse r2 = c.request("GET", "/b", {{"x-request-id", "my-id"}, {"x-forwarded-for", "192.0.2.1"}});
  REQUIRE(r2.status == 200);
  auto reqs = m.pods[0]->requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].headers.get("x-forwarded-for").value_or("") == "10.1.2.3");
  // A UUIDv4: 8-4-4-4-12 lowercase hex digits, version 4, RFC 4122 variant.
  CHECK(RE2::FullMatch(std::string(reqs[0].headers.get("x-request-id").value_or("")),
                       "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
  CHECK(reqs[0].headers.get("traceparent").value_or("") == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  CHECK(reqs[1].headers.get("x-request-id").value_or("") == "my-id");
  CHECK(reqs[1].headers.get("x-forwarded-for").value_or("") == "192.0.2.1, 10.1.2.3");
}

TEST_CASE("retries: Istio's default policy recovers from one 503", "[l7][retry]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  m.pods[0]->fail_next(1, 503);
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  HttpResponse r = c.request("POST", "/order", {}, "payload");
  CHECK(r.status == 200);
  CHECK(r.body == "payload");  // the body was replayed on the retry
  CHECK(m.pods[0]->http_requests() == 2);
  CHECK(m.waypoint->stat("upstream_rq_retry") == 1);
}

TEST_CASE("retries stop at the limit and the last answer is passed on (URX)", "[l7][retry]") {
  Mesh m;
  one_service(m, 1, "  http:\n  - route: [{destination: {host: svc}}]\n    retries: {attempts: 2, retryOn: 5xx}\n");
  REQUIRE(m.start() == "");
  m.pods[0]->fail_next(10, 503);
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  HttpResponse r = c.request("GET", "/x");
  CHECK(r.status == 503);
  CHECK(m.pods[0]->http_requests() == 3);  // the try and two retries
  CHECK(m.waypoint->stat("upstream_rq_retry") == 2);
  CHECK(m.waypoint->stat("upstream_rq_retry_limit_exceeded") == 1);
  CHECK(log_has(m, "\"response_flags\":\"URX\""));
}

TEST_CASE("a retry prefers a host not tried before", "[l7][retry]") {
  Mesh m;
  // RANDOM would land on the failing pod again half the time without the previous-host rule.
  one_service(m, 2, "  http:\n  - route: [{destination: {host: svc}}]\n    retries: {attempts: 1, retryOn: 5xx}\n",
              "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n");
  REQUIRE(m.start() == "");
  m.pods[0]->fail_next(1000, 503);
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  int ok = 0;
  for (int i = 0; i < 40; ++i) {
    HttpResponse r = c.request("GET", "/x");
    ok += r.status == 200 && r.header("x-pod") == "svc-1";
  }
  CHECK(ok == 40);
  CHECK(m.pods[0]->http_requests() > 5);  // the failing pod was picked first, often
}

TEST_CASE("route timeout answers 504 upstream request timeout", "[l7][timeout]") {
  Mesh m;
  one_service(m, 1, "  http:\n  - route: [{destination: {host: svc}}]\n    timeout: 200ms\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  auto t0 = std::chrono::steady_clock::now();
  HttpResponse r = c.request("GET", "/slow", {{"x-delay-ms", "3000"}});
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(r.status == 504);
  CHECK(r.body == "upstream request timeout");
  CHECK(took >= 190ms);
  CHECK(took < 2s);
  CHECK(m.waypoint->stat("rq_timeout") == 1);
  // The tunnel still serves the next request.
  CHECK(c.request("GET", "/fast").status == 200);
}

TEST_CASE("per-try timeouts retry and end in 504 when every try is slow", "[l7][timeout]") {
  Mesh m;
  one_service(m, 1,
              "  http:\n  - route: [{destination: {host: svc}}]\n"
              "    retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  HttpResponse r = c.request("GET", "/slow", {{"x-delay-ms", "2000"}});
  CHECK(r.status == 504);
  CHECK(m.pods[0]->http_requests() == 3);
  CHECK(m.waypoint->stat("upstream_rq_per_try_timeout") == 3);
  CHECK(log_has(m, "\"response_flags\":\"URX,UT\""));
}

TEST_CASE("fault abort at 0 %, 50 % and 100 %, fault delay", "[l7][fault]") {
  auto run = [](const std::string& percent, int n) {
    Mesh m;
    one_service(m, 1,
                "  http:\n  - route: [{destination: {host: svc}}]\n"
                "    fault: {abort: {httpStatus: 418, percentage: {value: " +
                    percent + "}}}\n");
    REQUIRE(m.start() == "");
    auto client = m.client();
    TestTunnel& t = client->open(svc_vip(m));
    Http1Conn c(*client, t);
    int aborted = 0;
    for (int i = 0; i < n; ++i) {
      HttpResponse r = c.request("GET", "/f");
      if (r.status == 418) {
        CHECK(r.body == "fault filter abort");
        ++aborted;
      } else {
        CHECK(r.status == 200);
      }
    }
    CHECK(static_cast<int>(m.pods[0]->http_requests()) == n - aborted);
    return aborted;
  };
  CHECK(run("0", 200) == 0);
  CHECK(run("100", 200) == 200);
  int half = run("50", 400);
  WARN("measured: 50 % abort: " << half << " of 400");
  CHECK(half >= 160);  // Binomial(400, 0.5): sd 10; ±4 sd
  CHECK(half <= 240);

  Mesh m;
  one_service(m, 1,
              "  http:\n  - route: [{destination: {host: svc}}]\n"
              "    fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.request("GET", "/d").status == 200);
  CHECK(std::chrono::steady_clock::now() - t0 >= 290ms);
  CHECK(m.waypoint->stat("rq_fault_delayed") == 1);
}

TEST_CASE("bodies from 0 B to 16 MiB both ways, with and without chunking", "[l7][body]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  for (size_t size : {size_t(0), size_t(1), size_t(65535), size_t(1) << 20, size_t(16) << 20}) {
    std::string body(size, '\0');
    for (size_t i = 0; i < size; ++i) {
      body[i] = static_cast<char>('A' + (i * 7) % 53);
    }
    for (bool chunked : {false, true}) {
      INFO("size " << size << (chunked ? " chunked" : " content-length"));
      RequestOptions o;
      o.chunked = chunked;
      o.timeout = 60s;
      HttpResponse r = c.request("POST", "/echo", {}, body, o);
      REQUIRE(r.status == 200);
      CHECK(r.body.size() == size);
      CHECK((r.body == body));  // (no operand dump: 16 MiB)
      // And a response body of the same size, chunked by the pod.
      HttpResponse g =
          c.request("GET", "/gen", {{"x-body-bytes", std::to_string(size)}, {"x-chunked", chunked ? "1" : "0"}}, "", o);
      REQUIRE(g.status == 200);
      REQUIRE(g.body.size() == size);
      bool same = true;
      for (size_t i = 0; i < size && same; ++i) {
        same = g.body[i] == pod_body_byte(i);
      }
      CHECK(same);
    }
  }
}

TEST_CASE("request smuggling attempts get 400 and the pod never sees them", "[l7][smuggling]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  struct Case {
    const char* name;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"obs-fold", "GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\r\n  b\r\n\r\n"},
      {"bare CR in a field", "GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\rb\r\n\r\n"},
      {"whitespace before the colon", "GET / HTTP/1.1\r\nHost: svc\r\nContent-Length : 5\r\n\r\nhello"},
      {"whitespace inside a field name", "GET / HTTP/1.1\r\nHost: svc\r\nX A: b\r\n\r\n"},
      {"empty field name", "GET / HTTP/1.1\r\nHost: svc\r\n: b\r\n\r\n"},
      {"CL + TE", "POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na"},
      {"TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE chunked, identity", "POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
      {"TE identity, chunked", "POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"},
      {"TE gzip", "POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: gzip\r\n\r\n"},
      {"two TE fields",
       "POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"duplicate Host", "GET / HTTP/1.1\r\nHost: svc\r\nHost: evil\r\n\r\n"},
      {"missing Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: svc\r\n\r\n"},
      {"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: svc\r\n\r\n"},
      {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: svc\r\n\r\n"},
  };
  auto client = m.client();
  for (const auto& k : cases) {
    INFO(k.name);
    TestTunnel& t = client->open(svc_vip(m));
    Http1Conn c(*client, t);
    c.send_raw(k.bytes);
    auto rs = c.read_responses(1);
    REQUIRE(rs.size() >= 1);
    CHECK(rs[0].status == 400);
    CHECK(c.wait_closed());
  }
  CHECK(m.pods[0]->http_requests() == 0);
  CHECK(m.pods[0]->tunnels() == 0);

  // A request smuggled inside a malformed chunk: the valid head already went upstream (bodies
  // stream), but the bad framing answers 400, aborts that request and closes the tunnel, so the
  // smuggled one never reaches the pod.
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  c.send_raw(
      "POST /upload HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\nx-status: 200\r\n\r\n"
      "5\r\nhelloGET /admin HTTP/1.1\r\nHost: svc\r\n\r\n0\r\n\r\n");
  auto rs = c.read_responses(1);
  REQUIRE(rs.size() >= 1);
  CHECK(rs[0].status == 400);
  CHECK(c.wait_closed());
  for (const auto& r : m.pods[0]->requests()) {
    CHECK(r.target != "/admin");
  }
}

TEST_CASE("pipelined requests are answered in order", "[l7][http1]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  c.send_raw(
      "GET /1 HTTP/1.1\r\nHost: svc\r\nx-delay-ms: 100\r\nx-body-bytes: 1\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\r\ntwo"
      "GET /3 HTTP/1.1\r\nHost: svc\r\nx-body-bytes: 3\r\n\r\n");
  auto rs = c.read_responses(3);
  REQUIRE(rs.size() == 3);
  CHECK(rs[0].body == "a");
  CHECK(rs[1].body == "two");
  CHECK(rs[2].body == "abc");
}

TEST_CASE("100 concurrent h2c streams in one tunnel, each routed on its own", "[l7][h2c]") {
  Mesh m;
  bookinfo_reviews(m,
                   "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                   "metadata: {name: reviews, namespace: default}\n"
                   "spec:\n  hosts: [reviews]\n  http:\n"
                   "  - match: [{headers: {end-user: {exact: jason}}}]\n"
                   "    route: [{destination: {host: reviews, subset: v2}}]\n"
                   "  - route: [{destination: {host: reviews, subset: v1}}]\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(reviews_vip(m));
  H2cConn c(*client, t);
  std::vector<int32_t> ids;
  for (int i = 0; i < 100; ++i) {
    Fields h = {{"x-delay-ms", std::to_string(50 + (i * 37) % 100)}};
    if (i % 2 == 0) {
      h.push_back({"end-user", "jason"});
    }
    ids.push_back(c.start("POST", "/reviews/" + std::to_string(i), h, "body-" + std::to_string(i)));
    REQUIRE(ids.back() > 0);
  }
  REQUIRE(c.run_until_done(ids, 20s));
  for (int i = 0; i < 100; ++i) {
    HttpResponse& r = c.response(ids[i]);
    INFO(i);
    CHECK(r.status == 200);
    CHECK(r.body == "body-" + std::to_string(i));
    if (i % 2 == 0) {
      CHECK(r.header("x-pod") == "reviews-v2");
    } else {
      CHECK(r.header("x-pod").rfind("reviews-v1", 0) == 0);
    }
  }
  CHECK(m.waypoint->stat("chains_sniffed_h2c") == 1);
  CHECK(m.waypoint->stat("downstream_rq_total") == 100);
}

TEST_CASE("outlier detection ejects a failing pod and brings it back", "[l7][outlier]") {
  Mesh m;
  m.spec.concurrency = 1;  // outlier state is per worker
  one_service(m, 2, "  http:\n  - route: [{destination: {host: svc}}]\n    retries: {attempts: 0}\n",
              "  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3, interval: 100ms, baseEjectionTime: 1s,"
              " maxEjectionPercent: 50}\n");
  REQUIRE(m.start() == "");
  m.pods[0]->fail_next(3, 500);
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  int failures = 0;
  for (int i = 0; i < 6; ++i) {
    failures += c.request("GET", "/x").status == 500;
  }
  CHECK(failures == 3);  // round robin: 3 of the first 6 went to pod 0, then it was ejected
  REQUIRE(m.waypoint->stat("outlier_ejections_total") == 1);
  uint64_t before = m.pods[0]->http_requests();
  for (int i = 0; i < 10; ++i) {
    CHECK(c.request("GET", "/x").header("x-pod") == "svc-1");
  }
  CHECK(m.pods[0]->http_requests() == before);
  // After baseEjectionTime (1 s) it takes traffic again.
  auto ejected_at = std::chrono::steady_clock::now();
  bool back = false;
  while (!back && std::chrono::steady_clock::now() - ejected_at < 5s) {
    back = c.request("GET", "/x").header("x-pod") == "svc-0";
  }
  CHECK(back);
  CHECK(std::chrono::steady_clock::now() - ejected_at >= 800ms);
  CHECK(m.waypoint->stat("outlier_ejections_active") == 0);
}

TEST_CASE("no healthy upstream and upstream connect failures answer 503 with Envoy's bodies", "[l7][local]") {
  Mesh m;
  m.add_pod("down", 1, {{"app", "down"}}, {.listening = false});
  m.add_service("down", 100, 80, 80, {{"app", "down"}}, "http");
  m.add_service("empty", 101, 80, 80, {{"app", "nobody"}}, "http");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t1 = client->open(m.env.addr(101, 80).to_string());
  Http1Conn c1(*client, t1);
  HttpResponse r1 = c1.request("GET", "/");
  CHECK(r1.status == 503);
  CHECK(r1.body == "no healthy upstream");
  TestTunnel& t2 = client->open(m.env.addr(100, 80).to_string());
  Http1Conn c2(*client, t2);
  HttpResponse r2 = c2.request("GET", "/");
  CHECK(t2.status == 200);  // HTTP chains answer 200 at once and decide per request
  CHECK(r2.status == 503);
  CHECK(r2.body == "upstream connect error or disconnect/reset before headers");
  CHECK(log_has(m, "\"response_flags\":\"URX,UF\""));
}

TEST_CASE("a pod IP destination carrying HTTP is a direct-http chain to that pod", "[l7][direct]") {
  Mesh m;
  m.add_pod("solo", 3, {{"app", "solo"}}, http_pod());
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(m.env.addr(3, 8080).to_string());
  Http1Conn c(*client, t);
  HttpResponse r = c.request("GET", "/direct");
  CHECK(r.status == 200);
  CHECK(r.header("x-pod") == "solo");
  REQUIRE(m.pods[0]->authorities().size() == 1);
  CHECK(m.pods[0]->authorities()[0] == m.env.addr(3, 8080).to_string());
  CHECK(log_has(m, "\"chain\":\"direct-http\""));
  CHECK(m.waypoint->stat("chains_sniffed_http1") == 1);
}

TEST_CASE("mirror: a copy goes to the mirror service with a -shadow authority, its answer is ignored", "[l7][mirror]") {
  Mesh m;
  m.add_pod("main", 1, {{"app", "main"}}, http_pod());
  m.add_pod("shadow", 2, {{"app", "shadow"}}, http_pod());
  m.add_service("main", 100, 80, 8080, {{"app", "main"}}, "http");
  m.add_service("shadow", 101, 80, 8080, {{"app", "shadow"}}, "http");
  m.spec.extra_documents +=
      "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
      "metadata: {name: main, namespace: default}\nspec:\n  hosts: [main]\n  http:\n"
      "  - route: [{destination: {host: main}}]\n    mirror: {host: shadow}\n"
      "    mirrorPercentage: {value: 100}\n";
  REQUIRE(m.start() == "");
  m.pods[1]->fail_next(100, 500);  // the shadow's answers never reach the client
  auto client = m.client();
  TestTunnel& t = client->open(m.env.addr(100, 80).to_string());
  Http1Conn c(*client, t);
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = c.request("POST", "/m", {{"host", "main"}}, "copy-" + std::to_string(i));
    CHECK(r.status == 200);
    CHECK(r.body == "copy-" + std::to_string(i));
    CHECK(r.header("x-pod") == "main");
  }
  REQUIRE(m.waypoint->wait_stat("upstream_rq_mirrored", [](int64_t v) { return v == 5; }));
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (m.pods[1]->http_requests() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  auto shadowed = m.pods[1]->requests();
  REQUIRE(shadowed.size() == 5);
  CHECK(shadowed[0].authority == "main-shadow");
  CHECK(shadowed[0].body_bytes == 6);
}

TEST_CASE("an http2 service port talks h2c to its pods, many requests on one upstream tunnel", "[l7][h2c]") {
  Mesh m;
  m.add_pod("grpcish", 1, {{"app", "g"}}, http_pod());
  m.add_service("g", 100, 80, 8080, {{"app", "g"}}, "http2");
  m.spec.concurrency = 1;
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(m.env.addr(100, 80).to_string());
  H2cConn c(*client, t);
  std::vector<int32_t> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(c.start("POST", std::string("/g/").append(std::to_string(i)), {{"x-delay-ms", "30"}},
                          std::string("m").append(std::to_string(i))));
  }
  REQUIRE(c.run_until_done(ids, 20s));
  for (int i = 0; i < 50; ++i) {
    CHECK(c.response(ids[i]).status == 200);
    CHECK(c.response(ids[i]).body == std::string("m").append(std::to_string(i)));
  }
  // HTTP/1.1 from the client is carried as h2c too.
  TestTunnel& t1 = client->open(m.env.addr(100, 80).to_string());
  Http1Conn c1(*client, t1);
  CHECK(c1.request("GET", "/one").status == 200);
  auto reqs = m.pods[0]->requests();
  REQUIRE(reqs.size() == 51);
  for (const auto& r : reqs) {
    CHECK(r.h2c);
  }
  CHECK(m.pods[0]->tunnels() == 1);  // every stream multiplexed on one upstream tunnel
}

TEST_CASE("Expect: 100-continue is answered by the waypoint, then the body goes through", "[l7][http1]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  t.send("POST /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n");
  REQUIRE(client->run_until([&] { return t.received.find("\r\n\r\n") != std::string::npos; }));
  CHECK(t.received == "HTTP/1.1 100 Continue\r\n\r\n");
  t.send("payload");
  REQUIRE(client->run_until(
      [&] { return t.received.size() >= 7 && t.received.substr(t.received.size() - 7) == "payload"; }));
  CHECK(t.received.find("HTTP/1.1 200 OK\r\n", 25) != std::string::npos);
  auto reqs = m.pods[0]->requests();
  REQUIRE(reqs.size() == 1);
  CHECK_FALSE(reqs[0].headers.has("expect"));  // the pod is not asked again
  CHECK(reqs[0].body_bytes == 7);
}

TEST_CASE("header rules, rewrite and redirect from a VirtualService", "[l7][routing]") {
  Mesh m;
  one_service(m, 1,
              "  http:\n"
              "  - match: [{uri: {prefix: /old}}]\n"
              "    redirect: {uri: /new, redirectCode: 302}\n"
              "  - match: [{uri: {prefix: /api/}}]\n"
              "    rewrite: {uri: /v2/, authority: backend.internal}\n"
              "    headers:\n"
              "      request: {set: {x-added: one}, remove: [x-secret]}\n"
              "      response: {add: {x-resp: two}}\n"
              "    route: [{destination: {host: svc}}]\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  HttpResponse r = c.request("GET", "/old/page", {{"host", "svc"}});
  CHECK(r.status == 302);
  CHECK(r.header("location") == "http://svc/new");
  CHECK(m.pods[0]->http_requests() == 0);

  HttpResponse a = c.request("GET", "/api/items?q=1", {{"host", "svc"}, {"x-secret", "s"}, {"x-added", "zero"}});
  CHECK(a.status == 200);
  CHECK(a.header("x-resp") == "two");
  auto reqs = m.pods[0]->requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].target == "/v2/items?q=1");
  CHECK(reqs[0].authority == "backend.internal");
  CHECK(reqs[0].headers.get("x-added").value_or("") == "one");
  CHECK(reqs[0].headers.count("x-added") == 1);
  CHECK_FALSE(reqs[0].headers.has("x-secret"));
}

TEST_CASE("connectionPool http2MaxRequests: requests over the limit get 503 (UO), counted", "[l7][limits]") {
  Mesh m;
  m.spec.concurrency = 1;
  one_service(m, 1, "", "  trafficPolicy:\n    connectionPool: {http: {http2MaxRequests: 2}}\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  H2cConn c(*client, t);
  std::vector<int32_t> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(c.start("GET", "/slow", {{"x-delay-ms", "300"}}));
  }
  REQUIRE(c.run_until_done(ids, 10s));
  int ok = 0, overflow = 0;
  for (int32_t id : ids) {
    ok += c.response(id).status == 200;
    overflow += c.response(id).status == 503;
  }
  CHECK(ok == 2);
  CHECK(overflow == 4);
  CHECK(m.waypoint->stat("upstream_rq_pending_overflow") == 4);
  CHECK(log_has(m, "\"response_flags\":\"UO\""));
  // Once they finish, the slots are free again.
  CHECK(c.request("GET", "/after").status == 200);
}

TEST_CASE("connectionPool maxConnections and http1MaxPendingRequests: one tunnel, one waiting, the rest 503 UO",
          "[l7][limits]") {
  Mesh m;
  m.spec.concurrency = 1;
  one_service(m, 1, "",
              "  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  std::vector<std::unique_ptr<Http1Conn>> conns;
  for (int i = 0; i < 3; ++i) {
    TestTunnel& t = client->open(svc_vip(m));
    conns.push_back(std::make_unique<Http1Conn>(*client, t));
    conns.back()->send_raw("GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: svc\r\nx-delay-ms: 300\r\n\r\n");
    // In order: the first takes the only tunnel, the second waits for it, the third overflows.
    // Each is sent once the one before is where it stays: http1MaxPendingRequests counts every
    // request waiting for a stream (as Envoy), the first too while its tunnel is being opened.
    REQUIRE(client->run_until([&] { return m.waypoint->stat("downstream_rq_total") == i + 1; }));
    if (i == 0) {
      REQUIRE(client->run_until([&] { return m.pods[0]->http_requests() == 1; }));
    }
  }
  std::map<int, int> statuses;
  for (auto& c : conns) {
    auto rs = c->read_responses(1);
    REQUIRE(rs.size() == 1);
    statuses[rs[0].status]++;
  }
  CHECK(statuses[200] == 2);
  CHECK(statuses[503] == 1);
  CHECK(m.pods[0]->tunnels() == 1);  // the waiting request reused the tunnel once it was free
  CHECK(m.waypoint->stat("upstream_rq_pending_overflow") == 1);
}

// An http2 service "g" on VIP .100:80 over one pod, with a DestinationRule trafficPolicy.
void one_h2c_service(Mesh& m, const std::string& traffic_policy) {
  m.add_pod("g-0", 1, {{"app", "g"}}, http_pod());
  m.add_service("g", 100, 80, 8080, {{"app", "g"}}, "http2");
  if (!traffic_policy.empty()) {
    m.spec.extra_documents +=
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: g, namespace: default}\nspec:\n  host: g\n  trafficPolicy:\n" +
        traffic_policy;
  }
}

// `n` concurrent h2c requests through the waypoint, spread over tunnels of 75 streams (a downstream
// h2c session takes 100 at once): the statuses, by count.
std::map<int, int> h2c_burst(Mesh& m, HboneTestClient& client, int n, const char* delay_ms) {
  std::vector<std::unique_ptr<H2cConn>> conns;
  std::vector<std::pair<H2cConn*, int32_t>> ids;
  for (int i = 0; i < n; ++i) {
    if (i % 75 == 0) {
      conns.push_back(std::make_unique<H2cConn>(client, client.open(svc_vip(m))));
    }
    ids.emplace_back(conns.back().get(),
                     conns.back()->start("GET", "/b/" + std::to_string(i), {{"x-delay-ms", delay_ms}}));
  }
  for (auto& c : conns) {
    std::vector<int32_t> mine;
    for (auto& [conn, id] : ids) {
      if (conn == c.get()) {
        mine.push_back(id);
      }
    }
    REQUIRE(c->run_until_done(mine, 20s));
  }
  std::map<int, int> statuses;
  for (auto& [conn, id] : ids) {
    statuses[conn->response(id).status]++;
  }
  return statuses;
}

TEST_CASE("connectionPool maxConnections holds for h2c upstreams: the requests over it wait for a stream",
          "[l7][limits][h2c]") {
  // A pod takes 100 streams per connection: 150 requests need two tunnels, or one and a wait.
  {
    Mesh m;
    m.spec.concurrency = 1;
    one_h2c_service(m, "");
    REQUIRE(m.start() == "");
    auto client = m.client();
    CHECK(h2c_burst(m, *client, 150, "200")[200] == 150);
    CHECK(m.pods[0]->tunnels() == 2);  // unlimited: a second tunnel for the requests over 100
    CHECK(m.waypoint->stat("upstream_cx_overflow") == 0);
  }
  Mesh m;
  m.spec.concurrency = 1;
  one_h2c_service(m, "    connectionPool: {tcp: {maxConnections: 1}}\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  CHECK(h2c_burst(m, *client, 150, "200")[200] == 150);
  CHECK(m.pods[0]->tunnels() == 1);
  CHECK(m.waypoint->stat("upstream_cx_overflow") > 0);
  CHECK(m.waypoint->stat("upstream_rq_pending_overflow") == 0);
}

TEST_CASE("connectionPool maxConnections with http1MaxPendingRequests on h2c: the waiting line is bounded, 503 UO",
          "[l7][limits][h2c]") {
  Mesh m;
  m.spec.concurrency = 1;
  one_h2c_service(m, "    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 10}}\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  {
    // The tunnel is open first: then 100 requests take its streams, 10 more may wait for one.
    H2cConn warm(*client, client->open(svc_vip(m)));
    REQUIRE(warm.request("GET", "/warm").status == 200);
  }
  auto statuses = h2c_burst(m, *client, 130, "300");
  CHECK(statuses[200] == 110);
  CHECK(statuses[503] == 20);
  CHECK(m.waypoint->stat("upstream_rq_pending_overflow") == 20);
  CHECK(m.pods[0]->tunnels() == 1);
  CHECK(log_has(m, "\"response_flags\":\"UO\""));
}

TEST_CASE("connectionPool maxRequestsPerConnection: an upstream tunnel carries at most that many requests",
          "[l7][limits]") {
  SECTION("HTTP/1.1: a new tunnel after each two exchanges") {
    Mesh m;
    m.spec.concurrency = 1;
    one_service(m, 1, "", "  trafficPolicy:\n    connectionPool: {http: {maxRequestsPerConnection: 2}}\n");
    REQUIRE(m.start() == "");
    auto client = m.client();
    TestTunnel& t = client->open(svc_vip(m));
    Http1Conn c(*client, t);
    for (int i = 0; i < 6; ++i) {
      REQUIRE(c.request("GET", "/r").status == 200);
    }
    CHECK(m.pods[0]->tunnels() == 3);
    CHECK(m.waypoint->stat("upstream_http_tunnels_reused") == 3);
  }
  SECTION("h2c: a tunnel drains after 10 streams and closes once they are done") {
    Mesh m;
    m.spec.concurrency = 1;
    one_h2c_service(m, "    connectionPool: {http: {maxRequestsPerConnection: 10}}\n");
    REQUIRE(m.start() == "");
    auto client = m.client();
    TestTunnel& t = client->open(svc_vip(m));
    H2cConn c(*client, t);
    std::vector<int32_t> ids;
    for (int i = 0; i < 25; ++i) {
      ids.push_back(c.start("GET", "/r/" + std::to_string(i), {{"x-delay-ms", "50"}}));
    }
    REQUIRE(c.run_until_done(ids, 20s));
    for (int32_t id : ids) {
      CHECK(c.response(id).status == 200);
    }
    CHECK(m.pods[0]->tunnels() == 3);
    // The drained tunnels end: only the last one stays open.
    CHECK(client->run_until([&] { return m.pods[0]->active_tunnels() == 1; }));
  }
  SECTION("without it a tunnel is reused") {
    Mesh m;
    m.spec.concurrency = 1;
    one_service(m, 1);
    REQUIRE(m.start() == "");
    auto client = m.client();
    TestTunnel& t = client->open(svc_vip(m));
    Http1Conn c(*client, t);
    for (int i = 0; i < 6; ++i) {
      REQUIRE(c.request("GET", "/r").status == 200);
    }
    CHECK(m.pods[0]->tunnels() == 1);
  }
}

TEST_CASE("consistentHash on a header keeps each user on one pod", "[l7][lb]") {
  Mesh m;
  m.spec.concurrency = 1;
  one_service(m, 3, "", "  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}\n");
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  std::map<std::string, std::set<std::string>> pods_of_user;
  std::set<std::string> used;
  for (int round = 0; round < 5; ++round) {
    for (int u = 0; u < 30; ++u) {
      std::string user = "user-" + std::to_string(u);
      std::string pod = c.request("GET", "/h", {{"x-user", user}}).header("x-pod");
      pods_of_user[user].insert(pod);
      used.insert(pod);
    }
  }
  for (const auto& [user, pods] : pods_of_user) {
    INFO(user);
    CHECK(pods.size() == 1);
  }
  CHECK(used.size() == 3);  // 30 users spread over the 3 pods
}

TEST_CASE("h2c bodies of 4 MiB both ways through the waypoint", "[l7][h2c][body]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  H2cConn c(*client, t);
  std::string body(4 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>('0' + i % 43);
  }
  std::vector<int32_t> ids = {c.start("POST", "/a", {}, body), c.start("POST", "/b", {}, body),
                              c.start("GET", "/c", {{"x-body-bytes", std::to_string(4 << 20)}})};
  REQUIRE(c.run_until_done(ids, 30s));
  CHECK(c.response(ids[0]).status == 200);
  CHECK((c.response(ids[0]).body == body));
  CHECK((c.response(ids[1]).body == body));
  CHECK(c.response(ids[2]).body.size() == size_t(4 << 20));
}

// ---- gauges settle on every exit of a request (issue 13) -------------------------------------------

TEST_CASE("h2c responses cut off downstream mid-body end their 100 upstream attempts", "[l7][h2c][gauges]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  auto c = std::make_unique<H2cConn>(*client, t);
  std::vector<int32_t> ids;
  for (int i = 0; i < 100; ++i) {
    // 64 MiB each: still streaming when the client goes away.
    ids.push_back(c->start("GET", "/big/" + std::to_string(i), {{"x-body-bytes", std::to_string(64 << 20)}}));
    REQUIRE(ids.back() > 0);
  }
  bool all_started = client->run_until(
      [&] {
        for (int32_t id : ids) {
          if (c->response(id).status == 0) {
            return false;
          }
        }
        return true;
      },
      20s);
  REQUIRE(all_started);
  CHECK(m.waypoint->stat("upstream_rq_active") == 100);
  CHECK(m.waypoint->stat("downstream_rq_active") == 100);
  SECTION("the downstream tunnel is reset") {
    t.reset();
    CHECK(client->run_until([&] { return t.closed; }, 5s));
  }
  SECTION("the client's connection goes away") {
    c.reset();
    client.reset();
  }
  CHECK(m.waypoint->wait_stat("upstream_rq_active", is_zero, 5s));
  CHECK(m.waypoint->wait_stat("downstream_rq_active", is_zero, 5s));
  CHECK(m.waypoint->stat("upstream_rq_active") == 0);
}

TEST_CASE("an HTTP/1.1 response cut off by a downstream reset ends its upstream attempt", "[l7][http1][gauges]") {
  Mesh m;
  one_service(m, 1);
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  c.send_raw("GET /big HTTP/1.1\r\nhost: svc\r\nx-body-bytes: " + std::to_string(64 << 20) + "\r\n\r\n");
  REQUIRE(client->run_until([&] { return t.received_bytes > (1 << 20); }, 10s));
  CHECK(m.waypoint->stat("upstream_rq_active") == 1);
  t.reset();
  CHECK(client->run_until([&] { return t.closed; }, 5s));
  CHECK(m.waypoint->wait_stat("upstream_rq_active", is_zero, 5s));
  CHECK(m.waypoint->wait_stat("downstream_rq_active", is_zero, 5s));
  CHECK(m.waypoint->stat("upstream_rq_active") == 0);
}

TEST_CASE("a request that ends while its upstream tunnel is still being opened ends its attempt",
          "[l7][timeout][gauges]") {
  Mesh m;
  PodOptions slow = http_pod();
  slow.respond_delay_ms = 4000;  // the pod holds back its answer to each CONNECT
  m.add_pod("svc-0", 1, {{"app", "svc"}}, slow);
  m.add_service("svc", 100, 80, 8080, {{"app", "svc"}}, "http");
  m.spec.extra_documents +=
      "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
      "metadata: {name: svc, namespace: default}\nspec:\n  hosts: [svc]\n"
      "  http:\n  - route: [{destination: {host: svc}}]\n    timeout: 1s\n";
  REQUIRE(m.start() == "");
  auto client = m.client();
  TestTunnel& t = client->open(svc_vip(m));
  Http1Conn c(*client, t);
  SECTION("the route timeout fires: 504 UT") {
    auto t0 = std::chrono::steady_clock::now();
    HttpResponse r = c.request("GET", "/slow");
    CHECK(r.status == 504);
    CHECK(r.body == "upstream request timeout");
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);  // before the pod answers
    CHECK(log_has(m, "\"response_flags\":\"UT\""));
  }
  SECTION("the request body turns out malformed: 400") {
    c.send_raw("POST /up HTTP/1.1\r\nhost: svc\r\ntransfer-encoding: chunked\r\n\r\n");
    // The attempt starts on the head: it waits for its tunnel while the body is still to come.
    REQUIRE(client->run_until([&] { return m.waypoint->stat("upstream_rq_active") == 1; }, 5s));
    c.send_raw("zz\r\n");
    auto rs = c.read_responses(1, 3s);
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].status == 400);
  }
  // The attempt ended with the request, not when the pod answers (4 s after the CONNECT).
  CHECK(m.waypoint->wait_stat("upstream_rq_active", is_zero, 2s));
  CHECK(m.waypoint->wait_stat("downstream_rq_active", is_zero, 2s));
  CHECK(m.waypoint->stat("upstream_rq_active") == 0);
}
