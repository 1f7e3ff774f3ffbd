#pragma once
// A fake pod: an HBONE server on a loopback address (its own thread and loop), built on the same
// hbone/ code as the waypoint. Each accepted CONNECT is answered according to the pod's behaviour;
// counters let tests see exactly what arrived.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "waypoint/net/address.h"

namespace wp::testing {

enum class PodBehavior {
  Echo,    // 200, then every byte back; EOF answered with EOF
  Greet,   // 200, sends "hello\n" and EOF at once, then counts what it receives
  Refuse,  // answers every CONNECT with 503
  Reset,   // 200, then RST_STREAM after the first bytes arrive
};

struct FakePodOptions {
  net::SockAddr address;        // e.g. 127.0.1.1:15008
  std::string cert, key, root;  // PEM file paths
  std::string trust_domain = "cluster.local";
  PodBehavior behavior = PodBehavior::Echo;
  int respond_delay_ms = 0;  // delay before answering each CONNECT
  std::string banner;        // Echo: sent first on every tunnel (e.g. the pod's name)
};

class PodTunnel;

class FakePod {
 public:
  explicit FakePod(FakePodOptions options);
  ~FakePod();  // stops the thread
  FakePod(const FakePod&) = delete;
  FakePod& operator=(const FakePod&) = delete;

  // Echo pods: stop/resume reading (a slow reader). Thread-safe.
  void set_reading(bool reading);
  void set_behavior(PodBehavior b);

  // Counters (thread-safe).
  uint64_t connections() const { return connections_.load(); }  // TLS+h2 connections accepted
  uint64_t tunnels() const { return tunnels_.load(); }          // CONNECTs received
  uint64_t active_tunnels() const { return active_tunnels_.load(); }
  uint64_t bytes_received() const { return bytes_received_.load(); }
  uint64_t eofs_received() const { return eofs_received_.load(); }
  std::vector<std::string> authorities() const;  // :authority of each CONNECT, in order
  std::vector<std::string> forwarded() const;    // forwarded header of each CONNECT ("" when absent)
  std::vector<std::string> peer_identities() const;

  class Impl;

 private:
  friend class Impl;
  friend class PodTunnel;
  std::unique_ptr<Impl> impl_;
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> tunnels_{0};
  std::atomic<uint64_t> active_tunnels_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> eofs_received_{0};
  mutable std::mutex mu_;
  std::vector<std::string> authorities_;
  std::vector<std::string> forwarded_;
  std::vector<std::string> identities_;
};

}  // namespace wp::testing
