#include "support/fake_apiserver.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "waypoint/kube/client.h"

extern char** environ;

namespace wp::testing {

FakeApiServer::FakeApiServer(const TestEnv& env, std::vector<std::string> args) : env_(env) {
  KeyCert ca = make_root_ca("fake-apiserver-ca");
  LeafOptions options;
  options.dns_names = {"localhost"};
  options.ip_addresses = {"127.0.0.1"};
  KeyCert leaf = make_leaf(ca, "", 30, options);
  ca_path_ = env.write("apiserver-ca.pem", ca.cert_pem);
  cert_path_ = env.write("apiserver.pem", leaf.cert_pem);
  key_path_ = env.write("apiserver.key", leaf.key_pem);
  token_ = "token-" + std::to_string(::getpid()) + "-" + std::to_string(reinterpret_cast<uintptr_t>(this) & 0xffff);
  token_path_ = env.write("apiserver-token", token_ + "\n");

  int in[2];
  int out[2];
  if (::pipe(in) != 0 || ::pipe(out) != 0) {
    throw std::runtime_error("fake apiserver: pipe failed");
  }
  std::vector<std::string> argv_s = {"/usr/bin/python3",       std::string(WP_SOURCE_DIR) + "/tests/support/fake_apiserver.py",
                                     "--cert",                 cert_path_,
                                     "--key",                  key_path_,
                                     "--token-file",           token_path_,
                                     "--port",                 "0",
                                     "--exit-on-stdin-eof"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  stdin_fd_ = in[1];
  if (rc != 0) {
    ::close(out[0]);
    throw std::runtime_error("fake apiserver: spawn failed");
  }
  // The first line: "LISTENING <port>".
  std::string line;
  char c = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && ::read(out[0], &c, 1) == 1 && c != '\n') {
    line += c;
  }
  ::close(out[0]);  // later output is not read (the script writes little; a closed pipe is harmless)
  if (line.rfind("LISTENING ", 0) != 0) {
    throw std::runtime_error("fake apiserver did not start: \"" + line + "\"");
  }
  port_ = static_cast<uint16_t>(std::stoi(line.substr(10)));
}

FakeApiServer::~FakeApiServer() {
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
  }
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 50 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
}

std::string FakeApiServer::write_kubeconfig(const std::string& namespace_) const {
  std::string text = "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n"
                     "    server: " +
                     server() + "\n    certificate-authority: " + ca_path_ +
                     "\ncontexts:\n- name: fake\n  context: {cluster: fake, user: waypoint, namespace: " +
                     namespace_ + "}\nusers:\n- name: waypoint\n  user:\n    tokenFile: " + token_path_ + "\n";
  return env_.write("kubeconfig", text);
}

void FakeApiServer::rotate_token(const std::string& token) {
  token_ = token;
  // Written aside and renamed: a reader never sees half a token (as the kubelet's atomic writer).
  std::string tmp = env_.write("apiserver-token.tmp", token + "\n");
  if (::rename(tmp.c_str(), token_path_.c_str()) != 0) {
    throw std::runtime_error("fake apiserver: cannot rotate the token");
  }
}

nlohmann::json FakeApiServer::control(const std::string& what, const std::string& body) {
  kube::Access access;
  access.server = server();
  access.host = "127.0.0.1";
  access.port = port_;
  access.token = token_;
  std::string ca;
  {
    FILE* f = std::fopen(ca_path_.c_str(), "rb");
    char buf[4096];
    size_t n = 0;
    while (f != nullptr && (n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
      ca.append(buf, n);
    }
    if (f != nullptr) {
      std::fclose(f);
    }
  }
  access.ca_pem = ca;
  std::atomic<bool> stop{false};
  kube::Client client(access, stop);
  kube::Response response;
  kube::Result result;
  // After /fake/restart the server is down for a while: retry refused connections for 10 s.
  for (int attempt = 0; attempt < 200; ++attempt) {
    response = kube::Response();
    result = what.rfind("stats", 0) == 0
                 ? client.get("/fake/" + what, response)
                 : client.request("POST", "/fake/" + what, body, "application/json", response);
    if (result.outcome != kube::Outcome::ConnectFailed) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!result.complete() || response.status != 200) {
    throw std::runtime_error("fake apiserver /fake/" + what + ": " +
                             (result.complete() ? std::to_string(response.status) + " " + response.body : result.error));
  }
  return nlohmann::json::parse(response.body);
}

void FakeApiServer::remove(const std::string& kind, const std::string& name, const std::string& namespace_) {
  control("delete", nlohmann::json{{"kind", kind}, {"name", name}, {"namespace", namespace_}}.dump());
}

nlohmann::json FakeApiServer::stats() { return control("stats?log=0"); }

}  // namespace wp::testing
