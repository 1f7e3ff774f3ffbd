#pragma once
// A TLS 1.3 connection over a non-blocking TCP fd, driven by a uv_poll handle. OpenSSL reads and
// writes the kernel socket directly (no memory BIOs: one copy fewer each way). Plaintext output is
// staged in a slice Buffer and written in records of at most 16 KiB; reads are decrypted into a
// per-thread scratch area and handed on at once.
#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "waypoint/buffer/buffer.h"
#include "waypoint/event/loop.h"
#include "waypoint/stats/stats.h"
#include "waypoint/tls/context.h"

namespace wp::tls {

using net::CloseReason;

class Socket final : public net::Transport {
 public:
  enum class State { Connecting, Handshaking, Open, Closed };
  // `fd` is owned from now on. Client sockets start in Connecting (a connect is in progress),
  // server sockets in Handshaking. `expected_identity` is for clients: the exact SPIFFE ID required.
  Socket(event::Loop& loop, int fd, const ContextPtr& ctx, std::string expected_identity,
         std::chrono::milliseconds handshake_timeout);
  ~Socket() override;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // net::Transport
  void start(net::TransportCallbacks& cb) override;
  void append(const void* data, size_t len) override { out_.append(data, len); }
  size_t output_pending() const override { return out_.length(); }
  bool output_full() override {
    if (out_.length() >= kOutputHighWatermark) {
      above_high_ = true;
      return true;
    }
    return false;
  }
  void flush() override;
  // Sends what is staged and close_notify when `graceful` and the socket is writable.
  void close(bool graceful) override;
  const std::string& peer_identity() const override { return verify_.peer_identity; }

  State state() const { return state_; }
  // A graceful close lingers (in the loop's care) until the staged bytes are out and the peer has
  // closed, at most this many per loop; closes beyond it are immediate (tls_cx_linger_overflow);
  // tls_cx_lingering counts them.
  static constexpr size_t kMaxLingering = 512;
  // The stats those two land in for sockets of the calling thread (a worker sets its own).
  static void set_thread_stats(stats::Block* stats);
  int fd() const { return fd_; }

 private:
  static void on_poll(uv_poll_t* h, int status, int events);
  void on_events(int events);
  void do_connect_done();
  void do_handshake();
  void do_read();
  void update_poll();
  void fail(CloseReason reason, HandshakeFailure failure = HandshakeFailure::None);

  event::Loop& loop_;
  int fd_;
  ContextPtr ctx_;
  SSL* ssl_ = nullptr;
  net::TransportCallbacks* cb_ = nullptr;
  VerifyState verify_;
  uv_poll_t* poll_;
  event::Timer handshake_timer_;
  event::Deferred read_again_;  // a read cut short by its budget resumes after this iteration
  std::chrono::milliseconds handshake_timeout_;
  State state_;
  buffer::Buffer out_;
  int poll_events_ = 0;
  bool read_wants_write_ = false;  // an SSL_read needed to write (TLS 1.3 key update)
  bool write_blocked_ = false;     // SSL_write returned WANT_WRITE
  bool above_high_ = false;
};

}  // namespace wp::tls
