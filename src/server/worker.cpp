#include "waypoint/server/worker.h"

#include "waypoint/tls/socket.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>

namespace wp::server {
namespace {

hbone::H2Settings downstream_settings(const config::Bootstrap& b) {
  hbone::H2Settings s;
  s.max_concurrent_streams = b.downstream.max_concurrent_streams;
  s.max_header_list_bytes = b.downstream.max_header_list_bytes;
  s.keepalive_interval = b.downstream.keepalive_interval;
  s.keepalive_timeout = b.downstream.keepalive_timeout;
  s.handshake_timeout = b.downstream.handshake_timeout;
  s.limits.max_consecutive_empty_frames = b.downstream.max_consecutive_empty_frames;
  s.limits.premature_reset_total_stream_count = b.downstream.premature_reset_total_stream_count;
  s.limits.premature_reset_min_stream_lifetime = b.downstream.premature_reset_min_stream_lifetime;
  return s;
}

hbone::PoolSettings pool_settings(const config::Bootstrap& b) {
  hbone::PoolSettings p;
  p.h2.keepalive_interval = b.downstream.keepalive_interval;
  p.h2.keepalive_timeout = b.downstream.keepalive_timeout;
  p.max_streams_per_connection = b.upstream.max_streams_per_connection;
  p.connect_timeout = b.upstream.connect_timeout;
  p.idle_timeout = b.upstream.idle_timeout;
  return p;
}

}  // namespace

Worker::Worker(int index, config::SnapshotPtr snapshot, tls::ContextPtr server_tls, tls::ContextPtr client_tls)
    : index_(index),
      snapshot_(std::move(snapshot)),
      server_tls_(std::move(server_tls)),
      client_tls_(std::move(client_tls)),
      downstream_settings_(downstream_settings(snapshot_->bootstrap)),
      pool_(loop_, client_tls_, pool_settings(snapshot_->bootstrap), stats_),
      telemetry_(loop_, snapshot_->bootstrap.access_log, stats_),
      listener_(loop_, pool_, stats_, telemetry_) {
  listener_.set_snapshot(snapshot_);
}

Worker::~Worker() {
  join();
  if (listen_fd_ >= 0 && !acceptor_) {
    ::close(listen_fd_);
  }
}

bool Worker::bind(std::string* error) {
  net::ListenOptions opts;
  opts.reuse_port = true;
  listen_fd_ = net::listen_tcp(snapshot_->bootstrap.listeners.hbone, opts, error);
  return listen_fd_ >= 0;
}

void Worker::start(std::function<void()> on_exit) {
  on_exit_ = std::move(on_exit);
  thread_ = std::thread([this] {
    run();
    if (on_exit_) {
      on_exit_();
    }
  });
}

void Worker::run() {
  acceptor_ = std::make_unique<net::Acceptor>(
      loop_, listen_fd_, [this](int fd, const net::SockAddr& peer) { on_accept(fd, peer); },
      [this](int err) {
        stats_.add(stats::Id::downstream_accept_paused);
        spdlog::warn("worker {}: accept: {}; pausing for {} ms", index_, std::strerror(err),
                     net::Acceptor::kBackoff.count());
      });
  spdlog::debug("worker {} running", index_);
  tls::Socket::set_thread_stats(&stats_);
  loop_.keep_alive(true);  // the thread ends in finish() (loop_.stop()), never because it went idle
  loop_.run();
  loop_.keep_alive(false);
  // Whatever is left (shutdown path) is closed here, on the worker's own thread. close() tells
  // on_connection_closed, which erases from connections_: iterate over a copy.
  listener_.abort_all();
  std::vector<hbone::H2Connection*> left;
  for (auto& [p, c] : connections_) {
    left.push_back(p);
  }
  for (auto* c : left) {
    c->close();
  }
  pool_.close_all();
  acceptor_.reset();
  drain_timer_.reset();
  loop_.close_adopted();  // lingering closes end with the worker
  tls::Socket::set_thread_stats(nullptr);
  // Closing queued tasks and deferred deletions that point at connections, streams and requests:
  // run them now, while the listener, pool and stats they touch exist (~Loop runs last, after the
  // other members are gone).
  loop_.drain_deferred();
  connections_.clear();
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Worker::on_accept(int fd, const net::SockAddr& peer) {
  if (connections_.size() >= snapshot_->bootstrap.downstream.max_connections) {
    stats_.add(stats::Id::downstream_cx_overflow);
    ::close(fd);
    return;
  }
  stats_.add(stats::Id::downstream_cx_total);
  stats_.add(stats::Id::downstream_cx_active);
  auto conn = std::make_unique<hbone::HboneServerConnection>(loop_, fd, peer, server_tls_, downstream_settings_, *this,
                                                             stats_, listener_);
  auto* raw = conn.get();
  connections_.emplace(raw, std::move(conn));
  raw->start();
}

void Worker::on_connection_closed(hbone::H2Connection& conn) {
  auto it = connections_.find(&conn);
  if (it == connections_.end()) {
    return;
  }
  stats_.sub(stats::Id::downstream_cx_active);
  loop_.defer_delete(std::move(it->second));
  connections_.erase(it);
  if (draining_ && connections_.empty()) {
    finish();
  }
}

void Worker::sample(std::function<void(WorkerSample)> done) {
  loop_.post([this, done = std::move(done)] {
    WorkerSample s;
    s.metrics = telemetry_.series().sample();
    s.metrics.buffered_bytes = static_cast<int64_t>(buffer::thread_slice_bytes_in_use());
    auto now = loop_.now();  // the clock the data path reads (ejections are set by it)
    listener_.clusters().for_each([&](const config::RoutedCluster& cluster, const upstream::ClusterState& state) {
      auto& hosts = s.hosts[cluster.name];
      hosts.resize(state.size());
      for (size_t i = 0; i < state.size(); ++i) {
        const upstream::HostState& h = state.host(i);
        bool ejected = state.ejected(i, now);
        hosts[i] = {ejected, ejected ? 1u : 0u, h.consecutive_5xx, h.active_requests};
      }
    });
    done(std::move(s));
  });
}

void Worker::set_snapshot(config::SnapshotPtr snapshot, std::function<void()> applied) {
  loop_.post([this, snapshot = std::move(snapshot), applied = std::move(applied)] {
    snapshot_ = snapshot;
    downstream_settings_ = downstream_settings(snapshot_->bootstrap);
    listener_.set_snapshot(snapshot_);
    if (applied) {
      applied();
    }
  });
}

void Worker::set_tls(tls::ContextPtr server, tls::ContextPtr client) {
  loop_.post([this, server = std::move(server), client = std::move(client)] {
    server_tls_ = server;
    client_tls_ = client;
    pool_.set_tls(client_tls_);
  });
}

void Worker::drain_listeners(bool graceful) {
  loop_.post([this, graceful] {
    if (!draining_) {
      stop_accepting(graceful);
    }
  });
}

void Worker::stop_accepting(bool goaway) {
  acceptor_.reset();
  listen_fd_ = -1;
  if (!goaway) {
    return;
  }
  std::vector<hbone::H2Connection*> conns;
  for (auto& [p, c] : connections_) {
    conns.push_back(p);
  }
  for (auto* c : conns) {
    c->drain();
  }
}

void Worker::shutdown(std::chrono::milliseconds drain_time) {
  loop_.post([this, drain_time] { begin_drain(drain_time); });
}

void Worker::begin_drain(std::chrono::milliseconds drain_time) {
  if (draining_) {
    return;
  }
  draining_ = true;
  stop_accepting(true);
  if (connections_.empty()) {
    finish();
    return;
  }
  drain_timer_ = std::make_unique<event::Timer>(loop_, [this] { finish(); });
  drain_timer_->start(drain_time);
}

void Worker::finish() {
  if (drain_timer_) {
    drain_timer_->stop();
  }
  listener_.abort_all();
  pool_.close_all();
  std::vector<hbone::H2Connection*> conns;
  for (auto& [p, c] : connections_) {
    conns.push_back(p);
  }
  for (auto* c : conns) {
    c->close();
  }
  loop_.stop();
}

}  // namespace wp::server
