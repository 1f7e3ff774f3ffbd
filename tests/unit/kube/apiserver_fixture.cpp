#include "apiserver_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace wp::kube::testing {

namespace {

namespace fs = std::filesystem;

// tests/support/fake_apiserver.py, found from this file's place in the source tree.
std::string script_path() {
  return (fs::path(__FILE__).parent_path() / ".." / ".." / "support" / "fake_apiserver.py").lexically_normal().string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) {
    throw std::runtime_error("cannot write " + path);
  }
}

}  // namespace

FakeApiServer::FakeApiServer(std::vector<std::string> args) {
  std::string tmpl = (fs::temp_directory_path() / "wp-kube-fake-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  dir_ = tmpl;
  ca_ = wp::testing::make_root_ca("kube-test-ca");
  wp::testing::LeafOptions leaf_options;
  leaf_options.ip_addresses = {"127.0.0.1"};
  leaf_options.dns_names = {"kubernetes.default.svc"};
  wp::testing::KeyCert leaf = wp::testing::make_leaf(ca_, "", 1, leaf_options);
  write_text(dir_ + "/server.crt", leaf.cert_pem);
  write_text(dir_ + "/server.key", leaf.key_pem);
  token_file_ = dir_ + "/server-token";
  client_token_file_ = dir_ + "/client-token";
  write_text(token_file_, "s3cret-token\n");
  write_text(client_token_file_, "s3cret-token\n");

  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  std::vector<std::string> argv_s = {
      "/usr/bin/python3", script_path(), "--cert", dir_ + "/server.crt", "--key", dir_ + "/server.key", "--token-file",
      token_file_,        "--port",      "0",      "--exit-on-stdin-eof"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  std::string err_log = dir_ + "/stderr.log";
  posix_spawn_file_actions_addopen(&actions, 2, err_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  stdin_fd_ = in_pipe[1];
  if (rc != 0) {
    ::close(out_pipe[0]);
    throw std::runtime_error("posix_spawn python3 failed");
  }
  // "LISTENING <port>\n", within 10 s.
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{out_pipe[0], POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char buf[256];
      ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
      if (n <= 0) {
        break;
      }
      line.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(out_pipe[0]);
  if (!line.starts_with("LISTENING ")) {
    std::ifstream err(err_log);
    std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    throw std::runtime_error("fake_apiserver.py did not start: '" + line + "' " + text);
  }
  port_ = static_cast<uint16_t>(std::stoi(line.substr(10)));

  Access control_access = access();
  control_access.token_file = token_file_;
  control_ = std::make_unique<Client>(control_access, never_);
}

FakeApiServer::~FakeApiServer() {
  control_.reset();
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
  }
  if (pid_ > 0) {
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

Access FakeApiServer::access() const {
  Access a;
  std::string error;
  parse_server("https://127.0.0.1:" + std::to_string(port_), a, error);
  a.ca_pem = ca_.cert_pem;
  a.token_file = client_token_file_;
  a.origin = "fake_apiserver.py";
  return a;
}

void FakeApiServer::set_client_token(const std::string& token) const {
  write_text(client_token_file_, token + "\n");
}

void FakeApiServer::set_server_token(const std::string& token) const {
  write_text(token_file_, token + "\n");
}

nlohmann::json FakeApiServer::control(const std::string& method, const std::string& path, const std::string& body) {
  Response response;
  if (method != "GET") {
    control_->disconnect();  // the client retries only a GET on a connection found closed
  }
  Result r = method == "GET" ? control_->get(path, response)
                             : control_->request(method, path, body, "application/json", response);
  if (!r.complete() || response.status != 200) {
    throw std::runtime_error(method + " " + path + ": " + r.error + " HTTP " + std::to_string(response.status) + " " +
                             response.body.substr(0, 300));
  }
  return nlohmann::json::parse(response.body);
}

std::vector<nlohmann::json> FakeApiServer::log_for(const std::string& path) {
  std::vector<nlohmann::json> out;
  nlohmann::json all = stats();  // (not in the for: the temporary would die before the loop)
  for (auto& entry : all["log"]) {
    if (entry["path"] == path) {
      out.push_back(entry);
    }
  }
  return out;
}

nlohmann::json service(const std::string& name, const std::string& ns, const std::string& annotation) {
  nlohmann::json s = {{"apiVersion", "v1"},
                      {"kind", "Service"},
                      {"metadata", {{"name", name}, {"namespace", ns}}},
                      {"spec", {{"ports", {{{"name", "http"}, {"port", 80}}}}}}};
  if (!annotation.empty()) {
    s["metadata"]["annotations"] = {{"big", annotation}};
  }
  return s;
}

}  // namespace wp::kube::testing
