// Compiling routing resources: errors with FILE:LINE:COL, DestinationRule policies, HTTPRoute,
// TCP routes, binding rules and the bookinfo example.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "router_fixtures.h"

namespace wp::router {
namespace {

using testing::errors;
using testing::FakeHeaders;
using testing::request;
using testing::route_of;

std::string vs_http(const std::string& http) {
  return testing::reviews_vs(http);
}

TEST_CASE("router: routing config errors point at the field", "[router]") {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const Case cases[] = {
      {vs_http("  - route: [{destination: {host: reviews, subset: v4}}]\n") + "---\n" + testing::reviews_rule(),
       "cfg.yaml:7:51: VirtualService reviews: spec.http[0].route[0].destination.subset: unknown subset v4 of "
       "reviews (DestinationRule reviews has v1, v2, v3)"},
      {vs_http("  - route: [{destination: {host: reviews, subset: v1}}]\n"),
       "cfg.yaml:7:51: VirtualService reviews: spec.http[0].route[0].destination.subset: unknown subset v1 of "
       "reviews (no DestinationRule for reviews)"},
      {vs_http(R"(  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 10}
)") + "---\n" +
           testing::reviews_rule(),
       "cfg.yaml:8:5: VirtualService reviews: spec.http[0].route: weights add up to 90, not 100"},
      {vs_http(R"(  - route:
    - {destination: {host: reviews, subset: v1}, weight: 60}
    - {destination: {host: reviews, subset: v2}, weight: 50}
)") + "---\n" +
           testing::reviews_rule(),
       "cfg.yaml:8:5: VirtualService reviews: spec.http[0].route: weights add up to 110, not 100"},
      {vs_http("  - match: [{uri: {regex: \"/a(\"}}]\n    route: [{destination: {host: reviews}}]\n"),
       "cfg.yaml:7:27: VirtualService reviews: spec.http[0].match[0].uri.regex: bad regex \"/a(\" (RE2 syntax): "
       "missing )"},
      {vs_http("  - match: [{headers: {x-a: {regex: \"(a)\\\\1\"}}}]\n    route: [{destination: {host: reviews}}]\n"),
       "cfg.yaml:7:37: VirtualService reviews: spec.http[0].match[0].headers.x-a.regex: bad regex"},
      {vs_http("  - route: [{destination: {host: reviews}}]\n    timeout: 10 seconds\n"),
       "cfg.yaml:8:14: VirtualService reviews: spec.http[0].timeout: bad duration \"10 seconds\" (use e.g. 10s, "
       "250ms)"},
      {vs_http("  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 3, perTryTimeout: 2x}\n"),
       "cfg.yaml:8:43: VirtualService reviews: spec.http[0].retries.perTryTimeout: bad duration \"2x\""},
      {vs_http("  - route: [{destination: {host: reviews}}]\n    fault: {abort: {httpStatus: 503, percentage: "
               "{value: 150}}}\n"),
       "cfg.yaml:8:58: VirtualService reviews: spec.http[0].fault.abort.percentage.value: bad percentage \"150\" "
       "(0 to 100)"},
      {vs_http("  - route: [{destination: {host: reviews}}]\n    fault: {delay: {fixedDelay: 1s, percentage: "
               "{value: ten}}}\n"),
       "cfg.yaml:8:57: VirtualService reviews: spec.http[0].fault.delay.percentage.value: bad percentage \"ten\""},
      {vs_http("  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 2, retryOn: "
               "\"5xx,connect-failures\"}\n"),
       "cfg.yaml:8:37: VirtualService reviews: spec.http[0].retries.retryOn: unknown retryOn condition "
       "\"connect-failures\""},
      {vs_http("  - route: [{destination: {host: details}}]\n"),
       "cfg.yaml:7:34: VirtualService reviews: spec.http[0].route[0].destination.host: unknown service details "
       "(not a served Service of namespace default)"},
      {vs_http("  - route: [{destination: {host: reviews, port: {number: 9999}}}]\n"),
       "cfg.yaml:7:58: VirtualService reviews: spec.http[0].route[0].destination.port.number: service reviews has "
       "no port 9999"},
      {vs_http("  - match: [{uri: {prefix: /a}}]\n"),
       "cfg.yaml:7:5: VirtualService reviews: spec.http[0].route: required (or redirect, or directResponse)"},
      {vs_http("  - match: [{sourceLabels: {app: productpage}}]\n    route: [{destination: {host: reviews}}]\n"),
       "cfg.yaml:7:28: VirtualService reviews: spec.http[0].match[0].sourceLabels: not supported by the waypoint"},
      {vs_http("  - match: [{headers: {x-a: {suffix: z}}}]\n    route: [{destination: {host: reviews}}]\n"),
       "cfg.yaml:7:29: VirtualService reviews: spec.http[0].match[0].headers.x-a: expected one of exact, prefix, "
       "regex"},
      {vs_http("  - route: [{destination: {host: reviews}}]\n    directResponse: {status: 200}\n"),
       "cfg.yaml:7:5: VirtualService reviews: spec.http[0]: give only one of route, redirect, directResponse"},
      {R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: details}
spec:
  parentRefs: [{group: "", kind: Service, name: details}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
)",
       "cfg.yaml:5:49: HTTPRoute details: spec.parentRefs[0].name: unknown service details (not a served Service of "
       "namespace default)"},
      {R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules: [{matches: [{path: {type: RegularExpression, value: "[z-a]"}}], backendRefs: [{name: reviews}]}]
)",
       "cfg.yaml:6:62: HTTPRoute r: spec.rules[0].matches[0].path.value: bad regex \"[z-a]\""},
      {R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules: [{backendRefs: [{name: nope, port: 9080}], timeouts: {request: 5}}]
)",
       "cfg.yaml:6:73: HTTPRoute r: spec.rules[0].timeouts.request: bad duration \"5\""},
      {R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules: [{backendRefs: [{name: nope, port: 9080}]}]
)",
       "cfg.yaml:6:33: HTTPRoute r: spec.rules[0].backendRefs[0].name: unknown service nope"},
      {testing::reviews_rule(R"(  trafficPolicy: {loadBalancer: {simple: FASTEST}}
)"),
       "cfg.yaml:10:42: DestinationRule reviews: spec.trafficPolicy.loadBalancer.simple: \"FASTEST\" is not "
       "ROUND_ROBIN, LEAST_REQUEST or RANDOM"},
      {testing::reviews_rule(R"(  trafficPolicy: {outlierDetection: {interval: soon}}
)"),
       "cfg.yaml:10:48: DestinationRule reviews: spec.trafficPolicy.outlierDetection.interval: bad duration"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    std::string got = errors(c.yaml);
    CHECK(got.substr(0, c.error.size()) == c.error);
  }
}

TEST_CASE("router: hostile regexes in the config are errors with FILE:LINE:COL, never a crash", "[router]") {
  // 20,000 nested groups: std::regex's recursive parser overflowed the stack (SIGSEGV).
  std::string nested = std::string(20000, '(') + "a" + std::string(20000, ')');
  std::string got =
      errors(vs_http("  - match: [{uri: {regex: \"" + nested + "\"}}]\n    route: [{destination: {host: reviews}}]\n"));
  CHECK(got.rfind("cfg.yaml:7:27: VirtualService reviews: spec.http[0].match[0].uri.regex: regex", 0) == 0);
  CHECK(got.find("is too complex (program size 40005 > 32768)") != std::string::npos);
  // A pattern that compiles to a huge program is refused (bounded as Istio bounds Envoy's RE2).
  got = errors(
      vs_http("  - match: [{uri: {regex: \"(((a{100}){100}){10})\"}}]\n    route: [{destination: {host: reviews}}]\n"));
  CHECK(got.rfind("cfg.yaml:7:27: VirtualService reviews: spec.http[0].match[0].uri.regex:", 0) == 0);
  CHECK((got.find("too complex") != std::string::npos || got.find("bad regex") != std::string::npos));
  // Backreferences and lookarounds are not RE2 (nor Envoy's safe_regex).
  got = errors(vs_http("  - match: [{uri: {regex: \"/(?=a)\"}}]\n    route: [{destination: {host: reviews}}]\n"));
  CHECK(got.rfind("cfg.yaml:7:27: VirtualService reviews: spec.http[0].match[0].uri.regex: bad regex", 0) == 0);
  // Big but reasonable patterns compile.
  CHECK(errors(vs_http("  - match: [{uri: {regex: \"/api/v[0-9]+/(users|groups)/[a-z0-9-]{1,64}(/.*)?\"}}]\n    route: "
                       "[{destination: {host: reviews}}]\n"))
            .empty());
}

TEST_CASE("router: malformed routing resources are reported, never crash", "[router]") {
  const std::string bodies[] = {
      "spec: 5\n",
      "spec: {hosts: reviews, http: {}}\n",
      "spec: {hosts: [reviews], http: [5, {match: 5}, {match: [5]}, {route: {}}]}\n",
      "spec: {hosts: [[x]], http: [{route: [{destination: 5, weight: -1}]}]}\n",
      "spec: {hosts: [reviews], http: [{match: [{uri: 5, headers: [x], queryParams: {q: 7}}], route: "
      "[{destination: {host: {a: b}}}]}]}\n",
      "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}], retries: 3, fault: [1], timeout: "
      "[1], headers: 5, rewrite: 1, mirror: 2, mirrorPercentage: {value: x}}]}\n",
      "spec: {hosts: [reviews], tcp: [5, {route: 5}, {match: 5, route: [{destination: {host: reviews}, weight: "
      "x}]}]}\n",
  };
  for (const auto& body : bodies) {
    INFO(body);
    std::string vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\n" + body;
    CHECK(errors(vs).find("cfg.yaml:") == 0);
  }
  const std::string dr_bodies[] = {
      "spec: {host: [x]}\n",
      "spec: {host: reviews, subsets: 5}\n",
      "spec: {host: reviews, subsets: [5, {name: v1, labels: 5}], trafficPolicy: {loadBalancer: 5, connectionPool: "
      "{tcp: {maxConnections: -1}}}}\n",
      "spec: {host: reviews, trafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}}\n",
  };
  for (const auto& body : dr_bodies) {
    INFO(body);
    std::string dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: bad}\n" + body;
    CHECK(errors(dr).find("cfg.yaml:") == 0);
  }
  const std::string route_bodies[] = {
      "spec: {parentRefs: 5}\n",
      "spec: {parentRefs: [{kind: Service, group: '', name: reviews}], rules: [5, {matches: 5}, {matches: [{path: "
      "5}]}]}\n",
      "spec: {parentRefs: [{kind: Service, group: '', name: reviews}], rules: [{filters: [{type: URLRewrite}, "
      "{type: Nope}], backendRefs: [{name: reviews, weight: x}]}]}\n",
      "spec: {parentRefs: [{kind: Service, group: '', name: reviews}], rules: [{filters: [{type: RequestMirror, "
      "requestMirror: {backendRef: {name: reviews}, percent: 200}}]}]}\n",
  };
  for (const auto& body : route_bodies) {
    INFO(body);
    std::string route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\n" + body;
    CHECK(errors(route).find("cfg.yaml:") == 0);
  }
}

TEST_CASE("router: DestinationRule traffic policies, merged per subset", "[router]") {
  auto s = testing::load(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 5, maxRetries: 3}
    outlierDetection: {consecutive5xxErrors: 7, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpHeaderName: X-User}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
)");
  const config::RoutedCluster* v1 = s->find_cluster("inbound-vip|9080|http/v1|reviews.default.svc.cluster.local");
  const config::RoutedCluster* v2 = s->find_cluster("inbound-vip|9080|http/v2|reviews.default.svc.cluster.local");
  REQUIRE(v1 != nullptr);
  REQUIRE(v2 != nullptr);
  CHECK(v1->policy.load_balancer == config::LoadBalancer::LeastRequest);
  CHECK(v1->policy.max_connections == 100);
  CHECK(v1->policy.http1_max_pending_requests == 10);
  CHECK(v1->policy.http2_max_requests == 1000);
  CHECK(v1->policy.max_requests_per_connection == 5);
  CHECK(v1->policy.max_retries == 3);
  CHECK(v1->policy.outlier_detection);
  CHECK(v1->policy.consecutive_5xx_errors == 7);
  CHECK(v1->policy.outlier_interval == config::Millis{5000});
  CHECK(v1->policy.base_ejection_time == config::Millis{60000});
  CHECK(v1->policy.max_ejection_percent == 50);
  // The subset replaces the load balancer only; pool and outlier settings come from the top level.
  CHECK(v2->policy.load_balancer == config::LoadBalancer::ConsistentHash);
  CHECK(v2->policy.hash_header == "x-user");
  CHECK(v2->policy.max_connections == 100);
  CHECK(v2->policy.consecutive_5xx_errors == 7);
  // The default cluster of a service with a DestinationRule gets its top-level policy.
  auto plain = testing::load(testing::reviews_rule("  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"));
  const auto& t = testing::table(*plain, "10.96.0.20:9080");
  CHECK(t.routes.at(0).clusters.at(0).cluster->policy.load_balancer == config::LoadBalancer::Random);
  CHECK(t.routes.at(0).clusters.at(0).cluster->destination_rule == "reviews");
}

const std::string kHttpRoute = R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api/}
      headers: [{name: X-Version, value: "2"}]
    - path: {type: Exact, value: /exact}
      method: POST
    - queryParams: [{name: v, type: RegularExpression, value: "[0-9]"}]
    backendRefs: [{name: reviews, port: 9080, weight: 3}, {name: ratings, port: 9080, weight: 1}]
    timeouts: {request: 10s, backendRequest: 2s}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Route, value: api}], remove: [x-debug]}
    - type: URLRewrite
      urlRewrite: {hostname: internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}}
  - matches: [{path: {type: PathPrefix, value: /drained}}]
    backendRefs: [{name: reviews, port: 9080, weight: 0}]
  - backendRefs: [{name: reviews, port: 9080}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: ratings, port: 9080}, percent: 5}
)";

TEST_CASE("router: HTTPRoute with a Service parent", "[router]") {
  auto s = testing::load(kHttpRoute);
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  CHECK(t.sources == std::vector<std::string>{"HTTPRoute reviews"});
  // One route per match, in Gateway API precedence: exact path, longer prefixes, then the rest
  // (more query parameter matches first); ties in file order.
  std::vector<std::string> names;
  for (const auto& r : t.routes) {
    names.push_back(r.name + " " + r.matches.at(0).uri->value);
  }
  CHECK(names == std::vector<std::string>{"reviews.0 /exact", "reviews.2 /drained", "reviews.0 /api/", "reviews.1 /old",
                                          "reviews.0 /", "reviews.3 /"});
  FakeHeaders v2{{"x-version", "2"}};
  CHECK(route_of(t, request("GET", "/api/x", &v2)) == "reviews.0");
  CHECK(route_of(t, request("GET", "/api", &v2)) == "reviews.0");  // PathPrefix is segment-wise
  CHECK(route_of(t, request("GET", "/apix", &v2)) == "reviews.3");
  CHECK(route_of(t, request("GET", "/api/x")) == "reviews.3");
  CHECK(route_of(t, request("POST", "/exact")) == "reviews.0");
  CHECK(route_of(t, request("GET", "/exact")) == "reviews.3");
  CHECK(route_of(t, request("GET", "/x?v=7")) == "reviews.0");
  CHECK(route_of(t, request("GET", "/old/page")) == "reviews.1");
  CHECK(route_of(t, request("GET", "/drained")) == "reviews.2");

  const config::Route& api = t.routes[2];
  REQUIRE(api.clusters.size() == 2);
  CHECK(api.clusters[0].cluster->name == "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  CHECK(api.clusters[1].cluster->name == "inbound-vip|9080|http|ratings.default.svc.cluster.local");
  CHECK(api.cumulative_weights == std::vector<uint32_t>{3, 4});
  CHECK(pick(api, 2).cluster->service->name == "reviews");
  CHECK(pick(api, 3).cluster->service->name == "ratings");
  CHECK(api.timeout == config::Millis{10'000});
  CHECK(api.retry.per_try_timeout == config::Millis{2'000});
  CHECK(api.retry.num_retries == 2);  // Istio's default retry policy applies to HTTPRoutes too
  CHECK(api.request_headers.set == std::vector<std::pair<std::string, std::string>>{{"x-route", "api"}});
  CHECK(api.request_headers.remove == std::vector<std::string>{"x-debug"});
  CHECK(api.rewrite.authority == "internal");
  CHECK(rewritten_path(api, request("GET", "/api/list?page=2", &v2)) == "/v2/list?page=2");
  CHECK(rewritten_path(api, request("GET", "/api", &v2)) == "/v2");

  const config::Route& old = t.routes[3];
  REQUIRE(old.redirect);
  CHECK(old.redirect->status == 302);
  CHECK(redirect_location(old, request("GET", "/old/x"), "http") == "http://reviews:9080/new");

  CHECK(t.routes[1].direct_status == 500);  // every backend weighs 0
  CHECK(t.routes[1].total_weight == 0);
  CHECK(t.routes[5].direct_status == 0);
  REQUIRE(t.routes[5].mirrors.size() == 1);
  CHECK(t.routes[5].mirrors[0].per_million == 50'000);
}

TEST_CASE("router: HTTPRoutes of a service merge by precedence, across routes", "[router]") {
  auto s = testing::load(R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catch-all}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: specific}
spec:
  parentRefs: [{group: core, kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}, method: GET}]
    backendRefs: [{name: ratings, port: 9080}]
  - matches: [{path: {type: RegularExpression, value: "/r/.*"}}]
    backendRefs: [{name: ratings, port: 9080}]
)");
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  CHECK(t.sources == std::vector<std::string>{"HTTPRoute catch-all", "HTTPRoute specific"});
  CHECK(route_of(t, request("GET", "/x")) == "specific.0");  // a method match outranks none
  CHECK(route_of(t, request("POST", "/x")) == "catch-all.0");
  CHECK(route_of(t, request("POST", "/r/1")) == "catch-all.0");  // any prefix outranks a regex
  REQUIRE(t.routes.size() == 3);
  CHECK(t.routes[2].name == "specific.1");
}

TEST_CASE("router: HTTPRoute takes a service over a VirtualService", "[router]") {
  auto s = testing::load(kHttpRoute + "---\n" + vs_http("  - route: [{destination: {host: reviews}}]\n"));
  CHECK(testing::table(*s, "10.96.0.20:9080").sources == std::vector<std::string>{"HTTPRoute reviews"});
  REQUIRE(s->warnings.size() == 1);
  CHECK(s->warnings[0].find("VirtualService reviews: spec.hosts[0]: service reviews is routed by HTTPRoute reviews; "
                            "this VirtualService is ignored for it") != std::string::npos);
}

TEST_CASE("router: VirtualService hosts bind served services only", "[router]") {
  auto s = testing::load(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: multi}
spec:
  hosts: [reviews.default, ratings.default.svc.cluster.local, productpage]
  http:
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: ratings}}]
)");
  CHECK(testing::table(*s, "10.96.0.20:9080").sources == std::vector<std::string>{"VirtualService multi"});
  // ratings' other port is sniffed: it gets the VirtualService's routes, to the same port number.
  const auto& other = testing::table(*s, "10.96.0.12:9443");
  CHECK(other.routes.at(0).clusters.at(0).cluster->name == "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  REQUIRE(s->warnings.size() == 2);
  CHECK(s->warnings[0].find("cfg.yaml:5:63: VirtualService multi: spec.hosts[2]: host productpage names no served "
                            "service; ignored") != std::string::npos);
  CHECK(s->warnings[1].find("cfg.yaml:13:11: VirtualService second: spec.hosts[0]: service reviews is already "
                            "routed by VirtualService multi; ignored") != std::string::npos);
}

TEST_CASE("router: VirtualService tcp routes", "[router]") {
  auto s = testing::load(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  tcp:
  - match: [{port: 7001}]
    route: [{destination: {host: ratings}}]
  - route:
    - {destination: {host: echo, port: {number: 7000}}, weight: 75}
    - {destination: {host: ratings, port: {number: 9443}}, weight: 25}
)");
  const config::TcpRouteTable* t = s->find_tcp_routes(*net::SockAddr::parse("10.96.0.30:7000"));
  REQUIRE(t != nullptr);
  CHECK(t->source == "VirtualService echo");
  REQUIRE(t->route.clusters.size() == 2);
  CHECK(t->route.clusters[0].cluster->name == "inbound-vip|7000|tcp|echo.default.svc.cluster.local");
  CHECK(t->route.clusters[1].cluster->name == "inbound-vip|9443|tcp|ratings.default.svc.cluster.local");
  CHECK(pick(t->route, 74).cluster->service->name == "echo");
  CHECK(pick(t->route, 75).cluster->service->name == "ratings");
  CHECK(t->route.clusters[1].cluster->endpoints.at(0).address.to_string() == "10.0.0.4:9443");
  // The chain points at its tables (the data path reads them there, with no lookup).
  const config::VipChain* echo = s->find_vip(*net::SockAddr::parse("10.96.0.30:7000"));
  REQUIRE(echo != nullptr);
  CHECK(echo->tcp_routes == t);
  CHECK(echo->routes == nullptr);  // a TCP port has no HTTP route table
  const config::VipChain* ratings = s->find_vip(*net::SockAddr::parse("10.96.0.12:9443"));
  REQUIRE(ratings != nullptr);
  CHECK(ratings->routes == s->find_routes(*net::SockAddr::parse("10.96.0.12:9443")));
  CHECK(ratings->routes != nullptr);
  CHECK(ratings->tcp_routes == nullptr);  // no tcp[] entry for port 9443
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

config::SnapshotPtr load_example(const std::string& name) {
  auto source = std::filesystem::path(__FILE__).parent_path() / "../../../config" / name;
  std::string copy = config::testing::fixture_dir() + "/" + name;
  config::testing::write_file(copy, read_text(source));
  return config::load_snapshot(copy);
}

void check_reviews_split(const config::Snapshot& s, const std::string& vip, const std::string& v1_ip,
                         const std::string& v2_ip) {
  const auto& t = testing::table(s, vip);
  CHECK(t.sources == std::vector<std::string>{"VirtualService reviews"});
  REQUIRE(t.routes.size() == 1);
  const config::Route& r = t.routes[0];
  REQUIRE(r.clusters.size() == 2);
  CHECK(r.clusters[0].cluster->name == "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local");
  CHECK(r.clusters[0].weight == 90);
  CHECK(r.clusters[1].cluster->name == "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local");
  CHECK(r.clusters[1].weight == 10);
  CHECK(r.clusters[0].cluster->endpoints.at(0).address.to_string() == v1_ip);
  CHECK(r.clusters[1].cluster->endpoints.at(0).address.to_string() == v2_ip);
  CHECK(r.clusters[0].cluster->endpoints.size() == 1);
  CHECK(route_of(t, request("GET", "/reviews/0")) == r.name);
  // Other services keep their default route.
  CHECK(s.route_tables.size() == 4);
}

TEST_CASE("router: the bookinfo 90/10 example compiles", "[router]") {
  auto s = load_example("bookinfo.yaml");
  CHECK(s->warnings.empty());
  check_reviews_split(*s, "10.96.0.20:9080", "10.244.0.13:9080", "10.244.0.14:9080");
  auto demo = load_example("demo-loopback.yaml");
  CHECK(demo->warnings.empty());
  check_reviews_split(*demo, "127.0.10.4:9080", "127.0.1.4:9080", "127.0.1.5:9080");
}

}  // namespace
}  // namespace wp::router
