#pragma once
// A small HTTP/1.1 server on the main thread's loop, for the admin API (127.0.0.1:15000), the
// metrics listener (15020) and the health listener (15021). Each request is one short exchange:
// parsed with llhttp, answered (possibly later: a handler may wait for the workers), closed.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "waypoint/event/loop.h"
#include "waypoint/net/address.h"
#include "waypoint/stats/stats.h"

namespace wp::admin {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct Request {
  std::string method;
  std::string path;   // without the query string
  std::string query;  // after '?', without it
  std::string host;   // the Host header ("" when absent)
  bool has_origin = false;
  // The value of query parameter `name` ("" for a bare "name"), nullopt when absent. No
  // percent-decoding: admin parameters are plain words.
  std::optional<std::string> param(std::string_view name) const;
};

// Answers the request; may be called later, from the loop's thread, exactly once.
using Reply = std::function<void(Response)>;
using Handler = std::function<void(const Request& request, Reply reply)>;

// Bounds per listener, so that nothing on these ports can take the descriptors HBONE needs.
struct ServerLimits {
  uint32_t max_connections = 128;  // more are accepted and closed at once
  std::chrono::milliseconds idle_timeout{10'000};  // a connection must send its request within this
  size_t max_request_bytes = 16 * 1024;
  // Requests that change something (any method but GET and HEAD) are refused with 403 when they
  // carry an Origin header (a browser page) or, unless this is false, a Host that is not a
  // loopback address or "localhost" (DNS rebinding).
  bool loopback_host_only = true;
};

class AdminServer {
 public:
  // `stats`: the main thread's block (admin_cx_* counters).
  AdminServer(event::Loop& loop, Handler handler, const ServerLimits& limits, stats::Block& stats);
  ~AdminServer();
  bool listen(const net::SockAddr& addr, std::string* error);
  size_t connections() const { return sessions_.size(); }

 private:
  class Session;
  void on_connection(uv_stream_t* server);
  event::Loop& loop_;
  Handler handler_;
  ServerLimits limits_;
  stats::Block& stats_;
  uv_tcp_t* server_ = nullptr;
  std::unordered_set<Session*> sessions_;  // open connections; each frees itself once closed
};

// True for a Host header naming this machine: a loopback IP (with or without a port) or localhost.
bool is_loopback_host(std::string_view host);

}  // namespace wp::admin
