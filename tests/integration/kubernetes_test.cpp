// The Kubernetes API mode (SPEC §7) against the fake API server (tests/support/fake_apiserver.py,
// proved against python3-kubernetes and kubectl by fake_apiserver_test.py): readiness, a rolling
// update under load, an API server that restarts, compacts and rotates its token, objects that
// stand alone, a missing CRD, live weight changes, and `waypoint validate --kubernetes`.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"
#include "support/fake_apiserver.h"
#include "support/http_client.h"

using namespace wp::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

json gateway() {
  return {{"apiVersion", "gateway.networking.k8s.io/v1"},
          {"kind", "Gateway"},
          {"metadata", {{"name", "waypoint"}, {"namespace", "default"}}},
          {"spec",
           {{"gatewayClassName", "istio-waypoint"},
            {"listeners", json::array({{{"name", "mesh"}, {"port", 15008}, {"protocol", "HBONE"}}})}}}};
}

json service(const std::string& name, const std::string& vip) {
  return {
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata", {{"name", name}, {"namespace", "default"}}},
      {"spec",
       {{"clusterIP", vip},
        {"clusterIPs", json::array({vip})},
        {"type", "ClusterIP"},
        {"ports",
         json::array(
             {{{"name", "http"}, {"port", 80}, {"targetPort", 8080}, {"protocol", "TCP"}, {"appProtocol", "http"}}})},
        {"selector", {{"app", name}}}}}};
}

json pod(const std::string& name, const std::string& ip, const std::string& app, const std::string& version, bool ready,
         bool deleting = false) {
  json p = {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", {{"app", app}, {"version", version}}}}},
            {"spec", {{"serviceAccountName", app}, {"containers", json::array({{{"name", "app"}, {"image", "x"}}})}}},
            {"status",
             {{"phase", "Running"},
              {"podIP", ip},
              {"podIPs", json::array({{{"ip", ip}}})},
              {"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}}}};
  if (deleting) {
    p["metadata"]["deletionTimestamp"] = "2026-12-02T10:00:00Z";
  }
  return p;
}

struct SliceEndpoint {
  std::string pod;
  std::string ip;
  bool ready = true;
  bool terminating = false;
};

json slice(const std::string& service_name, const std::vector<SliceEndpoint>& endpoints) {
  json eps = json::array();
  for (const auto& e : endpoints) {
    eps.push_back(
        {{"addresses", json::array({e.ip})},
         {"conditions", {{"ready", e.ready}, {"serving", e.ready || e.terminating}, {"terminating", e.terminating}}},
         {"targetRef", {{"kind", "Pod"}, {"name", e.pod}, {"namespace", "default"}}}});
  }
  return {{"apiVersion", "discovery.k8s.io/v1"},
          {"kind", "EndpointSlice"},
          {"metadata",
           {{"name", service_name + "-abcde"},
            {"namespace", "default"},
            {"labels",
             {{"kubernetes.io/service-name", service_name},
              {"endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io"}}}}},
          {"addressType", "IPv4"},
          {"ports", json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})},
          {"endpoints", eps}};
}

json weights(int v1, int v2) {
  return {
      {"apiVersion", "networking.istio.io/v1"},
      {"kind", "VirtualService"},
      {"metadata", {{"name", "svc"}, {"namespace", "default"}}},
      {"spec",
       {{"hosts", json::array({"svc"})},
        {"http",
         json::array(
             {{{"route", json::array({{{"destination", {{"host", "svc"}, {"subset", "v1"}}}, {"weight", v1}},
                                      {{"destination", {{"host", "svc"}, {"subset", "v2"}}}, {"weight", v2}}})}}})}}}};
}

json subsets_rule() {
  return {{"apiVersion", "networking.istio.io/v1"},
          {"kind", "DestinationRule"},
          {"metadata", {{"name", "svc"}, {"namespace", "default"}}},
          {"spec",
           {{"host", "svc"},
            {"subsets", json::array({{{"name", "v1"}, {"labels", {{"version", "v1"}}}},
                                     {{"name", "v2"}, {"labels", {{"version", "v2"}}}}})}}}};
}

// A waypoint in the Kubernetes API mode: its file holds the bootstrap only; the Gateway, the
// Service svc (VIP host 100, port 80 -> 8080) and everything else come from the fake API server.
struct KubeMesh : Mesh {
  FakeApiServer api{env};
  std::string kubeconfig = api.write_kubeconfig("default");

  KubeMesh() { spec.bootstrap_only = true; }

  std::string svc() { return env.addr(100, 80).to_string(); }
  std::string ip(int host) { return env.ip(host).to_string(); }

  // Starts a fake pod (identity default/sa svc) at host; nothing is published.
  void run_pod(const std::string& name, int host) {
    PodOptions o = http_pod();
    o.service_account = "svc";
    add_pod(name, host, {}, o);
    spec.pods.clear();  // only the API says which pods exist
  }

  std::string start_kube(const std::string& extra = "") {
    spec.extra_bootstrap = "  kubernetes: {kubeconfig: " + kubeconfig + ", namespace: default}\n" + extra;
    return start();
  }

  int health() { return http_get(env.addr(253, 15021), "/healthz/ready").first; }
  bool wait_health(int status, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (health() == status) {
        return true;
      }
      std::this_thread::sleep_for(10ms);  // polling readiness
    }
    return false;
  }
  std::string metrics() { return http_get(env.addr(253, 15020), "/stats/prometheus").second; }
  double metric(const std::string& series) {
    std::istringstream in(metrics());
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(series + " ", 0) == 0) {
        return std::stod(line.substr(series.size() + 1));
      }
    }
    return -1;
  }
  json config_dump() { return json::parse(http_get(spec.admin, "/config_dump").second); }
};

// Continuous HTTP load through the VIP from its own thread: keep-alive tunnels, a fresh tunnel
// every 20 requests; records which pod answered each request, and when.
class Load {
 public:
  explicit Load(KubeMesh& m) : m_(m), thread_([this] { run(); }) {}
  ~Load() { stop(); }
  void stop() {
    running_ = false;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  size_t done() const { return done_.load(); }
  void wait_more(size_t n) {
    size_t from = done_.load();
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (done_.load() < from + n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);  // waiting for the load thread's progress
    }
  }
  // The first time `pod` answered after `since`, or nullopt.
  std::optional<std::chrono::steady_clock::time_point> first_answer(const std::string& pod,
                                                                    std::chrono::steady_clock::time_point since) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [when, who] : answers_) {
      if (who == pod && when >= since) {
        return when;
      }
    }
    return std::nullopt;
  }
  std::map<int, int> statuses() {
    std::lock_guard<std::mutex> lock(mu_);
    return statuses_;
  }
  std::map<std::string, int> by_pod(size_t from) {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, int> out;
    for (size_t i = from; i < answers_.size(); ++i) {
      ++out[answers_[i].second];
    }
    return out;
  }

 private:
  void run() {
    auto client = m_.client();
    while (running_) {
      TestTunnel& t = client->open(m_.svc());
      Http1Conn c(*client, t);
      for (int i = 0; i < 20 && running_; ++i) {
        HttpResponse r = c.request("GET", "/load");
        auto now = std::chrono::steady_clock::now();
        std::lock_guard<std::mutex> lock(mu_);
        statuses_[r.status]++;
        answers_.emplace_back(now, r.header("x-pod"));
        done_++;
        if (r.status != 200) {
          break;
        }
        // About 500 requests/s: steady, and light enough for two cores shared with the pods.
        std::this_thread::sleep_for(1ms);
      }
    }
  }
  KubeMesh& m_;
  std::atomic<bool> running_{true};
  std::atomic<size_t> done_{0};
  std::mutex mu_;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> answers_;
  std::map<int, int> statuses_;
  std::thread thread_;
};

}  // namespace

TEST_CASE(
    "kubernetes: readiness waits for every kind's first LIST, a rolling update of 10 pods under load loses "
    "no request and each new pod is used within 1 s of becoming ready",
    "[kubernetes]") {
  KubeMesh m;
  // Two replicas to begin with.
  std::vector<std::pair<std::string, int>> live = {{"svc-a1", 1}, {"svc-a2", 2}};
  for (const auto& [name, host] : live) {
    m.run_pod(name, host);
  }
  json objects = json::array({gateway(), service("svc", m.ip(100))});
  std::vector<SliceEndpoint> endpoints;
  for (const auto& [name, host] : live) {
    objects.push_back(pod(name, m.ip(host), "svc", "v1", true));
    endpoints.push_back({name, m.ip(host)});
  }
  objects.push_back(slice("svc", endpoints));
  m.api.apply(objects);
  // Pods cannot be listed yet (RBAC not granted): the waypoint runs but is not ready.
  m.api.control("fault", R"({"plural":"pods","status":403})");
  REQUIRE(m.start_kube() == "");
  std::this_thread::sleep_for(600ms);  // long enough for every other kind's LIST and a retry of pods
  CHECK(m.health() == 503);
  // Nothing of a namespace listed in part is served (its Service without the pods, or before its
  // policies): the bootstrap alone until every kind is listed.
  json before = m.config_dump();
  CHECK(before["gateway"] == "");
  CHECK(before["clusters"].dump().find("svc") == std::string::npos);
  m.api.control("fault", R"({"plural":"pods","status":0})");
  REQUIRE(m.wait_health(200, 15s));
  CHECK(m.metric("waypoint_kubernetes_watch_errors_total{kind=\"Pod\"}") >= 1);
  CHECK(m.metric("waypoint_kubernetes_last_sync_timestamp_seconds{kind=\"Pod\"}") > 1'700'000'000);

  Load load(m);
  load.wait_more(100);
  for (int i = 1; i <= 10; ++i) {
    INFO("new pod " << i);
    std::string name = "svc-b" + std::to_string(i);
    int host = 10 + i;
    m.run_pod(name, host);
    // Scheduled, not ready yet: an endpoint with ready false.
    endpoints.push_back({name, m.ip(host), false});
    m.api.apply(json::array({pod(name, m.ip(host), "svc", "v1", false), slice("svc", endpoints)}));
    std::this_thread::sleep_for(100ms);
    // Ready.
    endpoints.back().ready = true;
    auto ready_at = std::chrono::steady_clock::now();
    m.api.apply(json::array({pod(name, m.ip(host), "svc", "v1", true), slice("svc", endpoints)}));
    // The oldest pod terminates: not ready, its endpoint terminating, then gone.
    auto [old_name, old_host] = live.front();
    live.erase(live.begin());
    live.emplace_back(name, host);
    for (auto& e : endpoints) {
      if (e.pod == old_name) {
        e.ready = false;
        e.terminating = true;
      }
    }
    m.api.apply(json::array({pod(old_name, m.ip(old_host), "svc", "v1", true, true), slice("svc", endpoints)}));
    // The new pod must take requests within 1 s of becoming ready.
    auto deadline = ready_at + 1s;
    std::optional<std::chrono::steady_clock::time_point> first;
    while (!(first = load.first_answer(name, ready_at)) && std::chrono::steady_clock::now() < deadline + 200ms) {
      std::this_thread::sleep_for(5ms);  // polling the load's record
    }
    REQUIRE(first.has_value());
    CHECK(*first - ready_at <= 1s);
    // The terminating pod keeps serving what it has (its grace period), then goes.
    std::this_thread::sleep_for(300ms);
    std::erase_if(endpoints, [&](const SliceEndpoint& e) { return e.pod == old_name; });
    m.api.apply(json::array({slice("svc", endpoints)}));
    m.api.remove("Pod", old_name);
    std::this_thread::sleep_for(200ms);
    std::erase_if(m.pods, [&](const std::unique_ptr<FakePod>& p) { return p->name() == old_name; });
  }
  size_t mark = load.done();
  load.wait_more(200);
  auto recent = load.by_pod(mark);
  load.stop();
  auto statuses = load.statuses();
  INFO("responses by status: 200 x " << statuses[200] << ", " << statuses.size() << " statuses");
  CHECK(statuses.size() == 1);
  CHECK(statuses[200] > 1000);
  // Only the last two pods answer now.
  int others = 0;
  for (const auto& [who, n] : recent) {
    others += who == "svc-b9" || who == "svc-b10" ? 0 : n;
  }
  CHECK(others == 0);
  CHECK(m.metric("waypoint_kubernetes_events_total{kind=\"EndpointSlice\",type=\"MODIFIED\"}") >= 30);
  // Pod and slice churn was applied on top of the previous compile (the rest of the snapshot
  // shared), and the reloads' CPU is counted.
  CHECK(m.metric("waypoint_config_incremental_loads_total") >= 10);
  CHECK(m.metric("waypoint_config_load_cpu_seconds_total") > 0);
}

TEST_CASE(
    "kubernetes: an API server restart, a 410 relist and a token rotation lose no request, the state "
    "converges after each",
    "[kubernetes]") {
  KubeMesh m;
  m.run_pod("svc-a1", 1);
  int next_host = 2;
  std::vector<SliceEndpoint> endpoints = {{"svc-a1", m.ip(1)}};
  m.api.apply(json::array(
      {gateway(), service("svc", m.ip(100)), pod("svc-a1", m.ip(1), "svc", "v1", true), slice("svc", endpoints)}));
  REQUIRE(m.start_kube() == "");
  REQUIRE(m.wait_health(200));
  Load load(m);
  load.wait_more(50);

  // Adds a pod, then waits until the load reaches it (the state converged).
  auto scale_up = [&](const char* after) {
    INFO("after " << after);
    std::string name = "svc-n" + std::to_string(next_host);
    int host = next_host++;
    m.run_pod(name, host);
    endpoints.push_back({name, m.ip(host)});
    auto at = std::chrono::steady_clock::now();
    m.api.apply(json::array({pod(name, m.ip(host), "svc", "v1", true), slice("svc", endpoints)}));
    auto deadline = at + 15s;
    while (!load.first_answer(name, at) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);  // polling the load's record
    }
    CHECK(load.first_answer(name, at).has_value());
  };

  // 1. Restarted mid-watch: down for 700 ms, every connection cut; the waypoint keeps serving,
  //    stays ready, and resumes its watches from the last resourceVersion.
  int64_t errors_before = m.metric("waypoint_kubernetes_watch_errors_total{kind=\"EndpointSlice\"}");
  m.api.control("restart?down_ms=700");
  std::this_thread::sleep_for(200ms);
  CHECK(m.health() == 200);
  scale_up("a restart");
  CHECK(m.metric("waypoint_kubernetes_watch_errors_total{kind=\"EndpointSlice\"}") > errors_before);

  // 2. History compacted, then the watches dropped: resuming gets 410, and a fresh LIST picks up
  //    what changed meanwhile (a pod added while no watch was open).
  int64_t lists_before = m.api.stats()["lists"].value("endpointslices", 0);
  m.api.control("stall?on=1");
  std::string name = "svc-n" + std::to_string(next_host);
  int host = next_host++;
  m.run_pod(name, host);
  endpoints.push_back({name, m.ip(host)});
  auto at = std::chrono::steady_clock::now();
  m.api.apply(json::array({pod(name, m.ip(host), "svc", "v1", true), slice("svc", endpoints)}));
  m.api.control("compact");
  m.api.control("drop");
  m.api.control("stall?on=0");
  auto deadline = at + 15s;
  while (!load.first_answer(name, at) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);  // polling the load's record
  }
  CHECK(load.first_answer(name, at).has_value());
  CHECK(m.api.stats()["lists"].value("endpointslices", 0) > lists_before);

  // 3. The projected token rotates: the next requests carry the new one (the file is re-read).
  m.api.rotate_token("rotated-token-2");
  m.api.control("drop");  // the watches reconnect, with the new token
  scale_up("a token rotation");
  auto auth = m.api.stats()["auth"];
  INFO(auth.dump());
  CHECK(auth["last"]["valid"] == true);

  load.stop();
  auto statuses = load.statuses();
  INFO("responses by status: 200 x " << statuses[200]);
  CHECK(statuses.size() == 1);
  CHECK(m.health() == 200);
}

TEST_CASE(
    "kubernetes: a bad object is rejected alone and reported, a missing CRD is skipped, weights change live, "
    "validate --kubernetes lists the same",
    "[kubernetes]") {
  KubeMesh m;
  m.run_pod("svc-v1", 1);
  m.run_pod("svc-v2", 2);
  m.api.apply(json::array({gateway(), service("svc", m.ip(100)), pod("svc-v1", m.ip(1), "svc", "v1", true),
                           pod("svc-v2", m.ip(2), "svc", "v2", true),
                           slice("svc", {{"svc-v1", m.ip(1)}, {"svc-v2", m.ip(2)}}), subsets_rule(), weights(100, 0)}));
  // A neighbour that cannot be applied: `http` is not a list.
  json bad = weights(100, 0);
  bad["metadata"]["name"] = "broken";
  bad["spec"] = {{"hosts", json::array({"svc"})}, {"http", 7}};
  m.api.apply(bad);
  m.api.control("fault", R"({"plural":"httproutes","status":404})");  // the Gateway API CRDs lack HTTPRoute
  REQUIRE(m.start_kube() == "");
  REQUIRE(m.wait_health(200));

  auto client = m.client();
  auto answers = [&](int n) {
    std::map<std::string, int> by;
    TestTunnel& t = client->open(m.svc());
    Http1Conn c(*client, t);
    for (int i = 0; i < n; ++i) {
      HttpResponse r = c.request("GET", "/");
      ++by[r.status == 200 ? r.header("x-pod") : "status " + std::to_string(r.status)];
    }
    return by;
  };
  CHECK(answers(20) == std::map<std::string, int>{{"svc-v1", 20}});

  json dump = m.config_dump();
  REQUIRE(dump["rejected"].size() == 1);
  CHECK(dump["rejected"][0]["kind"] == "VirtualService");
  CHECK(dump["rejected"][0]["name"] == "broken");
  CHECK(dump["rejected"][0]["resourceVersion"].get<std::string>() != "");
  CHECK(dump["rejected"][0]["reason"].get<std::string>().find("spec.http: expected a list") != std::string::npos);
  CHECK(m.metric("waypoint_config_rejected_objects{kind=\"VirtualService\"}") == 1);
  CHECK(m.metric("waypoint_config_rejected_objects{kind=\"Service\"}") == 0);
  std::string log = m.waypoint->log();
  CHECK(log.find("VirtualService broken (resourceVersion") != std::string::npos);
  CHECK(log.find("httproutes not served by the API server (404") != std::string::npos);

  // Weights changed live, twice; each applies within a second.
  for (auto [v1, v2] : {std::pair{0, 100}, std::pair{100, 0}}) {
    m.api.apply(weights(v1, v2));
    std::string want = v1 == 100 ? "svc-v1" : "svc-v2";
    auto deadline = std::chrono::steady_clock::now() + 2s;
    std::map<std::string, int> got;
    while (std::chrono::steady_clock::now() < deadline) {
      got = answers(10);
      if (got == std::map<std::string, int>{{want, 10}}) {
        break;
      }
      std::this_thread::sleep_for(20ms);  // the change is compiled (at most one reload per 50 ms)
    }
    CHECK(got == std::map<std::string, int>{{want, 10}});
  }
  // The rejected object is logged once per version, however many snapshots were built since.
  log = m.waypoint->log();
  size_t lines = 0;
  for (size_t at = log.find("VirtualService broken (resourceVersion"); at != std::string::npos;
       at = log.find("VirtualService broken (resourceVersion", at + 1)) {
    ++lines;
  }
  CHECK(lines == 1);

  // Deleting it clears the report.
  m.api.remove("VirtualService", "broken");
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (m.metric("waypoint_config_rejected_objects{kind=\"VirtualService\"}") != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);  // polling the metrics page
  }
  CHECK(m.metric("waypoint_config_rejected_objects{kind=\"VirtualService\"}") == 0);

  // The CLI reads the same namespace once and says the same.
  m.api.apply(bad);
  auto [status, out] = run_command({waypoint_binary(), "validate", "--kubernetes", "--kubeconfig", m.kubeconfig});
  INFO(out);
  CHECK(status == 1);
  CHECK(out.find("namespace default") != std::string::npos);
  CHECK(out.find("httproutes: 404") != std::string::npos);
  CHECK(out.find("rejected (1):") != std::string::npos);
  CHECK(out.find("VirtualService/broken") != std::string::npos);
  CHECK(out.find("inbound-vip|80|http|svc.default.svc.cluster.local") != std::string::npos);
}
