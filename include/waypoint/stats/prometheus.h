#pragma once
// Istio's standard metrics (istio_requests_total, istio_request_duration_milliseconds, ...) with
// their labels, kept per worker, and the Prometheus text rendering of everything the proxy counts.
//
// A worker owns one Series store and is its only writer: no locks, no atomics on the request path.
// A scrape asks every worker (by a task posted to its loop) for a copy of its series, merges the
// copies by label set and renders; the data path never waits for a scrape.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "waypoint/stats/stats.h"

namespace wp::stats {

// Envoy's default histogram bounds, which Istio's standard histograms use (milliseconds for the
// duration, bytes for the sizes); the +Inf bucket is implicit.
inline constexpr std::array<double, 19> kBucketBounds = {
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};

struct Histogram {
  std::array<uint64_t, kBucketBounds.size() + 1> counts{};  // per bucket, not cumulative; last is +Inf
  uint64_t count = 0;
  double sum = 0;
  void observe(double value);
  void merge(const Histogram& other);
};

// One workload as Istio's labels describe it ("unknown" where not known).
struct Peer {
  std::string_view workload = "unknown";
  std::string_view namespace_ = "unknown";
  std::string_view principal = "unknown";
  std::string_view app = "unknown";
  std::string_view version = "unknown";
  std::string_view canonical_service = "unknown";
  std::string_view canonical_revision = "latest";
};

// The label values of one request or TCP connection, as views valid for the call only.
struct Labels {
  Peer source;
  Peer destination;
  std::string_view destination_service = "unknown";  // FQDN
  std::string_view destination_service_name = "unknown";
  std::string_view destination_service_namespace = "unknown";
  std::string_view request_protocol = "http";  // http, grpc, tcp
  int response_code = 0;                       // HTTP only
  std::string_view response_flags = "-";
};

struct HttpSeries {
  std::string labels;  // rendered Prometheus label text, without braces
  uint64_t requests = 0;
  Histogram duration_ms;
  Histogram request_bytes;
  Histogram response_bytes;
};

struct TcpSeries {
  std::string labels;
  uint64_t opened = 0;
  uint64_t closed = 0;
  uint64_t sent_bytes = 0;      // to the client (downstream)
  uint64_t received_bytes = 0;  // from the client
};

// What one worker hands to a scrape.
struct MetricsSample {
  std::vector<HttpSeries> http;
  std::vector<TcpSeries> tcp;
  int64_t buffered_bytes = 0;    // pooled buffer bytes in use on the worker
  uint64_t series_overflow = 0;  // label sets folded into the overflow series
};

// The per-worker store. Finding a series costs one key build into a reused buffer and one hash
// lookup; the label text is rendered once, when a label set is first seen.
class SeriesStore {
 public:
  // Bounds memory against label explosion (e.g. many distinct client identities): past this, new
  // label sets are folded into one overflow series and counted (istio_series_overflow).
  static constexpr size_t kMaxSeries = 10'000;

  void record_request(const Labels& l, double duration_ms, uint64_t request_bytes, uint64_t response_bytes);
  void tcp_opened(const Labels& l);
  void tcp_closed(const Labels& l, uint64_t sent, uint64_t received);

  size_t size() const { return http_.size() + tcp_.size(); }
  uint64_t overflowed() const { return overflowed_; }
  MetricsSample sample() const;

 private:
  template <typename S>
  S& find(std::vector<S>& series, std::unordered_map<std::string, size_t>& index, const Labels& l, bool http);

  std::string key_;  // reused: the label values joined, for lookup
  std::vector<HttpSeries> http_;
  std::vector<TcpSeries> tcp_;
  std::unordered_map<std::string, size_t> http_index_;
  std::unordered_map<std::string, size_t> tcp_index_;
  uint64_t overflowed_ = 0;
};

// Istio's label text for `l` (reporter="waypoint", the source_* and destination_* labels, ...).
std::string render_labels(const Labels& l, bool http);

// Sums samples of all workers by label set.
MetricsSample merge(const std::vector<MetricsSample>& samples);

// The whole /stats/prometheus page: Istio's standard metrics from `merged`, then the proxy's own
// counters and gauges from the workers' blocks (waypoint_*, with labelled families for handshake
// failures and local replies), then `process` gauges and counters the main thread keeps.
// One kind of the Kubernetes API source (SPEC §7).
struct KubernetesKindMetrics {
  std::string kind;
  int64_t watch_errors = 0;
  std::map<std::string, int64_t> events;  // by type: ADDED, MODIFIED, DELETED
  double last_sync = 0;                   // Unix seconds; 0 before the first LIST
  int64_t objects = 0;
};

struct ProcessMetrics {
  int64_t workers = 0;
  int64_t config_loads_ok = 0;
  int64_t config_loads_failed = 0;
  int64_t config_loads_incremental = 0;  // reloads applied on top of the previous compile
  double config_load_cpu_seconds = 0;    // CPU of the reload jobs (start-up excluded)
  int64_t certificate_loads_ok = 0;
  int64_t certificate_loads_failed = 0;
  double config_loaded_at = 0;  // Unix seconds
  bool ready = false;
  // The Kubernetes API mode only (empty otherwise): per kind, and the objects the snapshot in force
  // left out (by kind; every kind listed, 0 included).
  std::vector<KubernetesKindMetrics> kubernetes;
  std::map<std::string, int64_t> rejected_objects;
};
std::string render_prometheus(const MetricsSample& merged, const std::vector<const Block*>& blocks,
                              const ProcessMetrics& process);

}  // namespace wp::stats
