// `waypoint proxy-config`: the tables rendered from the admin API's JSON for config/bookinfo.yaml
// are compared with golden files (WP_UPDATE_GOLDEN=1 rewrites them), and the command itself runs
// against a one-shot fake admin server on 127.0.0.1.
#include "cli/proxy_config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "admin_fixtures.h"
#include "waypoint/admin/config_dump.h"

namespace wp::cli {
namespace {

using admin::testing::bookinfo;
using admin::testing::read_text;

constexpr const char* kReviewsTable = "inbound-vip|9080|http|reviews.default.svc.cluster.local";

// What the admin API answers for `kind` (the command's aliases included).
YAML::Node listing(const config::Snapshot& s, const std::string& kind) {
  if (kind.starts_with("listener")) {
    return YAML::Load(admin::listeners_json(s));
  }
  if (kind.starts_with("cluster")) {
    return YAML::Load(admin::clusters_json(s));
  }
  if (kind.starts_with("route")) {
    return YAML::Load(admin::routes_json(s));
  }
  REQUIRE(kind.starts_with("endpoint"));
  return YAML::Load(admin::endpoints_json(s, nullptr));
}

std::string table(const config::Snapshot& s, const std::string& kind, const std::string& name = "") {
  return render_proxy_config(kind, listing(s, kind), name, "table", "");
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

void check_golden(const std::string& kind, const std::string& actual) {
  auto path = admin::testing::source_dir() / "golden" / (kind + ".txt");
  const char* update = std::getenv("WP_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    config::testing::write_file(path.string(), actual);
    WARN("rewrote " << path.string());
    return;
  }
  REQUIRE(std::filesystem::exists(path));
  CHECK(actual == read_text(path));
}

TEST_CASE("proxy-config: bookinfo tables match the golden files", "[admin][cli]") {
  auto s = bookinfo();
  for (const char* kind : {"listener", "clusters", "routes", "endpoints"}) {
    SECTION(kind) {
      check_golden(kind, table(*s, kind));
    }
  }
}

TEST_CASE("proxy-config: tables have istioctl's headers and one row per chain match, route or endpoint",
          "[admin][cli]") {
  auto s = bookinfo();
  auto listener = lines(table(*s, "listener"));
  REQUIRE(!listener.empty());
  CHECK(listener[0].starts_with("LISTENER "));
  // connect_terminate, 4 HTTP service ports, 6 pods × (direct-http ×2 + direct-tcp).
  CHECK(listener.size() == 1 + 1 + 4 + 6 * 3);
  CHECK(lines(table(*s, "clusters")).size() == 1 + s->clusters.size() + 3);
  CHECK(lines(table(*s, "routes")).size() == 1 + 4);
  CHECK(lines(table(*s, "endpoints")).size() == 1 + 5);
  // Alias kinds.
  CHECK(table(*s, "listeners") == table(*s, "listener"));
  CHECK(table(*s, "cluster") == table(*s, "clusters"));
  CHECK(table(*s, "route") == table(*s, "routes"));
  CHECK(table(*s, "endpoint") == table(*s, "endpoints"));
}

TEST_CASE("proxy-config: sniffed and TCP ports in the listener and routes tables", "[admin][cli]") {
  auto s = admin::testing::rich();
  std::string listener = table(*s, "listener");
  CHECK(
      listener.find("inbound-vip|9443|http|ratings.default.svc.cluster.local ip=10.96.0.12 -> port=9443 "
                    "application-protocol='http/1.1' Route: inbound-vip|9443|http|ratings.default.svc.cluster.local") !=
      std::string::npos);
  size_t h2c = listener.find("ip=10.96.0.12 -> port=9443 application-protocol='h2c' ");
  REQUIRE(h2c != std::string::npos);
  CHECK(listener.substr(h2c, listener.find('\n', h2c) - h2c)
            .ends_with(" Route: inbound-vip|9443|http|ratings.default.svc.cluster.local"));
  CHECK(listener.find("inbound-vip|9443|tcp|ratings.default.svc.cluster.local  ip=10.96.0.12 -> port=9443") !=
        std::string::npos);
  // echo's VirtualService has a tcp[] route: the chain picks its cluster there.
  CHECK(listener.find("ip=10.96.0.30 -> port=7000") != std::string::npos);
  CHECK(listener.find("Route: inbound-vip|7000|tcp|echo.default.svc.cluster.local") != std::string::npos);

  auto routes = lines(table(*s, "routes", kReviewsTable));
  REQUIRE(routes.size() == 1 + 3);  // the api route has two match blocks
  CHECK(routes[1].find("/api* (GET, end-user=jason)") != std::string::npos);
  CHECK(routes[2].find("regex /v[0-9]+/.*") != std::string::npos);
  CHECK(routes[3].find(" /* ") != std::string::npos);
  CHECK(routes[3].ends_with("reviews.default"));
  std::string tcp = table(*s, "routes", "inbound-vip|7000|tcp|echo.default.svc.cluster.local");
  CHECK(lines(tcp).size() == 2);
  CHECK(tcp.find(" ANY ") != std::string::npos);
}

TEST_CASE("proxy-config: --name selects chains, clusters, routes and endpoints", "[admin][cli]") {
  auto s = bookinfo();
  auto direct = lines(table(*s, "listener", "direct-http"));
  CHECK(direct.size() == 1 + 6 * 2);
  for (size_t i = 1; i < direct.size(); ++i) {
    CHECK(direct[i].find(" direct-http ") != std::string::npos);
  }
  // By cluster name, or by service FQDN for every cluster of the service.
  CHECK(lines(table(*s, "clusters", "reviews.default.svc.cluster.local")).size() == 1 + 2);
  CHECK(lines(table(*s, "clusters", "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local")).size() == 2);
  // By route table name, or by route name.
  CHECK(lines(table(*s, "routes", kReviewsTable)).size() == 2);
  CHECK(lines(table(*s, "routes", "reviews-split")).size() == 2);
  CHECK(lines(table(*s, "routes", "default")).size() == 1 + 3);
  auto v2 = lines(table(*s, "endpoints", "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local"));
  REQUIRE(v2.size() == 2);
  CHECK(v2[1].starts_with("envoy://connect_originate/10.244.0.14:9080 "));
  // Nothing matches: the header alone.
  CHECK(lines(table(*s, "clusters", "nope")).size() == 1);
}

TEST_CASE("proxy-config: -o json prints the whole route object", "[admin][cli]") {
  auto s = bookinfo();
  std::string out = render_proxy_config("routes", listing(*s, "routes"), kReviewsTable, "json", "");
  CHECK(out.starts_with("[\n    {\n        \"name\": \"inbound-vip|9080|http|reviews.default.svc.cluster.local\",\n"));
  CHECK(out.find("\"weight\": 90,") != std::string::npos);  // numbers stay numbers
  YAML::Node parsed = YAML::Load(out);
  REQUIRE(parsed.size() == 1);
  YAML::Node route = parsed[0]["routes"][0];
  CHECK(route["name"].as<std::string>() == "reviews-split");
  CHECK(route["retry_policy"]["num_retries"].as<int>() == 2);
  CHECK(route["retry_policy"]["retry_on"].as<std::string>() ==
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
  REQUIRE(route["timeout"]);
  CHECK(route["timeout"].IsNull());
  CHECK(route["weighted_clusters"][1]["weight"].as<int>() == 10);

  // By route name: the table, narrowed to that route.
  YAML::Node by_route = YAML::Load(render_proxy_config("route", listing(*s, "routes"), "reviews-split", "json", ""));
  REQUIRE(by_route.size() == 1);
  CHECK(by_route[0]["name"].as<std::string>() == kReviewsTable);
  CHECK(by_route[0]["routes"].size() == 1);
}

TEST_CASE("proxy-config: json and yaml keep strings strings and numbers numbers", "[admin][cli]") {
  YAML::Node items = YAML::Load(R"([{"name":"9080","n":9080,"t":"true","e":"","x":null,"l":[],"m":{},"f":1.5}])");
  CHECK(render_proxy_config("clusters", items, "", "json", "") ==
        "[\n    {\n        \"name\": \"9080\",\n        \"n\": 9080,\n        \"t\": \"true\",\n        \"e\": \"\",\n"
        "        \"x\": null,\n        \"l\": [],\n        \"m\": {},\n        \"f\": 1.5\n    }\n]\n");
  YAML::Node yaml = YAML::Load(render_proxy_config("clusters", items, "", "yaml", ""));
  REQUIRE(yaml.IsSequence());
  CHECK(yaml[0]["name"].Tag() == "!");
  CHECK(yaml[0]["name"].as<std::string>() == "9080");
  CHECK(yaml[0]["n"].Tag() == "?");
  CHECK(yaml[0]["t"].Tag() == "!");
  CHECK(yaml[0]["e"].as<std::string>() == "");
  CHECK(yaml[0]["x"].IsNull());
  CHECK(yaml[0]["l"].IsSequence());
  CHECK(yaml[0]["m"].IsMap());
  CHECK(yaml[0]["f"].as<double>() == 1.5);

  auto s = bookinfo();
  YAML::Node routes = YAML::Load(render_proxy_config("routes", listing(*s, "routes"), kReviewsTable, "yaml", ""));
  CHECK(routes[0]["routes"][0]["weighted_clusters"][0]["weight"].as<int>() == 90);
  CHECK(routes[0]["vip"].as<std::string>() == "10.96.0.20:9080");
}

TEST_CASE("proxy-config: a waypoint has no outbound configuration", "[admin][cli]") {
  auto s = bookinfo();
  for (const char* kind : {"listener", "clusters", "routes", "endpoints"}) {
    CHECK(render_proxy_config(kind, listing(*s, kind), "", "table", "outbound").empty());
    CHECK(render_proxy_config(kind, listing(*s, kind), "", "json", "outbound") == "[]\n");
    CHECK(render_proxy_config(kind, listing(*s, kind), "", "yaml", "outbound") == "[]\n");
    CHECK(render_proxy_config(kind, listing(*s, kind), "", "table", "inbound") == table(*s, kind));
  }
  CHECK_THROWS_AS(render_proxy_config("secrets", YAML::Node(), "", "table", ""), std::invalid_argument);
  CHECK_THROWS_AS(render_proxy_config("routes", YAML::Node(), "", "xml", ""), std::invalid_argument);
  CHECK_THROWS_AS(render_proxy_config("routes", YAML::Node(), "", "table", "sideways"), std::invalid_argument);
}

TEST_CASE("proxy-config: tabulate pads like Go's tabwriter and trims line ends", "[admin][cli]") {
  CHECK(tabulate({{"A", "BB", "C"}, {"long", "x", ""}}, 1) == "A    BB C\nlong x\n");
  CHECK(tabulate({{"A", "B"}, {"aaa", "b"}}, 5) == "A       B\naaa     b\n");
}

// ---- the command, against a fake admin API ------------------------------------------------------

// Answers one request on 127.0.0.1 with `status` and `body`, then closes.
class FakeAdmin {
 public:
  FakeAdmin(int status, std::string body) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("fake admin: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, status, body = std::move(body)] { serve(status, body); });
  }
  ~FakeAdmin() {
    join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // The request head received (after the exchange).
  std::string request() {
    join();
    return request_;
  }

 private:
  void join() {
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  void serve(int status, const std::string& body) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1) {
      return;
    }
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      return;
    }
    char buf[4096];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 10'000) != 1) {
        break;
      }
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) {
        break;
      }
      request_.append(buf, static_cast<size_t>(n));
    }
    std::string answer = "HTTP/1.1 " + std::to_string(status) +
                         " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\nConnection: close\r\n\r\n" + body;
    for (size_t sent = 0; sent < answer.size();) {
      ssize_t n = ::send(c, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        break;
      }
      sent += static_cast<size_t>(n);
    }
    ::close(c);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
};

struct Run {
  int code = -1;
  std::string out, err;
};

Run run(std::vector<std::string> args) {
  args.insert(args.begin(), "proxy-config");
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  std::ostringstream out, err;
  Run r;
  r.code = proxy_config_main(static_cast<int>(args.size()), argv.data(), out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// A port nothing listens on: bound, then closed.
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), len);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST_CASE("proxy-config: the command fetches the listing from the admin API", "[admin][cli]") {
  auto s = bookinfo();
  SECTION("listener table") {
    FakeAdmin admin(200, admin::listeners_json(*s));
    Run r = run({"listener", "--admin", admin.address()});
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out == table(*s, "listener"));
    CHECK(admin.request().starts_with("GET /listeners HTTP/1.1\r\n"));
  }
  SECTION("routes as json, with --name=, -o and --direction") {
    FakeAdmin admin(200, admin::routes_json(*s));
    Run r = run({"routes", "--admin=" + admin.address(), "--name=" + std::string(kReviewsTable), "-o", "json",
                 "--direction", "inbound"});
    CHECK(r.code == 0);
    CHECK(r.out == render_proxy_config("routes", listing(*s, "routes"), kReviewsTable, "json", ""));
    CHECK(admin.request().starts_with("GET /routes HTTP/1.1\r\n"));
  }
  SECTION("clusters and endpoints paths") {
    FakeAdmin clusters(200, admin::clusters_json(*s));
    CHECK(run({"cluster", "--admin", clusters.address()}).out == table(*s, "clusters"));
    CHECK(clusters.request().starts_with("GET /clusters "));
    FakeAdmin endpoints(200, admin::endpoints_json(*s, nullptr));
    CHECK(run({"endpoints", "--admin", endpoints.address()}).out == table(*s, "endpoints"));
    CHECK(endpoints.request().starts_with("GET /endpoints "));
  }
}

TEST_CASE("proxy-config: exit 1 when the admin API is unreachable or does not answer 200 with JSON", "[admin][cli]") {
  SECTION("nothing listening") {
    Run r = run({"clusters", "--admin", "127.0.0.1:" + std::to_string(closed_port())});
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err.find("cannot reach the admin API at 127.0.0.1:") != std::string::npos);
  }
  SECTION("404") {
    FakeAdmin admin(404, "not found");
    Run r = run({"clusters", "--admin", admin.address()});
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err.find("answered 404 to GET /clusters") != std::string::npos);
  }
  SECTION("not JSON") {
    FakeAdmin admin(200, "{{{ nope");
    Run r = run({"routes", "--admin", admin.address()});
    CHECK(r.code == 1);
    CHECK(r.err.find("is not JSON") != std::string::npos);
  }
  SECTION("not an array") {
    FakeAdmin admin(200, "{\"a\":1}");
    Run r = run({"routes", "--admin", admin.address()});
    CHECK(r.code == 1);
    CHECK(r.err.find("did not answer a JSON array") != std::string::npos);
  }
}

TEST_CASE("proxy-config: exit 2 on usage errors, before any request", "[admin][cli]") {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},
           {"secrets"},
           {"routes", "-o", "xml"},
           {"routes", "--direction", "up"},
           {"routes", "--admin", "localhost"},
           {"routes", "--admin", "127.0.0.1:99999"},
           {"routes", "--name"},
           {"routes", "--bogus"},
           {"routes", "clusters"},
       }) {
    Run r = run(args);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("usage: waypoint proxy-config") != std::string::npos);
  }
  Run help = run({"--help"});
  CHECK(help.code == 0);
  CHECK(help.out.starts_with("usage: waypoint proxy-config"));
}

}  // namespace
}  // namespace wp::cli
