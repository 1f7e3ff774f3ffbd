#include "waypoint/server/server.h"

#include <spdlog/spdlog.h>

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <thread>
#include <vector>

#include "waypoint/admin/admin.h"
#include "waypoint/admin/config_dump.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/server/worker.h"
#include "waypoint/stats/prometheus.h"
#include "waypoint/tls/context.h"

namespace wp::server {

namespace {

// How long a scrape or a config dump waits for the workers' samples before it answers with what
// it has (a worker that has just ended never answers).
constexpr std::chrono::milliseconds kGatherTimeout{1'000};

admin::Response text(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

admin::Response json(std::string body) {
  return {200, "application/json", std::move(body)};
}

// The process on its main thread: workers, the admin/metrics/health listeners, signals.
class Process {
 public:
  Process(const RunOptions& options, config::SnapshotPtr snapshot)
      : options_(options), snapshot_(std::move(snapshot)) {}

  int run();

 private:
  struct Gather {
    std::vector<WorkerSample> samples;
    size_t pending = 0;
    std::function<void(std::vector<WorkerSample>)> done;
    std::unique_ptr<event::Timer> timeout;
    void complete() {
      if (done) {
        timeout->stop();
        auto d = std::move(done);
        done = nullptr;
        d(std::move(samples));
      }
    }
  };

  bool start_workers(const tls::ContextPtr& server_tls, const tls::ContextPtr& client_tls);
  bool start_listeners();
  void install_signals();
  void drain(const char* why);
  // Collects a sample from every running worker, then calls `done` on the main thread.
  void gather(std::function<void(std::vector<WorkerSample>)> done);
  std::vector<const stats::Block*> blocks() const;
  stats::ProcessMetrics process_metrics() const;
  admin::HostLookup host_lookup(std::shared_ptr<const std::vector<WorkerSample>> samples) const;

  void admin_request(const admin::Request& r, admin::Reply reply);
  void metrics_request(const admin::Request& r, admin::Reply reply);
  void health_request(const admin::Request& r, admin::Reply reply);
  void prometheus(admin::Reply reply);

  const RunOptions& options_;
  config::SnapshotPtr snapshot_;
  event::Loop loop_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<bool> running_;
  size_t exited_ = 0;
  bool ready_ = false;
  bool draining_ = false;
  int signals_seen_ = 0;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<admin::AdminServer> metrics_;
  std::unique_ptr<admin::AdminServer> health_;
  std::vector<uv_signal_t*> signal_handles_;
};

bool Process::start_workers(const tls::ContextPtr& server_tls, const tls::ContextPtr& client_tls) {
  const config::Bootstrap& boot = snapshot_->bootstrap;
  int n = boot.concurrency > 0 ? boot.concurrency : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>(i, snapshot_, server_tls, client_tls);
    std::string err;
    if (!w->bind(&err)) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return false;
    }
    workers_.push_back(std::move(w));
  }
  running_.assign(workers_.size(), true);
  return true;
}

bool Process::start_listeners() {
  const config::Listeners& l = snapshot_->bootstrap.listeners;
  admin_ = std::make_unique<admin::AdminServer>(
      loop_, [this](const admin::Request& r, admin::Reply reply) { admin_request(r, std::move(reply)); });
  metrics_ = std::make_unique<admin::AdminServer>(
      loop_, [this](const admin::Request& r, admin::Reply reply) { metrics_request(r, std::move(reply)); });
  health_ = std::make_unique<admin::AdminServer>(
      loop_, [this](const admin::Request& r, admin::Reply reply) { health_request(r, std::move(reply)); });
  std::string err;
  if (!admin_->listen(l.admin, &err) || !metrics_->listen(l.metrics, &err) || !health_->listen(l.health, &err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return false;
  }
  return true;
}

void Process::gather(std::function<void(std::vector<WorkerSample>)> done) {
  auto g = std::make_shared<Gather>();
  g->done = std::move(done);
  // The timer holds the state weakly: the workers' replies own it, and it goes when the last is in.
  g->timeout = std::make_unique<event::Timer>(loop_, [weak = std::weak_ptr<Gather>(g)] {
    if (auto s = weak.lock()) {
      s->complete();
    }
  });
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!running_[i]) {
      continue;
    }
    ++g->pending;
    workers_[i]->sample([this, g](WorkerSample s) {
      loop_.post([g, s = std::move(s)]() mutable {
        g->samples.push_back(std::move(s));
        if (--g->pending == 0) {
          g->complete();
        }
      });
    });
  }
  if (g->pending == 0) {
    g->complete();
    return;
  }
  g->timeout->start(kGatherTimeout);
}

std::vector<const stats::Block*> Process::blocks() const {
  std::vector<const stats::Block*> out;
  for (const auto& w : workers_) {
    out.push_back(&w->stats());
  }
  return out;
}

stats::ProcessMetrics Process::process_metrics() const {
  stats::ProcessMetrics p;
  p.workers = static_cast<int64_t>(workers_.size());
  p.config_loads_ok = 1;  // start-up; a failed start-up load never gets this far
  p.config_loaded_at = std::chrono::duration<double>(snapshot_->loaded_at.time_since_epoch()).count();
  p.ready = ready_;
  return p;
}

// Endpoint state merged over workers: ejected when any worker has ejected it (each worker runs its
// own outlier detection), counts summed.
admin::HostLookup Process::host_lookup(std::shared_ptr<const std::vector<WorkerSample>> samples) const {
  return [samples](const config::RoutedCluster& cluster, size_t index) {
    admin::HostRuntime h;
    for (const auto& s : *samples) {
      auto it = s.hosts.find(cluster.name);
      if (it == s.hosts.end() || index >= it->second.size()) {
        continue;
      }
      const WorkerSample::Host& w = it->second[index];
      if (w.ejected) {
        h.ejected = true;
        ++h.ejected_on_workers;
      }
      h.consecutive_5xx = std::max(h.consecutive_5xx, w.consecutive_5xx);
      h.active_requests += w.active_requests;
    }
    return h;
  };
}

void Process::prometheus(admin::Reply reply) {
  gather([this, reply = std::move(reply)](std::vector<WorkerSample> samples) {
    std::vector<stats::WorkerSample> metrics;
    for (auto& s : samples) {
      metrics.push_back(std::move(s.metrics));
    }
    reply({200, "text/plain; version=0.0.4; charset=utf-8",
           stats::render_prometheus(stats::merge(metrics), blocks(), process_metrics())});
  });
}

void Process::admin_request(const admin::Request& r, admin::Reply reply) {
  const std::string& p = r.path;
  if (r.method == "POST") {
    if (p == "/logging") {
      auto level = r.param("level");
      if (!level || (spdlog::level::from_str(*level) == spdlog::level::off && *level != "off")) {
        reply(text(400, "usage: POST /logging?level=trace|debug|info|warn|error|critical|off\n"));
        return;
      }
      spdlog::set_level(spdlog::level::from_str(*level));
      spdlog::info("admin: log level set to {}", *level);
      reply(text(200, "log level: " + *level + "\n"));
    } else if (p == "/drain_listeners") {
      drain("admin POST /drain_listeners");
      for (auto& w : workers_) {
        w->drain_listeners();
      }
      reply(text(200, "OK\n"));
    } else {
      reply(text(404, "not found\n"));
    }
    return;
  }
  if (r.method != "GET") {
    reply(text(405, "method not allowed\n"));
    return;
  }
  if (p == "/stats") {
    reply(text(200, stats::render_text(blocks())));
  } else if (p == "/stats/prometheus") {
    prometheus(std::move(reply));
  } else if (p == "/ready") {
    reply(text(ready_ ? 200 : 503, ready_ ? "LIVE\n" : "DRAINING\n"));
  } else if (p == "/listeners") {
    reply(json(admin::listeners_json(*snapshot_)));
  } else if (p == "/clusters") {
    reply(json(admin::clusters_json(*snapshot_)));
  } else if (p == "/routes") {
    reply(json(admin::routes_json(*snapshot_)));
  } else if (p == "/endpoints" || p == "/config_dump") {
    bool dump = p == "/config_dump";
    gather([this, dump, snapshot = snapshot_, reply = std::move(reply)](std::vector<WorkerSample> samples) {
      auto lookup = host_lookup(std::make_shared<const std::vector<WorkerSample>>(std::move(samples)));
      reply(json(dump ? admin::config_dump_json(*snapshot, lookup) : admin::endpoints_json(*snapshot, lookup)));
    });
  } else if (p == "/") {
    reply(text(200,
               "GET  /config_dump /listeners /clusters /routes /endpoints\n"
               "GET  /stats /stats/prometheus /ready\n"
               "POST /logging?level=LEVEL /drain_listeners\n"));
  } else {
    reply(text(404, "not found\n"));
  }
}

void Process::metrics_request(const admin::Request& r, admin::Reply reply) {
  if (r.method != "GET") {
    reply(text(405, "method not allowed\n"));
  } else if (r.path == "/stats/prometheus" || r.path == "/metrics") {
    prometheus(std::move(reply));
  } else {
    reply(text(404, "not found\n"));
  }
}

void Process::health_request(const admin::Request& r, admin::Reply reply) {
  if (r.method != "GET") {
    reply(text(405, "method not allowed\n"));
  } else if (r.path == "/healthz/ready") {
    reply(text(ready_ ? 200 : 503, ready_ ? "ready\n" : "not ready\n"));
  } else {
    reply(text(404, "not found\n"));
  }
}

void Process::drain(const char* why) {
  if (!draining_) {
    spdlog::info("{}: readiness 503, no new tunnels", why);
  }
  draining_ = true;
  ready_ = false;
}

// SIGTERM/SIGINT: stop accepting, GOAWAY, drain up to drain_time, exit 0. A second signal: exit now.
void Process::install_signals() {
  for (int signum : {SIGTERM, SIGINT}) {
    auto* h = new uv_signal_t;
    uv_signal_init(loop_.uv(), h);
    h->data = this;
    uv_signal_start(
        h,
        [](uv_signal_t* s, int num) {
          auto* self = static_cast<Process*>(s->data);
          if (++self->signals_seen_ > 1) {
            spdlog::warn("second signal: exiting without draining");
            std::_Exit(0);
          }
          spdlog::info("signal {}: draining for up to {} ms", num, self->options_.drain_time.count());
          self->drain("shutdown");
          for (auto& w : self->workers_) {
            w->shutdown(self->options_.drain_time);
          }
        },
        signum);
    signal_handles_.push_back(h);
  }
}

int Process::run() {
  const config::Bootstrap& boot = snapshot_->bootstrap;
  tls::ContextPtr server_tls;
  tls::ContextPtr client_tls;
  try {
    server_tls = tls::Context::make(tls::Context::Role::Server, boot.tls, boot.trust_domain);
    client_tls = tls::Context::make(tls::Context::Role::Client, boot.tls, boot.trust_domain);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: tls: %s\n", options_.config_path.c_str(), e.what());
    return 1;
  }
  if (!start_workers(server_tls, client_tls) || !start_listeners()) {
    return 1;
  }
  // Each worker says when its thread ends; the main loop stops after the last one (the listeners
  // keep answering, readiness 503, meanwhile).
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->start([this, i] {
      loop_.post([this, i] {
        running_[i] = false;
        if (++exited_ == workers_.size()) {
          loop_.stop();
        }
      });
    });
  }
  ready_ = true;
  spdlog::info(
      "waypoint ready: hbone {} ({} workers), admin {}, metrics {}, health {}, namespace {}, config {} "
      "version {}",
      boot.listeners.hbone.to_string(), workers_.size(), boot.listeners.admin.to_string(),
      boot.listeners.metrics.to_string(), boot.listeners.health.to_string(), boot.namespace_, options_.config_path,
      snapshot_->version);
  install_signals();
  loop_.run();
  for (auto* h : signal_handles_) {
    event::close_and_delete(h);
  }
  for (auto& w : workers_) {
    w->join();
  }
  spdlog::info("waypoint stopped");
  return 0;
}

}  // namespace

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
  spdlog::set_level(spdlog::level::from_str(snapshot->bootstrap.log_level));
  for (const auto& w : snapshot->warnings) {
    spdlog::warn("config: {}", w);
  }
  Process process(options, snapshot);
  return process.run();
}

}  // namespace wp::server
