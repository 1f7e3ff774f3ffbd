// Which Services and Pods the waypoint serves: the whole namespace minus services that opted for
// another waypoint, or (for a service-account waypoint) one service account's pods and the
// Services selecting them.
#include <catch2/catch.hpp>

#include "fixtures.h"

namespace wp::config {
namespace {

using testing::base_config;
using testing::load;

std::vector<std::string> service_names(const Snapshot& s) {
  std::vector<std::string> names;
  for (const auto& svc : s.services) {
    names.push_back(svc.name);
  }
  return names;
}

std::vector<std::string> pod_names(const Snapshot& s) {
  std::vector<std::string> names;
  for (const auto& pod : s.pods) {
    names.push_back(pod.name);
  }
  return names;
}

const std::string kServices = R"(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, labels: {istio.io/use-waypoint: none}}
spec: {clusterIP: 10.96.0.2, ports: [{name: http, port: 9080}], selector: {app: ratings}}
---
apiVersion: v1
kind: Service
metadata: {name: details, labels: {istio.io/use-waypoint: other-waypoint}}
spec: {clusterIP: 10.96.0.3, ports: [{name: http, port: 9080}], selector: {app: details}}
---
apiVersion: v1
kind: Service
metadata: {name: productpage, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.4, ports: [{name: http, port: 9080}], selector: {app: productpage}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, labels: {app: reviews}}
spec: {serviceAccountName: bookinfo-reviews}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, labels: {app: ratings}}
spec: {serviceAccountName: bookinfo-ratings}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: productpage-v1, labels: {app: productpage}}
spec: {serviceAccountName: bookinfo-productpage}
status: {podIP: 10.0.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, labels: {app: reviews}}
spec: {serviceAccountName: bookinfo-reviews}
status: {phase: Pending}
)";

TEST_CASE("config: a namespace waypoint serves every service not labelled for another waypoint", "[config]") {
  auto s = load(kServices + base_config());
  CHECK(service_names(*s) == std::vector<std::string>{"reviews", "productpage"});
  CHECK(pod_names(*s) == std::vector<std::string>{"reviews-v1", "ratings-v1", "productpage-v1"});
  CHECK(s->ignored == std::vector<std::string>{
                          "Pod default/reviews-v2: no status.podIP (not running yet?)",
                          "Service default/ratings: labelled istio.io/use-waypoint=none, not this "
                          "waypoint (waypoint)",
                          "Service default/details: labelled istio.io/use-waypoint=other-waypoint, "
                          "not this waypoint "
                          "(waypoint)",
                      });
  CHECK(s->vip_chains.size() == 2);
  CHECK(s->find_vip(*net::SockAddr::parse("10.96.0.2:9080")) == nullptr);
  CHECK(s->find_pod(*net::IpAddr::parse("10.0.0.2")) != nullptr);  // pods stay reachable directly
}

TEST_CASE("config: a service-account waypoint serves that account's pods and their services", "[config]") {
  auto s = load(kServices + base_config("", "istio.io/for-service-account: bookinfo-reviews"));
  CHECK(service_names(*s) == std::vector<std::string>{"reviews"});
  CHECK(pod_names(*s) == std::vector<std::string>{"reviews-v1"});
  CHECK(s->ignored == std::vector<std::string>{
                          "Pod default/ratings-v1: service account bookinfo-ratings is not this waypoint's "
                          "(bookinfo-reviews)",
                          "Pod default/productpage-v1: service account bookinfo-productpage is not this waypoint's "
                          "(bookinfo-reviews)",
                          "Pod default/reviews-v2: no status.podIP (not running yet?)",
                          "Service default/ratings: labelled istio.io/use-waypoint=none, not this waypoint "
                          "(waypoint)",
                          "Service default/details: labelled istio.io/use-waypoint=other-waypoint, not this "
                          "waypoint "
                          "(waypoint)",
                          "Service default/productpage: selects no pod of service account bookinfo-reviews",
                      });
  CHECK(s->find_pod(*net::IpAddr::parse("10.0.0.2")) == nullptr);
  const VipChain* reviews = s->find_vip(*net::SockAddr::parse("10.96.0.1:9080"));
  REQUIRE(reviews != nullptr);
  REQUIRE(reviews->cluster.endpoints.size() == 1);
  CHECK(reviews->cluster.endpoints[0].pod->name == "reviews-v1");
}

TEST_CASE("config: other gateways in the namespace are ignored", "[config]") {
  auto s = load(R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ingress}
spec: {gatewayClassName: istio}
)" + base_config());
  CHECK(s->gateway.name == "waypoint");
  CHECK(s->ignored == std::vector<std::string>{"Gateway default/ingress: not this waypoint's gateway (waypoint)"});
}

TEST_CASE("config: the bootstrap's namespace is the waypoint's", "[config]") {
  auto s = load(R"(apiVersion: waypoint.proxy/v1alpha1
kind: WaypointBootstrap
metadata: {name: waypoint, namespace: bookinfo}
spec:
  gateway: waypoint
  trustDomain: example.org
  clusterDomain: corp
  tls: {certChain: certs/waypoint.pem, privateKey: certs/waypoint.key, rootCert: certs/root.pem}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: bookinfo}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {clusterIP: 10.96.0.2, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
spec: {serviceAccountName: bookinfo-reviews}
status: {podIP: 10.0.0.1}
)");
  REQUIRE(s->services.size() == 1);
  CHECK(s->services[0].namespace_ == "bookinfo");
  CHECK(s->services[0].fqdn == "reviews.bookinfo.svc.corp");
  CHECK(s->pods.at(0).spiffe_id() == "spiffe://example.org/ns/bookinfo/sa/bookinfo-reviews");
  CHECK(s->ignored == std::vector<std::string>{"Service default/reviews: namespace default is not this "
                                               "waypoint's (bookinfo)"});
  CHECK(s->find_vip(*net::SockAddr::parse("10.96.0.1:9080"))->name ==
        "inbound-vip|9080|http|reviews.bookinfo.svc.corp");
}

}  // namespace
}  // namespace wp::config
