#pragma once
// An in-memory net::Transport: input is pushed by the test, output is collected. Lets an HTTP/2
// connection (e.g. the HBONE server session) run with no socket and no TLS, for fuzzing and tests.
#include <functional>
#include <string>
#include <utility>

#include "waypoint/net/transport.h"

namespace wp::testing {

class MemoryTransport final : public net::Transport {
 public:
  explicit MemoryTransport(std::string peer_identity = "spiffe://cluster.local/ns/default/sa/fuzz")
      : identity_(std::move(peer_identity)) {}
  ~MemoryTransport() override {
    if (on_destroy) {
      on_destroy();
    }
  }
  std::function<void()> on_destroy;  // told when its connection lets go of it

  void start(net::TransportCallbacks& cb) override {
    cb_ = &cb;
    cb_->on_transport_connected();
  }
  void append(const void* data, size_t len) override { out_.append(static_cast<const char*>(data), len); }
  size_t output_pending() const override { return 0; }
  bool output_full() override { return false; }
  void flush() override {}
  void close(bool) override { closed_ = true; }
  const std::string& peer_identity() const override { return identity_; }

  // Delivers `len` bytes as if read from the peer (no-op once closed).
  void push(const uint8_t* data, size_t len) {
    if (!closed_ && cb_ != nullptr) {
      cb_->on_transport_data(data, len);
    }
  }
  // The peer closed the connection (no-op once closed).
  void peer_closed() {
    if (!closed_ && cb_ != nullptr) {
      closed_ = true;
      cb_->on_transport_closed(net::CloseReason::PeerClosed, net::HandshakeFailure::None);
    }
  }
  bool closed() const { return closed_; }
  const std::string& output() const { return out_; }
  std::string take_output() { return std::exchange(out_, std::string()); }

 private:
  net::TransportCallbacks* cb_ = nullptr;
  std::string identity_;
  std::string out_;
  bool closed_ = false;
};

}  // namespace wp::testing
