// Seeing inside a running waypoint: Istio's metrics on the metrics port checked against traffic
// the test sent, the health port, and the admin API's endpoints parsed as what they claim to be.
#include <yaml-cpp/yaml.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <sstream>
#include <string>

#include "fixture.h"
#include "support/http_client.h"

using namespace wp::testing;
using namespace std::chrono_literals;

namespace {

// One sample line of the Prometheus text format: name, labels, value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses the exposition format strictly enough that a malformed line fails the test.
std::vector<Sample> parse_prometheus(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    Sample s;
    size_t i = line.find_first_of("{ ");
    REQUIRE(i != std::string::npos);
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        size_t eq = line.find('=', i);
        REQUIRE(eq != std::string::npos);
        std::string key = line.substr(i, eq - i);
        REQUIRE(line[eq + 1] == '"');
        std::string value;
        size_t j = eq + 2;
        for (; line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        s.labels[key] = value;
        i = j + 1;
        if (line[i] == ',') {
          ++i;
        }
      }
      ++i;
    }
    REQUIRE(line[i] == ' ');
    s.value = std::stod(line.substr(i + 1));
    out.push_back(std::move(s));
  }
  return out;
}

// The sum of the samples called `name` whose labels include all of `want`.
double total(const std::vector<Sample>& samples, const std::string& name,
             const std::map<std::string, std::string>& want) {
  double sum = 0;
  for (const auto& s : samples) {
    if (s.name != name) {
      continue;
    }
    bool match = true;
    for (const auto& [k, v] : want) {
      auto it = s.labels.find(k);
      match = match && it != s.labels.end() && it->second == v;
    }
    if (match) {
      sum += s.value;
    }
  }
  return sum;
}

struct ObservedMesh : Mesh {
  FakePod* web = nullptr;
  FakePod* echo = nullptr;
  ObservedMesh() {
    web = add_pod("web-v1-5d8f7b6c9d-x2x7k", 1, {{"app", "web"}, {"version", "v1"}}, http_pod());
    add_service("web", 100, 80, 8080, {{"app", "web"}}, "http");
    echo = add_pod("echo-0", 2, {{"app", "echo"}});
    add_service("echo", 101, 7000, 7000, {{"app", "echo"}}, "tcp");
    spec.extra_documents +=
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: no-admin, namespace: default}\nspec:\n"
        "  targetRefs: [{kind: Service, group: \"\", name: web}]\n  action: DENY\n"
        "  rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]\n";
  }
  wp::net::SockAddr metrics() { return env.addr(253, 15020); }
  wp::net::SockAddr health() { return env.addr(253, 15021); }
  std::vector<Sample> scrape(const std::string& path = "/stats/prometheus") {
    auto [status, body] = http_get(metrics(), path);
    REQUIRE(status == 200);
    return parse_prometheus(body);
  }
};

}  // namespace

TEST_CASE("metrics: requests and TCP tunnels counted with Istio's labels", "[observability]") {
  ObservedMesh m;
  REQUIRE(m.start() == "");
  {
    auto client = m.client();
    TestTunnel& t = client->open(m.env.addr(100, 80).to_string());
    Http1Conn c(*client, t);
    for (int i = 0; i < 5; ++i) {
      REQUIRE(c.request("GET", "/ok").status == 200);
    }
    for (int i = 0; i < 2; ++i) {
      REQUIRE(c.request("GET", "/admin/x").status == 403);
    }
    REQUIRE(c.request("GET", "/fail", {{"x-status", "503"}}).status == 503);
  }
  {
    auto client = m.client();
    TestTunnel& t = client->open(m.env.addr(101, 7000).to_string());
    client->run_until([&] { return t.done(); });
    REQUIRE(t.established());
    t.send("ping!");
    client->run_until([&] { return t.received.size() >= 5; }, 5s);
    REQUIRE(t.received == "ping!");
  }
  // The TCP tunnel's close is counted when the waypoint has seen both sides end.
  REQUIRE(m.waypoint->wait_stat("tunnels_active", [](int64_t v) { return v == 0; }));

  std::vector<Sample> s = m.scrape();
  const std::map<std::string, std::string> web = {{"reporter", "waypoint"},
                                                  {"source_principal", "spiffe://cluster.local/ns/default/sa/client"},
                                                  {"source_workload_namespace", "default"},
                                                  {"destination_service", "web.default.svc.cluster.local"},
                                                  {"destination_service_name", "web"},
                                                  {"destination_service_namespace", "default"},
                                                  {"request_protocol", "http"},
                                                  {"connection_security_policy", "mutual_tls"}};
  auto with = [](std::map<std::string, std::string> base, std::map<std::string, std::string> more) {
    base.insert(more.begin(), more.end());
    return base;
  };
  // 200s went to the pod: its workload (the Deployment part of the generated name), app, version.
  auto ok = with(web, {{"response_code", "200"},
                       {"response_flags", "-"},
                       {"destination_workload", "web-v1"},
                       {"destination_app", "web"},
                       {"destination_version", "v1"},
                       {"destination_principal", "spiffe://cluster.local/ns/default/sa/default"}});
  CHECK(total(s, "istio_requests_total", ok) == 5);
  CHECK(total(s, "istio_request_duration_milliseconds_count", ok) == 5);
  CHECK(total(s, "istio_request_duration_milliseconds_bucket", with(ok, {{"le", "+Inf"}})) == 5);
  CHECK(total(s, "istio_response_bytes_count", ok) == 5);
  CHECK(total(s, "istio_request_bytes_sum", ok) > 0);  // the request header fields at least
  // Denied requests never reached a pod: no destination workload.
  CHECK(total(s, "istio_requests_total", with(web, {{"response_code", "403"}, {"destination_workload", "unknown"}})) ==
        2);
  CHECK(total(s, "istio_requests_total", with(web, {{"response_code", "503"}, {"destination_workload", "web-v1"}})) ==
        1);
  CHECK(total(s, "istio_requests_total", {{"reporter", "waypoint"}}) == 8);

  const std::map<std::string, std::string> tcp = {{"destination_service", "echo.default.svc.cluster.local"},
                                                  {"destination_workload", "echo-0"},
                                                  {"request_protocol", "tcp"}};
  CHECK(total(s, "istio_tcp_connections_opened_total", tcp) == 1);
  CHECK(total(s, "istio_tcp_connections_closed_total", tcp) == 1);
  CHECK(total(s, "istio_tcp_received_bytes_total", tcp) == 5);
  CHECK(total(s, "istio_tcp_sent_bytes_total", tcp) == 5);
  // The proxy's own counters agree.
  CHECK(total(s, "waypoint_downstream_rq_total", {}) == 8);
  CHECK(total(s, "waypoint_local_replies_total", {{"cause", "authz_denied"}}) == 2);
  CHECK(total(s, "waypoint_handshake_failures_total", {}) == 0);
  CHECK(total(s, "waypoint_workers", {}) == 2);
  CHECK(total(s, "waypoint_ready", {}) == 1);
  // /metrics is the same page; the admin port serves it too.
  CHECK(total(m.scrape("/metrics"), "istio_requests_total", ok) == 5);
  auto [status, body] = http_get(m.spec.admin, "/stats/prometheus");
  CHECK(status == 200);
  CHECK(total(parse_prometheus(body), "istio_requests_total", ok) == 5);
}

TEST_CASE("admin: endpoints answer JSON and text, health follows readiness and drain", "[observability]") {
  ObservedMesh m;
  REQUIRE(m.start() == "");
  CHECK(http_get(m.health(), "/healthz/ready").first == 200);
  CHECK(http_get(m.health(), "/nope").first == 404);

  auto [dump_status, dump] = http_get(m.spec.admin, "/config_dump");
  REQUIRE(dump_status == 200);
  YAML::Node d = YAML::Load(dump);
  CHECK(d["version"].as<std::string>().size() >= 16);
  CHECK(!d["loaded_at"].as<std::string>().empty());
  for (const char* section : {"listeners", "clusters", "routes", "endpoints"}) {
    INFO(section);
    CHECK(d[section].IsSequence());
    auto [status, body] = http_get(m.spec.admin, std::string("/") + section);
    CHECK(status == 200);
    YAML::Node n = YAML::Load(body);
    REQUIRE(n.IsSequence());
    CHECK(n.size() == d[section].size());
  }
  CHECK(d["authorization"].IsMap());
  CHECK(dump.find("no-admin") != std::string::npos);

  CHECK(http_request(m.spec.admin, "POST", "/logging?level=debug").first == 200);
  CHECK(http_request(m.spec.admin, "POST", "/logging?level=loud").first == 400);
  CHECK(http_request(m.spec.admin, "PUT", "/stats").first == 405);
  CHECK(http_get(m.spec.admin, "/nope").first == 404);

  // An open connection keeps working after /drain_listeners; a new one is refused.
  auto client = m.client();
  TestTunnel& t = client->open(m.env.addr(100, 80).to_string());
  Http1Conn c(*client, t);
  REQUIRE(c.request("GET", "/before").status == 200);
  CHECK(http_request(m.spec.admin, "POST", "/drain_listeners").first == 200);
  CHECK(http_get(m.health(), "/healthz/ready").first == 503);
  CHECK(http_get(m.spec.admin, "/ready").first == 503);
  CHECK(c.request("GET", "/after").status == 200);
  ProbeOptions probe;
  probe.cert = m.client_id.cert;
  probe.key = m.client_id.key;
  probe.root = m.env.root_pem();
  CHECK_FALSE(tls_probe(m.spec.hbone, probe));
  CHECK(m.waypoint->stop() == 0);
}

TEST_CASE("proxy-config: tables from a running waypoint, with an ejected endpoint", "[observability]") {
  ObservedMesh m;
  m.spec.extra_documents +=
      "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
      "metadata: {name: web, namespace: default}\nspec:\n  host: web\n"
      "  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 60s, "
      "maxEjectionPercent: 100}}\n";
  m.spec.concurrency = 1;  // outlier detection is per worker: one worker sees every request
  REQUIRE(m.start() == "");
  std::string admin = m.spec.admin.to_string();
  auto proxy_config = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {waypoint_binary(), "proxy-config"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--admin");
    argv.push_back(admin);
    return run_command(argv);
  };
  std::string web_cluster = "inbound-vip|80|http|web.default.svc.cluster.local";
  std::string pod = "envoy://connect_originate/" + m.env.ip(1).to_string() + ":8080";

  auto [rc, endpoints] = proxy_config({"endpoints"});
  REQUIRE(rc == 0);
  CHECK(endpoints.rfind("ENDPOINT", 0) == 0);
  CHECK(endpoints.find("STATUS") != std::string::npos);
  CHECK(endpoints.find("OUTLIER CHECK") != std::string::npos);
  CHECK(endpoints.find(pod) != std::string::npos);
  CHECK(endpoints.find("FAILED") == std::string::npos);

  {
    auto client = m.client();
    TestTunnel& t = client->open(m.env.addr(100, 80).to_string());
    Http1Conn c(*client, t);
    REQUIRE(c.request("GET", "/boom", {{"x-status", "500"}}).status == 500);
    // The only host is ejected: the next request has nowhere to go.
    CHECK(c.request("GET", "/next").status == 503);
  }
  auto [rc2, after] = proxy_config({"endpoints", "--name", web_cluster});
  REQUIRE(rc2 == 0);
  CHECK(after.find(pod) != std::string::npos);
  CHECK(after.find("FAILED") != std::string::npos);
  CHECK(after.find("echo") == std::string::npos);  // --name kept only the web cluster

  auto [rc3, routes] = proxy_config({"routes", "-o", "json"});
  REQUIRE(rc3 == 0);
  YAML::Node r = YAML::Load(routes);
  REQUIRE(r.IsSequence());
  CHECK(routes.find(web_cluster) != std::string::npos);
  CHECK(routes.find("retry_policy") != std::string::npos);

  auto [rc4, listeners] = proxy_config({"listener"});
  REQUIRE(rc4 == 0);
  CHECK(listeners.find("LISTENER") == 0);
  CHECK(listeners.find("ip=" + m.env.ip(100).to_string() + " -> port=80") != std::string::npos);
  CHECK(listeners.find("direct-tcp") != std::string::npos);

  auto [rc5, outbound] = proxy_config({"clusters", "--direction", "outbound"});
  CHECK(rc5 == 0);
  CHECK(outbound.empty());

  // Unreachable admin API: a clear error, exit 1.
  auto [rc6, err] =
      run_command({waypoint_binary(), "proxy-config", "clusters", "--admin", m.env.addr(254, 1).to_string()});
  CHECK(rc6 == 1);
  CHECK(!err.empty());
}
