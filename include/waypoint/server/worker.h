#pragma once
// One worker thread: its own libuv loop, its own SO_REUSEPORT listener on the HBONE port, its own
// downstream connections, upstream pool, internal listener and stats block. Nothing here is shared
// with other workers; the main thread talks to a worker only by posting tasks to its loop.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "waypoint/admin/config_dump.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/hbone/server.h"
#include "waypoint/internal/listener.h"
#include "waypoint/net/socket.h"
#include "waypoint/stats/stats.h"
#include "waypoint/tls/context.h"

namespace wp::server {

// What a worker reports to a scrape or a config dump: copies, made on the worker's thread.
struct WorkerSample {
  stats::MetricsSample metrics;
  // Per routed cluster (by name) and endpoint index: this worker's view of each host
  // (ejected_on_workers is 1 when this worker has ejected it), merged over workers for a dump.
  std::map<std::string, std::vector<admin::HostRuntime>> hosts;
};

class Worker final : public hbone::H2Connection::Owner {
 public:
  Worker(int index, config::SnapshotPtr snapshot, tls::ContextPtr server_tls, tls::ContextPtr client_tls);
  ~Worker() override;

  // Binds this worker's listening socket (on the calling thread, so errors surface at start-up).
  bool bind(std::string* error);
  // Runs the worker thread; `on_exit` is called on that thread as it ends.
  void start(std::function<void()> on_exit);
  // Thread-safe. GOAWAY to every downstream connection, stop accepting, let tunnels finish for
  // up to `drain_time`, then close what is left and end the thread.
  void shutdown(std::chrono::milliseconds drain_time);
  void join();
  // Thread-safe. Runs `done` on the worker's thread with a copy of its metrics and host state;
  // `done` must hand the sample on (post it) and return. Never runs if the worker has ended.
  void sample(std::function<void(WorkerSample)> done);
  // Thread-safe. New tunnels and requests use `snapshot` from the worker's next loop iteration;
  // those in flight finish on the one they pinned.
  // `applied` (optional) runs on the worker's thread once it has switched.
  void set_snapshot(config::SnapshotPtr snapshot, std::function<void()> applied = nullptr);
  // Thread-safe. New downstream handshakes use `server`, new upstream dials `client`; open
  // connections keep the context they were made with.
  void set_tls(tls::ContextPtr server, tls::ContextPtr client);
  // Thread-safe. Stop accepting, keep serving what is open (the admin API's POST
  // /drain_listeners, as Envoy's); `graceful` also sends GOAWAY to every connection. The thread
  // ends only with shutdown().
  void drain_listeners(bool graceful);

  const stats::Block& stats() const { return stats_; }

 private:
  void run();
  void on_accept(int fd, const net::SockAddr& peer);
  void on_connection_closed(hbone::H2Connection& conn) override;
  void begin_drain(std::chrono::milliseconds drain_time);
  void stop_accepting(bool goaway);  // close the listener; GOAWAY to every connection
  void finish();

  int index_;
  event::Loop loop_;
  config::SnapshotPtr snapshot_;
  tls::ContextPtr server_tls_;
  tls::ContextPtr client_tls_;
  stats::Block stats_;
  hbone::H2Settings downstream_settings_;
  hbone::Pool pool_;
  accesslog::Telemetry telemetry_;
  internal::InternalListener listener_;
  int listen_fd_ = -1;
  std::unique_ptr<net::Acceptor> acceptor_;
  std::unordered_map<hbone::H2Connection*, std::unique_ptr<hbone::HboneServerConnection>> connections_;
  std::unique_ptr<event::Timer> drain_timer_;
  bool draining_ = false;
  std::function<void()> on_exit_;
  std::thread thread_;
};

}  // namespace wp::server
