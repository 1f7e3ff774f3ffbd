// `waypoint explain` options and exit codes (the explanation itself: tests/unit/admin/explain_test.cpp).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cli/explain.h"
#include "unit/config/fixtures.h"

namespace wp::cli {
namespace {

int run(std::vector<std::string> args) {
  args.insert(args.begin(), "explain");
  std::vector<char*> argv;
  for (std::string& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  return explain_main(static_cast<int>(args.size()), argv.data());
}

// A served HTTP service web (10.96.1.1:80) whose only policy denies POST.
std::string write_config() {
  std::string path = config::testing::fixture_dir() + "/explain-cli.yaml";
  config::testing::write_file(path, R"(apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.1.1
  ports: [{name: http, port: 80}]
  selector: {app: web}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: default, labels: {app: web}}
status: {podIP: 10.0.0.1}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-post, namespace: default}
spec:
  targetRefs: [{kind: Service, name: web}]
  action: DENY
  rules: [{to: [{operation: {methods: [POST]}}]}]
)" + config::testing::base_config());
  return path;
}

constexpr const char* kFrom = "spiffe://cluster.local/ns/default/sa/client";

TEST_CASE("explain cli: usage errors exit 4", "[cli][explain]") {
  std::string cfg = write_config();
  CHECK(run({"--config", cfg, "--from", kFrom}) == 4);                                              // no --to
  CHECK(run({"--config", cfg, "--to", "10.96.1.1:80"}) == 4);                                       // no --from
  CHECK(run({"--config", cfg, "--from", "cluster.local/ns/a/sa/b", "--to", "10.96.1.1:80"}) == 4);  // not spiffe://
  CHECK(run({"--config", cfg, "--from", kFrom, "--to", "web:80"}) == 4);                            // not IP:PORT
  CHECK(run({"--config", cfg, "--from", kFrom, "--to", "10.96.1.1:80", "-H", "no-colon"}) == 4);
  CHECK(run({"--config", cfg, "--from", kFrom, "--to", "10.96.1.1:80", "--path", "relative"}) == 4);
  CHECK(run({"--config", cfg, "--from", kFrom, "--to", "10.96.1.1:80", "--protocol", "udp"}) == 4);
  CHECK(run({"--config", cfg, "--from", kFrom, "--to", "10.96.1.1:80", "--protocol", "tcp", "--path", "/"}) == 4);
  CHECK(run({"--config", cfg, "--from", kFrom, "--to", "10.96.1.1:80", "--bogus"}) == 4);
  CHECK(run({"--config", cfg, "--from", kFrom, "--to"}) == 4);  // a value is missing
  CHECK(run({"--help"}) == 0);
}

TEST_CASE("explain cli: a bad config file exits 1", "[cli][explain]") {
  CHECK(run({"--config", config::testing::fixture_dir() + "/no-such.yaml", "--from", kFrom, "--to", "10.96.1.1:80"}) ==
        1);
  std::string bad = config::testing::fixture_dir() + "/explain-bad.yaml";
  config::testing::write_file(bad, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: nope}\n" +
                                       config::testing::base_config());
  CHECK(run({"--config", bad, "--from", kFrom, "--to", "10.96.1.1:80"}) == 1);
}

TEST_CASE("explain cli: the verdict is the exit code", "[cli][explain]") {
  std::string cfg = write_config();
  CHECK(run({"--config", cfg, "--from", kFrom, "--to", "10.96.1.1:80", "--path", "/x"}) == 0);
  CHECK(run({"--config=" + cfg, "--from=" + std::string(kFrom), "--to=10.96.1.1:80", "--method=POST"}) == 2);
  CHECK(run({"--config", cfg, "--from", kFrom, "--to", "10.96.1.9:80"}) == 3);
}

}  // namespace
}  // namespace wp::cli
