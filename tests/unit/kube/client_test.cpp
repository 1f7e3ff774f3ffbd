// wp::kube::Client against tests/support/fake_apiserver.py on 127.0.0.1.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "apiserver_fixture.h"

using namespace std::chrono_literals;
using nlohmann::json;
using wp::kube::Access;
using wp::kube::Client;
using wp::kube::ClientOptions;
using wp::kube::Outcome;
using wp::kube::Response;
using wp::kube::Result;
using wp::kube::testing::FakeApiServer;
using wp::kube::testing::service;

namespace {

const std::string kServices = "/api/v1/namespaces/shop/services";

std::chrono::milliseconds since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t);
}

}  // namespace

TEST_CASE("Client: GET with the bearer token over verified TLS, the connection kept alive", "[kube][client]") {
  FakeApiServer api;
  std::atomic<bool> stop{false};
  Client client(api.access(), stop);
  Response r;
  Result res = client.get("/version", r);
  REQUIRE(res.complete());
  CHECK(r.status == 200);
  CHECK(json::parse(r.body)["gitVersion"] == "v1.30.0-fake");
  REQUIRE(r.header("content-type") != nullptr);
  CHECK(*r.header("content-type") == "application/json");

  res = client.get(kServices + "?limit=500", r);
  REQUIRE(res.complete());
  CHECK(r.status == 200);
  CHECK(json::parse(r.body)["kind"] == "ServiceList");
  CHECK(client.stats().requests == 2);
  CHECK(client.stats().connections == 1);
  CHECK(client.stats().reused == 1);
  CHECK(api.stats()["auth"]["rejected"] == 0);

  // Server restarted (same port): the kept-alive connection is dead; the request goes out again on
  // a fresh one without the caller seeing a failure.
  api.control("POST", "/fake/restart?down_ms=0");
  std::this_thread::sleep_for(300ms);
  res = client.get("/version", r);
  REQUIRE(res.complete());
  CHECK(r.status == 200);
  CHECK(client.stats().connections == 2);
}

TEST_CASE("Client: the server certificate is verified against the CA and the host or IP", "[kube][client]") {
  FakeApiServer api;
  std::atomic<bool> stop{false};
  Response r;

  Access other_ca = api.access();
  other_ca.ca_pem = wp::testing::make_root_ca("someone-else").cert_pem;
  Result res = Client(other_ca, stop).get("/version", r);
  CHECK(res.outcome == Outcome::TlsFailed);
  CHECK_THAT(res.error, Catch::Contains("certificate verification failed"));

  Access insecure = other_ca;
  insecure.insecure_skip_verify = true;
  res = Client(insecure, stop).get("/version", r);
  CHECK(res.complete());
  CHECK(r.status == 200);

  Access by_name = api.access();  // connect to 127.0.0.1, verify (and send SNI) for a DNS SAN
  by_name.tls_server_name = "kubernetes.default.svc";
  res = Client(by_name, stop).get("/version", r);
  CHECK(res.complete());

  Access wrong_name = api.access();
  wrong_name.tls_server_name = "kubernetes.other.svc";
  res = Client(wrong_name, stop).get("/version", r);
  CHECK(res.outcome == Outcome::TlsFailed);
  CHECK_THAT(res.error, Catch::Contains("hostname mismatch"));

  Access wrong_ip = api.access();
  wrong_ip.tls_server_name = "127.0.0.2";  // the certificate has IP:127.0.0.1 only
  res = Client(wrong_ip, stop).get("/version", r);
  CHECK(res.outcome == Outcome::TlsFailed);
  CHECK_THAT(res.error, Catch::Contains("IP address mismatch"));

  Access garbage = api.access();
  garbage.ca_pem = "not a certificate";
  res = Client(garbage, stop).get("/version", r);
  CHECK(res.outcome == Outcome::Unusable);
  CHECK_THAT(res.error, Catch::Contains("no PEM certificate"));

  Access bad_key = api.access();
  wp::testing::KeyCert client_id = wp::testing::make_leaf(api.ca(), "spiffe://td/ns/a/sa/b");
  bad_key.client_cert_pem = client_id.cert_pem;
  bad_key.client_key_pem = wp::testing::make_leaf(api.ca(), "spiffe://td/ns/a/sa/c").key_pem;
  res = Client(bad_key, stop).get("/version", r);
  CHECK(res.outcome == Outcome::Unusable);
  CHECK_THAT(res.error, Catch::Contains("does not match"));

  Access with_cert = api.access();  // a usable client certificate is offered (the fake ignores it)
  with_cert.client_cert_pem = client_id.cert_pem;
  with_cert.client_key_pem = client_id.key_pem;
  res = Client(with_cert, stop).get("/version", r);
  CHECK(res.complete());
}

TEST_CASE("Client: 401 with a wrong token, 200 once the token file is rotated", "[kube][client]") {
  FakeApiServer api;
  std::atomic<bool> stop{false};
  api.set_client_token("wrong-token");
  Client client(api.access(), stop);
  Response r;
  REQUIRE(client.get(kServices, r).complete());
  CHECK(r.status == 401);
  CHECK(json::parse(r.body)["reason"] == "Unauthorized");
  api.set_client_token("s3cret-token");
  REQUIRE(client.get(kServices, r).complete());
  CHECK(r.status == 200);
  // And the server rotating its side too: the client follows when its file follows.
  api.set_server_token("next-token");
  REQUIRE(client.get(kServices, r).complete());
  CHECK(r.status == 401);
  api.set_client_token("next-token");
  REQUIRE(client.get(kServices, r).complete());
  CHECK(r.status == 200);

  Access bad = api.access();
  bad.token_file.clear();
  bad.token = "two\r\nX-Injected: 1";
  Result res = Client(bad, stop).get(kServices, r);
  CHECK(res.outcome == Outcome::Unusable);
}

TEST_CASE("Client: a body or a line over its limit is an error, and the client goes on", "[kube][client]") {
  FakeApiServer api;
  json batch = json::array();
  for (int i = 0; i < 20; ++i) {
    batch.push_back(service("svc-" + std::to_string(i)));
  }
  batch.push_back(service("zz-big", "shop", std::string(5000, 'x')));
  api.apply(batch);

  std::atomic<bool> stop{false};
  ClientOptions options;
  options.max_body_bytes = 4000;
  options.max_line_bytes = 3000;
  Client client(api.access(), stop, options);
  Response r;
  Result res = client.get(kServices, r);
  CHECK(res.outcome == Outcome::TooLarge);
  CHECK_THAT(res.error, Catch::Contains("larger than 4000 bytes"));
  CHECK(r.body.size() <= 4000);
  res = client.get("/version", r);
  CHECK(res.complete());
  CHECK(r.status == 200);

  // A watch from "0" sends an ADDED per object: svc-* lines are small, "zz-big" is over the limit.
  int lines = 0;
  res = client.stream(
      kServices + "?watch=1&resourceVersion=0&timeoutSeconds=5", r,
      [&](std::string_view line) {
        ++lines;
        return json::parse(line)["type"] == "ADDED";
      },
      5s);
  CHECK(res.outcome == Outcome::TooLarge);
  CHECK_THAT(res.error, Catch::Contains("longer than 3000 bytes"));
  CHECK(lines == 20);  // objects come sorted by name: "zz-big" last
  CHECK(client.stats().too_large == 2);
  res = client.get("/version", r);
  CHECK(res.complete());
}

TEST_CASE("Client: stream() hands over whole lines however the chunks are cut", "[kube][client]") {
  FakeApiServer api({"--chunking", "split:7", "--bookmark-interval", "0"});
  json batch = json::array();
  for (int i = 0; i < 30; ++i) {
    batch.push_back(service("svc-" + std::to_string(i)));
  }
  api.apply(batch);
  std::atomic<bool> stop{false};
  Client client(api.access(), stop);
  Response r;
  std::vector<std::string> names;
  auto started = std::chrono::steady_clock::now();
  Result res = client.stream(
      kServices + "?watch=1&resourceVersion=0&timeoutSeconds=1", r,
      [&](std::string_view line) {
        json ev = json::parse(line);
        names.push_back(ev["object"]["metadata"]["name"]);
        return true;
      },
      5s);
  CHECK(res.complete());  // the server ended it after timeoutSeconds, with the last chunk
  CHECK(r.status == 200);
  CHECK(since(started) >= 900ms);
  CHECK(names.size() == 30);
  CHECK(client.stats().lines == 30);

  // A non-200 answer to a watch: its body is the Status, no line is delivered.
  api.set_client_token("wrong");
  int lines = 0;
  res = client.stream(
      kServices + "?watch=1", r, [&](std::string_view) { return ++lines > 0; }, 5s);
  CHECK(res.complete());
  CHECK(r.status == 401);
  CHECK(lines == 0);
  CHECK(json::parse(r.body)["code"] == 401);
}

TEST_CASE("Client: a stalled stream times out, a dropped one is Closed, stop ends one at once", "[kube][client]") {
  FakeApiServer api({"--bookmark-interval", "0.1"});
  std::atomic<bool> stop{false};
  Client client(api.access(), stop);
  Response r;
  const std::string watch = kServices + "?watch=1&resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=30";
  int lines = 0;
  auto count = [&](std::string_view) { return ++lines > 0; };

  api.control("POST", "/fake/stall?on=1");
  auto started = std::chrono::steady_clock::now();
  Result res = client.stream(watch, r, count, 400ms);
  CHECK(res.outcome == Outcome::IdleTimeout);
  CHECK(since(started) >= 400ms);
  CHECK(since(started) < 1500ms);
  api.control("POST", "/fake/stall?on=0");

  // Bookmarks every 100 ms keep a watch with a 400 ms idle timeout alive until the drop.
  std::thread dropper([&] {
    std::this_thread::sleep_for(700ms);
    api.control("POST", "/fake/drop");
  });
  lines = 0;
  started = std::chrono::steady_clock::now();
  res = client.stream(watch, r, count, 400ms);
  dropper.join();
  CHECK(res.outcome == Outcome::Closed);
  CHECK(since(started) >= 650ms);
  CHECK(lines >= 3);

  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    stop = true;
  });
  started = std::chrono::steady_clock::now();
  res = client.stream(watch, r, count, 10s);
  auto stopped_after = since(started);
  stopper.join();
  CHECK(res.outcome == Outcome::Stopped);
  CHECK(stopped_after < 300ms + 200ms);
  CHECK(client.stats().failures == 2);  // Stopped is not a failure
}

TEST_CASE("Client: nobody listening is ConnectFailed", "[kube][client]") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // a port that was free a moment ago and has no listener
  Access a;
  std::string error;
  REQUIRE(wp::kube::parse_server("https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), a, error));
  std::atomic<bool> stop{false};
  Client client(a, stop);
  Response r;
  Result res = client.get("/version", r);
  CHECK(res.outcome == Outcome::ConnectFailed);
  CHECK_THAT(res.error, Catch::Contains("Connection refused"));
  CHECK(client.stats().failures == 1);
}
