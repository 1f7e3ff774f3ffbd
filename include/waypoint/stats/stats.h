#pragma once
// Per-worker counters and gauges. Each worker writes only its own block (relaxed atomics, no
// locks, no shared cache lines); a scrape sums the blocks of all workers.
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace wp::stats {

#define WP_STATS_LIST(X)                                                                               \
  X(downstream_cx_total, Counter, "HBONE connections accepted")                                        \
  X(downstream_cx_active, Gauge, "HBONE connections open")                                             \
  X(downstream_cx_overflow, Counter, "HBONE connections refused over downstream.maxConnections")       \
  X(downstream_accept_paused, Counter, "accept paused: out of file descriptors or memory")             \
  X(downstream_cx_keepalive_timeout, Counter, "HBONE connections dropped for an unanswered PING")      \
  X(downstream_cx_protocol_error, Counter, "HBONE connections closed on an HTTP/2 protocol error")     \
  X(handshake_failed_not_tls, Counter, "handshake failures: not TLS")                                  \
  X(handshake_failed_protocol_version, Counter, "handshake failures: no TLS 1.3")                      \
  X(handshake_failed_no_certificate, Counter, "handshake failures: no client certificate")             \
  X(handshake_failed_untrusted_chain, Counter, "handshake failures: certificate not trusted")          \
  X(handshake_failed_bad_identity, Counter, "handshake failures: SPIFFE identity rejected")            \
  X(handshake_failed_no_alpn, Counter, "handshake failures: no h2 ALPN")                               \
  X(handshake_failed_timeout, Counter, "handshake failures: timeout")                                  \
  X(handshake_failed_io, Counter, "handshake failures: connection lost")                               \
  X(handshake_failed_other, Counter, "handshake failures: other")                                      \
  X(tunnels_total, Counter, "CONNECT requests received")                                               \
  X(tunnels_active, Gauge, "downstream tunnels open")                                                  \
  X(tunnels_rejected_bad_request, Counter, "CONNECT answered 400")                                     \
  X(tunnels_rejected_header_overflow, Counter, "CONNECT answered 431 (header list too large)")         \
  X(tunnels_rejected_not_served, Counter, "CONNECT answered 503: destination not served")              \
  X(tunnels_rejected_no_endpoint, Counter, "CONNECT answered 503: no ready endpoint")                  \
  X(tunnels_rejected_upstream_failure, Counter, "CONNECT answered 503: upstream connect failed")       \
  X(tunnels_reset, Counter, "tunnels ended by a reset on either side")                                 \
  X(tcp_bytes_downstream_to_upstream, Counter, "bytes copied client -> pod on TCP chains")             \
  X(tcp_bytes_upstream_to_downstream, Counter, "bytes copied pod -> client on TCP chains")             \
  X(access_log_dropped, Counter, "access-log writes dropped (backlog over 1 MiB or a failing target)") \
  X(upstream_cx_total, Counter, "upstream HBONE connections opened")                                   \
  X(upstream_cx_active, Gauge, "upstream HBONE connections open")                                      \
  X(upstream_cx_connect_failed, Counter, "upstream HBONE connects that failed (TCP or TLS)")           \
  X(upstream_cx_idle_closed, Counter, "upstream HBONE connections closed for idleness")                \
  X(upstream_connect_timeout, Counter, "upstream tunnels not established within connectTimeout")       \
  X(upstream_tunnels_total, Counter, "upstream CONNECT streams opened")                                \
  X(upstream_tunnels_active, Gauge, "upstream CONNECT streams open")                                   \
  X(upstream_tunnels_refused, Counter, "upstream CONNECT answered non-200 or reset")

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
