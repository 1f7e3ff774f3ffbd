#include "waypoint/admin/config_dump.h"

#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <re2/re2.h>
#include <string>
#include <vector>

#include "admin_fixtures.h"

namespace wp::admin {
namespace {

constexpr const char* kReviewsV2 = "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local";

YAML::Node find(const YAML::Node& list, const std::string& key, const std::string& value) {
  for (const auto& item : list) {
    if (item[key] && item[key].as<std::string>() == value) {
      return item;
    }
  }
  FAIL("no element with " << key << " = " << value);
  return {};
}

size_t endpoint_count(const config::Snapshot& s) {
  size_t n = 0;
  for (const auto& [name, c] : s.clusters) {
    n += c->endpoints.size();
  }
  return n;
}

TEST_CASE("config_dump: bookinfo is described exactly as compiled", "[admin]") {
  auto s = testing::bookinfo();
  size_t lookups = 0;
  HostLookup lookup = [&](const config::RoutedCluster&, size_t) {
    ++lookups;
    return HostRuntime{};
  };
  YAML::Node dump = YAML::Load(config_dump_json(*s, lookup));
  REQUIRE(dump.IsMap());
  CHECK(dump["version"].as<std::string>() == s->version);
  CHECK(RE2::FullMatch(dump["loaded_at"].as<std::string>(), R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"));
  CHECK(dump["source_file"].as<std::string>() == s->source_file);
  CHECK(dump["namespace"].as<std::string>() == "default");
  CHECK(dump["gateway"].as<std::string>() == "waypoint");

  // connect_terminate, one entry per VIP:port, one per pod IP.
  CHECK(dump["listeners"].size() == 1 + s->vip_chains.size() + s->pods_by_ip.size());
  CHECK(dump["listeners"].size() == 11);
  // The route tables' clusters plus connect_originate, encap and main_internal (all ports are HTTP).
  CHECK(dump["clusters"].size() == s->clusters.size() + 3);
  CHECK(dump["routes"].size() == s->route_tables.size() + s->tcp_routes.size());
  CHECK(dump["endpoints"].size() == s->clusters.size());
  size_t endpoints = 0;
  for (const auto& c : dump["endpoints"]) {
    endpoints += c["endpoints"].size();
  }
  CHECK(endpoints == endpoint_count(*s));
  CHECK(lookups == endpoints);
  CHECK(dump["authorization"]["policy_count"].as<int>() == 0);
  CHECK(dump["authorization"]["services"].size() == s->authz_services.size());

  YAML::Node hbone = dump["listeners"][0];
  CHECK(hbone["name"].as<std::string>() == "connect_terminate");
  CHECK(hbone["address"].as<std::string>() == "0.0.0.0:15008");

  YAML::Node reviews = find(dump["routes"], "name", "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  CHECK(reviews["vip"].as<std::string>() == "10.96.0.20:9080");
  REQUIRE(reviews["routes"].size() == 1);
  YAML::Node split = reviews["routes"][0];
  CHECK(split["name"].as<std::string>() == "reviews-split");
  CHECK(split["source"].as<std::string>() == "VirtualService reviews");
  CHECK(split["virtual_service"].as<std::string>() == "reviews.default");
  REQUIRE(split["weighted_clusters"].size() == 2);
  CHECK(split["weighted_clusters"][0]["cluster"].as<std::string>() ==
        "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local");
  CHECK(split["weighted_clusters"][0]["weight"].as<int>() == 90);
  CHECK(split["weighted_clusters"][0]["percent"].as<double>() == 90.0);
  CHECK(split["weighted_clusters"][1]["cluster"].as<std::string>() == kReviewsV2);
  CHECK(split["weighted_clusters"][1]["weight"].as<int>() == 10);
  CHECK(split["retry_policy"]["num_retries"].as<int>() == 2);
  CHECK(split["retry_policy"]["retry_on"].as<std::string>() ==
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
  CHECK(split["retry_policy"]["retriable_status_codes"][0].as<int>() == 503);
  CHECK(split["timeout"].IsNull());

  YAML::Node v2 = find(dump["clusters"], "name", kReviewsV2);
  CHECK(v2["subset"].as<std::string>() == "v2");
  CHECK(v2["labels"]["version"].as<std::string>() == "v2");
  CHECK(v2["destination_rule"].as<std::string>() == "reviews.default");
  CHECK(v2["endpoint_count"].as<int>() == 1);
  CHECK(find(dump["clusters"], "name", "connect_originate")["type"].as<std::string>() == "ORIGINAL_DST");

  YAML::Node ep = find(dump["endpoints"], "cluster", kReviewsV2)["endpoints"][0];
  CHECK(ep["address"].as<std::string>() == "10.244.0.14:9080");
  CHECK(ep["pod"].as<std::string>() == "reviews-v2-7bf8c9648f-7tqnh");
  CHECK(ep["spiffe_id"].as<std::string>() == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
  CHECK(ep["outlier"].as<std::string>() == "OK");
}

TEST_CASE("config_dump: an endpoint a worker ejected shows FAILED, the others OK", "[admin]") {
  auto s = testing::bookinfo();
  HostLookup lookup = [](const config::RoutedCluster& c, size_t index) {
    HostRuntime rt;
    if (c.name == kReviewsV2 && index == 0) {
      rt.ejected = true;
      rt.ejected_on_workers = 2;
      rt.consecutive_5xx = 5;
    }
    rt.active_requests = 1;
    return rt;
  };
  YAML::Node endpoints = YAML::Load(endpoints_json(*s, lookup));
  std::vector<std::string> failed;
  for (const auto& c : endpoints) {
    for (const auto& ep : c["endpoints"]) {
      CHECK(ep["active_requests"].as<int>() == 1);
      if (ep["outlier"].as<std::string>() == "FAILED") {
        failed.push_back(c["cluster"].as<std::string>() + " " + ep["address"].as<std::string>());
        CHECK(ep["ejected_on_workers"].as<int>() == 2);
        CHECK(ep["consecutive_5xx"].as<int>() == 5);
      }
    }
  }
  CHECK(failed == std::vector<std::string>{std::string(kReviewsV2) + " 10.244.0.14:9080"});

  // Without a lookup every endpoint is healthy.
  for (const auto& c : YAML::Load(endpoints_json(*s, nullptr))) {
    for (const auto& ep : c["endpoints"]) {
      CHECK(ep["outlier"].as<std::string>() == "OK");
      CHECK(ep["ejected"].as<bool>() == false);
    }
  }
}

TEST_CASE("config_dump: sniffed and TCP ports, pod IPs, and the connect_terminate listener", "[admin]") {
  auto s = testing::rich();
  YAML::Node listeners = YAML::Load(listeners_json(*s));
  REQUIRE(listeners.size() == 1 + s->vip_chains.size() + s->pods_by_ip.size());

  YAML::Node sniffed = find(listeners, "name", "inbound-vip|9443|tcp|ratings.default.svc.cluster.local");
  CHECK(sniffed["protocol"].as<std::string>() == "sniff");
  REQUIRE(sniffed["chains"].size() == 2);
  CHECK(sniffed["chains"][0]["name"].as<std::string>() == "inbound-vip|9443|http|ratings.default.svc.cluster.local");
  CHECK(sniffed["chains"][0]["application_protocols"].size() == 2);
  CHECK(sniffed["chains"][0]["route"].as<std::string>() == "inbound-vip|9443|http|ratings.default.svc.cluster.local");
  CHECK(sniffed["chains"][1]["application_protocols"].size() == 0);
  CHECK(sniffed["chains"][1]["cluster"].as<std::string>() == "inbound-vip|9443|tcp|ratings.default.svc.cluster.local");

  YAML::Node echo = find(listeners, "name", "inbound-vip|7000|tcp|echo.default.svc.cluster.local");
  REQUIRE(echo["chains"].size() == 1);
  CHECK(echo["chains"][0]["cluster"].as<std::string>() == "inbound-vip|7000|tcp|echo.default.svc.cluster.local");

  YAML::Node pod = find(listeners, "ip", "10.0.0.4");
  CHECK(pod["kind"].as<std::string>() == "pod");
  CHECK(pod["chains"][0]["name"].as<std::string>() == "direct-http");
  CHECK(pod["chains"][1]["name"].as<std::string>() == "direct-tcp");
  CHECK(pod["chains"][1]["cluster"].as<std::string>() == "encap");

  // Addresses in numeric order after connect_terminate: VIPs 10.96.0.x after pods 10.0.0.x.
  std::vector<std::string> order;
  for (size_t i = 1; i < listeners.size(); ++i) {
    order.push_back(listeners[i]["address"].as<std::string>());
  }
  CHECK(order == std::vector<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.96.0.12:9080",
                                          "10.96.0.12:9443", "10.96.0.20:9080", "10.96.0.30:7000"});
}

TEST_CASE("config_dump: clusters carry their DestinationRule policy, TCP chain clusters are listed", "[admin]") {
  auto s = testing::rich();
  YAML::Node clusters = YAML::Load(clusters_json(*s));
  // The sniffed port's TCP cluster is no route table's: it is listed once, without policy.
  YAML::Node tcp = find(clusters, "name", "inbound-vip|9443|tcp|ratings.default.svc.cluster.local");
  CHECK(tcp["protocol"].as<std::string>() == "tcp");
  CHECK(tcp["destination_rule"].IsNull());
  CHECK(tcp["endpoint_count"].as<int>() == 1);
  CHECK(clusters.size() == s->clusters.size() + 1 + 3);

  YAML::Node v1 = find(clusters, "name", "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local");
  CHECK(v1["load_balancer"].as<std::string>() == "LEAST_REQUEST");
  CHECK(v1["connection_pool"]["http2_max_requests"].as<int>() == 100);
  CHECK(v1["connection_pool"]["max_retries"].as<int>() == 3);
  CHECK(v1["outlier_detection"]["consecutive_5xx_errors"].as<int>() == 3);
  CHECK(v1["outlier_detection"]["interval"].as<std::string>() == "5s");
  CHECK(v1["outlier_detection"]["base_ejection_time"].as<std::string>() == "15s");
  CHECK(v1["outlier_detection"]["max_ejection_percent"].as<int>() == 50);

  // istioctl's order: by service FQDN (static clusters by name), then subset, then port.
  std::vector<std::string> names;
  for (const auto& c : clusters) {
    names.push_back(c["name"].as<std::string>());
  }
  CHECK(names == std::vector<std::string>{
                     "connect_originate",
                     "inbound-vip|7000|tcp|echo.default.svc.cluster.local",
                     "encap",
                     "main_internal",
                     "inbound-vip|9080|http|ratings.default.svc.cluster.local",
                     "inbound-vip|9443|http|ratings.default.svc.cluster.local",
                     "inbound-vip|9443|tcp|ratings.default.svc.cluster.local",
                     "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local",
                     "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local",
                     "inbound-vip|9080|http/v3|reviews.default.svc.cluster.local",
                 });
}

TEST_CASE("config_dump: routes show matches, retries, timeouts, faults and TCP routes", "[admin]") {
  auto s = testing::rich();
  YAML::Node routes = YAML::Load(routes_json(*s));
  CHECK(routes.size() == s->route_tables.size() + s->tcp_routes.size());
  YAML::Node reviews = find(routes, "name", "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  REQUIRE(reviews["routes"].size() == 2);
  YAML::Node api = reviews["routes"][0];
  CHECK(api["index"].as<int>() == 0);
  REQUIRE(api["matches"].size() == 2);
  CHECK(api["matches"][0]["uri"]["kind"].as<std::string>() == "prefix");
  CHECK(api["matches"][0]["uri"]["value"].as<std::string>() == "/api");
  CHECK(api["matches"][0]["method"]["value"].as<std::string>() == "GET");
  CHECK(api["matches"][0]["headers"][0]["name"].as<std::string>() == "end-user");
  CHECK(api["matches"][0]["headers"][0]["value"]["value"].as<std::string>() == "jason");
  CHECK(api["matches"][1]["uri"]["kind"].as<std::string>() == "regex");
  CHECK(api["matches"][1]["uri"]["value"].as<std::string>() == "/v[0-9]+/.*");
  CHECK(api["retry_policy"]["num_retries"].as<int>() == 3);
  CHECK(api["retry_policy"]["retry_on"].as<std::string>() == "5xx,reset");
  CHECK(api["retry_policy"]["per_try_timeout"].as<std::string>() == "2s");
  CHECK(api["timeout"].as<std::string>() == "10s");
  CHECK(api["fault"]["abort"]["http_status"].as<int>() == 503);
  CHECK(api["fault"]["abort"]["percent"].as<double>() == 10.0);
  CHECK(api["fault"]["delay"].IsNull());
  CHECK(reviews["routes"][1]["weighted_clusters"][1]["percent"].as<double>() == 10.0);

  YAML::Node tcp = find(routes, "name", "inbound-vip|7000|tcp|echo.default.svc.cluster.local");
  CHECK(tcp["type"].as<std::string>() == "tcp");
  CHECK(tcp["routes"][0]["virtual_service"].as<std::string>() == "echo.default");
  CHECK(tcp["routes"][0]["weighted_clusters"][0]["cluster"].as<std::string>() ==
        "inbound-vip|7000|tcp|echo.default.svc.cluster.local");

  // A port without VirtualService: the generated default route, no VirtualService behind it.
  YAML::Node ratings = find(routes, "name", "inbound-vip|9080|http|ratings.default.svc.cluster.local");
  CHECK(ratings["routes"][0]["source"].as<std::string>() == "default");
  CHECK(ratings["routes"][0]["virtual_service"].IsNull());
  CHECK(ratings["routes"][0]["matches"].size() == 0);
}

TEST_CASE("config_dump: AuthorizationPolicies with Istio's patterns", "[admin]") {
  auto s = testing::rich();
  YAML::Node authz = YAML::Load(authorization_json(*s));
  CHECK(authz["policy_count"].as<int>() == 2);
  REQUIRE(authz["gateway"].size() == 1);
  YAML::Node allow = authz["gateway"][0];
  CHECK(allow["name"].as<std::string>() == "default/allow-default");
  CHECK(allow["action"].as<std::string>() == "ALLOW");
  YAML::Node rule = allow["rules"][0];
  YAML::Node src = rule["from"][0]["source"];
  CHECK(src["principals"][0].as<std::string>() == "cluster.local/ns/default/*");
  CHECK(src["notNamespaces"][0].as<std::string>() == "*-test");
  CHECK(src["ipBlocks"][0].as<std::string>() == "10.0.0.0/8");
  CHECK(src["ipBlocks"][1].as<std::string>() == "10.1.2.3");
  YAML::Node op = rule["to"][0]["operation"];
  CHECK(op["methods"][0].as<std::string>() == "GET");
  CHECK(op["paths"][0].as<std::string>() == "/api*");
  CHECK(op["ports"][0].as<std::string>() == "9080");
  CHECK(rule["when"][0]["key"].as<std::string>() == "request.headers[x-user]");
  CHECK(rule["when"][0]["values"][0].as<std::string>() == "*");

  // Each Service's set: the Gateway's policies plus its own, DENY first.
  YAML::Node echo = find(authz["services"], "service", "echo");
  REQUIRE(echo["policies"].size() == 2);
  CHECK(echo["policies"][0]["name"].as<std::string>() == "default/deny-echo");
  CHECK(echo["policies"][0]["action"].as<std::string>() == "DENY");
  CHECK(echo["policies"][0]["rules"][0].IsMap());
  CHECK(echo["policies"][0]["rules"][0].size() == 0);  // `- {}`: matches everything
  CHECK(echo["policies"][1]["name"].as<std::string>() == "default/allow-default");
  CHECK(find(authz["services"], "service", "reviews")["policies"].size() == 1);
}

}  // namespace
}  // namespace wp::admin
