#pragma once
// The admin listener (127.0.0.1:15000 by default), served on the main thread's loop. Each request
// is one short HTTP/1.1 exchange: parsed with llhttp, answered, closed.
#include <functional>
#include <memory>
#include <string>

#include "waypoint/event/loop.h"
#include "waypoint/net/address.h"

namespace wp::admin {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Called with method and path (query string included); returns the response.
using Handler = std::function<Response(const std::string& method, const std::string& path)>;

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
