// `waypoint explain` on config/bookinfo.yaml and on small inline meshes: each decision the data
// path would make, with the resource that made it, and the exit code.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "unit/config/fixtures.h"
#include "waypoint/admin/explain.h"

namespace wp::admin {
namespace {

using Catch::Matchers::Contains;
using config::testing::base_config;
using P = ExplainRequest::Protocol;

constexpr const char* kProductpage = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
constexpr const char* kRatings = "spiffe://cluster.local/ns/default/sa/bookinfo-ratings";
constexpr const char* kReviewsTable = "RouteTable inbound-vip|9080|http|reviews.default.svc.cluster.local";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// config/bookinfo.yaml next to the fixture certificates, with `extra` documents appended.
config::SnapshotPtr bookinfo(const std::string& extra = "") {
  auto source = std::filesystem::path(__FILE__).parent_path() / "../../../config/bookinfo.yaml";
  std::string copy = config::testing::fixture_dir() + "/bookinfo-explain.yaml";
  config::testing::write_file(copy, read_text(source) + extra);
  return config::load_snapshot(copy);
}

ExplainRequest request(const std::string& from, const std::string& to, const std::string& method = "GET",
                       const std::string& path = "/") {
  ExplainRequest r;
  r.principal = from;
  r.to = *net::SockAddr::parse(to);
  r.method = method;
  r.path = path;
  return r;
}

std::string policy(const std::string& name, const std::string& spec) {
  return "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " + name +
         ", namespace: default}\nspec:\n" + spec;
}

// On reviews: POST and /admin* are denied; only productpage may call.
const std::string kReviewsPolicies = policy("reviews-no-admin",
                                            R"(  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: DENY
  rules:
  - to: [{operation: {methods: ["POST"]}}]
  - to: [{operation: {paths: ["/admin*"]}}]
  - to: [{operation: {paths: ["/reviews/secret"]}}]
)") + policy("reviews-callers", R"(  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]}}]
)");

// Three services of one pod each: web (HTTP, 10.96.1.1:80), db (TCP, 10.96.1.2:5432) and raw
// (a port without protocol: sniffed, 10.96.1.3:7000).
std::string mesh(const std::string& extra = "") {
  return R"(apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.1.1
  ports: [{name: http, port: 80, targetPort: 8080}]
  selector: {app: web}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: 10.96.1.2
  ports: [{name: db, port: 5432, appProtocol: tcp}]
  selector: {app: db}
---
apiVersion: v1
kind: Service
metadata: {name: raw, namespace: default}
spec:
  clusterIP: 10.96.1.3
  ports: [{name: data, port: 7000}]
  selector: {app: raw}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: default, labels: {app: web}}
spec: {serviceAccountName: web}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: default, labels: {app: db}}
spec: {serviceAccountName: db}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: raw-0, namespace: default, labels: {app: raw}}
spec: {serviceAccountName: raw}
status: {podIP: 10.0.0.3}
)" + extra +
         base_config();
}

std::string web_route(const std::string& http) {
  return R"(---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
)" + http;
}

TEST_CASE("explain: a bookinfo reviews request is allowed and split 90/10 by VirtualService reviews",
          "[admin][explain]") {
  auto s = bookinfo();
  Explanation e = explain(*s, request(kProductpage, "10.96.0.20:9080", "GET", "/reviews/0"));
  INFO(e.text);
  CHECK(e.exit_code == kExplainAllowed);
  CHECK_THAT(e.text, Contains("source 10.244.0.10 (pod productpage-v1-6b746f74dc-9stvs"));
  CHECK_THAT(e.text, Contains("request: GET /reviews/0, authority reviews.default.svc.cluster.local:9080"));
  CHECK_THAT(e.text, Contains("chain: inbound-vip|9080|http|reviews.default.svc.cluster.local\n"));
  CHECK_THAT(e.text, Contains("authorization: allowed: no AuthorizationPolicy targets Service reviews"));
  CHECK_THAT(e.text, Contains(std::string("route: reviews-split (VirtualService reviews), route [0] of 1 in ") +
                              kReviewsTable));
  CHECK_THAT(e.text, Contains("  90%  inbound-vip|9080|http/v1|reviews.default.svc.cluster.local (weight 90/100)\n"
                              "      subset v1 of DestinationRule reviews; load balancer ROUND_ROBIN\n"
                              "      reviews-v1-545db77b95-2ps7q  10.244.0.13:9080  "
                              "spiffe://cluster.local/ns/default/sa/bookinfo-reviews\n"));
  CHECK_THAT(e.text, Contains("  10%  inbound-vip|9080|http/v2|reviews.default.svc.cluster.local (weight 10/100)\n"));
  CHECK_THAT(e.text, Contains("reviews-v2-7bf8c9648f-7tqnh  10.244.0.14:9080"));
  CHECK_THAT(e.text, !Contains("reviews-v3"));  // no route sends to v3
  CHECK_THAT(e.text, Contains("retries: 2 (up to 3 tries) on "
                              "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes; "
                              "retriable status codes 503; per-try timeout none"));
  CHECK_THAT(e.text, Contains("timeout: none\n"));
  CHECK_THAT(e.text, Contains("result: forwarded\n"));
}

TEST_CASE("explain: AuthorizationPolicy verdicts name the policy and the rule", "[admin][explain]") {
  auto s = bookinfo(kReviewsPolicies);

  Explanation admin_path = explain(*s, request(kProductpage, "10.96.0.20:9080", "GET", "/admin/users?x=1"));
  INFO(admin_path.text);
  CHECK(admin_path.exit_code == kExplainDenied);
  CHECK_THAT(admin_path.text, Contains("authorization: denied by DENY policy default/reviews-no-admin, rule 1\n"));
  CHECK_THAT(admin_path.text,
             Contains("policies in force: DENY default/reviews-no-admin, ALLOW default/reviews-callers"));
  CHECK_THAT(admin_path.text, Contains("result: 403 \"RBAC: access denied\""));
  CHECK_THAT(admin_path.text, !Contains("route:"));  // authorization comes before routing

  Explanation post = explain(*s, request(kProductpage, "10.96.0.20:9080", "POST", "/reviews/0"));
  CHECK(post.exit_code == kExplainDenied);
  CHECK_THAT(post.text, Contains("denied by DENY policy default/reviews-no-admin, rule 0\n"));

  // Paths are matched without the query string, as the data path does.
  Explanation secret = explain(*s, request(kProductpage, "10.96.0.20:9080", "GET", "/reviews/secret?v=1"));
  CHECK(secret.exit_code == kExplainDenied);
  CHECK_THAT(secret.text, Contains("denied by DENY policy default/reviews-no-admin, rule 2\n"));

  Explanation ok = explain(*s, request(kProductpage, "10.96.0.20:9080", "GET", "/reviews/0"));
  CHECK(ok.exit_code == kExplainAllowed);
  CHECK_THAT(ok.text, Contains("authorization: allowed by ALLOW policy default/reviews-callers, rule 0\n"));
  CHECK_THAT(ok.text, Contains("route: reviews-split"));

  Explanation stranger = explain(*s, request(kRatings, "10.96.0.20:9080", "GET", "/reviews/0"));
  CHECK(stranger.exit_code == kExplainDenied);
  CHECK_THAT(stranger.text,
             Contains("authorization: denied: no ALLOW policy matched (ALLOW: default/reviews-callers)"));

  // Policies on reviews do not reach ratings.
  Explanation other = explain(*s, request(kRatings, "10.96.0.12:9080"));
  CHECK(other.exit_code == kExplainAllowed);
  CHECK_THAT(other.text, Contains("no AuthorizationPolicy targets Service ratings or the Gateway waypoint"));
}

TEST_CASE("explain: an ALLOW-only policy that matches nothing denies", "[admin][explain]") {
  auto s = config::testing::load(mesh(policy("web-from-a", R"(  targetRefs: [{kind: Service, name: web}]
  action: ALLOW
  rules: [{from: [{source: {namespaces: ["a"]}}]}]
)")));
  Explanation e = explain(*s, request("spiffe://cluster.local/ns/b/sa/client", "10.96.1.1:80"));
  INFO(e.text);
  CHECK(e.exit_code == kExplainDenied);
  CHECK_THAT(e.text, Contains("authorization: denied: no ALLOW policy matched (ALLOW: default/web-from-a)"));
  CHECK(explain(*s, request("spiffe://cluster.local/ns/a/sa/client", "10.96.1.1:80")).exit_code == kExplainAllowed);
}

TEST_CASE("explain: a destination nothing serves gets no chain (503)", "[admin][explain]") {
  auto s = bookinfo();
  for (const char* to : {"10.96.9.9:9080", "10.96.0.20:80", "10.244.9.9:9080"}) {
    Explanation e = explain(*s, request(kProductpage, to));
    INFO(e.text);
    CHECK(e.exit_code == kExplainNoRoute);
    CHECK_THAT(e.text, Contains(std::string("chain: none: ") + to + " is neither a served Service VIP:port"));
    CHECK_THAT(e.text, Contains("result: the CONNECT is answered 503 (NR)"));
  }
}

TEST_CASE("explain: the checks the data path makes before authorization (CONNECT inside a tunnel: 501)",
          "[admin][explain]") {
  auto s = config::testing::load(mesh());
  Explanation e = explain(*s, request(kProductpage, "10.96.1.1:80", "CONNECT", "/"));
  INFO(e.text);
  CHECK_THAT(e.text, Contains("result: 501 \"CONNECT is not supported inside a tunnel\" (DPE)"));
  CHECK_THAT(e.text, !Contains("authorization:"));  // as on the data path, it never gets there
  CHECK(e.exit_code == kExplainRefused);            // not "allowed and routed"
}

TEST_CASE("explain: a path no route matches is a 404", "[admin][explain]") {
  auto s = config::testing::load(mesh(web_route(R"(  - name: api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: web}}]
  - name: health
    match: [{uri: {exact: /healthz}}]
    route: [{destination: {host: web}}]
)")));
  Explanation miss = explain(*s, request(kProductpage, "10.96.1.1:80", "GET", "/static/app.js"));
  INFO(miss.text);
  CHECK(miss.exit_code == kExplainNoRoute);
  CHECK_THAT(miss.text, Contains("route: none of the 2 routes of RouteTable inbound-vip|80|http|web.default.svc."
                                 "cluster.local matches\nresult: 404 (NR)"));

  Explanation hit = explain(*s, request(kProductpage, "10.96.1.1:80", "GET", "/api/v1?q=2"));
  INFO(hit.text);
  CHECK(hit.exit_code == kExplainAllowed);
  CHECK_THAT(hit.text, Contains("route: api (VirtualService web), route [0] of 2"));
  CHECK_THAT(hit.text, Contains("match block [0]: uri prefix \"/api\""));
  CHECK_THAT(hit.text, Contains("100%  inbound-vip|80|http|web.default.svc.cluster.local (weight 100/100)"));
  CHECK_THAT(hit.text, Contains("web-0  10.0.0.1:8080  spiffe://cluster.local/ns/default/sa/web"));

  // The query string is not part of the path a uri match sees.
  Explanation health = explain(*s, request(kProductpage, "10.96.1.1:80", "GET", "/healthz?verbose=1"));
  INFO(health.text);
  CHECK(health.exit_code == kExplainAllowed);
  CHECK_THAT(health.text, Contains("route: health (VirtualService web), route [1] of 2"));
  CHECK_THAT(health.text, Contains("match block [0]: uri exact \"/healthz\""));
}

TEST_CASE("explain: HTTP fields in an ALLOW policy on a TCP port fail closed (401)", "[admin][explain]") {
  auto s = config::testing::load(mesh(policy("db-get", R"(  targetRefs: [{kind: Service, name: db}]
  action: ALLOW
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
)")));
  // HTTP details do not make a TCP port parse HTTP.
  ExplainRequest r = request(kProductpage, "10.96.1.2:5432", "GET", "/");
  r.protocol = P::Http;
  Explanation e = explain(*s, r);
  INFO(e.text);
  CHECK(e.exit_code == kExplainDenied);
  CHECK_THAT(e.text, Contains("note: the port is TCP"));
  CHECK_THAT(e.text, Contains("chain: inbound-vip|5432|tcp|db.default.svc.cluster.local\n"));
  CHECK_THAT(e.text, Contains("authorization: denied: no ALLOW policy matched (ALLOW: default/db-get)"));
  CHECK_THAT(e.text, Contains("evaluated with L4 attributes only (TCP)"));
  CHECK_THAT(e.text, Contains("note: ALLOW default/db-get rule 0 uses HTTP fields"));
  CHECK_THAT(e.text, Contains("it never matches (fail closed)"));
  CHECK_THAT(e.text, Contains("result: the CONNECT is answered 401; the pod is never dialled"));
}

TEST_CASE("explain: an allowed TCP port names its cluster and endpoints", "[admin][explain]") {
  auto s = config::testing::load(mesh());
  Explanation e = explain(*s, request(kProductpage, "10.96.1.2:5432"));
  INFO(e.text);
  CHECK(e.exit_code == kExplainAllowed);
  CHECK_THAT(e.text, Contains("cluster: inbound-vip|5432|tcp|db.default.svc.cluster.local (round robin"));
  CHECK_THAT(e.text, Contains("db-0  10.0.0.2:5432  spiffe://cluster.local/ns/default/sa/db"));
  CHECK_THAT(e.text, !Contains("route:"));
}

TEST_CASE("explain: a pod IP takes the direct chain to that pod", "[admin][explain]") {
  auto s = bookinfo();
  ExplainRequest r = request(kProductpage, "10.244.0.14:9080", "GET", "/health");
  r.protocol = P::Http;
  Explanation http = explain(*s, r);
  INFO(http.text);
  CHECK(http.exit_code == kExplainAllowed);
  CHECK_THAT(http.text, Contains("chain: direct-http\n"));
  CHECK_THAT(http.text, Contains("request: GET /health, authority 10.244.0.14:9080"));
  CHECK_THAT(http.text, Contains("pod IP of reviews-v2-7bf8c9648f-7tqnh"));
  CHECK_THAT(http.text, Contains("route: default (direct)"));
  CHECK_THAT(http.text, Contains("100%  encap (the addressed pod)\n"
                                 "      reviews-v2-7bf8c9648f-7tqnh  10.244.0.14:9080  "
                                 "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"));
  CHECK_THAT(http.text, !Contains("direct-tcp"));

  // Without HTTP details a sniffed chain is explained both ways.
  Explanation both = explain(*s, request(kProductpage, "10.244.0.14:9080"));
  INFO(both.text);
  CHECK(both.exit_code == kExplainAllowed);
  CHECK_THAT(both.text, Contains("== if the client speaks HTTP"));
  CHECK_THAT(both.text, Contains("chain: direct-http\n"));
  CHECK_THAT(both.text, Contains("chain: direct-tcp\n"));
  CHECK_THAT(both.text, Contains("cluster: encap (the addressed pod, same port)"));
}

TEST_CASE("explain: retries, timeout, fault and header rules as configured", "[admin][explain]") {
  auto s = config::testing::load(mesh(web_route(R"(  - name: main
    route: [{destination: {host: web}}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure"}
    timeout: 5s
    fault: {abort: {httpStatus: 503, percentage: {value: 25}}}
    headers:
      request: {set: {x-env: prod}, remove: [x-debug]}
      response: {add: {x-served-by: waypoint}}
)")));
  Explanation e = explain(*s, request(kProductpage, "10.96.1.1:80"));
  INFO(e.text);
  CHECK(e.exit_code == kExplainAllowed);
  CHECK_THAT(e.text, Contains("retries: 3 (up to 4 tries) on 5xx,connect-failure; per-try timeout 2s"));
  CHECK_THAT(e.text, !Contains("retriable status codes"));  // retryOn replaced the defaults
  CHECK_THAT(e.text, Contains("timeout: 5s\n"));
  CHECK_THAT(e.text, Contains("fault: abort 503 \"fault filter abort\" for 25% of requests (FI);"));
  CHECK_THAT(e.text, Contains("request headers: remove x-debug; set x-env: prod\n"));
  CHECK_THAT(e.text, Contains("response headers: add x-served-by: waypoint\n"));
}

TEST_CASE("explain: routes match on headers, and a Host header is the authority", "[admin][explain]") {
  auto s = config::testing::load(mesh(web_route(R"(  - name: canary
    match: [{headers: {x-canary: {exact: "yes"}}}, {authority: {exact: "canary.example"}}]
    route: [{destination: {host: web}}]
    timeout: 1s
  - name: rest
    route: [{destination: {host: web}}]
)")));
  ExplainRequest r = request(kProductpage, "10.96.1.1:80");
  r.headers = {{"X-Canary", "yes"}};
  Explanation by_header = explain(*s, r);
  INFO(by_header.text);
  CHECK_THAT(by_header.text, Contains("route: canary (VirtualService web), route [0] of 2"));
  CHECK_THAT(by_header.text, Contains("match block [0]: header x-canary exact \"yes\""));

  r.headers = {{"host", "canary.example"}};
  Explanation by_host = explain(*s, r);
  INFO(by_host.text);
  CHECK_THAT(by_host.text, Contains("authority canary.example\n"));
  CHECK_THAT(by_host.text, Contains("match block [1]: authority exact \"canary.example\""));

  r.headers.clear();
  Explanation rest = explain(*s, r);
  CHECK_THAT(rest.text, Contains("route: rest (VirtualService web), route [1] of 2"));
  CHECK_THAT(rest.text, Contains("match: every request"));
}

TEST_CASE("explain: the source address decides ipBlocks, and AUDIT policies are named", "[admin][explain]") {
  auto s = config::testing::load(mesh(policy("web-inside", R"(  targetRefs: [{kind: Service, name: web}]
  action: ALLOW
  rules: [{from: [{source: {ipBlocks: ["10.0.0.0/24"]}}]}]
)") + policy("audit-all", R"(  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: AUDIT
  rules: [{}]
)")));
  // raw-0 (10.0.0.3) is a served pod: its identity gives its address.
  Explanation pod = explain(*s, request("spiffe://cluster.local/ns/default/sa/raw", "10.96.1.1:80"));
  INFO(pod.text);
  CHECK(pod.exit_code == kExplainAllowed);
  CHECK_THAT(pod.text, Contains("source 10.0.0.3 (pod raw-0"));
  CHECK_THAT(pod.text, Contains("allowed by ALLOW policy default/web-inside, rule 0"));
  CHECK_THAT(pod.text, Contains("audited by AUDIT default/audit-all"));

  ExplainRequest outside = request("spiffe://cluster.local/ns/default/sa/raw", "10.96.1.1:80");
  outside.source_ip = net::IpAddr::parse("192.168.1.1");
  Explanation e = explain(*s, outside);
  INFO(e.text);
  CHECK(e.exit_code == kExplainDenied);
  CHECK_THAT(e.text, Contains("source 192.168.1.1 (--source-ip)"));

  Explanation unknown = explain(*s, request("spiffe://cluster.local/ns/x/sa/y", "10.96.1.1:80"));
  CHECK(unknown.exit_code == kExplainDenied);
  CHECK_THAT(unknown.text, Contains("source 0.0.0.0 (unknown"));
}

TEST_CASE("explain: a sniffed service port, and its tcp route", "[admin][explain]") {
  auto s = config::testing::load(mesh(R"(---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: raw, namespace: default}
spec:
  hosts: [raw]
  tcp:
  - route: [{destination: {host: raw}}]
)"));
  Explanation both = explain(*s, request(kProductpage, "10.96.1.3:7000"));
  INFO(both.text);
  CHECK(both.exit_code == kExplainAllowed);
  CHECK_THAT(both.text, Contains("Service raw port data/7000: sniffed"));
  CHECK_THAT(both.text, Contains("chain: inbound-vip|7000|http|raw.default.svc.cluster.local\n"));
  CHECK_THAT(both.text, Contains("chain: inbound-vip|7000|tcp|raw.default.svc.cluster.local\n"));
  CHECK_THAT(both.text, Contains("upstream protocol: as the client speaks"));
  CHECK_THAT(both.text, Contains("tcp route: VirtualService raw (a weighted pick per tunnel"));
  CHECK_THAT(both.text, Contains("100%  inbound-vip|7000|tcp|raw.default.svc.cluster.local (weight 100/100)"));
  CHECK_THAT(both.text, Contains("raw-0  10.0.0.3:7000"));

  ExplainRequest tcp = request(kProductpage, "10.96.1.3:7000");
  tcp.protocol = P::Tcp;
  Explanation only_tcp = explain(*s, tcp);
  CHECK_THAT(only_tcp.text, !Contains("|http|"));
  CHECK_THAT(only_tcp.text, Contains("the bytes turned out not to be HTTP"));
}

}  // namespace
}  // namespace wp::admin
