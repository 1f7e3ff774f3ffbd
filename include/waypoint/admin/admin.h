#pragma once
// A small HTTP/1.1 server on the main thread's loop, for the admin API (127.0.0.1:15000), the
// metrics listener (15020) and the health listener (15021). Each request is one short exchange:
// parsed with llhttp, answered (possibly later: a handler may wait for the workers), closed.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "waypoint/event/loop.h"
#include "waypoint/net/address.h"

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
  // The value of query parameter `name` ("" for a bare "name"), nullopt when absent. No
  // percent-decoding: admin parameters are plain words.
  std::optional<std::string> param(std::string_view name) const;
};

// Answers the request; may be called later, from the loop's thread, exactly once.
using Reply = std::function<void(Response)>;
using Handler = std::function<void(const Request& request, Reply reply)>;

class AdminServer {
 public:
  AdminServer(event::Loop& loop, Handler handler);
  ~AdminServer();
  bool listen(const net::SockAddr& addr, std::string* error);

 private:
  class Session;
  event::Loop& loop_;
  Handler handler_;
  uv_tcp_t* server_ = nullptr;
};

}  // namespace wp::admin
