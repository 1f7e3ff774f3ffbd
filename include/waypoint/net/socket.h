#pragma once
// Plain TCP sockets on a libuv loop: a listening socket whose accepts arrive as file descriptors,
// and non-blocking connects. TLS sits on top of the raw fd (see tls/socket.h), which lets OpenSSL
// read and write the kernel socket directly instead of through extra memory copies.
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "waypoint/event/loop.h"
#include "waypoint/net/address.h"

namespace wp::net {

struct ListenOptions {
  bool reuse_port = false;
  int backlog = 1024;
};

// Creates, binds and listens; returns the fd, or -1 with *error set ("bind 1.2.3.4:80: ...").
int listen_tcp(const SockAddr& addr, const ListenOptions& opts, std::string* error);
// Starts a non-blocking connect; returns the fd (connect may still be in progress) or -1 with errno.
int connect_tcp(const SockAddr& addr);
// The pending error of a non-blocking connect (0 when connected).
int socket_error(int fd);
void set_nodelay(int fd);
std::optional<SockAddr> local_address(int fd);

// Accepts connections on a listening fd and hands each new fd (non-blocking, TCP_NODELAY) on.
// When the process runs out of file descriptors (EMFILE/ENFILE) or memory, accepting pauses for
// kBackoff instead of spinning on a level-triggered listener, and `on_error` is told.
class Acceptor {
 public:
  using OnAccept = std::function<void(int fd, const SockAddr& peer)>;
  using OnError = std::function<void(int err)>;
  static constexpr std::chrono::milliseconds kBackoff{100};
  Acceptor(event::Loop& loop, int listen_fd, OnAccept on_accept, OnError on_error = {});
  ~Acceptor();  // stops accepting and closes the listening fd
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;
  void pause();
  void resume();

 private:
  static void on_poll(uv_poll_t* h, int status, int events);
  int fd_;
  uv_poll_t* poll_;
  OnAccept on_accept_;
  OnError on_error_;
  event::Timer backoff_;
};

}  // namespace wp::net
