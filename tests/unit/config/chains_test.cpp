// Compiled VIP chains: names, protocol selection, clusters and their endpoints.
#include <catch2/catch.hpp>

#include "fixtures.h"

namespace wp::config {
namespace {

using testing::base_config;
using testing::errors;
using testing::load;

const VipChain& chain(const Snapshot& s, const std::string& vip) {
  const VipChain* c = s.find_vip(*net::SockAddr::parse(vip));
  REQUIRE(c != nullptr);
  return *c;
}

std::vector<std::string> endpoints(const VipChain& c) {
  std::vector<std::string> out;
  for (const auto& e : c.cluster.endpoints) {
    out.push_back(e.address.to_string());
  }
  return out;
}

TEST_CASE("config: chain protocol from appProtocol, else the port name's prefix", "[config]") {
  struct Case {
    std::string name;
    std::string app_protocol;
    ChainProtocol protocol;
  };
  const Case cases[] = {
      {"http", "", ChainProtocol::Http},        {"http-web", "", ChainProtocol::Http},
      {"http2", "", ChainProtocol::Http},       {"h2c-api", "", ChainProtocol::Http},
      {"grpc", "", ChainProtocol::Http},        {"grpc-web", "", ChainProtocol::Http},
      {"HTTP-upper", "", ChainProtocol::Http},  {"tcp", "", ChainProtocol::Tcp},
      {"tcp-mysql", "", ChainProtocol::Tcp},    {"https", "", ChainProtocol::Sniff},
      {"tls-db", "", ChainProtocol::Sniff},     {"mongo", "", ChainProtocol::Sniff},
      {"web", "", ChainProtocol::Sniff},        {"httpx", "", ChainProtocol::Sniff},
      {"", "", ChainProtocol::Sniff},           {"web", "http", ChainProtocol::Http},
      {"web", "grpc-web", ChainProtocol::Http}, {"web", "kubernetes.io/h2c", ChainProtocol::Http},
      {"http", "tcp", ChainProtocol::Tcp},      {"tcp", "HTTP2", ChainProtocol::Http},
      {"http", "https", ChainProtocol::Sniff},  {"http", "mongo", ChainProtocol::Sniff},
  };
  for (const auto& c : cases) {
    INFO("name=" << c.name << " appProtocol=" << c.app_protocol);
    std::string port = "{port: 80";
    port += c.name.empty() ? "" : ", name: " + c.name;
    port += c.app_protocol.empty() ? "" : ", appProtocol: " + c.app_protocol;
    port += "}";
    auto s = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1, ports: "
        "[" +
        port + "]}\n" + base_config());
    const VipChain& vip = chain(*s, "10.96.0.1:80");
    CHECK(vip.protocol == c.protocol);
    CHECK(vip.port->protocol == c.protocol);
    CHECK(vip.port->app_protocol == c.app_protocol);
    std::string kind = c.protocol == ChainProtocol::Http ? "http" : "tcp";
    CHECK(vip.name == "inbound-vip|80|" + kind + "|web.default.svc.cluster.local");
    CHECK(vip.cluster.name == vip.name);
  }
}

const std::string kReviews = R"(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  clusterIP: 10.96.0.20
  ports:
  - {name: http, port: 9080}
  - {name: http-alt, port: 8080, targetPort: web}
  - {name: tcp-metrics, port: 9090, targetPort: 19090}
  - {name: dns, port: 53, protocol: UDP}
  selector: {app: reviews}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, labels: {app: reviews, version: v2}}
spec:
  containers: [{ports: [{name: web, containerPort: 8082}]}]
status: {podIP: 10.0.1.6}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
spec:
  containers: [{ports: [{name: web, containerPort: 8081}]}]
status: {podIP: 10.0.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v3, labels: {app: reviews, version: v3}}
status: {podIP: 10.0.1.7}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v4, labels: {app: reviews, version: v4}}
spec:
  containers: [{ports: [{name: web, containerPort: 8084}]}]
status:
  podIP: 10.0.1.8
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, labels: {app: ratings}}
status: {podIP: 10.0.1.9}
)";

TEST_CASE("config: endpoints are the ready selected pods, in file order", "[config]") {
  auto s = load(kReviews + base_config());
  const VipChain& http = chain(*s, "10.96.0.20:9080");
  CHECK(http.name == "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  CHECK(http.service == &s->services.at(0));
  CHECK(http.port == &s->services.at(0).ports.at(0));
  CHECK(endpoints(http) == std::vector<std::string>{"10.0.1.6:9080", "10.0.1.5:9080", "10.0.1.7:9080"});
  CHECK(http.cluster.endpoints[0].pod == s->find_pod(*net::IpAddr::parse("10.0.1.6")));
  CHECK(endpoints(chain(*s, "10.96.0.20:9090")) ==
        std::vector<std::string>{"10.0.1.6:19090", "10.0.1.5:19090", "10.0.1.7:19090"});
  CHECK(chain(*s, "10.96.0.20:9090").name == "inbound-vip|9090|tcp|reviews.default.svc.cluster.local");
  CHECK(s->pods_by_ip.size() == 5);  // not-ready pods keep their direct chain
  CHECK_FALSE(s->find_pod(*net::IpAddr::parse("10.0.1.8"))->ready);
}

TEST_CASE("config: a named targetPort resolves per pod", "[config]") {
  auto s = load(kReviews + base_config());
  CHECK(endpoints(chain(*s, "10.96.0.20:8080")) == std::vector<std::string>{"10.0.1.6:8082", "10.0.1.5:8081"});
  CHECK(s->warnings == std::vector<std::string>{
                           testing::fixture_dir() + "/cfg.yaml:8:46: Service reviews: spec.ports[1].targetPort: "
                                                    "pod reviews-v3 has no port named web; not an endpoint",
                           testing::fixture_dir() + "/cfg.yaml:10:37: Service reviews: spec.ports[3].protocol: "
                                                    "UDP ports are not served; skipped",
                       });
}

TEST_CASE("config: UDP ports make no chain", "[config]") {
  auto s = load(kReviews + base_config());
  CHECK(s->vip_chains.size() == 3);
  CHECK(s->find_vip(*net::SockAddr::parse("10.96.0.20:53")) == nullptr);
  CHECK(s->services.at(0).ports.size() == 3);
}

TEST_CASE("config: a selector must match every label, an empty one selects nothing", "[config]") {
  auto s = load(R"(apiVersion: v1
kind: Service
metadata: {name: v1-only}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}], selector: {app: reviews, version: v1}}
---
apiVersion: v1
kind: Service
metadata: {name: manual}
spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
status: {podIP: 10.0.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, labels: {app: reviews, version: v2}}
status: {podIP: 10.0.1.6}
)" + base_config());
  CHECK(endpoints(chain(*s, "10.96.0.1:80")) == std::vector<std::string>{"10.0.1.5:80"});
  CHECK(endpoints(chain(*s, "10.96.0.2:80")).empty());
}

TEST_CASE("config: conflicting addresses are errors", "[config]") {
  CHECK(errors(R"(apiVersion: v1
kind: Service
metadata: {name: a}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}, {port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  clusterIP: 10.96.0.1
  ports:
  - {port: 8080}
  - {port: 443}
  - {port: 8080}
)" + base_config()) ==
        "cfg.yaml:13:12: Service b: spec.ports[1].port: 10.96.0.1:443 is already served by Service "
        "a\n"
        "cfg.yaml:14:12: Service b: spec.ports[2].port: 10.96.0.1:8080 is already served by "
        "Service b");
  CHECK(errors(R"(apiVersion: v1
kind: Pod
metadata: {name: a}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
status:
  podIP: 10.0.0.1
)" + base_config()) == "cfg.yaml:10:10: Pod b: status.podIP: 10.0.0.1 is also the IP of pod a");
}

}  // namespace
}  // namespace wp::config
