// AuthorizationPolicy end to end: three client identities against HTTP and TCP chains, with the
// pods' own counters proving that denied requests and tunnels never reached them.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "fixture.h"
#include "support/http_client.h"

using namespace wp::testing;
using namespace std::chrono_literals;

namespace {

std::string policy(const std::string& name, const std::string& spec) {
  return "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " + name +
         ", namespace: default}\nspec:\n" + spec;
}

// An HTTP service "svc" (one HTTP pod) and a TCP service "echo" (one echo pod).
struct AuthzMesh : Mesh {
  FakePod* web = nullptr;
  FakePod* echo = nullptr;
  Identity same_ns = env.identity("same", "default", "client");
  Identity other_ns = env.identity("other", "other", "client");
  // A namespace that spells a trust domain: only exact, anchored matching tells it apart.
  Identity lookalike = env.identity("lookalike", "cluster.local", "ns");

  AuthzMesh() {
    web = add_pod("web-0", 1, {{"app", "svc"}}, http_pod());
    add_service("svc", 100, 80, 8080, {{"app", "svc"}}, "http");
    echo = add_pod("echo-0", 2, {{"app", "echo"}});
    add_service("echo", 101, 7000, 7000, {{"app", "echo"}}, "tcp");
  }
  std::string svc() { return env.addr(100, 80).to_string(); }
  std::string echo_vip() { return env.addr(101, 7000).to_string(); }
};

int get(AuthzMesh& m, const Identity& who, const std::string& path, std::string* body = nullptr) {
  auto client = m.client(100, &who);
  TestTunnel& t = client->open(m.svc());
  Http1Conn c(*client, t);
  HttpResponse r = c.request("GET", path);
  if (body != nullptr) {
    *body = r.body;
  }
  return r.status;
}

// The CONNECT's status for a tunnel to the echo service (and the echoed text when established).
int connect_echo(AuthzMesh& m, const Identity& who, std::string* echoed = nullptr) {
  auto client = m.client(100, &who);
  TestTunnel& t = client->open(m.echo_vip());
  client->run_until([&] { return t.done(); });
  if (t.established()) {
    t.send("ping");
    client->run_until([&] { return t.received.size() >= 4; }, 5s);
    if (echoed != nullptr) {
      *echoed = t.received;
    }
  }
  return t.status;
}

}  // namespace

TEST_CASE("authz: ALLOW by namespace on the Gateway and DENY by path on a Service, over HTTP", "[authz]") {
  AuthzMesh m;
  m.spec.extra_documents += policy("allow-default",
                                   "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]\n"
                                   "  action: ALLOW\n"
                                   "  rules: [{from: [{source: {namespaces: [default]}}]}]\n") +
                            policy("deny-admin",
                                   "  targetRefs: [{kind: Service, group: \"\", name: svc}]\n"
                                   "  action: DENY\n"
                                   "  rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]\n");
  REQUIRE(m.start() == "");
  std::string body;
  CHECK(get(m, m.same_ns, "/a") == 200);
  CHECK(get(m, m.same_ns, "/admin/users", &body) == 403);
  CHECK(body == "RBAC: access denied");
  CHECK(get(m, m.other_ns, "/a", &body) == 403);
  CHECK(body == "RBAC: access denied");
  CHECK(get(m, m.lookalike, "/a") == 403);
  // Only the allowed request reached the pod.
  CHECK(m.web->http_requests() == 1);
  CHECK(m.waypoint->stat("rq_authz_denied") == 3);
}

TEST_CASE("authz: a TCP service denies at CONNECT with 401 and never dials the pod", "[authz]") {
  AuthzMesh m;
  m.spec.extra_documents +=
      policy("echo-allow",
             "  targetRefs: [{kind: Service, name: echo}]\n"
             "  rules: [{from: [{source: {principals: [\"cluster.local/ns/default/sa/client\"]}}]}]\n");
  REQUIRE(m.start() == "");
  std::string echoed;
  CHECK(connect_echo(m, m.same_ns, &echoed) == 200);
  CHECK(echoed == "ping");
  CHECK(connect_echo(m, m.other_ns) == 401);
  CHECK(connect_echo(m, m.lookalike) == 401);
  CHECK(m.echo->tunnels() == 1);
  CHECK(m.waypoint->stat("tunnels_rejected_authz") == 2);
  // The HTTP service has no policy of its own and none on the Gateway: everyone is allowed there.
  CHECK(get(m, m.other_ns, "/a") == 200);
}

TEST_CASE("authz: an ALLOW rule with HTTP fields on a TCP service fails closed, DENY drops them", "[authz]") {
  AuthzMesh m;
  m.spec.extra_documents += policy("echo-allow-get",
                                   "  targetRefs: [{kind: Service, name: echo}]\n"
                                   "  rules: [{to: [{operation: {methods: [GET]}}]}]\n");
  REQUIRE(m.start() == "");
  CHECK(connect_echo(m, m.same_ns) == 401);  // the only ALLOW rule needs HTTP: nothing matches
  CHECK(m.echo->tunnels() == 0);

  AuthzMesh d;
  d.spec.extra_documents +=
      policy("echo-deny",
             "  targetRefs: [{kind: Service, name: echo}]\n  action: DENY\n"
             "  rules: [{from: [{source: {namespaces: [other]}}], to: [{operation: {paths: [/x]}}]}]\n");
  REQUIRE(d.start() == "");
  CHECK(connect_echo(d, d.other_ns) == 401);  // the path is dropped on TCP; the namespace decides
  CHECK(connect_echo(d, d.same_ns) == 200);
  CHECK(d.echo->tunnels() == 1);
}
