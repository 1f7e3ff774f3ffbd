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
#include "waypoint/tls/context.h"

namespace wp::tls {

enum class CloseReason { None, HandshakeFailed, PeerClosed, Reset, Error, Local };

class SocketCallbacks {
 public:
  virtual ~SocketCallbacks() = default;
  virtual void on_tls_connected() = 0;
  virtual void on_tls_data(const uint8_t* data, size_t len) = 0;
  // Output fell below the low watermark after having been above it (or fully drained).
  virtual void on_tls_writable() = 0;
  // Terminal: the socket is closed; no callback follows.
  virtual void on_tls_closed(CloseReason reason, HandshakeFailure failure) = 0;
};

class Socket {
 public:
  enum class State { Connecting, Handshaking, Open, Closed };
  static constexpr size_t kOutputHighWatermark = 256 * 1024;
  static constexpr size_t kOutputLowWatermark = 64 * 1024;

  // `fd` is owned from now on. Client sockets start in Connecting (a connect is in progress),
  // server sockets in Handshaking. `expected_identity` is for clients: the exact SPIFFE ID required.
  Socket(event::Loop& loop, int fd, const ContextPtr& ctx, SocketCallbacks& cb, std::string expected_identity,
         std::chrono::milliseconds handshake_timeout);
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  void start();

  // Appends plaintext to the staged output; flush() (or the end of this loop iteration) writes it.
  void append(const void* data, size_t len) { out_.append(data, len); }
  size_t output_pending() const { return out_.length(); }
  // True when producers should stop; on_tls_writable() follows once the output drained.
  bool output_full() {
    if (out_.length() >= kOutputHighWatermark) {
      above_high_ = true;
      return true;
    }
    return false;
  }
  void flush();

  // Closes at once (sends close_notify when `graceful` and the socket is writable). Reports
  // on_tls_closed(Local) only when `notify`.
  void close(bool graceful, bool notify = false);

  State state() const { return state_; }
  const std::string& peer_identity() const { return verify_.peer_identity; }
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
  SocketCallbacks& cb_;
  VerifyState verify_;
  uv_poll_t* poll_;
  event::Timer handshake_timer_;
  std::chrono::milliseconds handshake_timeout_;
  State state_;
  buffer::Buffer out_;
  int poll_events_ = 0;
  bool read_wants_write_ = false;  // an SSL_read needed to write (TLS 1.3 key update)
  bool write_blocked_ = false;     // SSL_write returned WANT_WRITE
  bool above_high_ = false;
};

}  // namespace wp::tls
