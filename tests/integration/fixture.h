#pragma once
// A waypoint on loopback with fake pods and an HBONE test client, for the L4 integration tests.
//
// Every test that uses a Mesh ends with the gauge check (~Mesh): once the test's clients are gone
// (they are declared after the Mesh, so they are destroyed before it), every gauge of a waypoint
// still running must come back to its baseline, the value it had when start-up finished:
//   1. with the pods still up: every gauge but those the upstream pools may hold legitimately
//      (kept-alive HTTP tunnels and the HBONE connections under them: kPooledGauges);
//   2. after the pods are stopped (which ends every upstream connection): every gauge, and then
//      the waypoint's open file descriptors (/proc/<pid>/fd, connections to its admin, metrics and
//      health ports left out): no more than once start-up finished.
// outlier_ejections_active is left out of both (a host stays ejected for its ejection time, and
// the gauge only drops when that host is next looked at); it must never be negative.
// Each gauge that does not settle within a few seconds fails the test, naming the gauge and its
// value. A test that stops the waypoint to see how it exits calls stop_waypoint(), which checks
// first. Not checked: a test that already failed by an exception (REQUIRE), a waypoint stopped by
// other means or that exited (the drain tests: SIGTERM or /drain_listeners with connections open
// on purpose; a drained waypoint exits once they close), and a Mesh whose check_gauges was set to
// false. A waypoint that exited with a non-zero status during the test fails it, with the end of
// its log (a crash or a sanitizer report shows there, not in the test's own output).
#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/fake_pod.h"
#include "support/harness.h"
#include "support/hbone_client.h"
#include "waypoint/stats/stats.h"

namespace wp::testing {

struct PodOptions {
  bool listening = true;  // false: in the config, but nothing listens (a pod that is down)
  PodBehavior behavior = PodBehavior::Echo;
  std::string service_account = "default";  // what the config says
  std::string presented_account;            // what the fake pod's certificate says ("" = the same)
  int respond_delay_ms = 0;
};

// A pod that serves HTTP (HTTP/1.1 or h2c) inside its tunnels.
inline PodOptions http_pod() {
  PodOptions o;
  o.behavior = PodBehavior::Http;
  return o;
}

struct Mesh {
  TestEnv env;
  Identity client_id = env.identity("client", "default", "client");
  ConfigSpec spec;
  std::vector<std::unique_ptr<FakePod>> pods;
  std::unique_ptr<WaypointProcess> waypoint;

  // Upstream-side gauges that kept-alive tunnels to pods keep up after a test (until the pool's
  // idle timeout, or the pods going away).
  static constexpr std::string_view kPooledGauges[] = {"upstream_cx_active", "upstream_tunnels_active",
                                                       "upstream_http_tunnels_idle"};
  static constexpr std::chrono::seconds kSettleTimeout{5};

  bool check_gauges = true;  // false: this test leaves a gauge up on purpose (say why)

  Mesh() {
    spec.hbone = env.addr(250, 15008);
    spec.admin = env.addr(250, 15000);
  }
  ~Mesh() { check_gauges_settled(); }
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  // For a test that stops the waypoint itself (to see how it exits): the gauge check first, so the
  // test keeps it; the test's clients must be gone by then. Returns stop()'s exit status.
  int stop_waypoint() {
    check_gauges_settled();
    return waypoint->stop();
  }

  // The check described at the top of this file; stops the pods.
  void check_gauges_settled() {
    if (waypoint != nullptr && waypoint->running()) {
      // A waypoint that died during the test (a crash, a sanitizer report) says so, with the end of
      // its log: the failures the test saw are its consequences. Exit status 0 is a drain's exit.
      if (std::optional<int> status = waypoint->poll_exit(); status.has_value() && *status != 0) {
        FAIL_CHECK("the waypoint exited during the test, status " << *status << "; the end of its log:\n"
                                                                  << waypoint->log_tail(80));
      }
    }
    if (!check_gauges || waypoint == nullptr || !waypoint->running() || std::uncaught_exceptions() > 0) {
      return;
    }
    std::vector<std::string> unpooled, all;
    for (int i = 0; i < stats::kCount; ++i) {
      const stats::Info& info = stats::info(static_cast<stats::Id>(i));
      std::string_view name = info.name;
      if (info.kind != stats::Kind::Gauge || name == "outlier_ejections_active") {
        continue;
      }
      all.emplace_back(name);
      bool pooled = false;
      for (std::string_view p : kPooledGauges) {
        pooled = pooled || p == name;
      }
      if (!pooled) {
        unpooled.emplace_back(name);
      }
    }
    for (const std::string& off : waypoint->gauges_off_baseline(unpooled, kSettleTimeout)) {
      FAIL_CHECK("gauge not back at its baseline once the test's clients were gone: " << off);
      std::erase(all, off.substr(0, off.find(' ')));  // reported once
    }
    pods.clear();
    for (const std::string& off : waypoint->gauges_off_baseline(all, kSettleTimeout)) {
      FAIL_CHECK("gauge not back at its baseline once the pods were stopped: " << off);
    }
    if (std::string off = waypoint->fds_off_baseline(kSettleTimeout); !off.empty()) {
      FAIL_CHECK("file descriptors not back at their baseline once the pods were stopped: " << off);
    }
    int64_t ejected = waypoint->stat("outlier_ejections_active");
    if (ejected < 0) {
      FAIL_CHECK("outlier_ejections_active is negative or missing: " << ejected);
    }
  }

  // Adds a pod to the config and starts a fake pod for it.
  FakePod* add_pod(const std::string& name, int host, std::map<std::string, std::string> labels,
                   const PodOptions& p = {}) {
    spec.pods.push_back({name, env.ip(host), labels, p.service_account, true});
    if (!p.listening) {
      return nullptr;
    }
    const std::string& presented = p.presented_account.empty() ? p.service_account : p.presented_account;
    Identity id = env.identity("pod-" + name, "default", presented);
    FakePodOptions o;
    o.address = env.addr(host, 15008);
    o.cert = id.cert;
    o.key = id.key;
    o.root = env.root_pem();
    o.behavior = p.behavior;
    o.name = name;
    o.respond_delay_ms = p.respond_delay_ms;
    pods.push_back(std::make_unique<FakePod>(o));
    return pods.back().get();
  }

  void add_service(const std::string& name, int vip_host, uint16_t port, uint16_t target_port,
                   std::map<std::string, std::string> selector, const std::string& app_protocol = "tcp") {
    spec.services.push_back({name, env.ip(vip_host), port, target_port, app_protocol, selector});
  }

  // Writes the config and starts the waypoint; returns its log on failure.
  std::string start(std::vector<std::string> wrapper = {}) {
    std::string path = env.write("waypoint.yaml", render_config(env, spec));
    waypoint = std::make_unique<WaypointProcess>(env, path, spec.admin, std::move(wrapper));
    std::string log;
    if (!waypoint->start(&log)) {
      return log.empty() ? "waypoint did not become ready" : log;
    }
    return "";
  }

  std::unique_ptr<HboneTestClient> client(uint32_t max_streams = 100, const Identity* id = nullptr) {
    const Identity& who = id != nullptr ? *id : client_id;
    ClientOptions o;
    o.waypoint = spec.hbone;
    o.expected_identity = env.waypoint().spiffe;
    o.cert = who.cert;
    o.key = who.key;
    o.root = env.root_pem();
    o.max_streams_per_connection = max_streams;
    return std::make_unique<HboneTestClient>(o);
  }
};

}  // namespace wp::testing
