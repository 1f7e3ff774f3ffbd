#pragma once
// The fake Kubernetes API server (tests/support/fake_apiserver.py, described in
// fake_apiserver.md) as a child process of a C++ test: its own CA and serving certificate for
// 127.0.0.1, a token file, a kubeconfig for it, and its control API (/fake/...) spoken through the
// waypoint's own Kubernetes client.
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/harness.h"

namespace wp::testing {

class FakeApiServer {
 public:
  // Starts it (blocking until it listens). `args` go to the script (e.g. "--bookmark-interval").
  explicit FakeApiServer(const TestEnv& env, std::vector<std::string> args = {});
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  uint16_t port() const { return port_; }
  std::string server() const { return "https://127.0.0.1:" + std::to_string(port_); }
  const std::string& ca_path() const { return ca_path_; }
  const std::string& token_path() const { return token_path_; }
  // A kubeconfig naming this server, its CA, tokenFile and `namespace_` as the context's namespace.
  std::string write_kubeconfig(const std::string& namespace_ = "default") const;
  // Rewrites the token file: the server accepts only the new token from now on.
  void rotate_token(const std::string& token);

  // POST /fake/<what> with `body`; throws std::runtime_error on a non-200 answer.
  nlohmann::json control(const std::string& what, const std::string& body = "");
  void apply(const nlohmann::json& objects) { control("apply", objects.dump()); }
  void apply_yaml(const std::string& yaml) { control("apply", yaml); }
  void remove(const std::string& kind, const std::string& name, const std::string& namespace_ = "default");
  nlohmann::json stats();

 private:
  const TestEnv& env_;
  std::string ca_path_, cert_path_, key_path_, token_path_;
  std::string token_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace wp::testing
