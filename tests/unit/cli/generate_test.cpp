// `waypoint generate` prints istioctl's Gateway, and the waypoint itself accepts what it prints.
#include <catch2/catch.hpp>

#include "cli/generate.h"
#include "unit/config/fixtures.h"

namespace wp::cli {
namespace {

std::string bootstrap(const std::string& gateway) {
  return "apiVersion: waypoint.proxy/v1alpha1\nkind: WaypointBootstrap\n"
         "metadata: {name: waypoint, namespace: shop}\n"
         "spec:\n  gateway: " +
         gateway +
         "\n  tls: {certChain: certs/waypoint.pem, privateKey: certs/waypoint.key, rootCert: certs/root.pem}\n---\n";
}

TEST_CASE("generate: the Gateway as istioctl prints it", "[cli]") {
  CHECK(generate_gateway({}) ==
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: Gateway\n"
        "metadata:\n"
        "  labels:\n"
        "    istio.io/waypoint-for: service\n"
        "  name: waypoint\n"
        "  namespace: default\n"
        "spec:\n"
        "  gatewayClassName: istio-waypoint\n"
        "  listeners:\n"
        "  - name: mesh\n"
        "    port: 15008\n"
        "    protocol: HBONE\n");
  std::string sa = generate_gateway({"reviews-wp", "shop", "bookinfo-reviews"});
  CHECK(sa.find("  annotations:\n    istio.io/for-service-account: bookinfo-reviews\n") != std::string::npos);
  CHECK(sa.find("  name: reviews-wp\n  namespace: shop\n") != std::string::npos);
}

TEST_CASE("generate: the output is a Gateway the waypoint serves", "[cli]") {
  auto ns_wide = config::testing::load(bootstrap("waypoint") + generate_gateway({"waypoint", "shop", ""}));
  CHECK(ns_wide->gateway.name == "waypoint");
  CHECK(ns_wide->gateway.for_service_account.empty());
  auto scoped = config::testing::load(bootstrap("wp") + generate_gateway({"wp", "shop", "bookinfo-reviews"}));
  CHECK(scoped->gateway.for_service_account == "bookinfo-reviews");
}

}  // namespace
}  // namespace wp::cli
