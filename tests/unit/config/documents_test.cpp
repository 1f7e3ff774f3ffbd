// How the file is split into resources: multi-document YAML, kind: List, apiVersion/kind dispatch,
// resources that are ignored or not applied yet, YAML syntax errors and unreadable files.
#include <catch2/catch.hpp>

#include <algorithm>

#include "fixtures.h"

namespace wp::config {
namespace {

using testing::base_config;
using testing::errors;
using testing::load;

TEST_CASE("config: load_snapshot_if_changed parses only a file whose bytes changed", "[config]") {
  std::string path = testing::fixture_dir() + "/reload.yaml";
  std::string text = base_config().substr(4);  // without the leading "---\n"
  testing::write_file(path, text);
  auto first = load_snapshot(path);
  CHECK(first->version == version_of(text));
  CHECK(load_snapshot_if_changed(path, first->version) == nullptr);
  testing::write_file(path, text + "# a comment changes the bytes\n");
  auto second = load_snapshot_if_changed(path, first->version);
  REQUIRE(second != nullptr);
  CHECK(second->version != first->version);
  testing::write_file(path, text + "---\napiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: 7}\n");
  CHECK_THROWS_AS(load_snapshot_if_changed(path, second->version), ConfigError);
  CHECK_THROWS_AS(load_snapshot_if_changed(path + ".missing", second->version), ConfigError);
}

TEST_CASE("config: duplicate mapping keys anywhere are errors with FILE:LINE:COL", "[config]") {
  // yaml-cpp alone keeps the last value without a word: a doubled weight would change the split.
  std::string vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n"
                   "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: 100\n"
                   "      weight: 0\n";
  CHECK(errors(vs + base_config()) == "cfg.yaml:10:7: invalid YAML: duplicate key \"weight\" (first at line 9, column 7)");
  // In flow style, and deep inside sequences of maps.
  CHECK(errors("apiVersion: v1\nkind: Service\nmetadata: {name: a, name: b}\n" + base_config()) ==
        "cfg.yaml:3:21: invalid YAML: duplicate key \"name\" (first at line 3, column 12)");
  // The same key in sibling maps, or in another document, is fine.
  CHECK(errors("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - {name: x, port: 1}\n"
               "  - {name: y, port: 2}\n" + base_config()).find("duplicate") == std::string::npos);
  // Deep nesting costs no recursion in the prescan.
  std::string deep = "x: " + std::string(1500, '[') + std::string(1500, ']') + "\n";
  std::string got = errors(deep + base_config());
  CHECK(got.find("duplicate") == std::string::npos);
}

TEST_CASE("config: a file over the size limit is refused before it is parsed", "[config]") {
  std::string path = testing::fixture_dir() + "/big.yaml";
  std::string text = base_config().substr(4);
  testing::write_file(path, text);
  size_t saved = max_config_bytes();
  CHECK(saved == (64u << 20));
  set_max_config_bytes(text.size());
  CHECK_NOTHROW(load_snapshot(path));  // exactly at the limit
  set_max_config_bytes(text.size() - 1);
  try {
    load_snapshot(path);
    FAIL("a file over the limit was read");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("larger than " + std::to_string(text.size() - 1) + " bytes") !=
          std::string::npos);
  }
  set_max_config_bytes(saved);
}

TEST_CASE("config: a kind: List holds the resources", "[config]") {
  auto s = load(R"(apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: waypoint.proxy/v1alpha1
  kind: WaypointBootstrap
  metadata: {name: waypoint, namespace: default}
  spec:
    gateway: waypoint
    tls: {certChain: certs/waypoint.pem, privateKey: certs/waypoint.key, rootCert: certs/root.pem}
- apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata: {name: waypoint, namespace: default}
  spec:
    gatewayClassName: istio-waypoint
    listeners: [{name: mesh, port: 15008, protocol: HBONE}]
- apiVersion: v1
  kind: Service
  metadata: {name: reviews, namespace: default}
  spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 9080}], selector: {app: reviews}}
)");
  CHECK(s->services.size() == 1);
  CHECK(s->find_vip(*net::SockAddr::parse("10.96.0.20:9080")) != nullptr);
}

TEST_CASE("config: a List can be one of several documents", "[config]") {
  auto s = load(R"(apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, labels: {app: reviews}}
  status: {podIP: 10.0.0.1}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, labels: {app: reviews}}
  status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: v1
kind: List
items: []
)" + base_config());
  REQUIRE(s->pods.size() == 2);
  CHECK(s->pods[0].name == "a");
  CHECK(s->pods[0].mark.line == 4);
  CHECK(s->pods[0].mark.column == 3);
  CHECK(s->find_vip(*net::SockAddr::parse("10.96.0.20:9080"))->cluster.endpoints.size() == 2);
}

TEST_CASE("config: resources the waypoint does not read are ignored and listed", "[config]") {
  auto s = load(R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio-ca-root-cert}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookinfo-reviews, namespace: other}
---
apiVersion: v1
kind: Service
metadata: {name: foo, namespace: other}
spec: {clusterIP: 10.96.9.9, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: foo-1, namespace: other}
status: {podIP: 10.0.9.9}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: foo, namespace: other}
---
apiVersion: v2
kind: Service
metadata: {name: future}
)" + base_config());
  CHECK(s->ignored == std::vector<std::string>{
                          "Deployment default/reviews-v1: apps/v1 Deployment is not read by the waypoint",
                          "ConfigMap default/istio-ca-root-cert: v1 ConfigMap is not read by the waypoint",
                          "ServiceAccount other/bookinfo-reviews: v1 ServiceAccount is not read by the waypoint",
                          "Service other/foo: namespace other is not this waypoint's (default)",
                          "Pod other/foo-1: namespace other is not this waypoint's (default)",
                          "VirtualService other/foo: namespace other is not this waypoint's (default)",
                          "Service default/future: v2 Service is not read by the waypoint",
                      });
  CHECK(s->services.empty());
  CHECK(s->pods.empty());
  CHECK(s->warnings.empty());
}

TEST_CASE("config: real kinds of the mesh API groups that a waypoint does not read are ignored", "[config]") {
  auto s = load(R"(apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio-waypoint}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t, namespace: default}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: ingress, namespace: default}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: default}
)" + base_config());
  CHECK(
      s->ignored ==
      std::vector<std::string>{
          "GatewayClass default/istio-waypoint: gateway.networking.k8s.io/v1 GatewayClass is not read by the waypoint",
          "TCPRoute default/t: gateway.networking.k8s.io/v1alpha2 TCPRoute is not read by the waypoint",
          "ServiceEntry default/ext: networking.istio.io/v1 ServiceEntry is not read by the waypoint",
          "Gateway default/ingress: networking.istio.io/v1beta1 Gateway is not read by the waypoint",
          "PeerAuthentication default/strict: security.istio.io/v1 PeerAuthentication is not read by the waypoint",
      });
  CHECK(s->warnings.empty());
  // A kind that does not exist in a mesh group is still a typo.
  CHECK(errors(R"(apiVersion: networking.istio.io/v1
kind: VirtualServce
metadata: {name: typo, namespace: default}
)" + base_config())
            .find("cfg.yaml:2:7: VirtualServce typo: kind: unknown kind in networking.istio.io") == 0);
}

TEST_CASE("config: routing kinds are read, an AuthorizationPolicy without targetRefs is ignored with a warning",
          "[config]") {
  // Routing resources for hosts this waypoint does not serve are reported and ignored (the
  // routing itself is tested in tests/unit/router/).
  auto s = load(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews}
---
  apiVersion: gateway.networking.k8s.io/v1beta1
  kind: HTTPRoute
  metadata: {name: reviews}
  spec: {parentRefs: [{name: waypoint}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-productpage}
)" + base_config());
  CHECK(s->warnings ==
        std::vector<std::string>{
            testing::fixture_dir() + "/cfg.yaml:4:16: VirtualService reviews: spec.hosts[0]: host reviews names no "
                                     "served service; ignored",
            testing::fixture_dir() + "/cfg.yaml:9:14: DestinationRule reviews: spec.host: host reviews names no "
                                     "served service; ignored",
            testing::fixture_dir() + "/cfg.yaml:11:3: HTTPRoute reviews: spec.parentRefs: no Service parent; not "
                                     "used by the waypoint",
            testing::fixture_dir() + "/cfg.yaml:14:23: HTTPRoute reviews: spec.parentRefs[0]: parent "
                                     "gateway.networking.k8s.io/Gateway is not a Service; the waypoint uses only "
                                     "Service parents",
            testing::fixture_dir() + "/cfg.yaml:16:1: AuthorizationPolicy allow-productpage: spec.targetRefs: "
                                     "none: ignored (a waypoint applies only policies whose targetRefs name its "
                                     "Gateway or a Service)",
        });
  CHECK(s->route_tables.empty());
}

TEST_CASE("config: document errors", "[config]") {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const Case cases[] = {
      {"apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: reviews}\n",
       "cfg.yaml:2:7: VirtualServce reviews: kind: unknown kind in networking.istio.io (this "
       "version "
       "knows VirtualService, DestinationRule)"},
      {"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoutes\nmetadata: {name: r}\n",
       "cfg.yaml:2:7: HTTPRoutes r: kind: unknown kind in gateway.networking.k8s.io (this version "
       "knows "
       "Gateway, HTTPRoute)"},
      {"apiVersion: security.istio.io/v1alpha3\nkind: AuthorizationPolicy\nmetadata: {name: p}\n",
       "cfg.yaml:1:13: AuthorizationPolicy p: apiVersion: unsupported version "
       "security.istio.io/v1alpha3 "
       "(use security.istio.io/v1, v1beta1)"},
      {"kind: Service\nmetadata: {name: x}\n", "cfg.yaml:1:1: resource: apiVersion: required"},
      {"apiVersion: v1\nmetadata: {name: x}\n", "cfg.yaml:1:1: resource: kind: required"},
      {"apiVersion: v1\nkind: Pod\nmetadata: [x]\n", "cfg.yaml:3:11: Pod: metadata: expected a map, got a list"},
      {"apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: [a]}\n",
       "cfg.yaml:3:32: Pod x: metadata.namespace: expected a string, got a list"},
      {"just a string\n", "cfg.yaml:1:1: a document must be a Kubernetes resource (a map)"},
      {"- apiVersion: v1\n", "cfg.yaml:1:1: a document must be a Kubernetes resource (a map)"},
      {"apiVersion: v1\nkind: List\nitems: [7]\n", "cfg.yaml:3:9: a List item must be a Kubernetes resource (a map)"},
      {"apiVersion: v1\nkind: List\nitems: {a: b}\n", "cfg.yaml:3:8: List: items: expected a list, got a map"},
      {"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n",
       "cfg.yaml:5:9: List: kind: a List inside a List is not supported"},
      {"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1}\n---\n"
       "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.2}\n",
       "cfg.yaml:6:1: Service a: defined twice (first at 1:1)"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    CHECK(errors(c.yaml + base_config()) == c.error);
  }
}

TEST_CASE("config: errors are collected, sorted by position", "[config]") {
  CHECK(errors(R"(apiVersion: v1
kind: Service
metadata: {name: b}
spec: {clusterIP: 10.96.0.300}
---
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {clusterIP: 10.96.0.1, ports: [{port: 0}]}
)" + base_config("concurrency: x")) ==
        "cfg.yaml:4:19: Service b: spec.clusterIP: \"10.96.0.300\" is not an IP address\n"
        "cfg.yaml:9:45: Service a: spec.ports[0].port: 0 is not a port (1..65535)\n"
        "cfg.yaml:17:16: WaypointBootstrap waypoint: spec.concurrency: \"x\" is not an integer "
        "(0..1024)");
}

TEST_CASE("config: YAML syntax errors have a position", "[config]") {
  CHECK(errors("apiVersion: v1\nkind: Service\n metadata: x\n") == "cfg.yaml:3:10: invalid YAML: illegal map value");
  CHECK(errors("apiVersion: v1\nkind: [Service\n") == "cfg.yaml:3:1: invalid YAML: end of sequence flow not found");
  CHECK(errors("a: b\n\tc: d\n").starts_with("cfg.yaml:2:"));
  // yaml-cpp 0.7's LoadAll loops forever on these (jbeder/yaml-cpp#1040).
  CHECK(errors(",") == "cfg.yaml:1:1: invalid YAML: unexpected text where a document should start");
  CHECK(errors("a: 1\n---\n,\n") == "cfg.yaml:3:1: invalid YAML: unexpected text where a document should start");
  CHECK(errors("{a: 1}, b\n") == "cfg.yaml:1:7: invalid YAML: unexpected text where a document should start");
}

TEST_CASE("config: load_snapshot reads the file", "[config]") {
  std::string path = testing::fixture_dir() + "/from-disk.yaml";
  testing::write_file(path, base_config());
  auto s = load_snapshot(path);
  CHECK(s->source_file == path);
  CHECK(s->version == load_snapshot_from_string(base_config(), path)->version);

  std::string missing = testing::fixture_dir() + "/nope.yaml";
  CHECK_THROWS_WITH(load_snapshot(missing), missing + ": cannot read: No such file or directory");
  CHECK_THROWS_WITH(load_snapshot(testing::fixture_dir()), testing::fixture_dir() + ": cannot read: Is a directory");
}

TEST_CASE("config: version is a hash of the bytes", "[config]") {
  std::string text = base_config();
  auto a = load(text);
  auto b = load(text);
  auto c = load(text + "# a comment changes the bytes\n");
  CHECK(a->version.size() == 16);
  CHECK(a->version.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a->version == b->version);
  CHECK(a->version != c->version);
  auto now = std::chrono::system_clock::now();
  CHECK(a->loaded_at <= now);
  CHECK(a->loaded_at > now - std::chrono::minutes(1));
}

}  // namespace
}  // namespace wp::config

namespace wp::config {
namespace {

// Documents are read one at a time and freed (config/node.h): resources before the bootstrap wait
// for it, and a YAML error anywhere is the only error reported.
TEST_CASE("config: resources before the bootstrap are read in its namespace", "[config]") {
  std::string svc = "apiVersion: v1\nkind: Service\nmetadata: {name: early}\n"
                    "spec: {clusterIP: 10.0.9.9, ports: [{name: http, port: 80}]}\n---\n";
  auto s = testing::load(svc + base_config().substr(4));
  auto found = std::find_if(s->services.begin(), s->services.end(), [](const Service& v) { return v.name == "early"; });
  REQUIRE(found != s->services.end());
  CHECK(found->namespace_ == s->bootstrap.namespace_);
  CHECK(found->fqdn == "early." + s->bootstrap.namespace_ + ".svc.cluster.local");
}

TEST_CASE("config: a YAML error later in the file is the only error", "[config]") {
  std::string bad_service = "---\napiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: 7}\n";
  CHECK(errors(base_config() + bad_service + "---\nkey: [unclosed\n").rfind("cfg.yaml:", 0) == 0);
  std::string text = errors(base_config() + bad_service + "---\nkey: [unclosed\n");
  CHECK(text.find("invalid YAML") != std::string::npos);
  CHECK(text.find("Service x") == std::string::npos);
  CHECK(text.find('\n') == std::string::npos);  // one line
  // Without the YAML error, the Service's error is reported.
  CHECK(errors(base_config() + bad_service).find("Service x") != std::string::npos);
}

}  // namespace
}  // namespace wp::config
