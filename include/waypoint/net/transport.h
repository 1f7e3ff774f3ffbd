#pragma once
// The byte stream under an HTTP/2 connection: a TLS socket for HBONE (tls::Socket), an in-memory
// pipe for tests and fuzzing, and (with L7) a tunnel carrying h2c. The connection stages output
// with append(), writes it with flush(), and hears about input and state through the callbacks.
#include <cstddef>
#include <cstdint>
#include <string>

namespace wp::net {

enum class CloseReason { None, HandshakeFailed, PeerClosed, Reset, Error, Local };

// Why a handshake failed; counted per reason (SPEC §3).
enum class HandshakeFailure {
  None,
  NotTls,           // the first bytes were not a TLS record (plaintext on 15008)
  ProtocolVersion,  // peer offered no TLS 1.3
  NoCertificate,    // client sent no certificate
  UntrustedChain,   // certificate does not chain to the root bundle (or expired, ...)
  BadIdentity,      // no SPIFFE URI SAN, another trust domain, or not the expected identity
  NoAlpn,           // peer does not speak h2
  Timeout,          // handshake did not finish in time
  Io,               // connection reset / EOF during the handshake
  Other,
};
constexpr int kHandshakeFailureCount = static_cast<int>(HandshakeFailure::Other) + 1;
const char* to_string(HandshakeFailure f);

class TransportCallbacks {
 public:
  virtual ~TransportCallbacks() = default;
  virtual void on_transport_connected() = 0;
  virtual void on_transport_data(const uint8_t* data, size_t len) = 0;
  // Output fell below the low watermark after a producer found it full.
  virtual void on_transport_writable() = 0;
  // Terminal: the transport is closed; no callback follows.
  virtual void on_transport_closed(CloseReason reason, HandshakeFailure failure) = 0;
};

class Transport {
 public:
  static constexpr size_t kOutputHighWatermark = 256 * 1024;
  static constexpr size_t kOutputLowWatermark = 64 * 1024;

  virtual ~Transport() = default;
  virtual void start(TransportCallbacks& callbacks) = 0;
  virtual void append(const void* data, size_t len) = 0;  // stage output
  virtual size_t output_pending() const = 0;
  // True when producers should stop; on_transport_writable() follows once the output drained.
  virtual bool output_full() = 0;
  virtual void flush() = 0;
  // Closes at once; `graceful` sends what is staged and a close notification where possible.
  // No on_transport_closed() follows a local close.
  virtual void close(bool graceful) = 0;
  virtual const std::string& peer_identity() const = 0;  // SPIFFE ID, or "" when not authenticated
};

}  // namespace wp::net
