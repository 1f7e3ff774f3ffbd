// Running for months: config reloads under load (file replaced, ConfigMap-style symlink swap,
// SIGHUP, a bad file), certificate rotation, and the drain on SIGTERM.
#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"
#include "support/http_client.h"
#include "waypoint/config/snapshot.h"

using namespace wp::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string weights_config(const TestEnv& env, ConfigSpec spec, int v1, int v2) {
  spec.extra_documents +=
      "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
      "metadata: {name: svc, namespace: default}\nspec:\n  hosts: [svc]\n  http:\n  - route:\n"
      "    - {destination: {host: svc, subset: v1}, weight: " +
      std::to_string(v1) + "}\n    - {destination: {host: svc, subset: v2}, weight: " + std::to_string(v2) + "}\n";
  return render_config(env, spec);
}

std::string weights_config(Mesh& m, int v1, int v2) {
  return weights_config(m.env, m.spec, v1, v2);
}

// Two pods of one HTTP service, v1 and v2, with a DestinationRule naming the subsets.
struct SplitMesh : Mesh {
  SplitMesh() {
    add_pod("svc-v1", 1, {{"app", "svc"}, {"version", "v1"}}, http_pod());
    add_pod("svc-v2", 2, {{"app", "svc"}, {"version", "v2"}}, http_pod());
    add_service("svc", 100, 80, 8080, {{"app", "svc"}}, "http");
    spec.extra_documents +=
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: svc, namespace: default}\nspec:\n  host: svc\n  subsets:\n"
        "  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";
  }
  std::string svc() { return env.addr(100, 80).to_string(); }
  // Writes the config with these weights and starts the waypoint on it; returns the file's path.
  std::string start_with(int v1, int v2) {
    std::string path = env.write("waypoint.yaml", weights_config(env, spec, v1, v2));
    waypoint = std::make_unique<WaypointProcess>(env, path, spec.admin);
    REQUIRE(waypoint->start());
    return path;
  }
  std::string version() {
    auto [status, body] = http_get(spec.admin, "/config_dump");
    auto at = body.find("\"version\":");
    if (status != 200 || at == std::string::npos) {
      return "";
    }
    auto start = body.find('"', at + 10) + 1;
    return body.substr(start, body.find('"', start) - start);
  }
  bool wait_version(const std::string& v, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (version() == v) {
        return true;
      }
      std::this_thread::sleep_for(5ms);  // polling the admin API for the switch
    }
    return false;
  }
  // A counter of the metrics page ("waypoint_config_loads_total{result=\"ok\"}" ...).
  int64_t metric(const std::string& line_prefix) {
    auto [status, body] = http_get(env.addr(253, 15020), "/stats/prometheus");
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(line_prefix + " ", 0) == 0) {
        return std::stoll(line.substr(line_prefix.size() + 1));
      }
    }
    return -1;
  }
  bool wait_metric(const std::string& prefix, int64_t value, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (metric(prefix) == value) {
        return true;
      }
      std::this_thread::sleep_for(10ms);  // polling the metrics page
    }
    return false;
  }
};

// Continuous HTTP load from its own thread and client: keep-alive tunnels, a fresh tunnel every
// 25 requests. Records which pod answered each request, in completion order.
class Load {
 public:
  explicit Load(SplitMesh& m) : m_(m), thread_([this] { run(); }) {}
  ~Load() { stop(); }
  void stop() {
    running_ = false;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  size_t done() const { return done_.load(); }
  // Waits for `n` more responses after now; returns the index of the first of them.
  size_t mark_and_wait(size_t n) {
    size_t from = done_.load();
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (done_.load() < from + n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);  // waiting for the load thread's progress
    }
    return from;
  }
  std::vector<std::string> pods(size_t from, size_t to) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::vector<std::string>(pods_.begin() + static_cast<long>(from),
                                    pods_.begin() + static_cast<long>(std::min(to, pods_.size())));
  }
  std::map<int, int> statuses() {
    std::lock_guard<std::mutex> lock(mu_);
    return statuses_;
  }

 private:
  void run() {
    auto client = m_.client();
    while (running_) {
      TestTunnel& t = client->open(m_.svc());
      Http1Conn c(*client, t);
      for (int i = 0; i < 25 && running_; ++i) {
        HttpResponse r = c.request("GET", "/load");
        std::lock_guard<std::mutex> lock(mu_);
        statuses_[r.status]++;
        pods_.push_back(r.header("x-pod"));
        done_++;
        if (r.status != 200) {
          break;
        }
      }
    }
  }
  SplitMesh& m_;
  std::atomic<bool> running_{true};
  std::atomic<size_t> done_{0};
  std::mutex mu_;
  std::vector<std::string> pods_;
  std::map<int, int> statuses_;
  std::thread thread_;
};

int count(const std::vector<std::string>& pods, const std::string& name) {
  return static_cast<int>(std::count(pods.begin(), pods.end(), name));
}

}  // namespace

TEST_CASE("reload: 20 weight changes under load lose no request and the split follows each", "[operate]") {
  SplitMesh m;
  // The ConfigMap layout: waypoint.yaml -> ..data/waypoint.yaml, ..data -> v0/.
  fs::path dir = fs::path(m.env.dir()) / "configmap";
  fs::create_directories(dir / "v0");
  auto publish = [&](int n, const std::string& text) {
    std::string name = std::string("v").append(std::to_string(n));
    fs::create_directories(dir / name);
    m.env.write("configmap/" + name + "/waypoint.yaml", text);
    if (n == 0) {
      fs::create_directory_symlink(name, dir / "..data");
      fs::create_symlink("..data/waypoint.yaml", dir / "waypoint.yaml");
    } else if (n % 2 == 1) {
      fs::remove(dir / "..data_tmp");
      fs::create_directory_symlink(name, dir / "..data_tmp");
      fs::rename(dir / "..data_tmp", dir / "..data");  // the kubelet's atomic swap
    } else {
      // An editor's save: a new file renamed over the target of the symlink chain.
      fs::path target = fs::canonical(dir / "waypoint.yaml");
      m.env.write("configmap/new.yaml", text);
      fs::rename(dir / "new.yaml", target);
    }
    return wp::config::version_of(text);
  };
  const std::pair<int, int> steps[] = {{90, 10}, {0, 100}, {100, 0}};
  publish(0, weights_config(m, 90, 10));
  m.waypoint = std::make_unique<WaypointProcess>(m.env, (dir / "waypoint.yaml").string(), m.spec.admin);
  std::string log;
  REQUIRE(m.waypoint->start(&log));

  Load load(m);
  load.mark_and_wait(50);
  for (int i = 1; i <= 20; ++i) {
    auto [v1, v2] = steps[i % 3];
    INFO("reload " << i << ": " << v1 << "/" << v2);
    std::string version = publish(i, weights_config(m, v1, v2));
    if (!m.wait_version(version)) {
      FAIL(m.waypoint->log());
    }
    // Requests that started before every worker switched may still complete on the old split.
    size_t from = load.mark_and_wait(3);
    size_t at = load.mark_and_wait(40);
    std::vector<std::string> pods = load.pods(at, at + 40);
    REQUIRE(pods.size() == 40);
    (void)from;
    if (v1 == 0) {
      CHECK(count(pods, "svc-v2") == 40);
    } else if (v2 == 0) {
      CHECK(count(pods, "svc-v1") == 40);
    } else {
      CHECK(count(pods, "svc-v1") >= 26);  // 90 %: 36 expected, fewer than 26 is < 1e-6 likely
      CHECK(count(pods, "svc-v1") + count(pods, "svc-v2") == 40);
    }
  }
  CHECK(m.metric("waypoint_config_loads_total{result=\"ok\"}") == 21);

  // A bad file: rejected with its FILE:LINE:COL, counted; the config in force stays.
  std::string good = m.version();
  publish(21, weights_config(m, 100, 0) +
                  "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                  "metadata: {name: broken, namespace: default}\nspec: {hosts: [svc], http: 7}\n");
  REQUIRE(m.wait_metric("waypoint_config_loads_total{result=\"failed\"}", 1));
  CHECK(m.version() == good);
  CHECK(m.waypoint->log().find("waypoint.yaml:") != std::string::npos);
  CHECK(m.waypoint->log().find("config reload rejected") != std::string::npos);
  load.mark_and_wait(20);

  // SIGHUP reloads too (here: the same bytes, so nothing changes and nothing is counted).
  m.waypoint->signal(SIGHUP);
  load.mark_and_wait(20);
  load.stop();
  CHECK(m.version() == good);
  CHECK(m.metric("waypoint_config_loads_total{result=\"ok\"}") == 21);
  auto statuses = load.statuses();
  INFO("responses by status: 200 x " << statuses[200]);
  CHECK(statuses.size() == 1);
  CHECK(statuses[200] > 800);
  CHECK(m.stop_waypoint() == 0);
}

TEST_CASE("reload: a removed pod's pooled connection drains and closes, a policy change applies to the next request",
          "[operate]") {
  SplitMesh m;
  std::string path = m.start_with(0, 100);
  auto client = m.client();
  TestTunnel& t = client->open(m.svc());
  auto c = std::make_unique<Http1Conn>(*client, t);
  REQUIRE(c->request("GET", "/a").status == 200);
  REQUIRE(m.pods[1]->connections() == 1);

  // v2's pod leaves the config; an AuthorizationPolicy now denies /secret. The same kept-alive
  // tunnel carries the next requests: they run on the new config.
  ConfigSpec spec = m.spec;
  spec.pods.pop_back();
  spec.extra_documents +=
      "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
      "metadata: {name: no-secret, namespace: default}\nspec:\n"
      "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]\n  action: DENY\n"
      "  rules: [{to: [{operation: {paths: [\"/secret\"]}}]}]\n";
  std::string text = weights_config(m.env, spec, 100, 0);
  m.env.write("new.yaml", text);
  fs::rename(fs::path(m.env.dir()) / "new.yaml", path);
  REQUIRE(m.wait_version(wp::config::version_of(text)));
  CHECK(c->request("GET", "/secret").status == 403);
  HttpResponse r = c->request("GET", "/b");
  CHECK(r.status == 200);
  CHECK(r.header("x-pod") == "svc-v1");
  // The pooled connection to the removed pod got a GOAWAY and closed once idle.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (m.pods[1]->active_tunnels() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);  // polling the pod's counter
  }
  CHECK(m.pods[1]->active_tunnels() == 0);
  c.reset();
  client.reset();
  CHECK(m.stop_waypoint() == 0);
}

TEST_CASE("certificates: rotated under load, new handshakes get the new one, open connections go on", "[operate]") {
  SplitMesh m;
  m.start_with(50, 50);
  ProbeOptions probe;
  probe.cert = m.client_id.cert;
  probe.key = m.client_id.key;
  probe.root = m.env.root_pem();
  std::string before;
  REQUIRE(tls_probe(m.spec.hbone, probe, &before));

  auto early = m.client();
  TestTunnel& t = early->open(m.svc());
  auto c = std::make_unique<Http1Conn>(*early, t);
  REQUIRE(c->request("GET", "/before").status == 200);

  Load load(m);
  load.mark_and_wait(30);
  // Same SPIFFE ID, new key and certificate, written as cert-manager does: new files renamed in.
  Identity next = m.env.identity("waypoint-next", "default", "waypoint");
  auto replace = [&](const std::string& from, const std::string& to) {
    fs::copy_file(from, to + ".tmp", fs::copy_options::overwrite_existing);
    fs::rename(to + ".tmp", to);
  };
  replace(next.key, m.env.waypoint().key);
  replace(next.cert, m.env.waypoint().cert);
  if (!m.wait_metric("waypoint_certificate_loads_total{result=\"ok\"}", 2)) {
    FAIL(m.waypoint->log());
  }
  std::string after;
  REQUIRE(tls_probe(m.spec.hbone, probe, &after));
  CHECK(after != before);
  CHECK(c->request("GET", "/on-the-old-connection").status == 200);
  load.mark_and_wait(30);

  // A broken certificate is refused and counted; handshakes keep the rotated one.
  int64_t failed = m.metric("waypoint_certificate_loads_total{result=\"failed\"}");
  m.env.write("broken.pem", "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
  fs::rename(fs::path(m.env.dir()) / "broken.pem", m.env.waypoint().cert);
  REQUIRE(m.wait_metric("waypoint_certificate_loads_total{result=\"failed\"}", failed + 1));
  std::string still;
  CHECK(tls_probe(m.spec.hbone, probe, &still));
  CHECK(still == after);
  load.mark_and_wait(30);
  load.stop();
  auto statuses = load.statuses();
  CHECK(statuses.size() == 1);
  CHECK(statuses[200] >= 90);
  c.reset();
  early.reset();
  CHECK(m.stop_waypoint() == 0);
}

TEST_CASE("drain: SIGTERM lets a long request finish, refuses new tunnels, exits 0", "[operate]") {
  SplitMesh m;
  m.start_with(100, 0);
  auto client = m.client();
  TestTunnel& t = client->open(m.svc());
  auto c = std::make_unique<Http1Conn>(*client, t);
  REQUIRE(c->request("GET", "/warm").status == 200);

  std::atomic<int> ready_during_drain{0};
  std::thread signaller([&] {
    std::this_thread::sleep_for(300ms);  // the request below is in flight by then
    m.waypoint->signal(SIGTERM);
    std::this_thread::sleep_for(200ms);
    ready_during_drain = http_get(m.env.addr(253, 15021), "/healthz/ready").first;
  });
  HttpResponse slow = c->request("GET", "/slow", {{"x-delay-ms", "1500"}});
  signaller.join();
  CHECK(slow.status == 200);
  CHECK(ready_during_drain == 503);
  // GOAWAY came on the open connection: a new tunnel needs a new connection, which is refused.
  TestTunnel& late = client->open(m.svc());
  client->run_until([&] { return late.done(); }, 5s);
  CHECK_FALSE(late.established());
  ProbeOptions probe;
  probe.cert = m.client_id.cert;
  probe.key = m.client_id.key;
  probe.root = m.env.root_pem();
  CHECK_FALSE(tls_probe(m.spec.hbone, probe));
  c.reset();
  client.reset();  // the last connection goes: the waypoint exits before the drain time ends
  CHECK(m.waypoint->wait(4s) == 0);
}

TEST_CASE("drain: a second signal exits at once", "[operate]") {
  SplitMesh m;
  m.start_with(100, 0);
  auto client = m.client();
  TestTunnel& t = client->open(m.svc());
  Http1Conn c(*client, t);
  REQUIRE(c.request("GET", "/warm").status == 200);
  m.waypoint->signal(SIGTERM);
  REQUIRE(m.waypoint->wait(300ms) == -1);  // draining: our connection is still open
  auto start = std::chrono::steady_clock::now();
  m.waypoint->signal(SIGINT);
  CHECK(m.waypoint->wait(2s) == 0);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}
