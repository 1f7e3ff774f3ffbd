#include "waypoint/tls/socket.h"

#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "waypoint/net/socket.h"

namespace wp::tls {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kReadBudget = 256 * 1024;  // per wake-up, for fairness between connections

uint8_t* scratch() {
  thread_local uint8_t buf[kReadChunk];
  return buf;
}

// A lingering close (as Apache's and HAProxy's): a connection closed gracefully with bytes still
// staged (typically a GOAWAY behind the frames a peer did not read) keeps its descriptor, with the
// loop as owner, until those bytes and a close_notify have left and the peer has closed too. What
// the peer keeps sending meanwhile is read and discarded, because closing a socket with unread
// input makes the kernel answer with a RST, which destroys whatever the peer had not read yet —
// the GOAWAY among it. Bounded: 2 s without progress, 10 s in all, kMaxLingering per loop (beyond
// that the socket is closed at once, as before, and counted).
constexpr std::chrono::milliseconds kLingerIdle{2000};
constexpr std::chrono::milliseconds kLingerAfterShutdown{1000};
constexpr std::chrono::milliseconds kLingerTotal{10000};

thread_local size_t lingering_count = 0;
thread_local stats::Block* linger_stats = nullptr;  // the worker's, when the thread has one

void count(stats::Id id, int64_t v) {
  if (linger_stats != nullptr) {
    linger_stats->add(id, v);
  }
}

class Linger final : public event::DeferredDeletable {
 public:
  Linger(event::Loop& loop, SSL* ssl, int fd, uv_poll_t* poll, buffer::Buffer out)
      : loop_(loop), ssl_(ssl), fd_(fd), poll_(poll), timer_(new uv_timer_t), out_(std::move(out)) {
    ++lingering_count;
    count(stats::Id::tls_cx_lingering, 1);
    started_ = loop_.now_ms();
    uv_timer_init(loop_.uv(), timer_);
    timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(timer_));  // never keeps a stopping loop alive
    poll_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }

  ~Linger() override {
    --lingering_count;
    count(stats::Id::tls_cx_lingering, -1);
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    event::close_and_delete(poll_);
    uv_timer_stop(timer_);
    event::close_and_delete(timer_);
    SSL_free(ssl_);
    ::close(fd_);
  }

  void start() {
    arm(kLingerIdle);
    pump();
  }

 private:
  static void on_poll(uv_poll_t* h, int status, int /*events*/) {
    auto* self = static_cast<Linger*>(h->data);
    if (self == nullptr) {
      return;
    }
    if (status < 0) {
      self->finish();
      return;
    }
    self->pump();
  }

  static void on_timer(uv_timer_t* h) { static_cast<Linger*>(h->data)->finish(); }

  void arm(std::chrono::milliseconds after) {
    uint64_t left = started_ + static_cast<uint64_t>(kLingerTotal.count()) -
                    std::min(loop_.now_ms(), started_ + kLingerTotal.count());
    uv_timer_start(timer_, &Linger::on_timer, std::min<uint64_t>(static_cast<uint64_t>(after.count()), left), 0);
  }

  void pump() {
    if (done_) {
      return;
    }
    bool want_write = false;
    bool progress = false;
    while (!out_.empty()) {
      auto chunk = out_.front();
      ERR_clear_error();
      size_t n = 0;
      if (SSL_write_ex(ssl_, chunk.data(), chunk.size(), &n) == 1) {
        out_.drain(n);
        progress = true;
        continue;
      }
      int err = SSL_get_error(ssl_, 0);
      ERR_clear_error();
      if (err == SSL_ERROR_WANT_WRITE) {
        want_write = true;
        break;
      }
      finish();
      return;
    }
    if (out_.empty() && !shut_) {
      shut_ = true;
      SSL_shutdown(ssl_);  // close_notify; a full socket just loses it, the FIN still follows
      ERR_clear_error();
      ::shutdown(fd_, SHUT_WR);
      arm(kLingerAfterShutdown);
    } else if (progress) {
      arm(kLingerIdle);
    }
    // Discard what the peer sends, up to a budget per wake-up; its close ends the linger.
    size_t budget = 256 * 1024;
    while (budget > 0) {
      ssize_t n = ::recv(fd_, scratch(), kReadChunk, 0);
      if (n > 0) {
        budget -= std::min(budget, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        finish();
        return;
      }
      break;
    }
    uv_poll_start(poll_, UV_READABLE | (want_write ? UV_WRITABLE : 0), &Linger::on_poll);
  }

  void finish() {
    if (!done_) {
      done_ = true;
      uv_poll_stop(poll_);
      uv_timer_stop(timer_);
      loop_.release(this);
    }
  }

  event::Loop& loop_;
  SSL* ssl_;
  int fd_;
  uv_poll_t* poll_;
  uv_timer_t* timer_;
  buffer::Buffer out_;
  uint64_t started_ = 0;
  bool shut_ = false;
  bool done_ = false;
};

}  // namespace

void Socket::set_thread_stats(stats::Block* stats) {
  linger_stats = stats;
}

Socket::Socket(event::Loop& loop, int fd, const ContextPtr& ctx, std::string expected_identity,
               std::chrono::milliseconds handshake_timeout)
    : loop_(loop),
      fd_(fd),
      ctx_(ctx),
      poll_(new uv_poll_t),
      handshake_timer_(loop, [this] { fail(CloseReason::HandshakeFailed, HandshakeFailure::Timeout); }),
      read_again_(loop,
                  [this] {
                    if (state_ == State::Open) {
                      do_read();
                    }
                  }),
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
    read_again_.schedule();
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
    if (lingering_count < kMaxLingering) {
      // The loop owns the descriptor from here on (see Linger); this object keeps nothing of it.
      uv_poll_stop(poll_);
      Context::attach(ssl_, nullptr);
      auto linger = std::make_unique<Linger>(loop_, ssl_, fd_, poll_, std::move(out_));
      Linger* raw = linger.get();
      loop_.adopt(std::move(linger));
      ssl_ = nullptr;
      poll_ = nullptr;
      fd_ = -1;
      out_.clear();
      raw->start();
      return;
    }
    count(stats::Id::tls_cx_linger_overflow, 1);
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
