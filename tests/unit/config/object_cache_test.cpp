// The Kubernetes API mode's reloads reuse what the previous load decoded (config::ObjectCache).
// Through a long random sequence of object changes, the snapshot a cached load publishes must be
// the one a load from scratch builds: same chains, routes, clusters, endpoints, policies, version,
// rejected objects and warnings. The comparison is the admin API's JSON (sorted listings), i.e.
// what the data path uses as /config_dump shows it.
#include <catch2/catch.hpp>

#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "waypoint/admin/config_dump.h"
#include "waypoint/config/snapshot.h"

namespace wp::config {
namespace {

using nlohmann::json;

const char* kBootstrap =
    "apiVersion: waypoint.proxy/v1alpha1\nkind: WaypointBootstrap\nmetadata: {name: waypoint, namespace: default}\n"
    "spec:\n  gateway: waypoint\n  tls: {certChain: c.pem, privateKey: c.key, rootCert: r.pem}\n  kubernetes: {}\n";

std::string ip(int a, int b, int c) {
  return "127." + std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c);
}

// A small namespace's worth of objects, and the random changes made to it.
class Namespace {
 public:
  // `churn`: only what a living cluster changes all the time (pods, slices, weights, subsets,
  // policies), and nothing an object is rejected for, so the loads apply their changes
  // incrementally.
  explicit Namespace(uint32_t seed, bool churn = false) : rng_(seed), churn_(churn) {
    put({{"apiVersion", "gateway.networking.k8s.io/v1"},
         {"kind", "Gateway"},
         {"metadata", {{"name", "waypoint"}, {"namespace", "default"}}},
         {"spec",
          {{"gatewayClassName", "istio-waypoint"},
           {"listeners", json::array({{{"name", "mesh"}, {"port", 15008}, {"protocol", "HBONE"}}})}}}});
    for (int s = 0; s < kServices; ++s) {
      put(service(s));
      for (int p = 0; p < 3; ++p) {
        put(pod(s, p));
      }
    }
  }

  // One random change: an object of a random kind is added, rewritten or deleted.
  void change() {
    int s = pick(kServices);
    int p = pick(6);
    switch (pick(churn_ ? 7 : 9)) {
      case 0:
        put(pod(s, p));
        break;
      case 1:
        erase("Pod/" + pod_name(s, p));
        if (churn_ && objects_.count("EndpointSlice/svc-" + std::to_string(s) + "-x") != 0) {
          put(slice(s));  // the endpoints controller follows (the same batch)
        }
        break;
      case 2:
        put(slice(s));
        break;
      case 3:
        // (churn) Now and then deleted: the routes to its subsets are then rejected.
        churn_&& pick(12) == 0 ? erase("DestinationRule/svc-" + std::to_string(s)) : put(destination_rule(s));
        break;
      case 4:
        if (churn_ && pick(4) == 0) {
          // A VirtualService deleted: its Service's own, or a second one for the same host, which
          // comes first by name and so routes it while it is there (the other is warned about).
          erase("VirtualService/" + std::string(pick(2) == 0 ? "svc-" : "alt-") + std::to_string(s));
          break;
        }
        if (churn_ && pick(6) == 0) {
          if (objects_.count("DestinationRule/svc-" + std::to_string(s)) != 0) {
            put(virtual_service(s, "alt-"));
          }
          break;
        }
        if (churn_ && objects_.count("DestinationRule/svc-" + std::to_string(s)) == 0) {
          put(destination_rule(s));  // its subsets first (the same batch): else the route is rejected
        }
        put(virtual_service(s));
        break;
      case 5:
        // A policy written, rewritten or (churn) deleted: on one Service, or on the Gateway.
        churn_&& pick(4) == 0 ? erase("AuthorizationPolicy/p-" + std::to_string(s)) : put(policy(s));
        break;
      case 6:
        if (churn_) {
          // (churn) A Service rewritten: a port more or less, its clusterIP there or not.
          if (objects_.count("Service/svc-" + std::to_string(s)) != 0) {
            put(service(s));
          }
          break;
        }
        put(http_route(s));
        break;
      case 7:
        pick(4) != 0 ? put(service(s)) : erase("Service/svc-" + std::to_string(s));
        break;
      default: {
        // Now and then something already there goes away; else a Service comes (back).
        auto it = objects_.begin();
        std::advance(it, pick(static_cast<int>(objects_.size())));
        if (pick(3) == 0 && it->first != "Gateway/waypoint") {
          objects_.erase(it);
        } else {
          put(service(s));
        }
      }
    }
  }

  // The key of the object the last change wrote or deleted, and whether it was there before /
  // is there now.
  const std::string& last() const { return last_; }
  bool last_was_there() const { return last_was_there_; }
  bool last_is_there() const { return objects_.count(last_) != 0; }

  // As kube::Source hands them over: sorted by kind and name, each with the resourceVersion of
  // its last write (the API server's counter), at the same address until it changes.
  SourceObjects objects() const {
    SourceObjects out;
    for (const auto& [key, object] : objects_) {
      out.push_back(object);
    }
    return out;
  }

 private:
  static constexpr int kServices = 6;

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  void put(json object) {
    ++version_;
    // The key first: json's operator= takes its operand by value, so a moved-from `object` would
    // be read if the key were computed in the same expression.
    std::string key = object["kind"].get<std::string>() + "/" + object["metadata"]["name"].get<std::string>();
    last_ = key;
    last_was_there_ = objects_.count(key) != 0;
    objects_[key] = std::make_shared<const SourceObject>(
        SourceObject{object["kind"], object["metadata"]["name"], std::to_string(version_), object.dump()});
  }
  void erase(const std::string& key) {
    last_ = key;
    last_was_there_ = objects_.count(key) != 0;
    objects_.erase(key);
  }

  static std::string pod_name(int s, int p) { return "svc-" + std::to_string(s) + "-" + std::to_string(p); }

  json service(int s) {
    json spec = {{"ports", json::array({{{"name", "http"}, {"port", 8080}, {"targetPort", 9080}}})},
                 {"selector", {{"app", "svc-" + std::to_string(s)}}}};
    if (pick(8) != 0) {
      spec["clusterIP"] = ip(100, s, 1);
    }
    if (pick(6) == 0) {
      spec["ports"].push_back({{"name", "tcp"}, {"port", 9000}, {"appProtocol", "tcp"}});
    }
    return {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata", {{"name", "svc-" + std::to_string(s)}, {"namespace", "default"}}},
            {"spec", spec}};
  }

  json pod(int s, int p) {
    json meta = {{"name", pod_name(s, p)},
                 {"namespace", "default"},
                 {"labels", {{"app", "svc-" + std::to_string(s)}, {"version", pick(2) == 0 ? "v1" : "v2"}}}};
    if (pick(8) == 0) {
      meta["deletionTimestamp"] = "2026-12-02T00:00:00Z";
    }
    // Now and then two pods share an IP: the second is reported, the first kept.
    int host = !churn_ && pick(12) == 0 ? 2 : p + 2;
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", meta},
            {"spec", {{"serviceAccountName", "sa-" + std::to_string(s % 3)}}},
            {"status",
             {{"phase", "Running"},
              {"podIP", ip(200, s, host)},
              {"conditions", json::array({{{"type", "Ready"}, {"status", pick(6) == 0 ? "False" : "True"}}})}}}};
  }

  json slice(int s) {
    json endpoints = json::array();
    for (int p = 0; p < 6; ++p) {
      if (pick(2) == 0 && (!churn_ || objects_.count("Pod/" + pod_name(s, p)) != 0)) {
        json e = {{"addresses", json::array({ip(200, s, p + 2)})}, {"conditions", {{"ready", pick(5) != 0}}}};
        if (churn_ || pick(4) != 0) {
          e["targetRef"] = {{"kind", "Pod"}, {"name", pod_name(s, p)}};
        }
        endpoints.push_back(e);
      }
    }
    return {{"apiVersion", "discovery.k8s.io/v1"},
            {"kind", "EndpointSlice"},
            {"metadata",
             {{"name", "svc-" + std::to_string(s) + "-x"},
              {"namespace", "default"},
              {"labels", {{"kubernetes.io/service-name", "svc-" + std::to_string(s)}}}}},
            {"addressType", "IPv4"},
            {"ports", json::array({{{"name", "http"}, {"port", 9080}}})},
            {"endpoints", endpoints}};
  }

  json destination_rule(int s) {
    json subsets = json::array({{{"name", "v1"}, {"labels", {{"version", "v1"}}}}});
    if (churn_ || pick(3) != 0) {
      subsets.push_back({{"name", "v2"}, {"labels", {{"version", "v2"}}}});
    }
    json spec = {{"host", "svc-" + std::to_string(s)}, {"subsets", subsets}};
    if (pick(3) == 0) {
      spec["trafficPolicy"] = {{"loadBalancer", {{"simple", pick(2) == 0 ? "LEAST_REQUEST" : "RANDOM"}}},
                               {"outlierDetection", {{"consecutive5xxErrors", 1 + pick(5)}}}};
    }
    return {{"apiVersion", "networking.istio.io/v1"},
            {"kind", "DestinationRule"},
            {"metadata", {{"name", "svc-" + std::to_string(s)}, {"namespace", "default"}}},
            {"spec", spec}};
  }

  json virtual_service(int s, const std::string& prefix = "svc-") {
    int w = pick(101);
    // Subset v2 may be missing from the DestinationRule (or the rule absent): then the object is
    // rejected, and so is a bad timeout.
    json route =
        json::array({{{"destination", {{"host", "svc-" + std::to_string(s)}, {"subset", "v1"}}}, {"weight", w}}});
    if (pick(2) == 0) {
      route.push_back({{"destination", {{"host", "svc-" + std::to_string(s)}, {"subset", "v2"}}}, {"weight", 100 - w}});
    } else {
      route[0]["weight"] = 100;
    }
    json http = {{"route", route}, {"timeout", !churn_ && pick(20) == 0 ? "soon" : "5s"}};
    if (pick(3) == 0) {
      http["match"] = json::array({{{"uri", {{"prefix", "/api"}}}}});
      http["retries"] = {{"attempts", pick(4)}, {"retryOn", "5xx"}};
    }
    if (pick(4) == 0) {
      http["corsPolicy"] = {{"allowOrigins", json::array({{{"exact", "https://example.com"}}})}};  // warned, ignored
    }
    return {{"apiVersion", "networking.istio.io/v1"},
            {"kind", "VirtualService"},
            {"metadata", {{"name", prefix + std::to_string(s)}, {"namespace", "default"}}},
            {"spec", {{"hosts", json::array({"svc-" + std::to_string(s)})}, {"http", json::array({http})}}}};
  }

  json policy(int s) {
    json spec = {
        {"action", pick(2) == 0 ? "ALLOW" : "DENY"},
        {"rules", json::array({{{"from", json::array({{{"source",
                                                        {{"principals", json::array({"cluster.local/ns/default/sa/sa-" +
                                                                                     std::to_string(pick(3))})}}}}})},
                                {"to", json::array({{{"operation", {{"methods", json::array({"GET"})}}}}})}}})}};
    spec["targetRefs"] = json::array(
        {pick(3) == 0 ? json{{"kind", "Gateway"}, {"group", "gateway.networking.k8s.io"}, {"name", "waypoint"}}
                      : json{{"kind", "Service"}, {"group", ""}, {"name", "svc-" + std::to_string(s)}}});
    return {{"apiVersion", "security.istio.io/v1"},
            {"kind", "AuthorizationPolicy"},
            {"metadata", {{"name", "p-" + std::to_string(s)}, {"namespace", "default"}}},
            {"spec", spec}};
  }

  json http_route(int s) {
    int target = pick(kServices);
    return {{"apiVersion", "gateway.networking.k8s.io/v1"},
            {"kind", "HTTPRoute"},
            {"metadata", {{"name", "r-" + std::to_string(s)}, {"namespace", "default"}}},
            {"spec",
             {{"parentRefs", json::array({{{"group", ""}, {"kind", "Service"}, {"name", "svc-" + std::to_string(s)}}})},
              {"rules", json::array({{{"backendRefs", json::array({{{"name", "svc-" + std::to_string(target)},
                                                                    {"port", 8080},
                                                                    {"weight", pick(3)}}})}}})}}}};
  }

  std::mt19937 rng_;
  bool churn_ = false;
  std::map<std::string, SourceObjectPtr> objects_;  // by kind "/" name
  uint64_t version_ = 0;
  std::string last_;  // the object the last change wrote or deleted (its key)
  bool last_was_there_ = false;
};

// `o` written again: a field more, and the resourceVersion given.
SourceObjectPtr rewritten(const SourceObject& o, std::string resource_version) {
  SourceObject copy = o;
  copy.json.insert(1, "\"x\":1,");
  copy.resource_version = std::move(resource_version);
  return std::make_shared<const SourceObject>(std::move(copy));
}

// Everything a snapshot serves, as text; empty-handed on a ConfigError (then both must fail alike).
std::string served(const SourceObjects& objects, ObjectCache* cache) {
  SnapshotPtr s;
  try {
    s = load_snapshot_from_objects(kBootstrap, "waypoint.yaml", "default", objects, false, cache);
  } catch (const ConfigError& e) {
    return std::string("ConfigError: ") + e.what();
  }
  std::string out = "version " + s->version + "\n";
  out += admin::listeners_json(*s) + "\n" + admin::clusters_json(*s) + "\n" + admin::routes_json(*s) + "\n";
  out += admin::endpoints_json(*s, {}) + "\n" + admin::authorization_json(*s) + "\n";
  for (const auto& r : s->rejected) {
    out += "rejected " + r.kind + "/" + r.name + "@" + r.resource_version + ": " + r.reason + "\n";
  }
  for (const auto& w : s->warnings) {
    out += "warning " + w + "\n";
  }
  for (const auto& i : s->ignored) {
    out += "ignored " + i + "\n";
  }
  return out;
}

// One random change, then the namespace loaded from scratch and through `cache`: both must serve
// the same. Returns what they serve.
std::string change_and_compare(Namespace& ns, ObjectCache& cache) {
  ns.change();
  SourceObjects objects = ns.objects();
  std::string scratch = served(objects, nullptr);
  std::string cached = served(objects, &cache);
  REQUIRE(cached == scratch);
  CHECK(cache.size() == objects.size());
  return scratch;
}

TEST_CASE("object cache: a cached load serves what a load from scratch serves, change after change",
          "[config][incremental]") {
  for (uint32_t seed : {1u, 2u, 3u}) {
    Namespace ns(seed);
    ObjectCache cache;
    size_t rejected_seen = 0;
    size_t served_seen = 0;  // steps with a subset cluster routed to
    for (int step = 0; step < 150; ++step) {
      INFO("seed " << seed << ", step " << step);
      std::string scratch = change_and_compare(ns, cache);
      rejected_seen += scratch.find("\nrejected ") != std::string::npos ? 1 : 0;
      served_seen += scratch.find("|http/v1|") != std::string::npos ? 1 : 0;
    }
    // The sequence exercised the interesting paths: reuse, and objects left out.
    CHECK(cache.hits() > cache.misses());
    CHECK(rejected_seen > 0);
    CHECK(served_seen > 0);
  }
}

// The incremental compile (Compiler::update: only the Services a change touches are rebuilt, every
// other piece shared with the previous snapshot) against the compile from scratch.
TEST_CASE("incremental compile: pod, slice, routing and policy churn gives what a compile from scratch gives",
          "[config][incremental]") {
  for (uint32_t seed : {11u, 12u, 13u, 14u}) {
    Namespace ns(seed, true);
    ObjectCache cache;
    size_t reported = 0;            // steps with warnings or ignored fields, which an incremental load replays
    size_t policies_applied = 0;    // policy changes applied incrementally
    size_t routing_added = 0;       // VirtualServices and DestinationRules created, applied incrementally
    size_t routing_removed = 0;     // and deleted
    size_t services_rewritten = 0;  // Services changed in place, applied incrementally
    for (int step = 0; step < 300; ++step) {
      INFO("seed " << seed << ", step " << step);
      const uint64_t incremental = cache.incremental();
      std::string scratch = change_and_compare(ns, cache);
      reported += scratch.find("\nwarning ") != std::string::npos || scratch.find("\nignored ") != std::string::npos;
      policies_applied += ns.last().rfind("AuthorizationPolicy/", 0) == 0 && cache.incremental() > incremental;
      const bool routing = ns.last().rfind("VirtualService/", 0) == 0 || ns.last().rfind("DestinationRule/", 0) == 0;
      routing_added += routing && !ns.last_was_there() && ns.last_is_there() && cache.incremental() > incremental;
      routing_removed += routing && ns.last_was_there() && !ns.last_is_there() && cache.incremental() > incremental;
      services_rewritten += ns.last().rfind("Service/", 0) == 0 && ns.last_was_there() && ns.last_is_there() &&
                            cache.incremental() > incremental;
    }
    CHECK(reported > 0);
    // Most loads were applied as changes (a load from scratch follows an object the compiler cannot
    // take as a change, e.g. a policy on the Gateway, or one rejected).
    INFO("incremental loads: " << cache.incremental() << ", routing objects created / deleted so: " << routing_added
                               << " / " << routing_removed << ", Services rewritten so: " << services_rewritten);
    CHECK(cache.incremental() > 150);
    CHECK(policies_applied > 0);
    CHECK(routing_added > 0);
    CHECK(routing_removed > 0);
    CHECK(services_rewritten > 0);
  }
}

TEST_CASE("object cache: an object whose JSON changed is decoded again, a deleted one forgotten",
          "[config][incremental]") {
  Namespace ns(7);
  ObjectCache cache;
  SourceObjects objects = ns.objects();
  served(objects, &cache);
  CHECK(cache.misses() == objects.size());
  CHECK(cache.hits() == 0);
  served(objects, &cache);
  CHECK(cache.hits() == objects.size());
  // The same objects at other addresses (as `validate` passes them): known by resourceVersion.
  SourceObjects copies;
  for (const auto& o : objects) {
    copies.push_back(std::make_shared<const SourceObject>(*o));
  }
  served(copies, &cache);
  CHECK(cache.hits() == 2 * objects.size());
  CHECK(cache.misses() == objects.size());
  objects.back() = rewritten(*objects.back(), "999");  // the same object written again
  objects.erase(objects.begin());
  served(objects, &cache);
  CHECK(cache.misses() == objects.size() + 2);
  CHECK(cache.size() == objects.size());
  // A second object of one kind and name (never from the API server) is decoded alone and
  // rejected, as from scratch (whose message names another line: objects' lines are the cache's).
  objects.push_back(objects.back());
  const std::string twice = "rejected " + objects.back()->kind + "/" + objects.back()->name;
  CHECK(served(objects, &cache).find(twice) != std::string::npos);
  CHECK(served(objects, nullptr).find(twice) != std::string::npos);
  CHECK(cache.size() == objects.size() - 1);
}

// What the API mode does while the first LISTs arrive: objects are read into the cache as they
// come, in parts, and nothing is compiled; the first load then reads nothing again, compiles from
// scratch (a cache that had applied changes before included), and serves what a load from scratch
// serves.
TEST_CASE("object cache: objects read ahead are not read again by the first load, which compiles everything",
          "[config][incremental]") {
  Namespace ns(21, true);
  SourceObjects objects = ns.objects();
  ObjectCache cache;
  // The kinds listed so far, then all of them (each read holds what the one before did).
  SourceObjects half(objects.begin(), objects.begin() + static_cast<std::ptrdiff_t>(objects.size() / 2));
  read_into_cache(kBootstrap, "waypoint.yaml", "default", half, cache);
  CHECK(cache.misses() == half.size());
  read_into_cache(kBootstrap, "waypoint.yaml", "default", objects, cache);
  CHECK(cache.misses() == objects.size());
  const uint64_t hits = cache.hits();
  CHECK(served(objects, &cache) == served(objects, nullptr));
  CHECK(cache.misses() == objects.size());  // the load read nothing again
  CHECK(cache.hits() - hits == objects.size());
  CHECK(cache.incremental() == 0);
  // A cache with a compile to update: changes read ahead are not applied to it as changes (the
  // load after them compiles from scratch) and are not read again.
  for (int i = 0; i < 5; ++i) {
    ns.change();
  }
  objects = ns.objects();
  const uint64_t misses = cache.misses();
  read_into_cache(kBootstrap, "waypoint.yaml", "default", objects, cache);
  const uint64_t read_ahead = cache.misses() - misses;
  CHECK(read_ahead > 0);
  CHECK(read_ahead <= 5 + 3);  // the objects the changes wrote (a pod's change may rewrite its slice)
  CHECK(served(objects, &cache) == served(objects, nullptr));
  CHECK(cache.misses() - misses == read_ahead);
  CHECK(cache.incremental() == 0);
}

TEST_CASE("object cache: objects without a resourceVersion are compared by their bytes", "[config][incremental]") {
  Namespace ns(11);
  ObjectCache cache;
  SourceObjects objects = ns.objects();
  for (auto& o : objects) {
    SourceObject copy = *o;
    copy.resource_version.clear();
    o = std::make_shared<const SourceObject>(std::move(copy));
  }
  served(objects, &cache);
  served(objects, &cache);
  CHECK(cache.hits() == objects.size());
  objects.back() = rewritten(*objects.back(), "");
  served(objects, &cache);
  CHECK(cache.misses() == objects.size() + 1);
  CHECK(served(objects, &cache) == served(objects, nullptr));
}

}  // namespace
}  // namespace wp::config
