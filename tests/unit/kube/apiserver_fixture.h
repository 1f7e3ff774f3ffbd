#pragma once
// tests/support/fake_apiserver.py as a child process for the kube client and reflector tests: its
// own temp dir with a CA, a server certificate for IP:127.0.0.1 and DNS:kubernetes.default.svc, and
// a token file; the control API (/fake/...) through wp::kube::Client itself.
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/certgen.h"
#include "waypoint/kube/access.h"
#include "waypoint/kube/client.h"

namespace wp::kube::testing {

class FakeApiServer {
 public:
  // `args`: more command-line options (e.g. "--bookmark-interval", "0").
  explicit FakeApiServer(std::vector<std::string> args = {});
  ~FakeApiServer();  // closes its stdin (it exits), reaps it, removes the temp dir
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const wp::testing::KeyCert& ca() const { return ca_; }
  // What a client needs: server, CA, and a token file of its own (client_token_file(), holding the
  // server's token at first) so that tests can make it wrong and rotate it.
  Access access() const;
  const std::string& client_token_file() const { return client_token_file_; }
  void set_client_token(const std::string& token) const;
  void set_server_token(const std::string& token) const;  // rewrites the server's token file

  // The control API. Throws std::runtime_error when the request fails or answers non-200.
  nlohmann::json control(const std::string& method, const std::string& path, const std::string& body = "");
  nlohmann::json apply(const nlohmann::json& objects) { return control("POST", "/fake/apply", objects.dump()); }
  nlohmann::json stats() { return control("GET", "/fake/stats"); }
  // The request log entries whose path is `path` (method, path, query, status, auth).
  std::vector<nlohmann::json> log_for(const std::string& path);

 private:
  std::string dir_;
  wp::testing::KeyCert ca_;
  std::string token_file_;
  std::string client_token_file_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> never_{false};
  std::unique_ptr<Client> control_;
};

// A Service object in namespace `ns`; a non-empty `annotation` becomes metadata.annotations.big.
nlohmann::json service(const std::string& name, const std::string& ns = "shop", const std::string& annotation = "");

}  // namespace wp::kube::testing
