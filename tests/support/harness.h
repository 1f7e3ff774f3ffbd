#pragma once
// Integration-test harness: a private temp dir with certificates, a random loopback /24 for the
// test's pods and waypoint, a config writer, the real waypoint binary as a child process, and small
// blocking helpers (HTTP GET to the admin API, TLS handshake probes).
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "support/certgen.h"
#include "waypoint/net/address.h"

namespace wp::testing {

struct Identity {
  std::string cert, key;  // file paths
  std::string spiffe;
};

class TestEnv {
 public:
  TestEnv();
  ~TestEnv();  // removes the temp dir

  const std::string& dir() const { return dir_; }
  // 127.<a>.<b>.<host>: a /24 chosen at random per environment, so parallel tests never collide.
  net::IpAddr ip(int host) const;
  net::SockAddr addr(int host, uint16_t port) const { return {ip(host), port}; }

  const std::string& root_pem() const { return root_path_; }
  // An identity signed by the test root: spiffe://<td>/ns/<ns>/sa/<sa>.
  Identity identity(const std::string& name, const std::string& ns, const std::string& sa,
                    const std::string& trust_domain = "cluster.local");
  // A leaf from the test root carrying exactly `uri` as URI SAN (none when empty).
  Identity leaf(const std::string& name, const std::string& uri);
  // An identity signed by a different root (untrusted by the waypoint).
  Identity foreign_identity(const std::string& name, const std::string& spiffe);
  const Identity& waypoint() const { return waypoint_; }
  std::string write(const std::string& name, const std::string& content) const;  // returns the path

 private:
  std::string dir_;
  int a_, b_;
  KeyCert root_;
  std::string root_path_;
  Identity waypoint_;
};

// A small config builder for the bootstrap + Gateway + Services + Pods that tests need.
struct PodSpec {
  std::string name;
  net::IpAddr ip;
  std::map<std::string, std::string> labels;
  std::string service_account = "default";
  bool ready = true;
};
struct ServiceSpec {
  std::string name;
  net::IpAddr vip;
  uint16_t port;
  uint16_t target_port;
  std::string app_protocol = "tcp";
  std::map<std::string, std::string> selector;
};
struct ConfigSpec {
  net::SockAddr hbone;
  net::SockAddr admin;
  int concurrency = 2;
  std::vector<PodSpec> pods;
  std::vector<ServiceSpec> services;
  std::string extra_bootstrap;  // more lines under spec: (2-space indented)
  std::string extra_documents;  // more YAML documents (VirtualService, DestinationRule...), each starting with ---
  std::string log_level = "info";
  bool bootstrap_only = false;  // the WaypointBootstrap alone (the Kubernetes API mode's file)
};
std::string render_config(const TestEnv& env, const ConfigSpec& spec);

// The real waypoint binary as a child process.
class WaypointProcess {
 public:
  // `wrapper` runs before the binary (e.g. {"prlimit", "--nofile=64"}); it must exec it.
  WaypointProcess(const TestEnv& env, const std::string& config_path, net::SockAddr admin,
                  std::vector<std::string> wrapper = {});
  ~WaypointProcess();
  // Starts and waits until the admin /ready answers 200. Returns false (and the log) on failure.
  bool start(std::string* log_out = nullptr);
  // SIGTERM and wait; returns the exit status (or -1 on timeout, after SIGKILL).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // Waits for the process to exit by itself; its exit status, or -1 if still running at timeout.
  int wait(std::chrono::milliseconds timeout);
  // Without waiting: the exit status if the process has exited by itself (then running() is false),
  // else nullopt.
  std::optional<int> poll_exit();
  void signal(int signum) const;
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }      // started, and neither stopped nor seen exiting
  std::map<std::string, int64_t> stats() const;  // GET /stats, "waypoint.<name>" -> value
  int64_t stat(const std::string& name) const;
  // Polls stat(name) until pred(value) or timeout.
  bool wait_stat(const std::string& name, const std::function<bool(int64_t)>& pred,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  long rss_kb() const;  // VmRSS from /proc
  std::string log() const;
  std::string log_tail(size_t lines) const;  // the last `lines` lines of log()

  // Every gauge (stats::Kind::Gauge) by name, as GET /stats showed it once start() saw /ready.
  const std::map<std::string, int64_t>& gauge_baseline() const { return baseline_; }
  // Polls GET /stats until each gauge in `names` is at its baseline value (0 when it had none), or
  // timeout; returns "name = value (baseline b)" for each one that is not (value -1: no answer).
  std::vector<std::string> gauges_off_baseline(const std::vector<std::string>& names,
                                               std::chrono::milliseconds timeout) const;
  // The process's open file descriptors, leaving out connections accepted on its admin, metrics and
  // health ports (the harness's own /stats and /ready requests come and go through them); -1 when
  // /proc cannot be read.
  int open_fds() const;
  // Polls open_fds() until it is at most its value once start() saw /ready, or timeout; "" when
  // it is, else "open fds N (baseline B)" and what the extra ones are.
  std::string fds_off_baseline(std::chrono::milliseconds timeout) const;

 private:
  const TestEnv& env_;
  std::string config_path_;
  std::string log_path_;
  net::SockAddr admin_;
  std::vector<std::string> wrapper_;
  pid_t pid_ = -1;
  std::map<std::string, int64_t> baseline_;
  int fd_baseline_ = -1;
  std::vector<std::string> fd_targets() const;  // readlink of each counted fd
};

// Blocking GET; returns {status, body}; status 0 when the connection failed.
std::pair<int, std::string> http_get(const net::SockAddr& addr, const std::string& path);
std::pair<int, std::string> http_request(const net::SockAddr& addr, const std::string& method, const std::string& path);

// Runs a program to completion; returns {exit status, stdout+stderr}.
std::pair<int, std::string> run_command(const std::vector<std::string>& argv);

// TLS handshake probes against an HBONE port. Returns true when the server accepted us: the
// handshake finished and the server's first HTTP/2 frame (SETTINGS) arrived.
struct ProbeOptions {
  std::string cert, key;  // empty: present no client certificate
  std::string root;       // to verify the server (empty: no verification)
  bool tls12_only = false;
  bool send_alpn = true;
  bool plaintext = false;  // send an HTTP/1.1 request instead of TLS
};
// `server_cert`: the server's certificate (DER) when the handshake got that far.
bool tls_probe(const net::SockAddr& addr, const ProbeOptions& options, std::string* server_cert = nullptr);

std::string waypoint_binary();

}  // namespace wp::testing
