#pragma once
// A Tunnel for unit tests of what reads and writes tunnels (sessions, TcpProxy): it records what is
// written, consumed, ended and reset, and delivers the peer's bytes, EOF and close on demand.
#include <string>

#include "waypoint/buffer/buffer.h"
#include "waypoint/hbone/tunnel.h"

namespace wp::test {

class FakeTunnel final : public hbone::Tunnel {
 public:
  void set_handler(hbone::TunnelHandler* handler) override { handler_ = handler; }
  void write(buffer::Buffer& data) override {
    data.for_each([this](const uint8_t* p, size_t n) { written.append(reinterpret_cast<const char*>(p), n); });
    data.clear();
  }
  void write_eof() override { eof_written = true; }
  void consume(size_t bytes) override { consumed += bytes; }
  void reset() override { was_reset = true; }
  size_t write_pending() const override { return 0; }

  hbone::TunnelHandler* handler() const { return handler_; }
  // The peer's side. Each does nothing once no handler is set (the reader let go of the tunnel).
  void deliver(const std::string& bytes) {
    if (handler_ != nullptr) {
      buffer::Buffer b;
      b.append(bytes.data(), bytes.size());
      delivered += bytes.size();
      handler_->on_tunnel_data(*this, b);
    }
  }
  void deliver_eof() {
    if (handler_ != nullptr) {
      handler_->on_tunnel_eof(*this);
    }
  }
  void close(bool clean) {
    if (auto* h = handler_) {
      handler_ = nullptr;
      h->on_tunnel_closed(*this, clean);
    }
  }
  // The written bytes not yet taken by take_written().
  std::string take_written() {
    std::string out;
    out.swap(written);
    return out;
  }

  std::string written;
  size_t delivered = 0;
  size_t consumed = 0;
  bool eof_written = false;
  bool was_reset = false;

 private:
  hbone::TunnelHandler* handler_ = nullptr;
};

}  // namespace wp::test
