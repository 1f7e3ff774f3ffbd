#pragma once
// A Tunnel for unit tests of what reads and writes tunnels (sessions, TcpProxy, the upstream pool):
// it records what is written, consumed, ended, reset and answered, and delivers the peer's bytes,
// EOF and close on demand. FakeOpener hands out upstream tunnels as FakeTunnels when told to.
#include <algorithm>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "waypoint/buffer/buffer.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/hbone/tunnel.h"

namespace wp::test {

class FakeTunnel final : public hbone::DownstreamTunnel {
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
  void respond(int status) override { responses.push_back(status); }

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
  std::vector<int> responses;  // CONNECT answers given (downstream tunnels)

 private:
  hbone::TunnelHandler* handler_ = nullptr;
};

// Upstream tunnels handed out on demand as FakeTunnels.
class FakeOpener final : public hbone::TunnelOpener {
 public:
  struct Request final : hbone::TunnelRequest {
    FakeOpener* owner = nullptr;
    hbone::TunnelCallbacks* cb = nullptr;
    ~Request() override { owner->live.erase(this); }
  };
  std::unique_ptr<hbone::TunnelRequest> open(hbone::UpstreamTarget target, hbone::TunnelCallbacks& cb) override {
    authorities.push_back(target.authority);
    auto r = std::make_unique<Request>();
    r->owner = this;
    r->cb = &cb;
    live.insert(r.get());
    order.push_back(r.get());
    return r;
  }
  // The oldest request still live (asked for, not cancelled, not yet answered), or nullptr.
  Request* oldest() {
    for (Request* o : order) {
      if (live.count(o) != 0) {
        return o;
      }
    }
    return nullptr;
  }
  // Opens the oldest request still live: its tunnel is ready.
  FakeTunnel& grant() {
    Request* r = oldest();
    if (r == nullptr) {
      throw std::logic_error("FakeOpener::grant: no tunnel asked for");
    }
    std::erase(order, r);
    tunnels.push_back(std::make_unique<FakeTunnel>());
    r->cb->on_upstream_ready(*tunnels.back());
    return *tunnels.back();
  }
  // Fails the oldest request still live.
  void fail(hbone::UpstreamFailure failure, int status = 0) {
    Request* r = oldest();
    if (r == nullptr) {
      throw std::logic_error("FakeOpener::fail: no tunnel asked for");
    }
    std::erase(order, r);
    r->cb->on_upstream_failed(failure, status);
  }
  std::set<Request*> live;  // asked for and not cancelled (nor answered: its owner keeps it until then)
  std::vector<Request*> order;
  std::vector<std::string> authorities;
  std::vector<std::unique_ptr<FakeTunnel>> tunnels;
};

}  // namespace wp::test
