// Resolving how to reach the API server: in-cluster service account or a kubeconfig (as client-go's
// rest.InClusterConfig and clientcmd's loading rules do it, minus the merging of several files).
#include "waypoint/kube/access.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

namespace wp::kube {

namespace detail {

struct TokenFileCache {
  std::mutex mu;
  std::string path;  // the file `value` was read from
  bool have = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  struct timespec mtime {};
  std::string value;
};

}  // namespace detail

namespace {

constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
constexpr size_t kMaxFileBytes = 16 << 20;  // a kubeconfig, certificate or token file

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) {
    ++b;
  }
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

// The whole file, or nullopt with `error` = "PATH: reason".
std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open (" + std::strerror(errno) + ")";
    return std::nullopt;
  }
  std::string data;
  char buf[16384];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > kMaxFileBytes) {
      error = path + ": larger than 16 MiB";
      return std::nullopt;
    }
  }
  if (in.bad()) {
    error = path + ": read error";
    return std::nullopt;
  }
  return data;
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string home_dir() {
  const char* home = std::getenv("HOME");
  return home != nullptr ? home : "";
}

// "~" and "~/x" only (not "~user").
std::string expand_home(const std::string& path) {
  if (path == "~" || path.starts_with("~/")) {
    return home_dir() + path.substr(1);
  }
  return path;
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string resolve_relative(const std::string& dir, const std::string& path) {
  if (path.empty() || path.front() == '/') {
    return path;
  }
  return dir + "/" + path;
}

std::string getenv_string(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// ---- in-cluster --------------------------------------------------------------------------------

std::optional<Access> in_cluster(std::string& error) {
  std::string host = getenv_string("KUBERNETES_SERVICE_HOST");
  std::string port = getenv_string("KUBERNETES_SERVICE_PORT");
  if (port.empty()) {
    error = "in-cluster: KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not";
    return std::nullopt;
  }
  std::string dir = getenv_string("WAYPOINT_SERVICEACCOUNT_DIR");
  if (dir.empty()) {
    dir = kServiceAccountDir;
  }
  Access access;
  access.origin = "in-cluster";
  std::string server = "https://";
  if (host.find(':') != std::string::npos && host.front() != '[') {
    server += "[" + host + "]";
  } else {
    server += host;
  }
  server += ":" + port;
  if (!parse_server(server, access, error)) {
    error = "in-cluster: KUBERNETES_SERVICE_HOST/_PORT: " + error;
    return std::nullopt;
  }
  access.token_file = dir + "/token";
  auto token = read_file(access.token_file, error);
  if (!token) {
    error = "in-cluster: service account token: " + error;
    return std::nullopt;
  }
  access.token = trim(*token);
  auto ca = read_file(dir + "/ca.crt", error);
  if (!ca) {
    error = "in-cluster: service account CA: " + error;
    return std::nullopt;
  }
  access.ca_pem = std::move(*ca);
  std::string ignored;
  if (auto ns = read_file(dir + "/namespace", ignored)) {
    access.namespace_ = trim(*ns);
  }
  return access;
}

// ---- kubeconfig --------------------------------------------------------------------------------

class KubeconfigReader {
 public:
  KubeconfigReader(std::string path, std::string& error) : path_(std::move(path)), dir_(dir_of(path_)), error_(error) {}

  std::optional<Access> read() {
    auto text = read_file(path_, error_);
    if (!text) {
      error_ = "kubeconfig " + error_;
      return std::nullopt;
    }
    YAML::Node loaded;
    try {
      loaded = YAML::Load(*text);
    } catch (const YAML::Exception& e) {
      error_ = path_ + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
               ": not a valid kubeconfig: " + e.msg;
      return std::nullopt;
    }
    const YAML::Node& root = loaded;
    if (!root.IsMap()) {
      return fail("", "not a kubeconfig (expected a mapping with clusters, users, contexts)");
    }
    Access access;
    access.origin = path_;
    auto current = scalar(root["current-context"], "current-context");
    if (!current) {
      return std::nullopt;
    }
    if (current->empty()) {
      return fail("current-context", "not set (kubectl config use-context NAME)");
    }
    std::string ctx_field;
    const YAML::Node context = named(root, "contexts", *current, "context", ctx_field);
    if (!context) {
      return std::nullopt;
    }
    auto cluster_name = scalar(context["cluster"], ctx_field + ".cluster");
    auto user_name = scalar(context["user"], ctx_field + ".user");
    auto ns = scalar(context["namespace"], ctx_field + ".namespace");
    if (!cluster_name || !user_name || !ns) {
      return std::nullopt;
    }
    if (cluster_name->empty()) {
      return fail(ctx_field + ".cluster", "not set");
    }
    access.namespace_ = *ns;
    if (!read_cluster(root, *cluster_name, access)) {
      return std::nullopt;
    }
    if (!user_name->empty() && !read_user(root, *user_name, access)) {
      return std::nullopt;
    }
    return access;
  }

 private:
  std::nullopt_t fail(const std::string& field, const std::string& message) {
    error_ = path_ + ": " + (field.empty() ? "" : field + ": ") + message;
    return std::nullopt;
  }

  // A string field: "" when absent or null; nullopt (error set) when it is not a scalar.
  std::optional<std::string> scalar(const YAML::Node& node, const std::string& field) {
    if (!node.IsDefined() || node.IsNull()) {
      return std::string();
    }
    if (!node.IsScalar()) {
      return fail(field, "expected a string");
    }
    return node.Scalar();
  }

  std::optional<bool> boolean(const YAML::Node& node, const std::string& field) {
    if (!node.IsDefined() || node.IsNull()) {
      return false;
    }
    bool v = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
      return fail(field, "expected true or false");
    }
    return v;
  }

  // The `inner` map of the entry of list `list` whose name is `name`; an invalid node (error set)
  // when the list, the entry or its map is missing or malformed. `field` names it for messages.
  YAML::Node named(const YAML::Node& root, const char* list, const std::string& name, const char* inner,
                   std::string& field) {
    field = std::string(list) + "[\"" + name + "\"]";
    const YAML::Node seq = root[list];
    if (seq.IsDefined() && !seq.IsNull() && !seq.IsSequence()) {
      fail(list, "expected a list");
      return YAML::Node(YAML::NodeType::Undefined);
    }
    if (seq.IsSequence()) {
      for (const YAML::Node& entry : seq) {
        if (entry.IsMap() && entry["name"].IsScalar() && entry["name"].Scalar() == name) {
          const YAML::Node body = entry[inner];
          field += std::string(".") + inner;
          if (!body.IsDefined() || body.IsNull()) {
            return YAML::Node(YAML::NodeType::Map);  // `user: {}` written as `user:`
          }
          if (!body.IsMap()) {
            fail(field, "expected a mapping");
            return YAML::Node(YAML::NodeType::Undefined);
          }
          return body;
        }
      }
    }
    fail(list, "no entry named \"" + name + "\"");
    return YAML::Node(YAML::NodeType::Undefined);
  }

  // `key` (a file, relative to the kubeconfig) or `key-data` (base64): the contents, "" when neither
  // is set, nullopt (error set) when both are set or the file or data is unusable.
  std::optional<std::string> file_or_data(const YAML::Node& map, const std::string& field, const std::string& key) {
    auto file = scalar(map[key], field + "." + key);
    auto data = scalar(map[key + "-data"], field + "." + key + "-data");
    if (!file || !data) {
      return std::nullopt;
    }
    if (!file->empty() && !data->empty()) {
      return fail(field, "both " + key + " and " + key + "-data are set; set only one");
    }
    if (!data->empty()) {
      auto decoded = base64_decode(*data);
      if (!decoded) {
        return fail(field + "." + key + "-data", "not valid base64");
      }
      return decoded;
    }
    if (!file->empty()) {
      std::string path = resolve_relative(dir_, *file), why;
      auto contents = read_file(path, why);
      if (!contents) {
        return fail(field + "." + key, why);
      }
      return contents;
    }
    return std::string();
  }

  bool read_cluster(const YAML::Node& root, const std::string& name, Access& access) {
    std::string field;
    const YAML::Node cluster = named(root, "clusters", name, "cluster", field);
    if (!cluster) {
      return false;
    }
    auto server = scalar(cluster["server"], field + ".server");
    auto insecure = boolean(cluster["insecure-skip-tls-verify"], field + ".insecure-skip-tls-verify");
    auto sni = scalar(cluster["tls-server-name"], field + ".tls-server-name");
    auto proxy = scalar(cluster["proxy-url"], field + ".proxy-url");
    auto ca = file_or_data(cluster, field, "certificate-authority");
    if (!server || !insecure || !sni || !proxy || !ca) {
      return false;
    }
    if (server->empty()) {
      fail(field + ".server", "not set");
      return false;
    }
    std::string why;
    if (!parse_server(*server, access, why)) {
      fail(field + ".server", why);
      return false;
    }
    if (!proxy->empty()) {
      fail(field + ".proxy-url", "proxies are not supported");
      return false;
    }
    if (*insecure && !ca->empty()) {
      // client-go refuses this too: "specifying a root certificates file with the insecure flag".
      fail(field, "insecure-skip-tls-verify with a certificate-authority: set only one");
      return false;
    }
    access.insecure_skip_verify = *insecure;
    access.tls_server_name = *sni;
    access.ca_pem = std::move(*ca);
    return true;
  }

  bool read_user(const YAML::Node& root, const std::string& name, Access& access) {
    std::string field;
    const YAML::Node user = named(root, "users", name, "user", field);
    if (!user) {
      return false;
    }
    for (const char* unsupported : {"exec", "auth-provider"}) {
      if (YAML::Node n = user[unsupported]; n.IsDefined() && !n.IsNull()) {
        fail(field + "." + unsupported,
             std::string(unsupported) + " credentials are not supported; use token, tokenFile or client-certificate");
        return false;
      }
    }
    for (const char* unsupported : {"username", "password"}) {
      if (YAML::Node n = user[unsupported]; n.IsDefined() && !n.IsNull()) {
        fail(field + "." + unsupported,
             "basic authentication (username/password) is not supported; use token, tokenFile or client-certificate");
        return false;
      }
    }
    auto token = scalar(user["token"], field + ".token");
    auto token_file = scalar(user["tokenFile"], field + ".tokenFile");
    auto cert = file_or_data(user, field, "client-certificate");
    auto key = file_or_data(user, field, "client-key");
    if (!token || !token_file || !cert || !key) {
      return false;
    }
    if (cert->empty() != key->empty()) {
      fail(field, cert->empty() ? "client-key without client-certificate" : "client-certificate without client-key");
      return false;
    }
    access.token = trim(*token);
    if (!token_file->empty()) {
      access.token_file = resolve_relative(dir_, *token_file);
      std::string why;
      if (!read_file(access.token_file, why)) {
        fail(field + ".tokenFile", why);
        return false;
      }
    }
    access.client_cert_pem = std::move(*cert);
    access.client_key_pem = std::move(*key);
    return true;
  }

  std::string path_;
  std::string dir_;
  std::string& error_;
};

}  // namespace

std::shared_ptr<detail::TokenFileCache> Access::make_token_cache() {
  return std::make_shared<detail::TokenFileCache>();
}

std::string Access::bearer() const {
  if (token_file.empty()) {
    return token;
  }
  std::string ignored;
  if (!token_cache_) {  // a moved-from Access
    auto data = read_file(token_file, ignored);
    return data ? trim(*data) : token;
  }
  detail::TokenFileCache& c = *token_cache_;
  std::lock_guard<std::mutex> lock(c.mu);
  bool same_path = c.have && c.path == token_file;
  struct stat st;
  if (::stat(token_file.c_str(), &st) != 0) {
    return same_path ? c.value : token;
  }
  if (same_path && st.st_dev == c.dev && st.st_ino == c.ino && st.st_size == c.size &&
      st.st_mtim.tv_sec == c.mtime.tv_sec && st.st_mtim.tv_nsec == c.mtime.tv_nsec) {
    return c.value;
  }
  auto data = read_file(token_file, ignored);
  if (!data) {
    return same_path ? c.value : token;
  }
  c.path = token_file;
  c.have = true;
  c.dev = st.st_dev;
  c.ino = st.st_ino;
  c.size = st.st_size;
  c.mtime = st.st_mtim;
  c.value = trim(*data);
  return c.value;
}

bool parse_server(const std::string& server, Access& access, std::string& error) {
  std::string_view rest = server;
  if (size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    std::string name(rest.substr(0, scheme));
    for (char& ch : name) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    if (name == "http") {
      error = "\"" + server + "\": plain http is not supported (the API server is reached over https)";
      return false;
    }
    if (name != "https") {
      error = "\"" + server + "\": scheme " + name + " is not supported (https only)";
      return false;
    }
    rest.remove_prefix(scheme + 3);
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (path.find_first_of("?#") != std::string_view::npos || authority.find_first_of("?#") != std::string_view::npos) {
    error = "\"" + server + "\": a query or fragment is not allowed in the server URL";
    return false;
  }
  if (authority.find('@') != std::string_view::npos) {
    error = "\"" + server + "\": user information is not allowed in the server URL";
    return false;
  }
  std::string_view host, port;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "\"" + server + "\": unclosed '[' in the host";
      return false;
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "\"" + server + "\": unexpected text after the IPv6 address";
        return false;
      }
      port = after.substr(1);
      if (port.empty()) {
        error = "\"" + server + "\": empty port";
        return false;
      }
    }
  } else {
    size_t colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) {
      error = "\"" + server + "\": an IPv6 address must be in brackets ([::1]:6443)";
      return false;
    }
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) {
        error = "\"" + server + "\": empty port";
        return false;
      }
    }
  }
  if (host.empty()) {
    error = "\"" + server + "\": no host";
    return false;
  }
  uint16_t port_number = 443;
  if (!port.empty()) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
      error = "\"" + server + "\": bad port \"" + std::string(port) + "\"";
      return false;
    }
    port_number = static_cast<uint16_t>(value);
  }
  while (path.size() > 0 && path.back() == '/') {
    path.remove_suffix(1);
  }
  access.server = server;
  access.host = std::string(host);
  access.port = port_number;
  access.base_path = std::string(path);
  return true;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string compact;
  compact.reserve(text.size());
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      compact.push_back(c);
    }
  }
  if (compact.size() % 4 != 0) {
    return std::nullopt;
  }
  if (compact.empty()) {
    return std::string();
  }
  size_t padding = 0;
  if (compact.back() == '=') {
    padding = compact[compact.size() - 2] == '=' ? 2 : 1;
  }
  if (compact.find('=') < compact.size() - padding) {
    return std::nullopt;  // '=' inside the text
  }
  std::string out(compact.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(compact.data()), static_cast<int>(compact.size()));
  if (n < 0 || static_cast<size_t>(n) < padding) {
    return std::nullopt;
  }
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

std::optional<Access> resolve_access(const std::string& kubeconfig_path, std::string& error) {
  if (!kubeconfig_path.empty()) {
    return KubeconfigReader(expand_home(kubeconfig_path), error).read();
  }
  if (!getenv_string("KUBERNETES_SERVICE_HOST").empty()) {
    return in_cluster(error);
  }
  std::string list = getenv_string("KUBECONFIG");
  if (!list.empty()) {
    std::stringstream parts(list);
    std::string part;
    while (std::getline(parts, part, ':')) {
      if (!part.empty() && file_exists(expand_home(part))) {
        return KubeconfigReader(expand_home(part), error).read();
      }
    }
    error = "not in a pod (KUBERNETES_SERVICE_HOST is unset) and no file of $KUBECONFIG (" + list + ") exists";
    return std::nullopt;
  }
  std::string home = home_dir();
  if (home.empty()) {
    error = "not in a pod (KUBERNETES_SERVICE_HOST is unset), $KUBECONFIG is unset and $HOME is unset";
    return std::nullopt;
  }
  std::string path = home + "/.kube/config";
  if (!file_exists(path)) {
    error = "not in a pod (KUBERNETES_SERVICE_HOST is unset), $KUBECONFIG is unset and " + path + " does not exist";
    return std::nullopt;
  }
  return KubeconfigReader(path, error).read();
}

}  // namespace wp::kube
