#pragma once
// A waypoint on loopback with fake pods and an HBONE test client, for the L4 integration tests.
#include <memory>
#include <string>
#include <vector>

#include "support/fake_pod.h"
#include "support/harness.h"
#include "support/hbone_client.h"

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

  Mesh() {
    spec.hbone = env.addr(250, 15008);
    spec.admin = env.addr(250, 15000);
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
