// Route policies: fault injection, header mutations, rewrites, redirects, mirrors.
#include <catch2/catch.hpp>

#include "router_fixtures.h"

namespace wp::router {
namespace {

using testing::request;

// A header block as a vector, for apply().
class VectorHeaders : public HeaderList {
 public:
  std::vector<std::pair<std::string, std::string>> headers;
  void remove(std::string_view name) override {
    std::erase_if(headers, [&](const auto& h) { return h.first == name; });
  }
  void set(std::string_view name, std::string_view value) override {
    remove(name);
    add(name, value);
  }
  void add(std::string_view name, std::string_view value) override { headers.emplace_back(name, value); }
};

const std::string kPolicies = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: fault
    match: [{uri: {prefix: /fault}}]
    route: [{destination: {host: reviews}}]
    fault:
      delay: {fixedDelay: 7s, percentage: {value: 10}}
      abort: {httpStatus: 503, percentage: {value: 0.1}}
  - name: headers
    match: [{uri: {prefix: /headers}}]
    route: [{destination: {host: reviews}}]
    headers:
      request: {set: {X-Env: prod}, add: {x-trace: a}, remove: [x-secret]}
      response: {remove: [server]}
  - name: rewrite
    match: [{uri: {prefix: /v1/reviews}}, {uri: {exact: /old}}]
    route: [{destination: {host: reviews}}]
    rewrite: {uri: /reviews, authority: reviews.internal}
  - name: redirect
    match: [{uri: {prefix: /moved}}]
    redirect: {uri: /new, authority: new.example}
  - name: redirect-code
    match: [{uri: {prefix: /temp}}]
    redirect: {authority: other.example, redirectCode: 302, port: 8443, scheme: https}
  - name: mirror
    route: [{destination: {host: reviews}}]
    mirror: {host: ratings}
    mirrorPercentage: {value: 25.5}
)";

TEST_CASE("router: fault injection decisions", "[router]") {
  auto s = testing::load(kPolicies);
  const config::Route& r = testing::table(*s, "10.96.0.20:9080").routes.at(0);
  CHECK(r.fault.has_delay);
  CHECK(r.fault.delay == config::Millis{7000});
  CHECK(r.fault.delay_per_million == 100'000);
  CHECK(r.fault.abort_status == 503);
  CHECK(r.fault.abort_per_million == 1'000);
  // 10 %: the lowest tenth of the 32-bit range delays.
  CHECK(decide_fault(r.fault, 0, 0xFFFFFFFFu).delay);
  CHECK(decide_fault(r.fault, 429'496'729u, 0xFFFFFFFFu).delay);
  CHECK_FALSE(decide_fault(r.fault, 429'496'730u, 0xFFFFFFFFu).delay);
  CHECK_FALSE(decide_fault(r.fault, 0, 0xFFFFFFFFu).abort);
  FaultDecision both = decide_fault(r.fault, 0, 0);
  CHECK(both.delay);
  CHECK(both.delay_for == config::Millis{7000});
  CHECK(both.abort);
  CHECK(both.abort_status == 503);
  int aborts = 0;
  for (uint32_t i = 0; i < 100'000; ++i) {
    aborts += decide_fault(r.fault, 0xFFFFFFFFu, i * 42'949u).abort ? 1 : 0;
  }
  CHECK(aborts == Approx(100).margin(5));
  CHECK(chance(1'000'000, 0xFFFFFFFFu));
  CHECK_FALSE(chance(0, 0));
  // Routes without a fault never inject one.
  const config::Route& plain = testing::table(*s, "10.96.0.20:9080").routes.at(1);
  CHECK_FALSE(decide_fault(plain.fault, 0, 0).delay);
  CHECK_FALSE(decide_fault(plain.fault, 0, 0).abort);
}

TEST_CASE("router: header mutations remove, then set, then add", "[router]") {
  auto s = testing::load(kPolicies);
  const config::Route& r = testing::table(*s, "10.96.0.20:9080").routes.at(1);
  VectorHeaders h;
  h.headers = {{"x-env", "dev"}, {"x-secret", "1"}, {"x-trace", "z"}, {"x-env", "dev2"}};
  apply(r.request_headers, h);
  CHECK(h.headers ==
        std::vector<std::pair<std::string, std::string>>{{"x-trace", "z"}, {"x-env", "prod"}, {"x-trace", "a"}});
  VectorHeaders resp;
  resp.headers = {{"server", "envoy"}, {"content-type", "text/plain"}};
  apply(r.response_headers, resp);
  CHECK(resp.headers == std::vector<std::pair<std::string, std::string>>{{"content-type", "text/plain"}});
}

TEST_CASE("router: uri rewrite replaces the matched prefix", "[router]") {
  auto s = testing::load(kPolicies);
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  const config::Route& r = t.routes.at(2);
  CHECK(r.rewrite.authority == "reviews.internal");
  CHECK(rewritten_path(r, request("GET", "/v1/reviews/7?x=1")) == "/reviews/7?x=1");
  CHECK(rewritten_path(r, request("GET", "/old")) == "/reviews");                       // an exact match: whole path
  CHECK(rewritten_path(t.routes.at(1), request("GET", "/headers?a")) == "/headers?a");  // no rewrite
}

TEST_CASE("router: redirects", "[router]") {
  auto s = testing::load(kPolicies);
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  const config::Route& moved = t.routes.at(3);
  REQUIRE(moved.redirect);
  CHECK(moved.clusters.empty());
  CHECK(moved.redirect->status == 301);
  CHECK(redirect_location(moved, request("GET", "/moved/x?q=1"), "http") == "http://new.example/new?q=1");
  const config::Route& temp = t.routes.at(4);
  CHECK(temp.redirect->status == 302);
  CHECK(redirect_location(temp, request("GET", "/temp", nullptr, "reviews:9080"), "http") ==
        "https://other.example:8443/temp");
}

TEST_CASE("router: mirrors", "[router]") {
  auto s = testing::load(kPolicies);
  const config::Route& r = testing::table(*s, "10.96.0.20:9080").routes.at(5);
  REQUIRE(r.mirrors.size() == 1);
  CHECK(r.mirrors[0].cluster->name == "inbound-vip|9080|http|ratings.default.svc.cluster.local");
  CHECK(r.mirrors[0].per_million == 255'000);
  CHECK(r.mirrors[0].cluster->endpoints.size() == 1);
}

TEST_CASE("router: fault percentages default to none, as Istio", "[router]") {
  auto s = testing::load(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    fault: {abort: {httpStatus: 418}}
)");
  const config::Route& r = testing::table(*s, "10.96.0.20:9080").routes.at(0);
  CHECK(r.fault.has_abort);
  CHECK(r.fault.abort_per_million == 0);
  CHECK_FALSE(decide_fault(r.fault, 0, 0).abort);
  REQUIRE(s->warnings.size() == 1);
  CHECK(s->warnings[0].find("cfg.yaml:8:20: VirtualService reviews: spec.http[0].fault.abort.percentage: not given: "
                            "no request will be aborted (as Istio)") != std::string::npos);
}

TEST_CASE("router: directResponse and a list of mirrors", "[router]") {
  auto s = testing::load(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - route: [{destination: {host: reviews}}]
    mirrors:
    - {destination: {host: ratings}, percentage: {value: 50}}
    - {destination: {host: reviews}}
)");
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  CHECK(t.routes.at(0).direct_status == 418);
  CHECK(t.routes.at(0).direct_body == "short and stout");
  CHECK(t.routes.at(0).clusters.empty());
  const config::Route& r = t.routes.at(1);
  REQUIRE(r.mirrors.size() == 2);
  CHECK(r.mirrors[0].cluster->service->name == "ratings");
  CHECK(r.mirrors[0].per_million == 500'000);
  CHECK(r.mirrors[1].per_million == 1'000'000);
}

}  // namespace
}  // namespace wp::router
