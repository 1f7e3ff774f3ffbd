// kube::Source::keep: what the API mode keeps of each object between reloads. A Pod is reduced to
// what its reader looks at; the reduced pod must read exactly as the whole one, errors included.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "waypoint/config/snapshot.h"
#include "waypoint/kube/source.h"

namespace wp::kube {
namespace {

using nlohmann::json;

const char* kBootstrap =
    "apiVersion: waypoint.proxy/v1alpha1\nkind: WaypointBootstrap\nmetadata: {name: waypoint, namespace: default}\n"
    "spec:\n  gateway: waypoint\n  tls: {certChain: c.pem, privateKey: c.key, rootCert: r.pem}\n  kubernetes: {}\n";

const Kind& kind_of(const std::string& name) {
  for (const Kind& k : Source::kinds()) {
    if (k.kind == name) {
      return k;
    }
  }
  FAIL("no kind " << name);
  return Source::kinds().front();
}

// A pod as the API server returns one of a Deployment's: most of it is of no use to the waypoint.
json fat_pod(const std::string& name, const std::string& ip) {
  json env = json::array();
  for (int i = 0; i < 20; ++i) {
    env.push_back({{"name", "SETTING_" + std::to_string(i)}, {"value", std::string(40, 'v')}});
  }
  json container = {{"name", "app"},
                    {"image", "registry.example.com/team/reviews:1.2.3@sha256:" + std::string(64, 'a')},
                    {"env", env},
                    {"ports", json::array({{{"name", "http"}, {"containerPort", 9080}, {"protocol", "TCP"}},
                                           {{"name", "admin"}, {"containerPort", 9901}, {"protocol", "TCP"}}})},
                    {"resources", {{"limits", {{"cpu", "1"}, {"memory", "512Mi"}}}}},
                    {"volumeMounts", json::array({{{"name", "token"}, {"mountPath", "/var/run/secrets"}}})}};
  json sidecar = {{"name", "log-shipper"}, {"image", "registry.example.com/ship:2"}, {"args", {"--fast"}}};
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", name},
        {"generateName", "reviews-v2-5d9c8f7b6c-"},
        {"namespace", "default"},
        {"uid", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},
        {"resourceVersion", "4242"},
        {"creationTimestamp", "2026-12-01T10:00:00Z"},
        {"labels", {{"app", "reviews"}, {"version", "v2"}, {"pod-template-hash", "5d9c8f7b6c"}}},
        {"annotations",
         {{"kubectl.kubernetes.io/restartedAt", "2026-12-01T09:59:00Z"},
          {"prometheus.io/scrape", "true"},
          {"notes", std::string(600, 'n')}}},
        {"ownerReferences", json::array({{{"apiVersion", "apps/v1"},
                                          {"kind", "ReplicaSet"},
                                          {"name", "reviews-v2-5d9c8f7b6c"},
                                          {"controller", true}}})},
        {"managedFields", json::array({{{"manager", "kube-controller-manager"}, {"fieldsV1", {{"f:spec", {}}}}}})}}},
      {"spec",
       {{"serviceAccountName", "bookinfo-reviews"},
        {"serviceAccount", "bookinfo-reviews"},
        {"nodeName", "node-7"},
        {"containers", json::array({container, sidecar})},
        {"volumes", json::array({{{"name", "token"}, {"projected", {{"sources", json::array()}}}}})},
        {"tolerations", json::array({{{"key", "node.kubernetes.io/not-ready"}, {"operator", "Exists"}}})}}},
      {"status",
       {{"phase", "Running"},
        {"hostIP", "192.0.2.7"},
        {"podIP", ip},
        {"podIPs", json::array({{{"ip", ip}}})},
        {"startTime", "2026-12-01T10:00:01Z"},
        {"conditions", json::array({{{"type", "Initialized"}, {"status", "True"}},
                                    {{"type", "Ready"}, {"status", "True"}},
                                    {{"type", "ContainersReady"}, {"status", "True"}}})},
        {"containerStatuses",
         json::array({{{"name", "app"},
                       {"ready", true},
                       {"restartCount", 0},
                       {"imageID", "registry.example.com/team/reviews@sha256:" + std::string(64, 'b')}}})}}}};
}

config::SourceObjectPtr kept(const std::string& kind, const json& object) {
  return std::make_shared<const config::SourceObject>(Source::keep(kind_of(kind), json(object)));
}

// The same objects, one of them as it came (no projection), the other as Source keeps it.
config::SnapshotPtr load(const json& pod, bool project) {
  json gateway = {{"apiVersion", "gateway.networking.k8s.io/v1"},
                  {"kind", "Gateway"},
                  {"metadata", {{"name", "waypoint"}, {"namespace", "default"}}},
                  {"spec",
                   {{"gatewayClassName", "istio-waypoint"},
                    {"listeners", json::array({{{"name", "mesh"}, {"port", 15008}, {"protocol", "HBONE"}}})}}}};
  config::SourceObjects objects = {kept("Gateway", gateway)};
  if (project) {
    objects.push_back(kept("Pod", pod));
  } else {
    objects.push_back(std::make_shared<const config::SourceObject>(
        config::SourceObject{"Pod", pod["metadata"]["name"], "1", pod.dump()}));
  }
  return config::load_snapshot_from_objects(kBootstrap, "waypoint.yaml", "default", objects, false, nullptr);
}

TEST_CASE("kube source: a kept Pod holds only what its reader looks at and reads as the whole one", "[kube][source]") {
  const json pod = fat_pod("reviews-1", "127.0.3.4");
  config::SourceObjectPtr k = kept("Pod", pod);
  CHECK(k->name == "reviews-1");
  CHECK(k->resource_version == "4242");
  INFO("whole " << pod.dump().size() << " bytes, kept " << k->json.size());
  CHECK(k->json.size() * 4 < pod.dump().size());
  for (const char* gone : {"image", "env", "annotations", "managedFields", "containerStatuses", "nodeName"}) {
    CHECK(k->json.find(std::string("\"") + gone + "\"") == std::string::npos);
  }

  config::SnapshotPtr whole = load(pod, false), reduced = load(pod, true);
  REQUIRE(whole->rejected.empty());
  REQUIRE(reduced->rejected.empty());
  const config::Pod* a = whole->find_pod(net::IpAddr::parse("127.0.3.4").value());
  const config::Pod* b = reduced->find_pod(net::IpAddr::parse("127.0.3.4").value());
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(b->name == a->name);
  CHECK(b->service_account() == "bookinfo-reviews");
  CHECK(b->service_account() == a->service_account());
  CHECK(b->spiffe_id() == a->spiffe_id());
  CHECK(b->labels() == a->labels());
  CHECK(b->ready == a->ready);
  CHECK(b->ready);
  CHECK(b->named_ports() == a->named_ports());
  CHECK(b->named_ports().at("admin") == 9901);
  CHECK(b->workload() == "reviews-v2");  // from the ReplicaSet owner
  CHECK(b->workload() == a->workload());
  CHECK(b->app() == a->app());
  CHECK(b->version() == a->version());
  CHECK(b->canonical_service() == a->canonical_service());
  CHECK(b->canonical_revision() == a->canonical_revision());
  CHECK(reduced->warnings == whole->warnings);

  // Terminating: metadata.deletionTimestamp is kept.
  json terminating = pod;
  terminating["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z";
  config::SnapshotPtr held = load(terminating, true);
  const config::Pod* t = held->find_pod(net::IpAddr::parse("127.0.3.4").value());
  REQUIRE(t != nullptr);
  CHECK_FALSE(t->ready);
}

TEST_CASE("kube source: a kept Pod with fields of the wrong type reads as the whole one, errors included",
          "[kube][source]") {
  json pod = fat_pod("bad", "127.0.3.5");
  bool rejected = true;  // the whole pod is rejected
  SECTION("containers not a list") {
    pod["spec"]["containers"] = "app";
  }
  SECTION("a port not a number") {
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = "http";
  }
  SECTION("podIP not an address") {
    pod["status"]["podIP"] = "10.0.0.300";
  }
  SECTION("spec not a mapping (read as no spec)") {
    pod["spec"] = json::array({1, 2});
    rejected = false;
  }
  config::SnapshotPtr whole = load(pod, false), reduced = load(pod, true);
  REQUIRE(whole->rejected.size() == (rejected ? 1u : 0u));
  REQUIRE(reduced->rejected.size() == whole->rejected.size());
  if (rejected) {
    CHECK(reduced->rejected[0].reason == whole->rejected[0].reason);
  }
  CHECK(reduced->warnings == whole->warnings);
}

}  // namespace
}  // namespace wp::kube
