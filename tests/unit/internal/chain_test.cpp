#include <catch2/catch.hpp>

#include "unit/config/fixtures.h"
#include "waypoint/internal/listener.h"

using wp::internal::ChainMatch;
using wp::internal::select_chain;
using wp::net::SockAddr;

TEST_CASE("select_chain: service VIP:port, then pod IP, else nothing", "[internal]") {
  auto snap = wp::config::testing::load(R"(
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 9080}, {name: tcp-admin, port: 9090}]
  selector: {app: reviews}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews}}
spec: {serviceAccountName: bookinfo-reviews}
status: {podIP: 10.0.1.5}
)" + wp::config::testing::base_config());

  auto m = select_chain(*snap, *SockAddr::parse("10.96.0.20:9080"));
  REQUIRE(m.kind == ChainMatch::Kind::Vip);
  CHECK(m.name() == "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  REQUIRE(m.vip->cluster.endpoints.size() == 1);
  CHECK(m.vip->cluster.endpoints[0].address.to_string() == "10.0.1.5:9080");

  m = select_chain(*snap, *SockAddr::parse("10.96.0.20:9090"));
  REQUIRE(m.kind == ChainMatch::Kind::Vip);
  CHECK(m.name() == "inbound-vip|9090|tcp|reviews.default.svc.cluster.local");

  m = select_chain(*snap, *SockAddr::parse("10.0.1.5:12345"));
  REQUIRE(m.kind == ChainMatch::Kind::Pod);
  CHECK(m.name() == "direct-tcp");
  CHECK(m.pod->spiffe_id() == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");

  CHECK(select_chain(*snap, *SockAddr::parse("10.96.0.20:80")).kind == ChainMatch::Kind::None);
  CHECK(select_chain(*snap, *SockAddr::parse("10.0.1.6:9080")).kind == ChainMatch::Kind::None);
  CHECK(select_chain(*snap, *SockAddr::parse("10.0.1.6:9080")).name().empty());
}
