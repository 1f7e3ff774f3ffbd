// The WaypointBootstrap document: defaults, every field, and every error with its position.
#include <catch2/catch.hpp>

#include "fixtures.h"

namespace wp::config {
namespace {

using testing::errors;
using testing::load;

const std::string kGateway = R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
)";

// A bootstrap whose spec continues with `spec_tail` (lines at two-space indent), then the Gateway.
// The spec's own lines are 5 to 7, so `spec_tail` starts on line 8.
std::string bootstrap(const std::string& spec_tail) {
  return "apiVersion: waypoint.proxy/v1alpha1\n"
         "kind: WaypointBootstrap\n"
         "metadata: {name: waypoint}\n"
         "spec:\n"
         "  gateway: waypoint\n"
         "  tls:\n"
         "    {certChain: certs/waypoint.pem, privateKey: certs/waypoint.key, rootCert: "
         "certs/root.pem}\n" +
         spec_tail + kGateway;
}

TEST_CASE("config: bootstrap defaults", "[config]") {
  auto s = load(bootstrap(""));
  const Bootstrap& b = s->bootstrap;
  CHECK(b.name == "waypoint");
  CHECK(b.namespace_ == "default");
  CHECK(b.gateway == "waypoint");
  CHECK(b.trust_domain == "cluster.local");
  CHECK(b.cluster_domain == "cluster.local");
  CHECK(b.listeners.hbone.to_string() == "0.0.0.0:15008");
  CHECK(b.listeners.admin.to_string() == "127.0.0.1:15000");
  CHECK(b.listeners.metrics.to_string() == "0.0.0.0:15020");
  CHECK(b.listeners.health.to_string() == "0.0.0.0:15021");
  CHECK(b.tls.cert_chain == testing::fixture_dir() + "/certs/waypoint.pem");
  CHECK(b.tls.private_key == testing::fixture_dir() + "/certs/waypoint.key");
  CHECK(b.tls.root_cert == testing::fixture_dir() + "/certs/root.pem");
  CHECK(b.upstream.hbone_port == 15008);
  CHECK(b.upstream.connect_timeout == Millis(10'000));
  CHECK(b.upstream.max_streams_per_connection == 100);
  CHECK(b.upstream.idle_timeout == Millis(300'000));
  CHECK(b.downstream.max_concurrent_streams == 100);
  CHECK(b.downstream.keepalive_interval == Millis(10'000));
  CHECK(b.downstream.keepalive_timeout == Millis(20'000));
  CHECK(b.downstream.handshake_timeout == Millis(10'000));
  CHECK(b.downstream.max_connections == 100'000);
  CHECK(b.downstream.max_header_list_bytes == 16'384);
  CHECK(b.concurrency == 0);
  CHECK(b.log_level == "info");
  CHECK(b.access_log == "stdout");
  CHECK(s->gateway.name == "waypoint");
  CHECK(s->gateway.namespace_ == "default");
  CHECK(s->gateway.for_service_account.empty());
  CHECK(s->source_file == testing::fixture_dir() + "/cfg.yaml");
}

TEST_CASE("config: bootstrap reads every field", "[config]") {
  std::string certs = testing::fixture_dir() + "/certs/";
  auto s = load(
      R"(apiVersion: waypoint.proxy/v1alpha1
kind: WaypointBootstrap
metadata: {name: wp, namespace: bookinfo}
spec:
  gateway: bookinfo-waypoint
  trustDomain: example.org
  clusterDomain: corp.internal
  listeners: {hbone: "127.0.0.2:16008", admin: "[::1]:16000", metrics: "127.0.0.2:16020", health: "127.0.0.2:16021"}
  tls: {certChain: )" +
      certs + R"(waypoint.pem, privateKey: ./certs/../certs/waypoint.key, rootCert: certs/root.pem}
  upstream: {hbonePort: 15009, connectTimeout: 1.5s, maxStreamsPerConnection: 7, idleTimeout: 1m30s}
  downstream:
    maxConcurrentStreams: 50
    keepaliveInterval: 5s
    keepaliveTimeout: 15s
    handshakeTimeout: 250ms
    maxConnections: 1000
    maxHeaderListBytes: 8192
  concurrency: 4
  log: {level: debug, accessLog: /var/log/waypoint.log}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: Gateway
metadata: {name: bookinfo-waypoint, namespace: bookinfo}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
)");
  const Bootstrap& b = s->bootstrap;
  CHECK(b.name == "wp");
  CHECK(b.namespace_ == "bookinfo");
  CHECK(b.gateway == "bookinfo-waypoint");
  CHECK(b.trust_domain == "example.org");
  CHECK(b.cluster_domain == "corp.internal");
  CHECK(b.listeners.hbone.to_string() == "127.0.0.2:16008");
  CHECK(b.listeners.admin.to_string() == "[::1]:16000");
  CHECK(b.listeners.metrics.to_string() == "127.0.0.2:16020");
  CHECK(b.listeners.health.to_string() == "127.0.0.2:16021");
  CHECK(b.tls.cert_chain == certs + "waypoint.pem");
  CHECK(b.tls.private_key == certs + "waypoint.key");
  CHECK(b.tls.root_cert == certs + "root.pem");
  CHECK(b.upstream.hbone_port == 15009);
  CHECK(b.upstream.connect_timeout == Millis(1'500));
  CHECK(b.upstream.max_streams_per_connection == 7);
  CHECK(b.upstream.idle_timeout == Millis(90'000));
  CHECK(b.downstream.max_concurrent_streams == 50);
  CHECK(b.downstream.keepalive_interval == Millis(5'000));
  CHECK(b.downstream.keepalive_timeout == Millis(15'000));
  CHECK(b.downstream.handshake_timeout == Millis(250));
  CHECK(b.downstream.max_connections == 1000);
  CHECK(b.downstream.max_header_list_bytes == 8192);
  CHECK(b.concurrency == 4);
  CHECK(b.log_level == "debug");
  CHECK(b.access_log == "/var/log/waypoint.log");
  CHECK(s->gateway.namespace_ == "bookinfo");
}

TEST_CASE("config: bootstrap errors point at the field", "[config]") {
  struct Case {
    std::string spec_tail;
    std::string error;
  };
  const std::string w = "cfg.yaml:8:";  // the first line of spec_tail
  const Case cases[] = {
      {"  listners: {}\n", w + "3: WaypointBootstrap waypoint: spec.listners: unknown field (expected one of: gateway, "
                               "trustDomain, clusterDomain, listeners, tls, upstream, downstream, http, adminListeners, kubernetes, concurrency, log)"},
      {"  upstream: {connectTimout: 1s}\n",
       w + "14: WaypointBootstrap waypoint: spec.upstream.connectTimout: unknown field (expected "
           "one "
           "of: hbonePort, connectTimeout, maxStreamsPerConnection, idleTimeout)"},
      {"  upstream: {connectTimeout: 10x}\n",
       w + "30: WaypointBootstrap waypoint: spec.upstream.connectTimeout: bad duration \"10x\" "
           "(use "
           "e.g. 10s, 250ms)"},
      {"  upstream:\n    idleTimeout: 0s\n",
       "cfg.yaml:9:18: WaypointBootstrap waypoint: spec.upstream.idleTimeout: must be greater than "
       "0"},
      {"  upstream: {hbonePort: 70000}\n",
       w + "25: WaypointBootstrap waypoint: spec.upstream.hbonePort: 70000 is not a port "
           "(1..65535)"},
      {"  downstream: {maxConcurrentStreams: 0}\n",
       w + "38: WaypointBootstrap waypoint: spec.downstream.maxConcurrentStreams: 0 is not an "
           "integer "
           "(1..4294967295)"},
      {"  downstream: {keepaliveInterval: 10}\n",
       w + "35: WaypointBootstrap waypoint: spec.downstream.keepaliveInterval: bad duration \"10\" "
           "(use "
           "e.g. 10s, 250ms)"},
      {"  listeners: {hbone: \"0.0.0.0:0\"}\n",
       w + "22: WaypointBootstrap waypoint: spec.listeners.hbone: \"0.0.0.0:0\" is not an IP:port "
           "address (port 1..65535)"},
      {"  listeners: {admin: \"localhost:15000\"}\n",
       w + "22: WaypointBootstrap waypoint: spec.listeners.admin: \"localhost:15000\" is not an "
           "IP:port address (port 1..65535)"},
      {"  listeners: {admin: \"0.0.0.0:15000\"}\n",
       w + "22: WaypointBootstrap waypoint: spec.listeners.admin: 0.0.0.0:15000 is not a loopback address; the "
           "admin API can change the running proxy (POST /logging, /drain_listeners), so exposing it needs "
           "spec.listeners.allowNonLoopbackAdmin: true"},
      {"  listeners: {allowNonLoopbackAdmin: yes}\n",
       w + "38: WaypointBootstrap waypoint: spec.listeners.allowNonLoopbackAdmin: expected true or false"},
      {"  listeners: {metrics: \"127.0.0.1:15000\"}\n",
       w + "24: WaypointBootstrap waypoint: spec.listeners.metrics: 127.0.0.1:15000 collides with "
           "the "
           "admin listener 127.0.0.1:15000"},
      {"  concurrency: -1\n", w + "16: WaypointBootstrap waypoint: spec.concurrency: -1 is not an integer (0..1024)"},
      {"  concurrency: many\n", w + "16: WaypointBootstrap waypoint: spec.concurrency: \"many\" is "
                                    "not an integer (0..1024)"},
      {"  log: {level: verbose}\n",
       w + "16: WaypointBootstrap waypoint: spec.log.level: \"verbose\" is not a log level (trace, "
           "debug, info, warn, error, off)"},
      {"  trustDomain: cluster.local/ns\n",
       w + "16: WaypointBootstrap waypoint: spec.trustDomain: a trust domain cannot contain '/'"},
      {"  trustDomain: [a]\n", w + "16: WaypointBootstrap waypoint: spec.trustDomain: expected a string, got a list"},
      {"  listeners: 15008\n", w + "14: WaypointBootstrap waypoint: spec.listeners: expected a map, got a scalar"},
      // yaml-cpp keeps the last of duplicate keys silently; the prescan refuses them.
      {"  gateway: other\n", w + "3: invalid YAML: duplicate key \"gateway\" (first at line 5, column 3)"},
  };
  for (const auto& c : cases) {
    INFO(c.spec_tail);
    CHECK(errors(bootstrap(c.spec_tail)) == c.error);
  }
}

TEST_CASE("config: a non-loopback admin address needs allowNonLoopbackAdmin", "[config]") {
  auto s = load(bootstrap("  listeners: {admin: \"0.0.0.0:16000\", allowNonLoopbackAdmin: true}\n"));
  CHECK(s->bootstrap.listeners.admin.to_string() == "0.0.0.0:16000");
  CHECK(s->bootstrap.listeners.allow_non_loopback_admin);
  // IPv6 loopback is loopback.
  CHECK(errors(bootstrap("  listeners: {admin: \"[::1]:16000\"}\n")).empty());
}

TEST_CASE("config: bootstrap requires gateway and tls", "[config]") {
  CHECK(errors(R"(apiVersion: waypoint.proxy/v1alpha1
kind: WaypointBootstrap
metadata: {name: waypoint}
spec:
  trustDomain: cluster.local
)" + kGateway) ==
        "cfg.yaml:5:3: WaypointBootstrap waypoint: spec.gateway: required (the name of the Gateway "
        "this waypoint serves)\n"
        "cfg.yaml:5:3: WaypointBootstrap waypoint: spec.tls.certChain: required\n"
        "cfg.yaml:5:3: WaypointBootstrap waypoint: spec.tls.privateKey: required\n"
        "cfg.yaml:5:3: WaypointBootstrap waypoint: spec.tls.rootCert: required");
  CHECK(errors(R"(apiVersion: waypoint.proxy/v1alpha1
kind: WaypointBootstrap
metadata: {name: waypoint}
spec:
  gateway: waypoint
  tls: {certChain: certs/waypoint.pem, privateKey: ""}
)" + kGateway) ==
        "cfg.yaml:6:8: WaypointBootstrap waypoint: spec.tls.rootCert: required\n"
        "cfg.yaml:6:52: WaypointBootstrap waypoint: spec.tls.privateKey: must not be empty");
}

TEST_CASE("config: exactly one bootstrap", "[config]") {
  CHECK(errors(kGateway) == "cfg.yaml:1:1: no WaypointBootstrap resource (apiVersion: waypoint.proxy/v1alpha1)");
  std::string one = bootstrap("");
  CHECK(errors(one + "---\n" + one) ==
        "cfg.yaml:16:1: WaypointBootstrap waypoint: a file holds exactly one WaypointBootstrap "
        "(another at 1:1)\n"
        "cfg.yaml:24:1: Gateway waypoint: defined twice (first at 9:1)");
  CHECK(errors("apiVersion: waypoint.proxy/v1\nkind: WaypointBootstrap\nmetadata: {name: w}\n") ==
        "cfg.yaml:1:1: no WaypointBootstrap resource (apiVersion: waypoint.proxy/v1alpha1)\n"
        "cfg.yaml:1:13: WaypointBootstrap w: apiVersion: unsupported version waypoint.proxy/v1 (use "
        "waypoint.proxy/v1alpha1)");
  CHECK(errors("apiVersion: waypoint.proxy/v1alpha1\nkind: WaypointBootstrap\nmetadata: {name: w}\n"
               "spec: [gateway]\n") == "cfg.yaml:4:7: WaypointBootstrap w: spec: expected a map, got a list");
}

}  // namespace
}  // namespace wp::config

namespace wp::config {
TEST_CASE("config: spec.kubernetes turns the Kubernetes API mode on, with its two fields", "[config]") {
  auto boot = [](const std::string& spec) {
    return load_bootstrap(testing::base_config(spec).substr(4), testing::fixture_dir() + "/cfg.yaml");
  };
  CHECK_FALSE(boot("").kubernetes.enabled);
  auto b = boot("kubernetes: {}");
  CHECK(b.kubernetes.enabled);
  CHECK(b.kubernetes.namespace_.empty());
  b = boot("kubernetes: {namespace: shop, kubeconfig: ~/.kube/other}");
  CHECK(b.kubernetes.namespace_ == "shop");
  CHECK(b.kubernetes.kubeconfig == "~/.kube/other");
  CHECK_THROWS_WITH(boot("kubernetes: {namespaces: shop}"), Catch::Contains("spec.kubernetes.namespaces: unknown field"));
}
}  // namespace wp::config
