// The request stages (proxy/pipeline.h) on a small mesh: each stage's stop, its answer and its
// counters, in order, as ActiveRequest and `waypoint explain` both run them.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "unit/config/fixtures.h"
#include "waypoint/internal/listener.h"
#include "waypoint/proxy/pipeline.h"

using wp::proxy::Stage;
using wp::proxy::StageInput;
using wp::proxy::StageResult;
using wp::stats::Id;

namespace {

const char* kMesh = R"(apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.1.1
  ports: [{name: http, port: 80, targetPort: 8080}]
  selector: {app: web}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: default, labels: {app: web}}
spec: {serviceAccountName: web}
status: {podIP: 10.0.1.1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new}
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 418, body: {string: teapot}}
  - match: [{uri: {prefix: /fault}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: web}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-api, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: web}]
  action: AUDIT
  rules:
  - to: [{operation: {paths: ["/api/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: web}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/api/admin"]}}]
)";

struct Recorder final : wp::proxy::StageSink {
  std::vector<Stage> stages;
  void on_stage(Stage s, const StageInput&, const StageResult&) override { stages.push_back(s); }
};

struct Run {
  wp::config::SnapshotPtr snap;
  wp::internal::ChainMatch chain;
  wp::http::HeaderMap headers;
  Recorder rec;

  explicit Run(const std::string& extra_spec = "")
      : snap(wp::config::testing::load(kMesh + wp::config::testing::base_config(extra_spec))) {
    chain = wp::internal::select_chain(*snap, *wp::net::SockAddr::parse("10.96.1.1:80"));
    REQUIRE(chain.kind == wp::internal::ChainMatch::Kind::Vip);
  }
  StageResult operator()(std::string_view method, std::string_view path) {
    StageInput in;
    in.snapshot = snap.get();
    in.authz = &snap->authz_for(chain.vip);
    in.routes = chain.vip->routes;
    in.method = method;
    in.path = path;
    in.authority = "web";
    in.port = 80;
    in.headers = &headers;
    in.principal = "spiffe://cluster.local/ns/default/sa/client";
    in.destination = *wp::net::SockAddr::parse("10.96.1.1:80");
    rec.stages.clear();
    return wp::proxy::run_stages(in, &rec);
  }
};

std::vector<Id> counted(const StageResult& r) {
  return std::vector<Id>(r.counters, r.counters + r.counter_count);
}

}  // namespace

TEST_CASE("pipeline: a forwarded request runs every stage and stops at none", "[http][pipeline]") {
  Run run;
  StageResult r = run("GET", "/api/items");
  CHECK_FALSE(r.stop);
  CHECK(run.rec.stages == std::vector<Stage>{Stage::Headers, Stage::Authz, Stage::Route, Stage::Fault});
  REQUIRE(r.route != nullptr);
  CHECK(r.route->clusters.size() == 1);
  CHECK(counted(r) == std::vector<Id>{Id::authz_audited});
}

TEST_CASE("pipeline: each stage's stop, answer and counter", "[http][pipeline]") {
  Run run;
  SECTION("CONNECT inside a tunnel: 501 before authorization") {
    StageResult r = run("CONNECT", "/api/admin");
    CHECK(r.stop);
    CHECK(r.stage == Stage::Headers);
    CHECK(r.status == 501);
    CHECK(std::string(r.flags) == "DPE");
    CHECK(counted(r) == std::vector<Id>{Id::downstream_rq_not_implemented});
    CHECK(run.rec.stages == std::vector<Stage>{Stage::Headers});
  }
  SECTION("a DENY policy: 403 before routing") {
    StageResult r = run("GET", "/api/admin");
    CHECK(r.stop);
    CHECK(r.stage == Stage::Authz);
    CHECK(r.status == 403);
    CHECK(r.body == "RBAC: access denied");
    CHECK_FALSE(r.verdict.allowed);
    REQUIRE(r.verdict.decided_by != nullptr);
    CHECK(r.verdict.decided_by->name == "default/no-admin");
    CHECK(counted(r) == std::vector<Id>{Id::authz_audited, Id::rq_authz_denied});
    CHECK(r.route == nullptr);
  }
  SECTION("no route: 404 NR") {
    StageResult r = run("GET", "/nothing");
    CHECK(r.stop);
    CHECK(r.stage == Stage::Route);
    CHECK(r.status == 404);
    CHECK(std::string(r.flags) == "NR");
    CHECK(counted(r) == std::vector<Id>{Id::rq_no_route});
  }
  SECTION("a redirect: its status and location") {
    StageResult r = run("GET", "/old/page");
    CHECK(r.stop);
    CHECK(r.stage == Stage::Redirect);
    CHECK(r.status == 301);
    CHECK(r.extra.get("location").value_or("") == "http://web/new");
    CHECK(counted(r) == std::vector<Id>{Id::rq_redirect});
  }
  SECTION("a direct response: its status and body") {
    StageResult r = run("GET", "/direct");
    CHECK(r.stop);
    CHECK(r.stage == Stage::DirectResponse);
    CHECK(r.status == 418);
    CHECK(r.body == "teapot");
    CHECK(counted(r) == std::vector<Id>{Id::rq_direct_response});
  }
  SECTION("a certain fault abort: its status, FI") {
    StageResult r = run("GET", "/fault");
    CHECK(r.stop);
    CHECK(r.stage == Stage::Fault);
    CHECK(r.status == 503);
    CHECK(r.body == "fault filter abort");
    CHECK(std::string(r.flags) == "FI");
    CHECK(counted(r) == std::vector<Id>{Id::rq_fault_aborted});
  }
}

TEST_CASE("pipeline: headersWithUnderscoresAction in the Headers stage", "[http][pipeline]") {
  SECTION("REJECT_REQUEST: 400 DPE") {
    Run run("http: {headersWithUnderscoresAction: REJECT_REQUEST}");
    run.headers.add("x_user", "a");
    StageResult r = run("GET", "/api/items");
    CHECK(r.stop);
    CHECK(r.stage == Stage::Headers);
    CHECK(r.status == 400);
    CHECK(counted(r) == std::vector<Id>{Id::downstream_rq_underscore_headers});
  }
  SECTION("DROP_HEADER: the field is gone, the request goes on, counted") {
    Run run("http: {headersWithUnderscoresAction: DROP_HEADER}");
    run.headers.add("x_user", "a");
    run.headers.add("x-ok", "b");
    StageResult r = run("GET", "/api/items");
    CHECK_FALSE(r.stop);
    CHECK_FALSE(run.headers.get("x_user"));
    CHECK(run.headers.get("x-ok"));
    CHECK(counted(r) == std::vector<Id>{Id::downstream_rq_underscore_headers, Id::authz_audited});
  }
}

TEST_CASE("pipeline: every counter of a request that three stages count is kept", "[http][pipeline]") {
  // Underscore name dropped (Headers), AUDIT matched and DENY matched (Authz): three counters.
  Run run("http: {headersWithUnderscoresAction: DROP_HEADER}");
  run.headers.add("x_user", "a");
  StageResult r = run("GET", "/api/admin");
  CHECK(r.stop);
  CHECK(counted(r) == std::vector<Id>{Id::downstream_rq_underscore_headers, Id::authz_audited, Id::rq_authz_denied});
}
