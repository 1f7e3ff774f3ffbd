// Service, Pod and Gateway documents: what is read, and every error with its position.
#include <catch2/catch.hpp>

#include "fixtures.h"

namespace wp::config {
namespace {

using testing::base_config;
using testing::errors;
using testing::load;

// A Service named reviews whose spec lines start on line 5.
std::string service(const std::string& spec) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n" + spec + base_config();
}

// A Pod named reviews-v1 whose lines after metadata start on line 4.
std::string pod(const std::string& rest) {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: reviews-v1}\n" + rest + base_config();
}

TEST_CASE("config: service fields", "[config]") {
  auto s = load(R"(apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
  labels: {app: reviews, istio.io/use-waypoint: waypoint}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.20
  sessionAffinity: None
  ports:
  - {name: http, port: 9080, targetPort: 8080, appProtocol: http, protocol: TCP}
  - {name: grpc-admin, port: 9090, targetPort: admin}
  - {port: 9091}
  selector: {app: reviews, tier: backend}
)" + base_config());
  REQUIRE(s->services.size() == 1);
  const Service& svc = s->services[0];
  CHECK(svc.name == "reviews");
  CHECK(svc.namespace_ == "default");
  CHECK(svc.fqdn == "reviews.default.svc.cluster.local");
  CHECK(svc.cluster_ip.to_string() == "10.96.0.20");
  CHECK(svc.labels == std::map<std::string, std::string>{{"app", "reviews"}, {"istio.io/use-waypoint", "waypoint"}});
  CHECK(svc.selector == std::map<std::string, std::string>{{"app", "reviews"}, {"tier", "backend"}});
  CHECK(svc.mark.line == 1);
  CHECK(svc.mark.column == 1);
  REQUIRE(svc.ports.size() == 3);
  CHECK(svc.ports[0].name == "http");
  CHECK(svc.ports[0].port == 9080);
  CHECK(svc.ports[0].target_port_number == 8080);
  CHECK(svc.ports[0].target_port_name.empty());
  CHECK(svc.ports[0].app_protocol == "http");
  CHECK(svc.ports[1].target_port_number == 0);
  CHECK(svc.ports[1].target_port_name == "admin");
  CHECK(svc.ports[1].app_protocol.empty());
  CHECK(svc.ports[2].target_port_number == 9091);  // defaults to port
  CHECK(svc.ports[2].name.empty());
}

TEST_CASE("config: service errors point at the field", "[config]") {
  struct Case {
    std::string spec;
    std::string error;
  };
  const Case cases[] = {
      {"  clusterIPs: [10.96.0.1, fd00::x]\n",
       "cfg.yaml:5:27: Service reviews: spec.clusterIPs[1]: \"fd00::x\" is not an IP address"},
      {"  clusterIP: 10.96.0.300\n",
       "cfg.yaml:5:14: Service reviews: spec.clusterIP: \"10.96.0.300\" is not an IP address"},
      {"  clusterIPs: 10.96.0.1\n", "cfg.yaml:5:15: Service reviews: spec.clusterIPs: expected a list, got a scalar"},
      {"  clusterIP: 10.96.0.1\n  ports:\n  - name: http\n    port: 70000\n",
       "cfg.yaml:8:11: Service reviews: spec.ports[0].port: 70000 is not a port (1..65535)"},
      {"  clusterIP: 10.96.0.1\n  ports:\n  - name: http\n    port: http\n",
       "cfg.yaml:8:11: Service reviews: spec.ports[0].port: \"http\" is not a port (1..65535)"},
      {"  clusterIP: 10.96.0.1\n  ports:\n  - port: 80\n  - name: http\n",
       "cfg.yaml:8:5: Service reviews: spec.ports[1].port: required"},
      {"  clusterIP: 10.96.0.1\n  ports: [{port: 80, targetPort: 0}]\n",
       "cfg.yaml:6:34: Service reviews: spec.ports[0].targetPort: 0 is not a port (1..65535)"},
      {"  clusterIP: 10.96.0.1\n  ports: [{port: 80, targetPort: -8080}]\n",
       "cfg.yaml:6:34: Service reviews: spec.ports[0].targetPort: -8080 is not a port (1..65535)"},
      {"  clusterIP: 10.96.0.1\n  ports: [{port: 80, targetPort: \"\"}]\n",
       "cfg.yaml:6:34: Service reviews: spec.ports[0].targetPort: must not be empty"},
      {"  clusterIP: 10.96.0.1\n  ports: [{port: 80, protocol: QUIC}]\n",
       "cfg.yaml:6:32: Service reviews: spec.ports[0].protocol: \"QUIC\" is not a protocol (TCP, "
       "UDP, SCTP)"},
      {"  clusterIP: 10.96.0.1\n  ports: [80]\n",
       "cfg.yaml:6:11: Service reviews: spec.ports[0]: expected a map, got a scalar"},
      {"  clusterIP: 10.96.0.1\n  ports: 80\n",
       "cfg.yaml:6:10: Service reviews: spec.ports: expected a list, got a scalar"},
      {"  clusterIP: 10.96.0.1\n  selector: [app]\n",
       "cfg.yaml:6:13: Service reviews: spec.selector: expected a map, got a list"},
      {"  clusterIP: 10.96.0.1\n  selector: {app: {name: x}}\n",
       "cfg.yaml:6:19: Service reviews: spec.selector.app: expected a string, got a map"},
  };
  for (const auto& c : cases) {
    INFO(c.spec);
    CHECK(errors(service(c.spec)) == c.error);
  }
  CHECK(errors("apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n" + base_config()) ==
        "cfg.yaml:1:1: Service reviews: spec: required");
  CHECK(errors("apiVersion: v1\nkind: Service\nmetadata: {namespace: default}\nspec: {}\n" + base_config()) ==
        "cfg.yaml:3:11: Service: metadata.name: required");
  CHECK(errors("apiVersion: v1\nkind: Service\nspec: {}\n" + base_config()) ==
        "cfg.yaml:1:1: Service: metadata.name: required");
}

TEST_CASE("config: pod fields", "[config]") {
  auto s = load(R"(apiVersion: v1
kind: Pod
metadata:
  name: reviews-v1
  labels: {app: reviews, version: v1}
spec:
  serviceAccountName: bookinfo-reviews
  containers:
  - name: reviews
    ports:
    - {name: http, containerPort: 9080}
    - {containerPort: 9443}
  - name: sidecar
    ports:
    - {name: admin, containerPort: 15000, protocol: TCP}
status:
  phase: Running
  podIP: 10.244.0.13
  conditions:
  - {type: PodScheduled, status: "True"}
  - {type: Ready, status: "True"}
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
status: {podIP: "fd00::5"}
)" + base_config());
  REQUIRE(s->pods.size() == 2);
  const Pod& p = s->pods[0];
  CHECK(p.name == "reviews-v1");
  CHECK(p.namespace_() == "default");
  CHECK(p.service_account() == "bookinfo-reviews");
  CHECK(p.labels() == std::map<std::string, std::string>{{"app", "reviews"}, {"version", "v1"}});
  CHECK(p.ip.to_string() == "10.244.0.13");
  CHECK(p.ready);
  CHECK(p.named_ports() == std::map<std::string, uint16_t>{{"http", 9080}, {"admin", 15000}});
  CHECK(p.spiffe_id() == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
  CHECK(p.mark.line == 1);
  const Pod& plain = s->pods[1];
  CHECK(plain.service_account() == "default");
  CHECK(plain.spiffe_id() == "spiffe://cluster.local/ns/default/sa/default");
  CHECK(plain.ip.to_string() == "fd00::5");
  CHECK(plain.ready);
  CHECK(plain.mark.line == 23);
  CHECK(s->find_pod(*net::IpAddr::parse("fd00::5")) == &plain);
}

TEST_CASE("config: pod readiness", "[config]") {
  struct Case {
    const char* status;
    bool ready;
  };
  const Case cases[] = {
      {"{podIP: 10.0.0.1}", true},
      {"{podIP: 10.0.0.1, phase: Running}", true},
      {"{podIP: 10.0.0.1, phase: Pending}", false},
      {"{podIP: 10.0.0.1, phase: Succeeded}", false},
      {"{podIP: 10.0.0.1, phase: Running, conditions: [{type: Ready, status: \"True\"}]}", true},
      {"{podIP: 10.0.0.1, phase: Running, conditions: [{type: Ready, status: \"False\"}]}", false},
      {"{podIP: 10.0.0.1, conditions: [{type: Ready, status: Unknown}]}", false},
      {"{podIP: 10.0.0.1, conditions: [{type: ContainersReady, status: \"False\"}]}", true},
  };
  for (const auto& c : cases) {
    INFO(c.status);
    auto s = load(pod(std::string("status: ") + c.status + "\n"));
    REQUIRE(s->pods.size() == 1);
    CHECK(s->pods[0].ready == c.ready);
  }
}

TEST_CASE("config: pod errors point at the field", "[config]") {
  struct Case {
    std::string rest;
    std::string error;
  };
  const Case cases[] = {
      {"status: {podIP: 10.0.0}\n", "cfg.yaml:4:17: Pod reviews-v1: status.podIP: \"10.0.0\" is not an IP address"},
      {"spec:\n  containers:\n  - ports: [{name: http, containerPort: 0}]\n",
       "cfg.yaml:6:41: Pod reviews-v1: spec.containers[0].ports[0].containerPort: 0 is not a port "
       "(1..65535)"},
      {"spec:\n  containers:\n  - ports: [{name: http}]\n",
       "cfg.yaml:6:13: Pod reviews-v1: spec.containers[0].ports[0].containerPort: required"},
      {"spec:\n  containers:\n  - ports: [{name: http, containerPort: 80}]\n  - ports: [{name: "
       "http, containerPort: 81}]\n",
       "cfg.yaml:7:20: Pod reviews-v1: spec.containers[1].ports[0].name: port name http is used "
       "twice"},
      {"spec:\n  containers: {name: x}\n",
       "cfg.yaml:5:15: Pod reviews-v1: spec.containers: expected a list, got a map"},
      {"spec:\n  serviceAccountName: [a]\n",
       "cfg.yaml:5:23: Pod reviews-v1: spec.serviceAccountName: expected a string, got a list"},
  };
  for (const auto& c : cases) {
    INFO(c.rest);
    CHECK(errors(pod(c.rest)) == c.error);
  }
}

TEST_CASE("config: gateway checks", "[config]") {
  const std::string bootstrap = R"(apiVersion: waypoint.proxy/v1alpha1
kind: WaypointBootstrap
metadata: {name: waypoint}
spec:
  gateway: waypoint
  tls: {certChain: certs/waypoint.pem, privateKey: certs/waypoint.key, rootCert: certs/root.pem}
---
)";
  // The Gateway's lines start on line 8.
  struct Case {
    std::string gateway;
    std::string error;
  };
  const Case cases[] = {
      {"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint}\n"
       "spec:\n  gatewayClassName: istio\n  listeners: [{name: mesh, port: 15008, protocol: "
       "HBONE}]\n",
       "cfg.yaml:12:21: Gateway waypoint: spec.gatewayClassName: \"istio\" is not istio-waypoint"},
      {"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint}\n"
       "spec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15009, "
       "protocol: HBONE}]\n",
       "cfg.yaml:13:14: Gateway waypoint: spec.listeners: needs a listener {name: mesh, port: "
       "15008, "
       "protocol: HBONE}"},
      {"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint}\n"
       "spec:\n  gatewayClassName: istio-waypoint\n",
       "cfg.yaml:12:3: Gateway waypoint: spec.listeners: needs a listener {name: mesh, port: "
       "15008, "
       "protocol: HBONE}"},
      {"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint}\n"
       "spec:\n  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n",
       "cfg.yaml:12:3: Gateway waypoint: spec.gatewayClassName: required"},
      {"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: other}\n"
       "spec: {gatewayClassName: istio-waypoint}\n",
       "cfg.yaml:5:12: WaypointBootstrap waypoint: spec.gateway: no Gateway waypoint in namespace "
       "default (gateway.networking.k8s.io/v1, gatewayClassName: istio-waypoint)"},
      {"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, "
       "namespace: other}\n"
       "spec: {gatewayClassName: istio-waypoint}\n",
       "cfg.yaml:5:12: WaypointBootstrap waypoint: spec.gateway: no Gateway waypoint in namespace "
       "default (gateway.networking.k8s.io/v1, gatewayClassName: istio-waypoint)"},
  };
  for (const auto& c : cases) {
    INFO(c.gateway);
    CHECK(errors(bootstrap + c.gateway) == c.error);
  }
  CHECK(errors(bootstrap.substr(0, bootstrap.size() - 4)) ==
        "cfg.yaml:5:12: WaypointBootstrap waypoint: spec.gateway: no Gateway waypoint in namespace "
        "default (gateway.networking.k8s.io/v1, gatewayClassName: istio-waypoint)");
}

TEST_CASE("config: gateway annotation scopes the waypoint to a service account", "[config]") {
  auto s = load(base_config("", "istio.io/for-service-account: bookinfo-reviews"));
  CHECK(s->gateway.for_service_account == "bookinfo-reviews");
  CHECK(s->gateway.mark.line == 9);
}

TEST_CASE("config: a pod's telemetry labels (workload, app, version, canonical service)", "[config]") {
  struct Case {
    std::string metadata;
    std::string workload, app, version, canonical_service, canonical_revision;
  };
  const Case cases[] = {
      // Generated Deployment pod names, with and without the pod-template-hash label.
      {"{name: reviews-v1-545db77b95-zhl9p, labels: {app: reviews, version: v1}}", "reviews-v1", "reviews", "v1",
       "reviews", "v1"},
      {"{name: web-7f9c-abcde, labels: {pod-template-hash: 7f9c}}", "web", "unknown", "unknown", "web", "latest"},
      // ownerReferences win: a ReplicaSet stands for its Deployment, a Job for its CronJob.
      {"{name: x-1, ownerReferences: [{kind: ReplicaSet, name: ratings-v1-6b8c4d5f9c}]}", "ratings-v1", "unknown",
       "unknown", "ratings-v1", "latest"},
      {"{name: x-2, ownerReferences: [{kind: Job, name: backup-28372610}]}", "backup", "unknown", "unknown", "backup",
       "latest"},
      {"{name: db-0, ownerReferences: [{kind: StatefulSet, name: db}]}", "db", "unknown", "unknown", "db", "latest"},
      // A hand-made name is its own workload; the canonical labels take precedence over app/version.
      {"{name: solo, labels: {app: a, version: v9, service.istio.io/canonical-name: canon, "
       "app.kubernetes.io/version: '2.1'}}",
       "solo", "a", "v9", "canon", "2.1"},
      {"{name: echo-0}", "echo-0", "unknown", "unknown", "echo-0", "latest"},
  };
  for (const auto& c : cases) {
    INFO(c.metadata);
    auto s =
        load("apiVersion: v1\nkind: Pod\nmetadata: " + c.metadata + "\nstatus: {podIP: 10.244.0.9}\n" + base_config());
    REQUIRE(s->pods.size() == 1);
    const Pod& p = s->pods[0];
    CHECK(p.workload() == c.workload);
    CHECK(p.app() == c.app);
    CHECK(p.version() == c.version);
    CHECK(p.canonical_service() == c.canonical_service);
    CHECK(p.canonical_revision() == c.canonical_revision);
  }
}

}  // namespace
}  // namespace wp::config

namespace wp::config {
namespace {

using testing::base_config;
using testing::load;

TEST_CASE("pods: the pods of one workload share one template, which goes with its last pod", "[config]") {
  const size_t before = PodTemplate::interned();
  {
    auto pod = [](const std::string& name, const std::string& version, const std::string& hash, const std::string& ip) {
      return "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
             "\n  labels: {app: reviews, version: " + version + ", pod-template-hash: " + hash +
             "}\nspec: {serviceAccountName: bookinfo-reviews}\n" + "status: {podIP: " + ip + "}\n";
    };
    auto s = load(pod("reviews-v1-6d8f9c7b5d-abcde", "v1", "6d8f9c7b5d", "10.244.0.13") +
                  pod("reviews-v1-6d8f9c7b5d-fghij", "v1", "6d8f9c7b5d", "10.244.0.14") +
                  pod("reviews-v2-7c9d8e6f4a-abcde", "v2", "7c9d8e6f4a", "10.244.0.15") + base_config());
    REQUIRE(s->pods.size() == 3);
    const Pod& a = s->pods[0];
    const Pod& b = s->pods[1];
    const Pod& c = s->pods[2];
    CHECK(a.name != b.name);
    CHECK(a.ip != b.ip);
    CHECK(a.shared == b.shared);  // one template for the two pods of reviews-v1
    CHECK(a.workload() == "reviews-v1");
    CHECK(c.shared != a.shared);  // another version, another template
    CHECK(c.version() == "v2");
    CHECK(c.workload() == "reviews-v2");
    CHECK(PodTemplate::interned() == before + 2);
  }
  CHECK(PodTemplate::interned() == before);
}

TEST_CASE("pods: at most kMaxAlike templates of one hash are compared, the rest are not shared", "[config]") {
  const size_t before = PodTemplate::interned();
  std::vector<std::shared_ptr<const PodTemplate>> held;
  for (size_t i = 0; i < PodTemplate::kMaxAlike + 2; ++i) {
    PodTemplate t;
    t.workload = std::string("w").append(std::to_string(i));
    held.push_back(PodTemplate::intern(t, 42));
    // An equal template is found again while it is among the first kMaxAlike of its hash.
    auto again = PodTemplate::intern(t, 42);
    CHECK((again == held.back()) == (i < PodTemplate::kMaxAlike));
    CHECK(again->workload == t.workload);
  }
  CHECK(PodTemplate::interned() == before + PodTemplate::kMaxAlike);
  held.clear();
  CHECK(PodTemplate::interned() == before);
}

}  // namespace
}  // namespace wp::config
