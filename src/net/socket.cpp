#include "waypoint/net/socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wp::net {

int listen_tcp(const SockAddr& addr, const ListenOptions& opts, std::string* error) {
  sockaddr_storage ss;
  unsigned len = addr.to_sockaddr(&ss);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (opts.reuse_port) {
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    *error = "bind " + addr.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (::listen(fd, opts.backlog) != 0) {
    *error = "listen " + addr.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int connect_tcp(const SockAddr& addr) {
  sockaddr_storage ss;
  unsigned len = addr.to_sockaddr(&ss);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  set_nodelay(fd);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    return errno;
  }
  return err;
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

std::optional<SockAddr> local_address(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return std::nullopt;
  }
  return SockAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
}

Acceptor::Acceptor(event::Loop& loop, int listen_fd, OnAccept on_accept, OnError on_error)
    : fd_(listen_fd),
      poll_(new uv_poll_t),
      on_accept_(std::move(on_accept)),
      on_error_(std::move(on_error)),
      backoff_(loop, [this] { resume(); }) {
  uv_poll_init(loop.uv(), poll_, fd_);
  poll_->data = this;
  resume();
}

Acceptor::~Acceptor() {
  uv_poll_stop(poll_);
  poll_->data = nullptr;
  event::close_and_delete(poll_);
  ::close(fd_);
}

void Acceptor::pause() {
  uv_poll_stop(poll_);
}
void Acceptor::resume() {
  uv_poll_start(poll_, UV_READABLE, &Acceptor::on_poll);
}

void Acceptor::on_poll(uv_poll_t* h, int status, int events) {
  auto* self = static_cast<Acceptor*>(h->data);
  if (self == nullptr || status < 0) {
    return;
  }
  // Bounded batch per wake-up so one busy listener cannot starve the loop.
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = ::accept4(self->fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // The pending connection stays queued; level-triggered polling would spin until a descriptor
        // frees up, so pause for a while instead.
        self->pause();
        self->backoff_.start(kBackoff);
        if (self->on_error_) {
          self->on_error_(err);
        }
      }
      return;  // EAGAIN, or a transient error such as ECONNABORTED: try again on the next wake-up
    }
    set_nodelay(fd);
    auto peer = SockAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    self->on_accept_(fd, peer ? *peer : SockAddr());
  }
}

}  // namespace wp::net
