// Route matching: every condition kind, its negation, AND within a block, OR across blocks,
// first match wins, and the per-port filtering done at compile time.
#include <catch2/catch.hpp>
#include <chrono>

#include "router_fixtures.h"

namespace wp::router {
namespace {

using testing::FakeHeaders;
using testing::request;
using testing::route_of;

const std::string kMatches = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: exact
    match: [{uri: {exact: /exact}}]
    route: [{destination: {host: reviews}}]
  - name: prefix-icase
    match: [{uri: {prefix: /Api/}, ignoreUriCase: true}]
    route: [{destination: {host: reviews}}]
  - name: prefix
    match: [{uri: {prefix: /static/}}]
    route: [{destination: {host: reviews}}]
  - name: regex
    match: [{uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: reviews}}]
  - name: header-exact
    match: [{headers: {x-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
  - name: header-prefix
    match: [{headers: {X-Tier: {prefix: gold}}}]
    route: [{destination: {host: reviews}}]
  - name: header-regex
    match: [{headers: {x-id: {regex: "[a-f]+"}}}]
    route: [{destination: {host: reviews}}]
  - name: header-present
    match: [{headers: {x-present: {}}}]
    route: [{destination: {host: reviews}}]
  - name: without-header
    match: [{uri: {prefix: /nocanary}, withoutHeaders: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: reviews}}]
  - name: method
    match: [{method: {exact: POST}, uri: {prefix: /m}}]
    route: [{destination: {host: reviews}}]
  - name: method-regex
    match: [{method: {regex: "PUT|PATCH"}}]
    route: [{destination: {host: reviews}}]
  - name: query
    match: [{queryParams: {q: {exact: a}}}, {queryParams: {r: {regex: "[0-9]+"}}}]
    route: [{destination: {host: reviews}}]
  - name: other-port
    match: [{port: 9999}]
    route: [{destination: {host: reviews}}]
  - name: this-port
    match: [{port: 9080, uri: {exact: /port}}]
    route: [{destination: {host: reviews}}]
  - name: authority
    match: [{authority: {prefix: reviews.example}}]
    route: [{destination: {host: reviews}}]
  - name: and
    match: [{uri: {prefix: /and}, headers: {x-a: {exact: "1"}, x-b: {exact: "2"}}}]
    route: [{destination: {host: reviews}}]
)";

TEST_CASE("router: uri exact, prefix, regex and ignoreUriCase", "[router]") {
  auto s = testing::load(kMatches);
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  CHECK(route_of(t, request("GET", "/exact")) == "exact");
  CHECK(route_of(t, request("GET", "/exact?x=1")) == "exact");  // the query is not part of the path
  CHECK(route_of(t, request("GET", "/exact/")) == "404");
  CHECK(route_of(t, request("GET", "/EXACT")) == "404");
  CHECK(route_of(t, request("GET", "/api/v1")) == "prefix-icase");
  CHECK(route_of(t, request("GET", "/API/v1")) == "prefix-icase");
  CHECK(route_of(t, request("GET", "/static/a.css")) == "prefix");
  CHECK(route_of(t, request("GET", "/Static/a.css")) == "404");
  CHECK(route_of(t, request("GET", "/static")) == "404");
  CHECK(route_of(t, request("GET", "/items/42")) == "regex");
  CHECK(route_of(t, request("GET", "/items/42x")) == "404");  // regexes match the whole path
  CHECK(route_of(t, request("GET", "/x/items/42")) == "404");
}

TEST_CASE("router: header exact, prefix, regex, presence and withoutHeaders", "[router]") {
  auto s = testing::load(kMatches);
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  FakeHeaders jason{{"x-user", "jason"}}, other{{"x-user", "jasonx"}};
  CHECK(route_of(t, request("GET", "/", &jason)) == "header-exact");
  CHECK(route_of(t, request("GET", "/", &other)) == "404");
  FakeHeaders gold{{"x-tier", "gold-plus"}}, silver{{"x-tier", "silver"}};
  CHECK(route_of(t, request("GET", "/", &gold)) == "header-prefix");  // names are lower-cased at compile time
  CHECK(route_of(t, request("GET", "/", &silver)) == "404");
  FakeHeaders hex{{"x-id", "cafe"}}, nothex{{"x-id", "cafe1"}};
  CHECK(route_of(t, request("GET", "/", &hex)) == "header-regex");
  CHECK(route_of(t, request("GET", "/", &nothex)) == "404");
  FakeHeaders present{{"x-present", ""}};
  CHECK(route_of(t, request("GET", "/", &present)) == "header-present");
  CHECK(route_of(t, request("GET", "/")) == "404");
  FakeHeaders canary{{"x-canary", "1"}}, not_canary{{"x-canary", "0"}};
  CHECK(route_of(t, request("GET", "/nocanary")) == "without-header");
  CHECK(route_of(t, request("GET", "/nocanary", &not_canary)) == "without-header");
  CHECK(route_of(t, request("GET", "/nocanary", &canary)) == "404");
}

TEST_CASE("router: method, query parameters, authority and port", "[router]") {
  auto s = testing::load(kMatches);
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  CHECK(route_of(t, request("POST", "/m")) == "method");
  CHECK(route_of(t, request("GET", "/m")) == "404");
  CHECK(route_of(t, request("post", "/m")) == "404");  // methods are case-sensitive
  CHECK(route_of(t, request("PATCH", "/")) == "method-regex");
  CHECK(route_of(t, request("GET", "/?q=a")) == "query");
  CHECK(route_of(t, request("GET", "/?x=1&q=a&z")) == "query");
  CHECK(route_of(t, request("GET", "/?q=ab")) == "404");
  CHECK(route_of(t, request("GET", "/?q")) == "404");
  CHECK(route_of(t, request("GET", "/?r=123")) == "query");  // the second block of the OR
  CHECK(route_of(t, request("GET", "/?r=12a")) == "404");
  CHECK(route_of(t, request("GET", "/port")) == "this-port");
  CHECK(route_of(t, request("GET", "/", nullptr, "reviews.example.com")) == "authority");
  CHECK(route_of(t, request("GET", "/", nullptr, "other")) == "404");
  // A route whose every block names another port is not in this port's table.
  bool has_other_port = false;
  for (const auto& r : t.routes) {
    has_other_port = has_other_port || r.name == "other-port";
  }
  CHECK_FALSE(has_other_port);
  CHECK(t.sources == std::vector<std::string>{"VirtualService reviews"});
}

TEST_CASE("router: a block ANDs its conditions", "[router]") {
  auto s = testing::load(kMatches);
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  FakeHeaders both{{"x-a", "1"}, {"x-b", "2"}}, one{{"x-a", "1"}}, wrong{{"x-a", "1"}, {"x-b", "3"}};
  CHECK(route_of(t, request("GET", "/and", &both)) == "and");
  CHECK(route_of(t, request("GET", "/and", &one)) == "404");
  CHECK(route_of(t, request("GET", "/and", &wrong)) == "404");
  CHECK(route_of(t, request("GET", "/nope", &both)) == "404");
}

TEST_CASE("router: the first matching route wins", "[router]") {
  auto s = testing::load(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: rest
    route: [{destination: {host: reviews, subset: v1}}]
---
)" + testing::reviews_rule());
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  FakeHeaders jason{{"end-user", "jason"}};
  CHECK(route_of(t, request("GET", "/api/x", &jason)) == "jason");
  CHECK(route_of(t, request("GET", "/api/x")) == "api");
  CHECK(route_of(t, request("GET", "/other")) == "rest");
  CHECK(match(t, request("GET", "/"))->clusters.at(0).cluster->name ==
        "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local");
}

TEST_CASE("router: string matchers directly", "[router]") {
  config::StringMatch exact{config::StringMatch::Kind::Exact, "/a", {}, false};
  CHECK(matches(exact, "/a"));
  CHECK_FALSE(matches(exact, "/a/"));
  config::StringMatch segment{config::StringMatch::Kind::PathPrefix, "/foo/", {}, false};
  CHECK(matches(segment, "/foo"));
  CHECK(matches(segment, "/foo/bar"));
  CHECK_FALSE(matches(segment, "/foobar"));
  config::StringMatch root{config::StringMatch::Kind::PathPrefix, "/", {}, false};
  CHECK(matches(root, "/"));
  CHECK(matches(root, "/anything"));
  std::string_view path, query;
  split_target("/a/b?x=1&y#frag", path, query);
  CHECK(path == "/a/b");
  CHECK(query == "x=1&y");
}

TEST_CASE("router: without a VirtualService a port has one default route", "[router]") {
  auto s = testing::load("");
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  CHECK(t.name == "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  REQUIRE(t.routes.size() == 1);
  const config::Route& r = t.routes[0];
  CHECK(r.name == "default");
  CHECK(r.matches.empty());
  REQUIRE(r.clusters.size() == 1);
  CHECK(r.clusters[0].cluster->name == "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  CHECK(r.clusters[0].cluster->endpoints.size() == 3);
  CHECK(route_of(t, request("DELETE", "/whatever?x")) == "default");
  CHECK(t.sources.empty());
  // Sniffed ports get a table too (in case the traffic turns out to be HTTP); TCP ports do not.
  CHECK(testing::table(*s, "10.96.0.12:9443").routes.size() == 1);
  CHECK(s->find_routes(*net::SockAddr::parse("10.96.0.30:7000")) == nullptr);
  CHECK(s->find_tcp_routes(*net::SockAddr::parse("10.96.0.30:7000")) == nullptr);
}

}  // namespace
}  // namespace wp::router

// Issue 13: every config regex is RE2 (linear time, no recursion per character), so hostile
// inputs can neither overflow the stack nor stall the worker.
namespace wp::router {
namespace {

using testing::FakeHeaders;
using testing::request;
using testing::route_of;

const std::string kHostileRegexes = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: ab-star
    match: [{uri: {regex: "/x/(a|b)*"}}]
    route: [{destination: {host: reviews}}]
  - name: any-user
    match: [{headers: {x-user: {regex: ".*"}}}]
    route: [{destination: {host: reviews}}]
  - name: redos
    match: [{headers: {x-redos: {regex: "(a+)+$"}}}]
    route: [{destination: {host: reviews}}]
)";

TEST_CASE("router: regexes are linear: long paths and headers neither crash nor stall", "[router]") {
  auto s = testing::load(kHostileRegexes);
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  std::string path = "/x/";
  for (int i = 0; i < 12 * 1024; ++i) {
    path += (i % 3 == 0) ? 'b' : 'a';
  }
  CHECK(route_of(t, request("GET", path)) == "ab-star");  // std::regex: SIGSEGV (recursion per char)
  CHECK(route_of(t, request("GET", path + "c")) == "404");
  FakeHeaders big{{"x-user", std::string(60 * 1024, 'u')}};
  CHECK(route_of(t, request("GET", "/", &big)) == "any-user");
  // (a+)+$ against a^n b: exponential for a backtracking engine (0.4 s at n = 24, doubling per a).
  auto start = std::chrono::steady_clock::now();
  for (int n : {24, 28, 32, 4096}) {
    FakeHeaders redos{{"x-redos", std::string(n, 'a') + "b"}};
    CHECK(route_of(t, request("GET", "/", &redos)) == "404");
  }
  FakeHeaders ok{{"x-redos", std::string(30, 'a')}};
  CHECK(route_of(t, request("GET", "/", &ok)) == "redos");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));  // backtracking: hours
}

}  // namespace

}  // namespace wp::router
