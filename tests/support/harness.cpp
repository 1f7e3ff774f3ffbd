#include "support/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "waypoint/stats/stats.h"

extern char** environ;

namespace wp::testing {
namespace fs = std::filesystem;

namespace {
// OpenSSL writes sockets with write(2): a peer that closed first must not kill the test process.
const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();
}  // namespace

std::string waypoint_binary() {
  return std::string(WP_BINARY_DIR) + "/waypoint";
}

TestEnv::TestEnv() {
  std::random_device rd;
  std::mt19937 rng(rd() ^ static_cast<unsigned>(::getpid()));
  // Avoid 127.0.x.x (the demo's) and keep clear of 127.255.
  a_ = 16 + static_cast<int>(rng() % 200);
  b_ = 1 + static_cast<int>(rng() % 250);
  char tmpl[] = "/tmp/wp-test-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  root_ = make_root_ca("waypoint test root");
  root_path_ = dir_ + "/root.pem";
  write_file(root_path_, root_.cert_pem);
  waypoint_ = identity("waypoint", "default", "waypoint");
}

TestEnv::~TestEnv() {
  if (std::getenv("WP_TEST_KEEP") != nullptr) {
    std::fprintf(stderr, "kept test dir %s\n", dir_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

net::IpAddr TestEnv::ip(int host) const {
  return net::IpAddr::v4((127u << 24) | (static_cast<uint32_t>(a_) << 16) | (static_cast<uint32_t>(b_) << 8) |
                         static_cast<uint32_t>(host));
}

Identity TestEnv::identity(const std::string& name, const std::string& ns, const std::string& sa,
                           const std::string& trust_domain) {
  return leaf(name, spiffe_id(trust_domain, ns, sa));
}

Identity TestEnv::leaf(const std::string& name, const std::string& uri) {
  Identity id;
  id.spiffe = uri;
  write_identity(dir_, name, make_leaf(root_, uri));
  id.cert = dir_ + "/" + name + ".pem";
  id.key = dir_ + "/" + name + ".key";
  return id;
}

Identity TestEnv::foreign_identity(const std::string& name, const std::string& spiffe) {
  KeyCert other_root = make_root_ca("some other root");
  Identity id;
  id.spiffe = spiffe;
  write_identity(dir_, name, make_leaf(other_root, spiffe));
  id.cert = dir_ + "/" + name + ".pem";
  id.key = dir_ + "/" + name + ".key";
  return id;
}

std::string TestEnv::write(const std::string& name, const std::string& content) const {
  std::string path = dir_ + "/" + name;
  write_file(path, content);
  return path;
}

std::string render_config(const TestEnv& env, const ConfigSpec& spec) {
  std::ostringstream y;
  y << "apiVersion: waypoint.proxy/v1alpha1\nkind: WaypointBootstrap\n"
    << "metadata: {name: waypoint, namespace: default}\nspec:\n"
    << "  gateway: waypoint\n  trustDomain: cluster.local\n"
    << "  listeners: {hbone: \"" << spec.hbone.to_string() << "\", admin: \"" << spec.admin.to_string()
    << "\", metrics: \"" << env.ip(253).to_string() << ":15020\", health: \"" << env.ip(253).to_string()
    << ":15021\"}\n"
    << "  tls: {certChain: " << env.waypoint().cert << ", privateKey: " << env.waypoint().key
    << ", rootCert: " << env.root_pem() << "}\n"
    << "  concurrency: " << spec.concurrency << "\n"
    << "  log: {level: " << spec.log_level << ", accessLog: stdout}\n"
    << spec.extra_bootstrap;
  if (spec.bootstrap_only) {
    return y.str();
  }
  y << "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
    << "metadata: {name: waypoint, namespace: default}\n"
    << "spec:\n  gatewayClassName: istio-waypoint\n  listeners:\n"
    << "  - {name: mesh, port: 15008, protocol: HBONE}\n";
  for (const auto& s : spec.services) {
    y << "---\napiVersion: v1\nkind: Service\nmetadata: {name: " << s.name << ", namespace: default}\nspec:\n"
      << "  clusterIP: " << s.vip.to_string()
      << "\n  ports:\n  - {name: " << (s.app_protocol.empty() ? std::string("port") : s.app_protocol + "-port")
      << ", port: " << s.port << ", targetPort: " << s.target_port
      << (s.app_protocol.empty() ? std::string() : ", appProtocol: " + s.app_protocol) << "}\n  selector: {";
    bool first = true;
    for (const auto& [k, v] : s.selector) {
      y << (first ? "" : ", ") << k << ": " << v;
      first = false;
    }
    y << "}\n";
  }
  for (const auto& p : spec.pods) {
    y << "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " << p.name << "\n  namespace: default\n  labels: {";
    bool first = true;
    for (const auto& [k, v] : p.labels) {
      y << (first ? "" : ", ") << k << ": " << v;
      first = false;
    }
    y << "}\nspec: {serviceAccountName: " << p.service_account << "}\n"
      << "status:\n  podIP: " << p.ip.to_string() << "\n  phase: Running\n"
      << "  conditions: [{type: Ready, status: \"" << (p.ready ? "True" : "False") << "\"}]\n";
  }
  y << spec.extra_documents;
  return y.str();
}

// --- WaypointProcess -------------------------------------------------------------------------

WaypointProcess::WaypointProcess(const TestEnv& env, const std::string& config_path, net::SockAddr admin,
                                 std::vector<std::string> wrapper)
    : env_(env), config_path_(config_path), admin_(admin), wrapper_(std::move(wrapper)) {
  static int counter = 0;
  log_path_ = env.dir() + "/waypoint-" + std::to_string(++counter) + ".log";
}

WaypointProcess::~WaypointProcess() {
  if (pid_ > 0) {
    stop(std::chrono::seconds(5));
  }
}

bool WaypointProcess::start(std::string* log_out) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<std::string> args = wrapper_;
  args.insert(args.end(), {waypoint_binary(), "--config", config_path_});
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  int rc = posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = -1;
    return false;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (log_out != nullptr) {
        *log_out = log();
      }
      return false;
    }
    if (http_get(admin_, "/ready").first == 200) {
      baseline_.clear();
      auto all = stats();
      for (int i = 0; i < stats::kCount; ++i) {
        const stats::Info& info = stats::info(static_cast<stats::Id>(i));
        auto it = all.find(std::string("waypoint.") + info.name);
        if (info.kind == stats::Kind::Gauge && it != all.end()) {
          baseline_[info.name] = it->second;
        }
      }
      fd_baseline_ = open_fds();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the readiness endpoint
  }
  if (log_out != nullptr) {
    *log_out = log();
  }
  return false;
}

int WaypointProcess::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::optional<int> WaypointProcess::poll_exit() {
  int status = 0;
  if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return std::nullopt;
}

void WaypointProcess::signal(int signum) const {
  if (pid_ > 0) {
    ::kill(pid_, signum);
  }
}

int WaypointProcess::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return -1;
  }
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return -1;
}

std::map<std::string, int64_t> WaypointProcess::stats() const {
  std::map<std::string, int64_t> out;
  auto [status, body] = http_get(admin_, "/stats");
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(": ");
    if (colon != std::string::npos) {
      out[line.substr(0, colon)] = std::stoll(line.substr(colon + 2));
    }
  }
  return out;
}

int64_t WaypointProcess::stat(const std::string& name) const {
  auto all = stats();
  auto it = all.find("waypoint." + name);
  return it == all.end() ? -1 : it->second;
}

bool WaypointProcess::wait_stat(const std::string& name, const std::function<bool(int64_t)>& pred,
                                std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred(stat(name))) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred(stat(name));
}

std::vector<std::string> WaypointProcess::gauges_off_baseline(const std::vector<std::string>& names,
                                                              std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto all = stats();
    std::vector<std::string> off;
    for (const std::string& name : names) {
      auto b = baseline_.find(name);
      int64_t base = b == baseline_.end() ? 0 : b->second;
      auto it = all.find("waypoint." + name);
      int64_t value = it == all.end() ? -1 : it->second;
      if (value != base) {
        off.push_back(name + " = " + std::to_string(value) + " (baseline " + std::to_string(base) + ")");
      }
    }
    if (off.empty() || std::chrono::steady_clock::now() >= deadline) {
      return off;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling /stats
  }
}

namespace {

// Inode -> (local port, listening) of every TCP socket in /proc/<pid>/net/tcp and tcp6.
std::map<std::string, std::pair<int, bool>> tcp_sockets(pid_t pid) {
  std::map<std::string, std::pair<int, bool>> out;
  for (const char* file : {"tcp", "tcp6"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/net/" + file);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retrans, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retrans >> uid >> timeout >> inode;
      size_t colon = local.rfind(':');
      if (colon == std::string::npos || inode.empty()) {
        continue;
      }
      int port = static_cast<int>(std::strtol(local.c_str() + colon + 1, nullptr, 16));
      out["socket:[" + inode + "]"] = {port, state == "0A"};
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> WaypointProcess::fd_targets() const {
  std::vector<std::string> out;
  if (pid_ <= 0) {
    return out;
  }
  auto sockets = tcp_sockets(pid_);
  const int admin_ports[] = {admin_.port(), 15020, 15021};
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd", ec)) {
    std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (ec) {
      continue;  // closed meanwhile
    }
    auto it = sockets.find(target);
    if (it != sockets.end() && !it->second.second &&
        std::find(std::begin(admin_ports), std::end(admin_ports), it->second.first) != std::end(admin_ports)) {
      continue;  // an admin, metrics or health connection
    }
    out.push_back(target);
  }
  return out;
}

int WaypointProcess::open_fds() const {
  if (pid_ <= 0 || !std::filesystem::exists("/proc/" + std::to_string(pid_) + "/fd")) {
    return -1;
  }
  return static_cast<int>(fd_targets().size());
}

std::string WaypointProcess::fds_off_baseline(std::chrono::milliseconds timeout) const {
  if (fd_baseline_ < 0) {
    return "";
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int now = open_fds();
    if ((now >= 0 && now <= fd_baseline_) || std::chrono::steady_clock::now() >= deadline) {
      if (now >= 0 && now <= fd_baseline_) {
        return "";
      }
      std::string off = "open fds " + std::to_string(now) + " (baseline " + std::to_string(fd_baseline_) + "):";
      for (const std::string& t : fd_targets()) {
        off += " " + t;
      }
      return off;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling /proc
  }
}

long WaypointProcess::rss_kb() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stol(line.substr(6));
    }
  }
  return -1;
}

std::string WaypointProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string WaypointProcess::log_tail(size_t lines) const {
  std::string all = log();
  size_t at = all.size();
  for (size_t n = 0; at > 0 && n <= lines; ++n) {
    at = all.rfind('\n', at - 1);
    if (at == std::string::npos) {
      return all;
    }
  }
  return all.substr(at + 1);
}

// --- blocking helpers ------------------------------------------------------------------------

namespace {

int connect_blocking(const net::SockAddr& addr, int timeout_ms = 2000) {
  sockaddr_storage ss;
  unsigned len = addr.to_sockaddr(&ss);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::pair<int, std::string> http_get(const net::SockAddr& addr, const std::string& path) {
  return http_request(addr, "GET", path);
}

std::pair<int, std::string> http_request(const net::SockAddr& addr, const std::string& method,
                                         const std::string& path) {
  int fd = connect_blocking(addr);
  if (fd < 0) {
    return {0, ""};
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + addr.to_string() +
                    "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {0, ""};
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (resp.size() < 12 || resp.rfind("HTTP/1.1 ", 0) != 0) {
    return {0, resp};
  }
  int status = std::atoi(resp.substr(9, 3).c_str());
  auto body = resp.find("\r\n\r\n");
  return {status, body == std::string::npos ? "" : resp.substr(body + 4)};
}

std::pair<int, std::string> run_command(const std::vector<std::string>& argv) {
  char tmpl[] = "/tmp/wp-cmd-XXXXXX";
  int out = ::mkstemp(tmpl);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawn_file_actions_adddup2(&fa, out, 2);
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  int status = -1;
  if (rc == 0) {
    ::waitpid(pid, &status, 0);
    status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  ::close(out);
  std::ifstream in(tmpl);
  std::stringstream ss;
  ss << in.rdbuf();
  ::unlink(tmpl);
  return {status, ss.str()};
}

bool tls_probe(const net::SockAddr& addr, const ProbeOptions& o, std::string* server_cert) {
  int fd = connect_blocking(addr, 3000);
  if (fd < 0) {
    return false;
  }
  if (o.plaintext) {
    std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);  // accepted would mean an HTTP answer
    ::close(fd);
    return n >= 5 && std::memcmp(buf, "HTTP/", 5) == 0;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (o.tls12_only) {
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  }
  if (!o.cert.empty()) {
    SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM);
  }
  if (!o.root.empty()) {
    SSL_CTX_load_verify_locations(ctx, o.root.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (o.send_alpn) {
    static const unsigned char alpn[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  bool ok = SSL_connect(ssl) == 1;
  if (server_cert != nullptr) {
    server_cert->clear();
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      unsigned char* der = nullptr;
      int len = i2d_X509(peer, &der);
      if (len > 0) {
        server_cert->assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
      }
      OPENSSL_free(der);
      X509_free(peer);
    }
  }
  if (ok) {
    // TLS 1.3: the server judges our certificate after our Finished, so only its first frame (or
    // its alert) tells. Send the HTTP/2 preface and wait for the server's SETTINGS.
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    SSL_write(ssl, preface, sizeof(preface) - 1);
    unsigned char buf[64];
    int n = SSL_read(ssl, buf, sizeof(buf));
    ok = n >= 9 && buf[3] == 0x04;  // a SETTINGS frame
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  ::close(fd);
  return ok;
}

}  // namespace wp::testing
