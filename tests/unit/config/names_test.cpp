#include <catch2/catch.hpp>

#include "waypoint/config/names.h"

using wp::config::inbound_vip_name;
using wp::config::split_inbound_name;

TEST_CASE("inbound names: built as Istio spells them, split back into their parts", "[config][names]") {
  CHECK(inbound_vip_name(9080, "http", "reviews.default.svc.cluster.local") ==
        "inbound-vip|9080|http|reviews.default.svc.cluster.local");
  CHECK(inbound_vip_name(9080, "http", "reviews.default.svc.cluster.local", "v1") ==
        "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local");
  CHECK(inbound_vip_name(3306, "tcp", "db.default.svc.cluster.local") ==
        "inbound-vip|3306|tcp|db.default.svc.cluster.local");

  auto n = split_inbound_name("inbound-vip|9080|http/v1|reviews.default.svc.cluster.local");
  REQUIRE(n);
  CHECK(n->direction == "inbound-vip");
  CHECK(n->port == 9080);
  CHECK(n->protocol == "http/v1");
  CHECK(n->subset == "v1");
  CHECK(n->fqdn == "reviews.default.svc.cluster.local");

  auto plain = split_inbound_name("inbound-vip|80|tcp|svc.default.svc.cluster.local");
  REQUIRE(plain);
  CHECK(plain->subset.empty());
  CHECK(plain->port == 80);

  CHECK_FALSE(split_inbound_name("direct-http"));
  CHECK_FALSE(split_inbound_name("encap"));
  CHECK_FALSE(split_inbound_name("a|b|c"));
  CHECK_FALSE(split_inbound_name("a|b|c|d|e"));
  auto bad_port = split_inbound_name("inbound-vip|x|http|s");
  REQUIRE(bad_port);
  CHECK(bad_port->port == 0);
}
