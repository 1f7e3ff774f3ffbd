#include <catch2/catch.hpp>

#include "fixtures.h"

namespace wp::config {
namespace {

TEST_CASE("config: describe lists what would be served, sorted", "[config]") {
  auto s = testing::load(R"(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 9080}, {name: mongo, port: 27017}], selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec: {clusterIP: 10.96.0.3, ports: [{port: 7000, appProtocol: tcp}], selector: {app: echo}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, labels: {app: reviews}}
spec: {serviceAccountName: bookinfo-reviews}
status: {podIP: 10.0.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, labels: {app: reviews}}
spec: {serviceAccountName: bookinfo-reviews}
status: {podIP: 10.0.1.9, phase: Pending}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews}
)" + testing::base_config("trustDomain: example.org"));
  const std::string file = testing::fixture_dir() + "/cfg.yaml";
  CHECK(describe(*s) == "config " + file + " (version " + s->version +
                            ")\n"
                            "namespace default\n"
                            "gateway waypoint (serves the whole namespace)\n"
                            "listeners hbone 0.0.0.0:15008, admin 127.0.0.1:15000, metrics 0.0.0.0:15020, health "
                            "0.0.0.0:15021\n"
                            "trust domain example.org, cluster domain cluster.local\n"
                            "\n"
                            "service chains (3):\n"
                            "  10.96.0.3:7000  inbound-vip|7000|tcp|echo.default.svc.cluster.local  tcp  "
                            "endpoints: none\n"
                            "  10.96.0.20:9080  inbound-vip|9080|http|reviews.default.svc.cluster.local  http  "
                            "endpoints: 10.0.1.10:9080\n"
                            "  10.96.0.20:27017  inbound-vip|27017|tcp|reviews.default.svc.cluster.local  sniff  "
                            "endpoints: 10.0.1.10:27017\n"
                            "\n"
                            "routes (0 service ports with VirtualService/HTTPRoute):\n"
                            "\n"
                            "pods (2):\n"
                            "  10.0.1.9  reviews-v1  sa bookinfo-reviews  not ready\n"
                            "  10.0.1.10  reviews-v2  sa bookinfo-reviews  ready\n"
                            "\n"
                            "ignored (1):\n"
                            "  Deployment default/reviews-v1: apps/v1 Deployment is not read by the waypoint\n"
                            "\n"
                            "warnings (1):\n"
                            "  " +
                            file +
                            ":27:1: AuthorizationPolicy reviews: spec.targetRefs: none: ignored (a waypoint applies "
                            "only policies whose targetRefs name its Gateway or a Service)\n");
}

TEST_CASE("config: describe shows the routes a VirtualService makes", "[config]") {
  auto snap = testing::load(R"(apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
    timeout: 2s
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
)" + testing::base_config());
  std::string text = describe(*snap);
  INFO(text);
  CHECK(text.find("routes (1 service ports with VirtualService/HTTPRoute):\n"
                  "  10.96.0.20:9080  inbound-vip|9080|http|reviews.default.svc.cluster.local\n"
                  "    [0] jason (VirtualService reviews): 1 match block(s) -> 100% "
                  "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local; retries 2; timeout 2000ms\n"
                  "    [1] reviews.1 (VirtualService reviews): all requests -> 90% "
                  "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local, 10% "
                  "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local; retries 2; timeout none\n") !=
        std::string::npos);
}

TEST_CASE("config: describe names a service-account scope", "[config]") {
  auto s = testing::load(testing::base_config("", "istio.io/for-service-account: bookinfo-reviews"));
  CHECK(describe(*s).find("gateway waypoint (serves service account bookinfo-reviews)\n") != std::string::npos);
}

}  // namespace
}  // namespace wp::config
