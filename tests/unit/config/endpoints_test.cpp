// Where a Service's endpoints come from: its EndpointSlices when it has any (ready, not
// terminating, pods matched through targetRef), else its selector over the ready pods; and the
// Services without a VIP (headless, no clusterIP), dual stack, ExternalName, deleted pods.
#include <catch2/catch.hpp>

#include <algorithm>

#include "fixtures.h"

namespace wp::config {
namespace {

using testing::base_config;
using testing::load;

std::string pod(const std::string& name, const std::string& ip, const std::string& labels,
                const std::string& extra_meta = "", const std::string& sa = "reviews") {
  return "---\napiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", labels: {" + labels + "}" + extra_meta +
         "}\nspec: {serviceAccountName: " + sa + "}\nstatus: {podIP: " + ip +
         ", phase: Running, conditions: [{type: Ready, status: 'True'}]}\n";
}

const std::string kService = R"(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 9080, targetPort: 8080}]
  selector: {app: reviews}
)";

std::string slice(const std::string& name, const std::string& endpoints, const std::string& ports =
                  "[{name: http, port: 8080, protocol: TCP}]") {
  return "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + name +
         "\n  labels: {kubernetes.io/service-name: reviews}\naddressType: IPv4\nports: " + ports +
         "\nendpoints: " + endpoints + "\n";
}

std::vector<std::string> endpoints_of(const Snapshot& s, const std::string& vip) {
  const VipChain* chain = s.find_vip(*net::SockAddr::parse(vip));
  REQUIRE(chain != nullptr);
  std::vector<std::string> out;
  for (const Endpoint& ep : chain->cluster.endpoints) {
    out.push_back(ep.pod->name + "@" + ep.address.to_string() + (ep.pod->spiffe_id().empty() ? " (any)" : ""));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("endpoints: without slices the selector picks the ready pods, a deleted pod is not ready", "[config]") {
  auto s = load(kService + pod("r1", "10.0.0.1", "app: reviews") +
                pod("r2", "10.0.0.2", "app: reviews", ", deletionTimestamp: '2026-12-02T10:00:00Z'") +
                pod("other", "10.0.0.3", "app: ratings") + base_config());
  CHECK(endpoints_of(*s, "10.96.0.20:9080") == std::vector<std::string>{"r1@10.0.0.1:8080"});
  const Pod* deleted = s->find_pod(*net::IpAddr::parse("10.0.0.2"));
  REQUIRE(deleted != nullptr);  // still reachable by its own IP, but no endpoint of the Service
  CHECK_FALSE(deleted->ready);
}

TEST_CASE("endpoints: slices decide, not-ready and terminating endpoints take no requests", "[config]") {
  auto s = load(kService + pod("r1", "10.0.0.1", "app: reviews") + pod("r2", "10.0.0.2", "app: reviews") +
                pod("r3", "10.0.0.3", "app: reviews") + pod("r4", "10.0.0.4", "app: reviews") +
                slice("reviews-a",
                      "[{addresses: [10.0.0.1], conditions: {ready: true}, targetRef: {kind: Pod, name: r1}},"
                      " {addresses: [10.0.0.2], conditions: {ready: false}, targetRef: {kind: Pod, name: r2}}]") +
                slice("reviews-b",
                      "[{addresses: [10.0.0.3], conditions: {ready: false, serving: true, terminating: true},"
                      "  targetRef: {kind: Pod, name: r3}},"
                      " {addresses: [10.0.0.9], targetRef: {kind: Pod, name: unseen}},"
                      " {addresses: [10.0.0.10]}]") +
                base_config());
  // r4 is selected by the selector but in no slice: the slices are the truth once there are any.
  // unseen and 10.0.0.10 have no Pod the waypoint knows: served with the trust-domain check only.
  CHECK(endpoints_of(*s, "10.96.0.20:9080") ==
        std::vector<std::string>{"10.0.0.10@10.0.0.10:8080 (any)", "r1@10.0.0.1:8080", "unseen@10.0.0.9:8080 (any)"});
  CHECK(s->find_pod(*net::IpAddr::parse("10.0.0.9")) == nullptr);  // no pod-IP chain for a stand-in
}

TEST_CASE("endpoints: the slice's port of the same name is the target, a slice pod's deletion wins", "[config]") {
  auto s = load(kService + pod("r1", "10.0.0.1", "app: reviews", ", deletionTimestamp: '2026-12-02T10:00:00Z'") +
                pod("r2", "10.0.0.2", "app: reviews") +
                slice("reviews-a",
                      "[{addresses: [10.0.0.1], conditions: {ready: true}, targetRef: {kind: Pod, name: r1}},"
                      " {addresses: [10.0.0.2], conditions: {ready: true}, targetRef: {kind: Pod, name: r2}}]",
                      "[{name: metrics, port: 9999}, {name: http, port: 8181}]") +
                base_config());
  CHECK(endpoints_of(*s, "10.96.0.20:9080") == std::vector<std::string>{"r2@10.0.0.2:8181"});
}

TEST_CASE("endpoints: subsets narrow the slice endpoints by the pods' labels", "[config]") {
  auto s = load(kService + pod("r1", "10.0.0.1", "app: reviews, version: v1") +
                pod("r2", "10.0.0.2", "app: reviews, version: v2") +
                slice("reviews-a",
                      "[{addresses: [10.0.0.1], targetRef: {kind: Pod, name: r1}},"
                      " {addresses: [10.0.0.2], targetRef: {kind: Pod, name: r2}}, {addresses: [10.0.0.7]}]") +
                R"(---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
)" + base_config());
  const RoutedCluster* v2 = s->find_cluster("inbound-vip|9080|http/v2|reviews.default.svc.cluster.local");
  REQUIRE(v2 != nullptr);
  REQUIRE(v2->endpoints.size() == 1);
  CHECK(v2->endpoints[0].pod->name == "r2");
}

TEST_CASE("services: headless and clusterIP-less Services have no VIP, dual stack serves every VIP", "[config]") {
  auto s = load(R"(apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, ports: [{port: 80}], selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: bare}
spec: {ports: [{port: 81}], selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: dual}
spec:
  clusterIP: 10.96.0.30
  clusterIPs: [10.96.0.30, "fd00:10:96::30"]
  ipFamilies: [IPv4, IPv6]
  ports: [{name: http, port: 9080, targetPort: 8080}]
  selector: {app: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: alias}
spec: {type: ExternalName, externalName: example.com}
)" + pod("r1", "10.0.0.1", "app: reviews") + base_config());
  CHECK(s->services.size() == 3);  // the ExternalName one is skipped
  CHECK(std::any_of(s->ignored.begin(), s->ignored.end(),
                    [](const std::string& line) { return line.find("alias: type ExternalName") != std::string::npos; }));
  CHECK(std::any_of(s->warnings.begin(), s->warnings.end(), [](const std::string& line) {
    return line.find("Service bare: spec.clusterIP: not set") != std::string::npos;
  }));
  size_t headless_chains = 0;
  for (const auto& [vip, chain] : s->vip_chains) {
    headless_chains += chain->service->name == "headless" || chain->service->name == "bare";
  }
  CHECK(headless_chains == 0);
  CHECK(endpoints_of(*s, "10.96.0.30:9080") == std::vector<std::string>{"r1@10.0.0.1:8080"});
  CHECK(endpoints_of(*s, "[fd00:10:96::30]:9080") == std::vector<std::string>{"r1@10.0.0.1:8080"});
  CHECK(s->find_routes(*net::SockAddr::parse("[fd00:10:96::30]:9080")) != nullptr);
  CHECK(s->find_pod(*net::IpAddr::parse("10.0.0.1")) != nullptr);  // the pods stay reachable by IP
}

TEST_CASE("endpoint slices: FQDN slices and slices of no Service are ignored and said so", "[config]") {
  auto s = load(kService + pod("r1", "10.0.0.1", "app: reviews") + R"(---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: x, labels: {kubernetes.io/service-name: reviews}}
addressType: FQDN
endpoints: [{addresses: [example.com]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: y}
addressType: IPv4
endpoints: [{addresses: [10.0.0.5]}]
)" + base_config());
  CHECK(endpoints_of(*s, "10.96.0.20:9080") == std::vector<std::string>{"r1@10.0.0.1:8080"});
  auto has = [&](const std::string& text) {
    return std::any_of(s->ignored.begin(), s->ignored.end(),
                       [&](const std::string& line) { return line.find(text) != std::string::npos; });
  };
  CHECK(has("EndpointSlice x: addressType FQDN is not served"));
  CHECK(has("EndpointSlice y: no label kubernetes.io/service-name"));
}

}  // namespace
}  // namespace wp::config
