#pragma once
// Per-worker counters and gauges. Each worker writes only its own block (relaxed atomics, no
// locks, no shared cache lines); a scrape sums the blocks of all workers.
#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wp::stats {

#define WP_STATS_LIST(X)                                                                                        \
  X(downstream_cx_total, Counter, "HBONE connections accepted")                                                 \
  X(downstream_cx_active, Gauge, "HBONE connections open")                                                      \
  X(downstream_cx_overflow, Counter, "HBONE connections refused over downstream.maxConnections")                \
  X(downstream_accept_paused, Counter, "accept paused: out of file descriptors or memory")                      \
  X(downstream_cx_keepalive_timeout, Counter, "HBONE connections dropped for an unanswered PING")               \
  X(downstream_cx_protocol_error, Counter, "HBONE connections closed on an HTTP/2 protocol error")              \
  X(downstream_cx_empty_frames_overflow, Counter, "HBONE connections closed: too many empty frames in a row")   \
  X(downstream_cx_premature_reset, Counter, "HBONE connections closed: most streams reset before an answer")    \
  X(tls_cx_lingering, Gauge, "closed TLS connections still flushing their last bytes (lingering close)")        \
  X(tls_cx_linger_overflow, Counter, "graceful TLS closes made at once: too many lingering already")            \
  X(tunnels_refused_over_limit, Counter, "CONNECT streams refused over maxConcurrentStreams (REFUSED_STREAM)")  \
  X(handshake_failed_not_tls, Counter, "handshake failures: not TLS")                                           \
  X(handshake_failed_protocol_version, Counter, "handshake failures: no TLS 1.3")                               \
  X(handshake_failed_no_certificate, Counter, "handshake failures: no client certificate")                      \
  X(handshake_failed_untrusted_chain, Counter, "handshake failures: certificate not trusted")                   \
  X(handshake_failed_bad_identity, Counter, "handshake failures: SPIFFE identity rejected")                     \
  X(handshake_failed_no_alpn, Counter, "handshake failures: no h2 ALPN")                                        \
  X(handshake_failed_timeout, Counter, "handshake failures: timeout")                                           \
  X(handshake_failed_io, Counter, "handshake failures: connection lost")                                        \
  X(handshake_failed_other, Counter, "handshake failures: other")                                               \
  X(tunnels_total, Counter, "CONNECT requests received")                                                        \
  X(tunnels_active, Gauge, "downstream tunnels open")                                                           \
  X(tunnels_rejected_bad_request, Counter, "CONNECT answered 400")                                              \
  X(tunnels_rejected_header_overflow, Counter, "CONNECT answered 431 (header list too large)")                  \
  X(tunnels_rejected_not_served, Counter, "CONNECT answered 503: destination not served")                       \
  X(tunnels_rejected_authz, Counter, "TCP tunnels denied by AuthorizationPolicy (401, or reset once sniffed)")  \
  X(tunnels_rejected_no_endpoint, Counter, "CONNECT answered 503: no ready endpoint")                           \
  X(tunnels_rejected_upstream_failure, Counter, "CONNECT answered 503: upstream connect failed")                \
  X(tunnels_reset, Counter, "tunnels ended by a reset on either side")                                          \
  X(tcp_bytes_downstream_to_upstream, Counter, "bytes copied client -> pod on TCP chains")                      \
  X(tcp_bytes_upstream_to_downstream, Counter, "bytes copied pod -> client on TCP chains")                      \
  X(access_log_dropped, Counter, "access-log writes dropped (backlog over 1 MiB or a failing target)")          \
  X(upstream_cx_total, Counter, "upstream HBONE connections opened")                                            \
  X(upstream_cx_active, Gauge, "upstream HBONE connections open")                                               \
  X(upstream_cx_connect_failed, Counter, "upstream HBONE connects that failed (TCP or TLS)")                    \
  X(upstream_cx_idle_closed, Counter, "upstream HBONE connections closed for idleness")                         \
  X(upstream_connect_timeout, Counter, "upstream tunnels not established within connectTimeout")                \
  X(upstream_tunnels_total, Counter, "upstream CONNECT streams opened")                                         \
  X(upstream_tunnels_active, Gauge, "upstream CONNECT streams open")                                            \
  X(upstream_tunnels_refused, Counter, "upstream CONNECT answered non-200 or reset")                            \
  X(chains_sniffed_http1, Counter, "sniffed tunnels that carried HTTP/1.1")                                     \
  X(chains_sniffed_h2c, Counter, "sniffed tunnels that carried h2c")                                            \
  X(chains_sniffed_tcp, Counter, "sniffed tunnels treated as TCP")                                              \
  X(chains_sniff_timeout, Counter, "sniffed tunnels where the client sent nothing in time (TCP)")               \
  X(downstream_rq_total, Counter, "HTTP requests received inside tunnels")                                      \
  X(downstream_rq_active, Gauge, "HTTP requests in progress")                                                   \
  X(downstream_rq_1xx, Counter, "HTTP responses 1xx sent downstream")                                           \
  X(downstream_rq_2xx, Counter, "HTTP responses 2xx sent downstream")                                           \
  X(downstream_rq_3xx, Counter, "HTTP responses 3xx sent downstream")                                           \
  X(downstream_rq_4xx, Counter, "HTTP responses 4xx sent downstream")                                           \
  X(downstream_rq_5xx, Counter, "HTTP responses 5xx sent downstream")                                           \
  X(downstream_rq_malformed, Counter, "requests refused by the HTTP/1.1 codec (400)")                           \
  X(downstream_rq_framing_rejected, Counter, "requests refused for ambiguous framing (smuggling)")              \
  X(downstream_rq_bad_host, Counter, "requests refused for a missing, duplicate or bad Host")                   \
  X(downstream_rq_expectation_failed, Counter, "requests refused for an unsupported Expect (417)")              \
  X(downstream_rq_not_implemented, Counter, "requests refused as not implemented (501)")                        \
  X(downstream_rq_unsupported_version, Counter, "requests refused for their HTTP version (505)")                \
  X(downstream_rq_url_overflow, Counter, "requests refused for a target over the limit (414)")                  \
  X(downstream_rq_header_bytes_overflow, Counter, "requests refused for a head over the limit (431)")           \
  X(downstream_rq_header_count_overflow, Counter, "requests refused for too many fields (431)")                 \
  X(downstream_rq_incomplete, Counter, "requests cut short by the client")                                      \
  X(downstream_rq_header_timeout, Counter, "requests answered 408: head not complete in requestHeadersTimeout") \
  X(downstream_http_idle_timeout, Counter, "inner HTTP sessions closed after idleTimeout without a request")    \
  X(downstream_rq_underscore_headers, Counter, "requests with underscore header names dropped or rejected")     \
  X(downstream_h2c_protocol_error, Counter, "h2c sessions inside tunnels ended on a protocol error")            \
  X(inner_h2c_empty_frames_overflow, Counter, "h2c sessions ended: too many empty frames in a row")             \
  X(inner_h2c_premature_reset, Counter, "h2c sessions ended: most streams reset before an answer")              \
  X(inner_h2c_refused_over_limit, Counter, "h2c streams refused over the stream limit (REFUSED_STREAM)")        \
  X(rq_no_route, Counter, "requests answered 404: no route matched")                                            \
  X(rq_authz_denied, Counter, "requests answered 403: denied by AuthorizationPolicy")                           \
  X(authz_audited, Counter, "requests and tunnels matched by an AUDIT policy")                                  \
  X(rq_redirect, Counter, "requests answered with a route redirect")                                            \
  X(rq_direct_response, Counter, "requests answered with a route's direct response")                            \
  X(rq_fault_delayed, Counter, "requests delayed by fault injection")                                           \
  X(rq_fault_aborted, Counter, "requests aborted by fault injection")                                           \
  X(rq_timeout, Counter, "requests answered 504: route timeout")                                                \
  X(rq_no_healthy_upstream, Counter, "requests answered 503: no healthy endpoint")                              \
  X(upstream_rq_total, Counter, "upstream HTTP attempts (tries and retries)")                                   \
  X(upstream_rq_active, Gauge, "upstream HTTP attempts in progress")                                            \
  X(upstream_rq_retry, Counter, "upstream HTTP retries")                                                        \
  X(upstream_rq_retry_limit_exceeded, Counter, "retriable outcomes with no retry left")                         \
  X(upstream_rq_retry_body_too_large, Counter, "retries skipped: the request body was not replayable")          \
  X(upstream_rq_per_try_timeout, Counter, "upstream attempts ended by perTryTimeout")                           \
  X(upstream_rq_connect_failure, Counter, "upstream attempts that could not open a tunnel")                     \
  X(upstream_rq_reset, Counter, "upstream attempts reset before a complete response")                           \
  X(upstream_rq_pending_overflow, Counter, "requests answered 503: connectionPool limit (flag UO)")             \
  X(upstream_rq_pending_active, Gauge, "requests waiting for an upstream stream (http1MaxPendingRequests)")     \
  X(upstream_rq_retry_overflow, Counter, "retries not made: the cluster's maxRetries in flight")                \
  X(upstream_cx_overflow, Counter, "requests that waited: the cluster's tunnels at maxConnections")             \
  X(upstream_rq_mirrored, Counter, "mirror copies sent")                                                        \
  X(upstream_rs_malformed, Counter, "upstream responses refused by the HTTP/1.1 codec (502)")                   \
  X(upstream_rs_framing_rejected, Counter, "upstream responses with ambiguous framing (502)")                   \
  X(upstream_rs_unexpected, Counter, "upstream bytes with no request outstanding (502)")                        \
  X(upstream_rs_unsupported_version, Counter, "upstream responses with a bad HTTP version (502)")               \
  X(upstream_rs_not_implemented, Counter, "upstream responses refused as not implemented (502)")                \
  X(upstream_rs_url_overflow, Counter, "unused: responses have no URL")                                         \
  X(upstream_rs_header_bytes_overflow, Counter, "upstream responses with a head over the limit (502)")          \
  X(upstream_rs_header_count_overflow, Counter, "upstream responses with too many fields (502)")                \
  X(upstream_rs_incomplete, Counter, "upstream responses cut short")                                            \
  X(upstream_rs_bad_host, Counter, "unused: responses have no Host")                                            \
  X(upstream_rs_expectation_failed, Counter, "unused: responses have no Expect")                                \
  X(upstream_http_tunnels_opened, Counter, "upstream tunnels opened for HTTP")                                  \
  X(upstream_http_tunnels_reused, Counter, "HTTP attempts sent on an idle kept-alive upstream tunnel")          \
  X(upstream_http_tunnels_idle, Gauge, "idle kept-alive upstream HTTP tunnels")                                 \
  X(outlier_ejections_total, Counter, "hosts ejected by outlier detection")                                     \
  X(outlier_ejections_active, Gauge, "hosts currently ejected")                                                 \
  X(outlier_ejections_overflow, Counter, "ejections skipped: maxEjectionPercent reached")                       \
  X(admin_cx_active, Gauge, "admin, metrics and health connections open")                                       \
  X(admin_cx_overflow, Counter, "admin/metrics/health connections closed at once over maxConnections")          \
  X(admin_cx_idle_timeout, Counter, "admin/metrics/health connections closed without a request in time")        \
  X(admin_rq_forbidden, Counter, "admin POSTs refused (403): an Origin header or a non-loopback Host")

enum class Id : int {
#define WP_STATS_ENUM(name, kind, help) name,
  WP_STATS_LIST(WP_STATS_ENUM)
#undef WP_STATS_ENUM
      kCount
};
constexpr int kCount = static_cast<int>(Id::kCount);

enum class Kind { Counter, Gauge };

struct Info {
  const char* name;
  Kind kind;
  const char* help;
};
const Info& info(Id id);

class alignas(64) Block {
 public:
  void add(Id id, int64_t v = 1) { values_[static_cast<int>(id)].fetch_add(v, std::memory_order_relaxed); }
  void sub(Id id, int64_t v = 1) { add(id, -v); }
  int64_t get(Id id) const { return values_[static_cast<int>(id)].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<int64_t>, kCount> values_{};
};

// The sum over blocks, as "name value" lines (the admin /stats format).
std::string render_text(const std::vector<const Block*>& blocks);
int64_t sum(const std::vector<const Block*>& blocks, Id id);

}  // namespace wp::stats
