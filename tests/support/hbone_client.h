#pragma once
// An HBONE test client on the caller's thread: opens CONNECT tunnels through the project's own
// client pool (one key = the waypoint), sends and receives bytes, and runs its loop until a
// condition holds or a deadline passes.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "waypoint/event/loop.h"
#include "waypoint/hbone/pool.h"

namespace wp::testing {

struct ClientOptions {
  net::SockAddr waypoint;         // where to connect (the waypoint's 15008)
  std::string expected_identity;  // the waypoint's SPIFFE ID
  std::string cert, key, root;    // our identity
  std::string trust_domain = "cluster.local";
  uint32_t max_streams_per_connection = 100;
};

class HboneTestClient;

class TestTunnel final : public hbone::TunnelCallbacks, public hbone::TunnelHandler {
 public:
  // Outcome of the CONNECT.
  int status = 0;  // 200, or the refusal status; 0 while pending or on reset
  bool failed = false;
  bool established() const { return status == 200 && !failed; }
  bool done() const { return failed || established(); }

  std::string received;  // bytes from the far end (unless discard_received)
  uint64_t received_bytes = 0;
  bool discard_received = false;
  bool reading = true;  // false: a slow reader (nothing consumed)
  bool eof = false;     // far end half-closed
  bool closed = false;
  bool clean = false;
  uint64_t sent_bytes = 0;  // handed to the connection

  // A consumer that parses bytes as they come (tests/support/http_client.h): when set, received
  // bytes go to on_receive instead of `received` (still counted in received_bytes), and the far
  // end's EOF is also reported to on_far_eof.
  std::function<void(const uint8_t* data, size_t len)> on_receive;
  std::function<void()> on_far_eof;

  void send(const std::string& data);
  void send(buffer::Buffer& data);  // takes all of data
  void send_eof();
  // Streams `total` bytes of a deterministic pattern, keeping at most 1 MiB queued.
  void send_pattern(uint64_t total, bool then_eof);
  void set_reading(bool on);
  void reset();
  static char pattern_byte(uint64_t offset) { return static_cast<char>('a' + (offset * 7 + offset / 251) % 26); }

 private:
  friend class HboneTestClient;
  void on_upstream_ready(hbone::Tunnel& tunnel) override;
  void on_upstream_failed(hbone::UpstreamFailure failure, int status) override;
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override;
  void on_tunnel_eof(hbone::Tunnel& t) override;
  void on_tunnel_drained(hbone::Tunnel& t, size_t bytes) override;
  void on_tunnel_closed(hbone::Tunnel& t, bool clean) override;
  void pump_pattern();

  hbone::Tunnel* stream_ = nullptr;
  std::unique_ptr<hbone::TunnelRequest> request_;
  std::string pending_;  // written before the tunnel was established
  bool pending_eof_ = false;
  uint64_t pattern_total_ = 0;
  uint64_t pattern_queued_ = 0;
  bool pattern_eof_ = false;
  size_t held_ = 0;  // received but not consumed while not reading
};

class HboneTestClient {
 public:
  explicit HboneTestClient(const ClientOptions& options);
  ~HboneTestClient();

  // Opens a CONNECT to `authority` ("ip:port"); the returned tunnel lives as long as the client.
  TestTunnel& open(const std::string& authority, hbone::H2Stream::HeaderList headers = {});
  // Runs the loop until pred() or the timeout; returns pred().
  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  size_t connection_count() const { return pool_->connection_count(); }
  event::Loop& loop() { return loop_; }

 private:
  ClientOptions options_;
  event::Loop loop_;
  stats::Block stats_;
  std::unique_ptr<hbone::Pool> pool_;
  std::vector<std::unique_ptr<TestTunnel>> tunnels_;
};

}  // namespace wp::testing
