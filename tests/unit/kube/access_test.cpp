#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "waypoint/kube/access.h"

using wp::kube::Access;
using wp::kube::base64_decode;
using wp::kube::parse_server;
using wp::kube::resolve_access;

namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "wp-kube-access-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    return p;
  }

 private:
  std::string path_;
};

// Sets (or, with nullopt, unsets) environment variables for one test and restores them after.
class EnvGuard {
 public:
  EnvGuard(std::map<std::string, std::optional<std::string>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = ::getenv(name.c_str());
      saved_[name] = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ~EnvGuard() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// No in-cluster environment, no $KUBECONFIG: only the explicit path counts.
EnvGuard outside_cluster() {
  return EnvGuard({{"KUBERNETES_SERVICE_HOST", std::nullopt},
                   {"KUBERNETES_SERVICE_PORT", std::nullopt},
                   {"KUBECONFIG", std::nullopt},
                   {"WAYPOINT_SERVICEACCOUNT_DIR", std::nullopt}});
}

const std::string kCaPem = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
// base64 of kCaPem
const std::string kCaPemB64 = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmYWtlCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";

// A kubeconfig with two contexts; `cluster_extra` and `user_extra` are more lines (6 spaces in).
std::string kubeconfig(const std::string& cluster_extra, const std::string& user_extra,
                       const std::string& current = "dev") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: " + current +
         "\n"
         "contexts:\n"
         "- name: prod\n"
         "  context: {cluster: prod-cluster, user: prod-user}\n"
         "- name: dev\n"
         "  context:\n"
         "    cluster: dev-cluster\n"
         "    user: dev-user\n"
         "    namespace: shop\n"
         "clusters:\n"
         "- name: prod-cluster\n"
         "  cluster: {server: 'https://prod.example:6443'}\n"
         "- name: dev-cluster\n"
         "  cluster:\n"
         "    server: https://dev.example:6443\n" +
         cluster_extra +
         "users:\n"
         "- name: prod-user\n"
         "  user: {token: prod-token}\n"
         "- name: dev-user\n"
         "  user:\n" +
         user_extra;
}

std::string resolve_error(const std::string& path) {
  std::string error;
  auto access = resolve_access(path, error);
  CHECK_FALSE(access.has_value());
  return error;
}

}  // namespace

TEST_CASE("kubeconfig: the current context's cluster, user and namespace, inline -data", "[kube][access]") {
  auto env = outside_cluster();
  TempDir dir;
  std::string path = dir.write("config", kubeconfig("    certificate-authority-data: " + kCaPemB64 + "\n",
                                                    "    token: ' dev-token '\n"
                                                    "    client-certificate-data: " +
                                                        kCaPemB64 +
                                                        "\n"
                                                        "    client-key-data: a2V5\n"));
  std::string error;
  auto access = resolve_access(path, error);
  REQUIRE(access.has_value());
  CHECK(error.empty());
  CHECK(access->server == "https://dev.example:6443");
  CHECK(access->host == "dev.example");
  CHECK(access->port == 6443);
  CHECK(access->base_path.empty());
  CHECK(access->ca_pem == kCaPem);
  CHECK_FALSE(access->insecure_skip_verify);
  CHECK(access->token == "dev-token");
  CHECK(access->bearer() == "dev-token");
  CHECK(access->token_file.empty());
  CHECK(access->client_cert_pem == kCaPem);
  CHECK(access->client_key_pem == "key");
  CHECK(access->namespace_ == "shop");
  CHECK(access->origin == path);

  // The other context: flow-style maps, no namespace.
  path = dir.write("config2", kubeconfig("", "    token: x\n", "prod"));
  access = resolve_access(path, error);
  REQUIRE(access.has_value());
  CHECK(access->host == "prod.example");
  CHECK(access->token == "prod-token");
  CHECK(access->namespace_.empty());
  CHECK(access->ca_pem.empty());
}

TEST_CASE("kubeconfig: file paths are relative to the kubeconfig's directory", "[kube][access]") {
  auto env = outside_cluster();
  TempDir dir;
  dir.write("kube/ca.crt", kCaPem);
  dir.write("kube/sub/client.crt", "CERT");
  dir.write("kube/sub/client.key", "KEY");
  dir.write("kube/token", "tok-1\n");
  std::string abs_key = dir.write("elsewhere/abs.key", "ABSKEY");
  std::string path = dir.write("kube/config", kubeconfig("    certificate-authority: ca.crt\n",
                                                         "    tokenFile: token\n"
                                                         "    client-certificate: sub/client.crt\n"
                                                         "    client-key: " +
                                                             abs_key + "\n"));
  // Run from another directory so that "relative to the working directory" would fail.
  std::string error;
  auto access = resolve_access(path, error);
  REQUIRE(access.has_value());
  CHECK(access->ca_pem == kCaPem);
  CHECK(access->client_cert_pem == "CERT");
  CHECK(access->client_key_pem == "ABSKEY");
  CHECK(access->token_file == dir.path() + "/kube/token");
  CHECK(access->bearer() == "tok-1");
}

TEST_CASE("kubeconfig: ~ in the explicit path, then $KUBECONFIG's first existing file, then ~/.kube/config",
          "[kube][access]") {
  TempDir dir;
  dir.write("home/.kube/config", kubeconfig("", "    token: from-home\n"));
  dir.write("home/other", kubeconfig("", "    token: from-tilde\n"));
  std::string second = dir.write("second", kubeconfig("", "    token: from-env\n"));
  std::string error;
  {
    EnvGuard env(
        {{"KUBERNETES_SERVICE_HOST", std::nullopt}, {"KUBECONFIG", std::nullopt}, {"HOME", dir.path() + "/home"}});
    auto access = resolve_access("", error);
    REQUIRE(access.has_value());
    CHECK(access->token == "from-home");
    CHECK(access->origin == dir.path() + "/home/.kube/config");
    access = resolve_access("~/other", error);
    REQUIRE(access.has_value());
    CHECK(access->token == "from-tilde");
  }
  {
    EnvGuard env({{"KUBERNETES_SERVICE_HOST", std::nullopt},
                  {"KUBECONFIG", dir.path() + "/missing::" + second},
                  {"HOME", dir.path() + "/home"}});
    auto access = resolve_access("", error);
    REQUIRE(access.has_value());
    CHECK(access->token == "from-env");
  }
  {
    EnvGuard env({{"KUBERNETES_SERVICE_HOST", std::nullopt}, {"KUBECONFIG", dir.path() + "/missing"}});
    CHECK_FALSE(resolve_access("", error).has_value());
    CHECK_THAT(error, Catch::Contains("KUBECONFIG") && Catch::Contains(dir.path() + "/missing"));
  }
  {
    EnvGuard env({{"KUBERNETES_SERVICE_HOST", std::nullopt}, {"KUBECONFIG", std::nullopt}, {"HOME", dir.path()}});
    CHECK_FALSE(resolve_access("", error).has_value());
    CHECK_THAT(error, Catch::Contains(dir.path() + "/.kube/config") && Catch::Contains("does not exist"));
  }
}

TEST_CASE("Access::bearer re-reads a rotated token file, keeps the last token when it vanishes", "[kube][access]") {
  TempDir dir;
  std::string file = dir.write("token", "first-token\n");
  Access access;
  access.token = "static";
  access.token_file = file;
  CHECK(access.bearer() == "first-token");  // the file takes precedence over the static token
  Access copy = access;                     // copies share the cache
  CHECK(copy.bearer() == "first-token");

  // Rotated in place (other size) and by rename (the kubelet's atomic swap; same size).
  dir.write("token", "second-token-longer");
  CHECK(access.bearer() == "second-token-longer");
  dir.write("token.new", "third-token-longer!");
  fs::rename(dir.path() + "/token.new", file);
  CHECK(access.bearer() == "third-token-longer!");
  CHECK(copy.bearer() == "third-token-longer!");

  fs::remove(file);
  CHECK(access.bearer() == "third-token-longer!");

  Access fresh;
  fresh.token = "static";
  fresh.token_file = dir.path() + "/never";
  CHECK(fresh.bearer() == "static");  // never readable: the static token

  Access no_file;
  no_file.token = "only";
  CHECK(no_file.bearer() == "only");
}

TEST_CASE("in-cluster: service host and port, token, CA and namespace from the service account dir", "[kube][access]") {
  TempDir dir;
  dir.write("sa/token", "sa-token\n");
  dir.write("sa/ca.crt", kCaPem);
  dir.write("sa/namespace", "shop\n");
  std::string kubeconfig_path = dir.write("config", kubeconfig("", "    token: from-kubeconfig\n"));
  std::string error;
  {
    EnvGuard env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                  {"KUBERNETES_SERVICE_PORT", "443"},
                  {"WAYPOINT_SERVICEACCOUNT_DIR", dir.path() + "/sa"},
                  {"KUBECONFIG", kubeconfig_path}});
    auto access = resolve_access("", error);
    REQUIRE(access.has_value());
    CHECK(access->origin == "in-cluster");
    CHECK(access->server == "https://10.96.0.1:443");
    CHECK(access->host == "10.96.0.1");
    CHECK(access->port == 443);
    CHECK(access->ca_pem == kCaPem);
    CHECK(access->token_file == dir.path() + "/sa/token");
    CHECK(access->bearer() == "sa-token");
    CHECK(access->namespace_ == "shop");

    // An explicit kubeconfig wins over the pod's environment.
    access = resolve_access(kubeconfig_path, error);
    REQUIRE(access.has_value());
    CHECK(access->token == "from-kubeconfig");
  }
  {
    EnvGuard env({{"KUBERNETES_SERVICE_HOST", "fd00:10:96::1"},
                  {"KUBERNETES_SERVICE_PORT", "6443"},
                  {"WAYPOINT_SERVICEACCOUNT_DIR", dir.path() + "/sa"}});
    auto access = resolve_access("", error);
    REQUIRE(access.has_value());
    CHECK(access->server == "https://[fd00:10:96::1]:6443");
    CHECK(access->host == "fd00:10:96::1");
    CHECK(access->port == 6443);
  }
  {
    EnvGuard env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                  {"KUBERNETES_SERVICE_PORT", std::nullopt},
                  {"WAYPOINT_SERVICEACCOUNT_DIR", dir.path() + "/sa"}});
    CHECK_FALSE(resolve_access("", error).has_value());
    CHECK_THAT(error, Catch::Contains("KUBERNETES_SERVICE_PORT"));
  }
  {
    EnvGuard env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                  {"KUBERNETES_SERVICE_PORT", "443"},
                  {"WAYPOINT_SERVICEACCOUNT_DIR", dir.path() + "/nowhere"}});
    CHECK_FALSE(resolve_access("", error).has_value());
    CHECK_THAT(error, Catch::Contains(dir.path() + "/nowhere/token"));
  }
  {
    fs::remove(dir.path() + "/sa/namespace");  // optional
    EnvGuard env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                  {"KUBERNETES_SERVICE_PORT", "443"},
                  {"WAYPOINT_SERVICEACCOUNT_DIR", dir.path() + "/sa"}});
    auto access = resolve_access("", error);
    REQUIRE(access.has_value());
    CHECK(access->namespace_.empty());
    fs::remove(dir.path() + "/sa/ca.crt");
    CHECK_FALSE(resolve_access("", error).has_value());
    CHECK_THAT(error, Catch::Contains(dir.path() + "/sa/ca.crt"));
  }
}

TEST_CASE("kubeconfig: bad or missing fields are errors that name the file and the field", "[kube][access]") {
  auto env = outside_cluster();
  TempDir dir;
  auto config = [&](const std::string& cluster_extra, const std::string& user_extra) {
    return dir.write("config", kubeconfig(cluster_extra, user_extra));
  };
  struct Case {
    std::string cluster, user;
    std::vector<std::string> expect;
  };
  std::vector<Case> cases = {
      {"", "    exec: {command: aws}\n", {"users[\"dev-user\"].user.exec", "not supported"}},
      {"", "    auth-provider: {name: gcp}\n", {"auth-provider", "not supported"}},
      {"", "    username: admin\n    password: secret\n", {"username", "basic authentication"}},
      {"    certificate-authority: ca.crt\n    certificate-authority-data: " + kCaPemB64 + "\n",
       "",
       {"clusters[\"dev-cluster\"].cluster", "both certificate-authority and certificate-authority-data"}},
      {"    certificate-authority-data: " + kCaPemB64 + "\n    insecure-skip-tls-verify: true\n",
       "",
       {"insecure-skip-tls-verify with a certificate-authority"}},
      {"    certificate-authority-data: '@@not base64'\n", "", {"certificate-authority-data", "not valid base64"}},
      {"    certificate-authority: missing-ca.crt\n", "", {"certificate-authority", dir.path() + "/missing-ca.crt"}},
      {"", "    client-certificate-data: " + kCaPemB64 + "\n", {"client-certificate without client-key"}},
      {"", "    client-key-data: a2V5\n", {"client-key without client-certificate"}},
      {"", "    tokenFile: no-such-token\n", {"tokenFile", dir.path() + "/no-such-token"}},
      {"    insecure-skip-tls-verify: maybe\n", "", {"insecure-skip-tls-verify", "true or false"}},
      {"    proxy-url: http://proxy:3128\n", "", {"proxy-url", "not supported"}},
  };
  for (const auto& c : cases) {
    std::string path = config(c.cluster, c.user);
    std::string error = resolve_error(path);
    INFO(c.cluster << c.user << " -> " << error);
    CHECK_THAT(error, Catch::StartsWith(path + ": "));
    for (const auto& e : c.expect) {
      CHECK_THAT(error, Catch::Contains(e));
    }
  }

  std::string path = dir.write("c1", "apiVersion: v1\nkind: Config\nclusters: []\n");
  CHECK_THAT(resolve_error(path), Catch::Contains("current-context") && Catch::Contains("not set"));
  path = dir.write("c2", kubeconfig("", "    token: x\n", "staging"));
  CHECK_THAT(resolve_error(path), Catch::Contains("contexts") && Catch::Contains("no entry named \"staging\""));
  path = dir.write("c3",
                   "current-context: a\ncontexts: [{name: a, context: {cluster: gone, user: u}}]\n"
                   "clusters: [{name: other, cluster: {server: 'https://x'}}]\n");
  CHECK_THAT(resolve_error(path), Catch::Contains("clusters: no entry named \"gone\""));
  path = dir.write(
      "c4", "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]\n");
  CHECK_THAT(resolve_error(path), Catch::Contains("clusters[\"c\"].cluster.server: not set"));
  path = dir.write("c5",
                   "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
                   "clusters: [{name: c, cluster: {server: 'http://10.0.0.1:8080'}}]\n");
  CHECK_THAT(resolve_error(path), Catch::Contains(".server") && Catch::Contains("plain http is not supported"));
  path = dir.write("c6", "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\nclusters: {c: 1}\n");
  CHECK_THAT(resolve_error(path), Catch::Contains("clusters: expected a list"));
  path = dir.write("c7", "current-context: [a\n");
  CHECK_THAT(resolve_error(path), Catch::StartsWith(path + ":") && Catch::Contains("not a valid kubeconfig"));
  path = dir.write("c8", "just text\n");
  CHECK_THAT(resolve_error(path), Catch::Contains("not a kubeconfig"));
  CHECK_THAT(resolve_error(dir.path() + "/absent"),
             Catch::Contains(dir.path() + "/absent") && Catch::Contains("cannot open"));

  // A context without a user is fine: no credentials (e.g. a local insecure test cluster).
  path =
      dir.write("c9",
                "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
                "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}}]\n");
  std::string error;
  auto access = resolve_access(path, error);
  REQUIRE(access.has_value());
  CHECK(access->insecure_skip_verify);
  CHECK(access->bearer().empty());
}

TEST_CASE("parse_server splits scheme, host, port and path prefix", "[kube][access]") {
  std::string error;
  Access a;
  REQUIRE(parse_server("https://[::1]:6443", a, error));
  CHECK(a.host == "::1");
  CHECK(a.port == 6443);
  REQUIRE(parse_server("HTTPS://api.example/k8s/clusters/c-1/", a, error));
  CHECK(a.host == "api.example");
  CHECK(a.port == 443);
  CHECK(a.base_path == "/k8s/clusters/c-1");
  REQUIRE(parse_server("10.0.0.1:8443", a, error));  // no scheme: https, as client-go defaults it
  CHECK(a.host == "10.0.0.1");
  CHECK(a.port == 8443);
  REQUIRE(parse_server("https://[fd00::1]", a, error));
  CHECK(a.host == "fd00::1");
  CHECK(a.port == 443);
  for (const char* bad : {"http://x", "ftp://x", "https://", "https://:443", "https://x:0", "https://x:65536",
                          "https://x:12a", "https://x:", "https://::1:443", "https://[::1", "https://[::1]x",
                          "https://u:p@x", "https://x/?q=1", "https://x#f"}) {
    INFO(bad);
    CHECK_FALSE(parse_server(bad, a, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("base64_decode", "[kube][access]") {
  CHECK(base64_decode("") == std::string());
  CHECK(base64_decode("a2V5") == std::string("key"));
  CHECK(base64_decode("a2V5cw==") == std::string("keys"));
  CHECK(base64_decode("a2V5c3M=") == std::string("keyss"));
  CHECK(base64_decode("a2V5\n  cw==\n") == std::string("keys"));
  CHECK(base64_decode(kCaPemB64) == kCaPem);
  CHECK(base64_decode("AAEC/w==") == std::string("\x00\x01\x02\xff", 4));
  CHECK_FALSE(base64_decode("a2V").has_value());
  CHECK_FALSE(base64_decode("a2V5c").has_value());
  CHECK_FALSE(base64_decode("a=V5").has_value());
  CHECK_FALSE(base64_decode("a2*5").has_value());
}
