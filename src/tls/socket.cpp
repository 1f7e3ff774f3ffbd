#include "waypoint/tls/socket.h"

#include <openssl/err.h>
#include <unistd.h>

#include "waypoint/net/socket.h"

namespace wp::tls {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kReadBudget = 256 * 1024;  // per wake-up, for fairness between connections

uint8_t* scratch() {
  thread_local uint8_t buf[kReadChunk];
  return buf;
}

}  // namespace

Socket::Socket(event::Loop& loop, int fd, const ContextPtr& ctx, std::string expected_identity,
               std::chrono::milliseconds handshake_timeout)
    : loop_(loop),
      fd_(fd),
      ctx_(ctx),
      poll_(new uv_poll_t),
      handshake_timer_(loop, [this] { fail(CloseReason::HandshakeFailed, HandshakeFailure::Timeout); }),
      handshake_timeout_(handshake_timeout),
      state_(ctx->role() == Context::Role::Client ? State::Connecting : State::Handshaking) {
  verify_.expected_identity = std::move(expected_identity);
  uv_poll_init(loop.uv(), poll_, fd_);
  poll_->data = this;
  ssl_ = SSL_new(ctx_->raw());
  Context::attach(ssl_, &verify_);
  SSL_set_fd(ssl_, fd_);
  if (ctx->role() == Context::Role::Client) {
    SSL_set_connect_state(ssl_);
  } else {
    SSL_set_accept_state(ssl_);
  }
}

Socket::~Socket() {
  if (state_ != State::Closed) {
    close(false);
  }
  SSL_free(ssl_);
}

void Socket::start(net::TransportCallbacks& cb) {
  cb_ = &cb;
  handshake_timer_.start(handshake_timeout_);
  if (state_ == State::Connecting) {
    poll_events_ = UV_WRITABLE;
    uv_poll_start(poll_, poll_events_, &Socket::on_poll);
  } else {
    do_handshake();
  }
}

void Socket::on_poll(uv_poll_t* h, int status, int events) {
  auto* self = static_cast<Socket*>(h->data);
  if (self == nullptr) {
    return;
  }
  if (status < 0) {
    self->fail(self->state_ == State::Open ? CloseReason::Reset : CloseReason::HandshakeFailed, HandshakeFailure::Io);
    return;
  }
  self->on_events(events);
}

void Socket::on_events(int events) {
  switch (state_) {
    case State::Connecting:
      do_connect_done();
      return;
    case State::Handshaking:
      do_handshake();
      return;
    case State::Open:
      if ((events & UV_WRITABLE) != 0 && write_blocked_) {
        flush();
      }
      if (state_ == State::Open && ((events & UV_READABLE) != 0 || read_wants_write_)) {
        do_read();
      }
      return;
    case State::Closed:
      return;
  }
}

void Socket::do_connect_done() {
  if (net::socket_error(fd_) != 0) {
    fail(CloseReason::HandshakeFailed, HandshakeFailure::Io);
    return;
  }
  state_ = State::Handshaking;
  do_handshake();
}

void Socket::do_handshake() {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
    if (alpn_len != 2 || alpn[0] != 'h' || alpn[1] != '2') {
      fail(CloseReason::HandshakeFailed, HandshakeFailure::NoAlpn);
      return;
    }
    handshake_timer_.stop();
    state_ = State::Open;
    update_poll();
    cb_->on_transport_connected();
    if (state_ == State::Open) {
      flush();
    }
    if (state_ == State::Open) {
      do_read();  // records may already sit in OpenSSL's read-ahead buffer
    }
    return;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ) {
    poll_events_ = UV_READABLE;
    uv_poll_start(poll_, poll_events_, &Socket::on_poll);
    return;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    poll_events_ = UV_WRITABLE;
    uv_poll_start(poll_, poll_events_, &Socket::on_poll);
    return;
  }
  unsigned long e = ERR_peek_error();
  HandshakeFailure f = Context::classify_failure(ssl_, verify_, e);
  ERR_clear_error();
  fail(CloseReason::HandshakeFailed, f);
}

void Socket::do_read() {
  size_t budget = kReadBudget;
  read_wants_write_ = false;
  while (state_ == State::Open && budget > 0) {
    ERR_clear_error();
    size_t n = 0;
    int rc = SSL_read_ex(ssl_, scratch(), kReadChunk, &n);
    if (rc == 1) {
      budget -= std::min(budget, n);
      cb_->on_transport_data(scratch(), n);
      continue;
    }
    int err = SSL_get_error(ssl_, 0);
    switch (err) {
      case SSL_ERROR_WANT_READ:
        update_poll();
        return;
      case SSL_ERROR_WANT_WRITE:
        read_wants_write_ = true;
        update_poll();
        return;
      case SSL_ERROR_ZERO_RETURN:
        fail(CloseReason::PeerClosed);
        return;
      case SSL_ERROR_SYSCALL:
        fail(n == 0 && ERR_peek_error() == 0 ? CloseReason::PeerClosed : CloseReason::Reset);
        return;
      default:
        ERR_clear_error();
        fail(CloseReason::Error);
        return;
    }
  }
  if (state_ == State::Open && budget == 0) {
    // More may be buffered inside OpenSSL where the poll cannot see it: come back after this round.
    loop_.run_after_io([this] {
      if (state_ == State::Open) {
        do_read();
      }
    });
  }
}

void Socket::flush() {
  if (state_ != State::Open) {
    return;
  }
  write_blocked_ = false;
  while (!out_.empty()) {
    auto chunk = out_.front();
    ERR_clear_error();
    size_t n = 0;
    int rc = SSL_write_ex(ssl_, chunk.data(), chunk.size(), &n);
    if (rc == 1) {
      out_.drain(n);
      continue;
    }
    int err = SSL_get_error(ssl_, 0);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      write_blocked_ = true;
      break;
    }
    ERR_clear_error();
    fail(CloseReason::Reset);
    return;
  }
  update_poll();
  if (above_high_ && out_.length() <= kOutputLowWatermark) {
    above_high_ = false;
    cb_->on_transport_writable();
  }
}

void Socket::update_poll() {
  if (state_ != State::Open) {
    return;
  }
  int want = UV_READABLE;
  if (write_blocked_ || read_wants_write_) {
    want |= UV_WRITABLE;
  }
  if (want != poll_events_) {
    poll_events_ = want;
    uv_poll_start(poll_, poll_events_, &Socket::on_poll);
  }
}

void Socket::close(bool graceful) {
  if (state_ == State::Closed) {
    return;
  }
  bool was_open = state_ == State::Open;
  state_ = State::Closed;
  handshake_timer_.stop();
  if (graceful && was_open) {
    // Best effort: whatever is staged, then close_notify; a full socket buffer just loses them.
    while (!out_.empty()) {
      auto chunk = out_.front();
      size_t n = 0;
      if (SSL_write_ex(ssl_, chunk.data(), chunk.size(), &n) != 1) {
        break;
      }
      out_.drain(n);
    }
    SSL_shutdown(ssl_);
  }
  ERR_clear_error();
  out_.clear();
  uv_poll_stop(poll_);
  poll_->data = nullptr;
  event::close_and_delete(poll_);
  ::close(fd_);
  fd_ = -1;
}

void Socket::fail(CloseReason reason, HandshakeFailure failure) {
  if (state_ == State::Closed) {
    return;
  }
  close(false);
  cb_->on_transport_closed(reason, failure);
}

}  // namespace wp::tls
