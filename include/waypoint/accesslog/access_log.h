#pragma once
// The access log: one JSON line per TCP tunnel and per HTTP request, with Envoy-style response
// flags so that every 503 can be explained. Each worker owns one writer: lines collect in a
// per-worker buffer and go out with one write(2) per loop iteration — no lock, no shared buffer.
// With O_APPEND (files) or a pipe (stdout), each write lands whole.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "waypoint/config/snapshot.h"
#include "waypoint/event/loop.h"
#include "waypoint/stats/stats.h"

namespace wp::accesslog {

struct TunnelRecord {
  std::chrono::system_clock::time_point start;
  std::chrono::microseconds duration{0};  // logged in ms; the duration histogram has sub-ms buckets
  std::string chain;                      // inbound-vip|...|fqdn, direct-tcp, or "-" when none matched
  std::string source_principal;           // the client's SPIFFE ID
  std::string source_address;             // forwarded for= or the TCP peer
  std::string destination;                // the CONNECT authority
  std::string upstream_host;              // podIP:port; empty (logged as "-") when none
  int response_code = 0;                  // the CONNECT's answer: 200, 503, ...
  const char* response_flags = "-";       // "-", NR, UH, UF, UC, DC, URX, UT, DI, FI, UO... (static strings)
  uint64_t bytes_received = 0;            // client -> pod
  uint64_t bytes_sent = 0;                // pod -> client
  // HTTP requests (one line each) also carry these; `protocol` "tcp" leaves them out.
  const char* protocol = "tcp";  // "tcp", "HTTP/1.0", "HTTP/1.1", "HTTP/2" (static strings)
  std::string method;
  std::string path;
  std::string route;       // the route's name ("default", VirtualService http[].name, ...); empty ("-") when none
  std::string cluster;     // the cluster picked; empty ("-") when none
  std::string request_id;  // x-request-id as sent upstream
  uint32_t attempts = 0;   // upstream tries, retries included
  // For Istio's metrics (accesslog::Telemetry): pointers into the snapshot the tunnel pinned, null
  // when unknown (a client that is not a pod of this namespace; no endpoint reached).
  const config::Pod* source_pod = nullptr;
  const config::Pod* destination_pod = nullptr;
  const config::Service* destination_service = nullptr;
  uint64_t request_header_bytes = 0;  // HTTP: the header fields' bytes, counted into istio_request_bytes
  uint64_t response_header_bytes = 0;
  bool grpc = false;  // content-type application/grpc: request_protocol="grpc"
};

class AccessLog {
 public:
  // Lines waiting for the end of the loop iteration; beyond this they are dropped and counted
  // (access_log_dropped) so a slow log target costs lines, never unbounded memory.
  static constexpr size_t kMaxPending = 1 << 20;

  // `target`: "stdout", "stderr", "off" (or empty), or a file path (opened for append).
  AccessLog(event::Loop& loop, const std::string& target, stats::Block& stats);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const { return fd_ >= 0; }
  void log(const TunnelRecord& r);
  void flush();

  // The JSON line for a record (no trailing newline); exposed for tests.
  static std::string format(const TunnelRecord& r);

 private:
  stats::Block& stats_;
  int fd_ = -1;
  bool owns_fd_ = false;
  std::string pending_;
  event::Deferred flush_after_io_;
};

}  // namespace wp::accesslog
