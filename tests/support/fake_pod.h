#pragma once
// A fake pod: an HBONE server on a loopback address (its own thread and loop), built on the same
// hbone/ code as the waypoint. Each accepted CONNECT is answered according to the pod's behaviour;
// counters let tests see exactly what arrived.
//
// PodBehavior::Http serves HTTP inside each tunnel (tests/support/pod_http.cpp): h2c when the
// tunnel starts with the HTTP/2 client preface, else HTTP/1.1 (keep-alive, pipelining answered in
// order). Each request is answered according to its headers:
//   (none)            200, the request body echoed back as it arrives (flow-controlled: the pod
//                     takes tunnel bytes only as fast as it writes the echo back); Content-Length =
//                     the request's when known, else chunked (HTTP/1.1) / no content-length (h2c)
//   x-status: N       status N once the whole request body arrived (read and discarded); empty
//                     body unless x-body-bytes
//   x-body-bytes: N   N bytes of pod_body_byte(i) instead of the echo, once the request body arrived
//   x-chunked: 1      HTTP/1.1: a chunked response even when the length is known
//   x-delay-ms: N     the response head is sent N ms later (after the request head)
//   x-reset: 1        instead of answering (after x-delay-ms): reset the tunnel (HTTP/1.1) or
//                     RST_STREAM(INTERNAL_ERROR) the stream (h2c)
//   x-close: 1        HTTP/1.1: "connection: close", the tunnel ends after the response
// fail_next() overrides all of that for the next requests. Every response carries
// x-pod: <name>; x-request-body-bytes: <n> when the head is sent after the whole request body (not
// for echo); x-seen-request-id / x-seen-traceparent echoing x-request-id / traceparent. A request
// the codec rejects gets the codec's status with connection close (HTTP/1.1) and counts in
// http_errors().
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "waypoint/http/headers.h"
#include "waypoint/net/address.h"

namespace wp::testing {

enum class PodBehavior {
  Echo,    // 200, then every byte back; EOF answered with EOF
  Greet,   // 200, sends "hello\n" and EOF at once, then counts what it receives
  Refuse,  // answers every CONNECT with 503
  Reset,   // 200, then RST_STREAM after the first bytes arrive
  Http,    // 200, then HTTP/1.1 or h2c inside the tunnel (see above)
};

// Http pods: byte i of an x-body-bytes response body.
inline char pod_body_byte(uint64_t i) {
  return static_cast<char>('a' + i % 26);
}

// One HTTP request as the pod received it (Http pods).
struct RecordedRequest {
  std::string method, target, authority;  // authority: Host (HTTP/1.1) or :authority (h2c)
  http::HeaderMap headers;                // as received (pseudo-headers excluded)
  uint64_t body_bytes = 0;                // request body bytes received so far
  bool h2c = false;
};

struct FakePodOptions {
  net::SockAddr address;        // e.g. 127.0.1.1:15008
  std::string cert, key, root;  // PEM file paths
  std::string trust_domain = "cluster.local";
  PodBehavior behavior = PodBehavior::Echo;
  int respond_delay_ms = 0;  // delay before answering each CONNECT
  std::string banner;        // Echo: sent first on every tunnel (e.g. the pod's name)
  std::string name = "pod";  // Http: returned in the x-pod response header
};

class PodTunnel;
class PodHttpRecorder;

class FakePod {
 public:
  explicit FakePod(FakePodOptions options);
  ~FakePod();  // stops the thread
  FakePod(const FakePod&) = delete;
  FakePod& operator=(const FakePod&) = delete;

  const std::string& name() const { return name_; }

  // Echo pods: stop/resume reading (a slow reader). Thread-safe.
  void set_reading(bool reading);
  void set_behavior(PodBehavior b);

  // Counters (thread-safe).
  uint64_t connections() const { return connections_.load(); }  // TLS+h2 connections accepted
  uint64_t tunnels() const { return tunnels_.load(); }          // CONNECTs received
  uint64_t active_tunnels() const { return active_tunnels_.load(); }
  uint64_t bytes_received() const { return bytes_received_.load(); }
  uint64_t eofs_received() const { return eofs_received_.load(); }
  std::vector<std::string> authorities() const;  // :authority of each CONNECT, in order
  std::vector<std::string> forwarded() const;    // forwarded header of each CONNECT ("" when absent)
  std::vector<std::string> peer_identities() const;

  // Http pods (thread-safe).
  // The next n HTTP requests are answered `status` with an empty body, whatever their headers.
  void fail_next(int n, int status);
  uint64_t http_requests() const { return http_requests_.load(); }  // request heads received
  uint64_t http_errors() const { return http_errors_.load(); }      // requests the codec rejected
  std::vector<RecordedRequest> requests() const;                    // in arrival order

  class Impl;

 private:
  friend class Impl;
  friend class PodTunnel;
  friend class PodHttpRecorder;
  std::unique_ptr<Impl> impl_;
  std::string name_;
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> tunnels_{0};
  std::atomic<uint64_t> active_tunnels_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> eofs_received_{0};
  mutable std::mutex mu_;
  std::vector<std::string> authorities_;
  std::vector<std::string> forwarded_;
  std::vector<std::string> identities_;
  std::atomic<uint64_t> http_requests_{0};
  std::atomic<uint64_t> http_errors_{0};
  std::vector<RecordedRequest> requests_;
  int fail_remaining_ = 0;
  int fail_status_ = 0;
};

}  // namespace wp::testing
