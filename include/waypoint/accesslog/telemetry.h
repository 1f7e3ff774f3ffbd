#pragma once
// What a worker reports about each finished request and tunnel: the access-log line and Istio's
// standard metrics, both fed from the same TunnelRecord so they can never disagree. One per
// worker; touched only by its thread (a scrape reads the metrics through a task on that thread).
#include <string>

#include "waypoint/accesslog/access_log.h"
#include "waypoint/stats/prometheus.h"

namespace wp::accesslog {

class Telemetry {
 public:
  Telemetry(event::Loop& loop, const std::string& access_log_target, stats::Block& stats)
      : log_(loop, access_log_target, stats) {}

  // A request (protocol HTTP/...) or a TCP tunnel ended: log it and count it.
  void log(const TunnelRecord& r);
  // A TCP tunnel was opened to an upstream (istio_tcp_connections_opened_total); log() closes it.
  void tcp_opened(const TunnelRecord& r);

  const stats::SeriesStore& series() const { return series_; }

  // Istio's labels for a record: source from the client's SPIFFE ID (and its pod when it is one of
  // this namespace's), destination from the endpoint's pod and the service.
  static stats::Labels labels(const TunnelRecord& r);

 private:
  AccessLog log_;
  stats::SeriesStore series_;
};

}  // namespace wp::accesslog
