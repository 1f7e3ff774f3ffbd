// The example files in config/ must validate. Each is copied next to generated certificates, as the
// demo does, and loaded from disk.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fixtures.h"

namespace wp::config {
namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

SnapshotPtr load_example(const std::string& name) {
  auto source = std::filesystem::path(__FILE__).parent_path() / "../../../config" / name;
  std::string copy = testing::fixture_dir() + "/" + name;
  testing::write_file(copy, read_text(source));
  return load_snapshot(copy);
}

const VipChain& chain(const Snapshot& s, const std::string& vip) {
  const VipChain* c = s.find_vip(*net::SockAddr::parse(vip));
  REQUIRE(c != nullptr);
  return *c;
}

TEST_CASE("config: config/bookinfo.yaml validates", "[config]") {
  auto s = load_example("bookinfo.yaml");
  CHECK(s->bootstrap.namespace_ == "default");
  CHECK(s->services.size() == 4);
  CHECK(s->pods.size() == 6);
  CHECK(s->warnings.empty());
  CHECK(s->ignored.empty());
  const VipChain& reviews = chain(*s, "10.96.0.20:9080");
  CHECK(reviews.name == "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  CHECK(reviews.cluster.endpoints.size() == 3);
  CHECK(chain(*s, "10.96.0.11:9080").cluster.endpoints.at(0).address.to_string() == "10.244.0.11:9080");
}

TEST_CASE("config: config/demo-loopback.yaml validates", "[config]") {
  auto s = load_example("demo-loopback.yaml");
  CHECK(s->bootstrap.listeners.hbone.to_string() == "127.0.0.1:15008");
  CHECK(s->bootstrap.listeners.metrics.to_string() == "127.0.0.1:15020");
  CHECK(s->bootstrap.tls.root_cert == testing::fixture_dir() + "/certs/root.pem");
  CHECK(s->warnings.empty());
  CHECK(s->ignored.empty());
  CHECK(s->vip_chains.size() == 5);
  const VipChain& echo = chain(*s, "127.0.10.5:7000");
  CHECK(echo.name == "inbound-vip|7000|tcp|echo.default.svc.cluster.local");
  CHECK(echo.protocol == ChainProtocol::Tcp);
  REQUIRE(echo.cluster.endpoints.size() == 2);
  CHECK(echo.cluster.endpoints[0].address.to_string() == "127.0.1.7:7000");
  CHECK(echo.cluster.endpoints[1].address.to_string() == "127.0.1.8:7000");
  CHECK(chain(*s, "127.0.10.4:9080").cluster.endpoints.size() == 3);
  for (const Pod& pod : s->pods) {
    CHECK(pod.ip.to_string().starts_with("127.0.1."));
  }
}

}  // namespace
}  // namespace wp::config
