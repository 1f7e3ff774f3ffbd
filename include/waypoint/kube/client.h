#pragma once
// A small blocking HTTPS/1.1 client for the Kubernetes API, used from one dedicated thread (the
// reflector's): TLS 1.2+ verified against the Access's CA and host name or IP, a bearer token read
// from Access::bearer() for every request, responses parsed with llhttp (Content-Length, chunked or
// up to EOF). Every wait is a poll() of at most 100 ms that also looks at the stop flag, so a thread
// blocked in get() or stream() returns within about 100 ms of stop being set (name resolution of a
// host name is the exception: getaddrinfo cannot be interrupted). One connection is kept alive
// between requests; a GET that finds it closed by the server is sent once more on a new one.
// Not thread-safe: one thread per client.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "waypoint/kube/access.h"

struct ssl_ctx_st;  // SSL_CTX

namespace wp::kube {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10000};  // TCP connect + TLS handshake
  std::chrono::milliseconds read_timeout{60000};     // get(): no byte for this long fails the request
  size_t max_body_bytes = size_t{64} << 20;          // get(): one response body (a LIST page)
  size_t max_line_bytes = size_t{16} << 20;          // stream(): one line (one watch event)
  size_t max_head_bytes = size_t{64} << 10;          // status line + headers
  std::string user_agent = "waypoint/0.1.0";
};

// How a request ended. Only Complete carries a response (of any status).
enum class Outcome {
  Complete,       // the whole response was read
  Stopped,        // the stop flag was set
  ConnectFailed,  // name resolution, TCP connect or its timeout
  TlsFailed,      // the handshake, including certificate verification
  Closed,         // the connection ended (or failed) before the response did
  IdleTimeout,    // no byte arrived for the read or idle timeout
  TooLarge,       // a head, body (get) or line (stream) over its limit; the connection is dropped
  BadResponse,    // not HTTP/1.1 as llhttp parses it, or a Content-Encoding we did not ask for
  Aborted,        // stream(): on_line returned false
  Unusable,       // the Access cannot be used: bad CA bundle, client certificate or key, or token
};
std::string_view to_string(Outcome outcome);

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;  // get(); for stream() only the body of a non-200 response (bounded likewise)
  const std::string* header(std::string_view lower_name) const;  // the first, or nullptr
};

struct Result {
  Outcome outcome = Outcome::Complete;
  std::string error;  // what failed, for logs ("" when Complete)
  bool complete() const { return outcome == Outcome::Complete; }
};

struct ClientStats {
  uint64_t requests = 0;
  uint64_t connections = 0;     // TCP+TLS connections opened
  uint64_t reused = 0;          // requests sent on a kept-alive connection
  uint64_t failures = 0;        // requests that did not end Complete (Stopped not counted)
  uint64_t too_large = 0;       // of which over a limit
  uint64_t lines = 0;           // stream(): lines delivered
  uint64_t bytes_received = 0;  // plaintext bytes read
};

class Client {
 public:
  // `stop` must outlive the client; it is only read.
  Client(Access access, const std::atomic<bool>& stop, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // GET base_path + path_and_query. The body is bounded by max_body_bytes.
  Result get(const std::string& path_and_query, Response& response);

  // Any method, with a request body (sent with Content-Length and `content_type`).
  Result request(std::string_view method, const std::string& path_and_query, std::string_view body,
                 std::string_view content_type, Response& response);

  // GET for a watch: for a 200 response, calls on_line for each '\n'-terminated line of the body as
  // it arrives (without the '\n' and a '\r' before it; a last unterminated line of a complete
  // response too); other statuses collect the body into response.body instead. Returns Complete
  // when the response ended, Closed when the connection dropped first, IdleTimeout when no byte
  // arrived for `idle_timeout` (a stalled watch: not even a bookmark), Stopped, Aborted when on_line
  // returned false, TooLarge for a line over max_line_bytes.
  Result stream(const std::string& path_and_query, Response& response,
                const std::function<bool(std::string_view line)>& on_line, std::chrono::milliseconds idle_timeout);

  // Closes the kept-alive connection, if any.
  void disconnect();

  const ClientStats& stats() const { return stats_; }
  const Access& access() const { return access_; }

 private:
  struct Connection;
  struct Exchange;

  Result exchange(std::string_view method, const std::string& path, std::string_view body,
                  std::string_view content_type, Response& response,
                  const std::function<bool(std::string_view)>* on_line, std::chrono::milliseconds idle_timeout);
  Result attempt(const std::string& request, Response& response, const std::function<bool(std::string_view)>* on_line,
                 std::chrono::milliseconds idle_timeout, bool& retry_on_fresh);
  Result connect();
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

  Access access_;
  const std::atomic<bool>& stop_;
  ClientOptions options_;
  ssl_ctx_st* ssl_ctx_ = nullptr;  // built once from access_
  std::string ctx_error_;          // why ssl_ctx_ could not be built
  std::unique_ptr<Connection> conn_;
  ClientStats stats_;
};

}  // namespace wp::kube
