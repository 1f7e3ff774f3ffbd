#include "waypoint/server/server.h"

#include <spdlog/spdlog.h>

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <thread>
#include <vector>

#include "waypoint/admin/admin.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/server/worker.h"
#include "waypoint/tls/context.h"

namespace wp::server {

int run(const RunOptions& options) {
  std::signal(SIGPIPE, SIG_IGN);
  config::SnapshotPtr snapshot;
  try {
    snapshot = config::load_snapshot(options.config_path);
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  // Parsing holds the whole YAML tree (about 50x the file's size in yaml-cpp nodes); once it is
  // freed, give those pages back instead of keeping them as the process's RSS for its lifetime.
  malloc_trim(0);
  const config::Bootstrap& boot = snapshot->bootstrap;
  spdlog::set_level(spdlog::level::from_str(boot.log_level));
  for (const auto& w : snapshot->warnings) {
    spdlog::warn("config: {}", w);
  }

  tls::ContextPtr server_tls;
  tls::ContextPtr client_tls;
  try {
    server_tls = tls::Context::make(tls::Context::Role::Server, boot.tls, boot.trust_domain);
    client_tls = tls::Context::make(tls::Context::Role::Client, boot.tls, boot.trust_domain);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: tls: %s\n", options.config_path.c_str(), e.what());
    return 1;
  }

  int n = boot.concurrency > 0 ? boot.concurrency : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>(i, snapshot, server_tls, client_tls);
    std::string err;
    if (!w->bind(&err)) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return 1;
    }
    workers.push_back(std::move(w));
  }

  event::Loop main_loop;
  bool ready = false;
  auto collect = [&workers] {
    std::vector<const stats::Block*> blocks;
    for (auto& w : workers) {
      blocks.push_back(&w->stats());
    }
    return blocks;
  };
  admin::AdminServer admin_server(main_loop, [&](const std::string& method, const std::string& path) {
    admin::Response r;
    std::string p = path.substr(0, path.find('?'));
    if (method != "GET") {
      r.status = 405;
      r.body = "method not allowed\n";
    } else if (p == "/stats") {
      r.body = stats::render_text(collect());
    } else if (p == "/ready") {
      r.status = ready ? 200 : 503;
      r.body = ready ? "LIVE\n" : "DRAINING\n";
    } else {
      r.status = 404;
      r.body = "not found\n";
    }
    return r;
  });
  std::string err;
  if (!admin_server.listen(boot.listeners.admin, &err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }

  // Each worker says when its thread ends; the main loop stops after the last one (the admin
  // listener keeps answering /ready with 503 meanwhile).
  size_t exited = 0;
  for (auto& w : workers) {
    w->start([&] {
      main_loop.post([&] {
        if (++exited == workers.size()) {
          main_loop.stop();
        }
      });
    });
  }
  ready = true;
  spdlog::info("waypoint ready: hbone {} ({} workers), admin {}, namespace {}, config {} version {}",
               boot.listeners.hbone.to_string(), n, boot.listeners.admin.to_string(), boot.namespace_,
               options.config_path, snapshot->version);

  // SIGTERM/SIGINT: stop accepting, GOAWAY, drain up to drain_time, exit 0. A second signal: exit now.
  int signals_seen = 0;
  auto on_signal = [&](int signum) {
    if (++signals_seen > 1) {
      spdlog::warn("second signal: exiting without draining");
      std::_Exit(0);
    }
    spdlog::info("signal {}: draining for up to {} ms", signum, options.drain_time.count());
    ready = false;
    for (auto& w : workers) {
      w->shutdown(options.drain_time);
    }
  };
  std::function<void(int)> signal_cb = on_signal;
  std::vector<uv_signal_t*> handles;
  for (int signum : {SIGTERM, SIGINT}) {
    auto* h = new uv_signal_t;
    uv_signal_init(main_loop.uv(), h);
    h->data = &signal_cb;
    uv_signal_start(
        h, [](uv_signal_t* s, int num) { (*static_cast<std::function<void(int)>*>(s->data))(num); }, signum);
    handles.push_back(h);
  }

  main_loop.run();
  for (auto* h : handles) {
    event::close_and_delete(h);
  }
  for (auto& w : workers) {
    w->join();
  }
  spdlog::info("waypoint stopped");
  return 0;
}

}  // namespace wp::server
