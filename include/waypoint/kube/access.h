#pragma once
// How to reach the Kubernetes API server, resolved as client-go does it: an explicit kubeconfig,
// else the pod's service account (in-cluster), else $KUBECONFIG, else ~/.kube/config. The result is
// a plain value: the HTTPS client (kube/client.h) reads everything it needs from it.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace wp::kube {

namespace detail {
struct TokenFileCache;  // shared by the copies of one Access; thread-safe
}

struct Access {
  std::string server;           // "https://host:port[/prefix]" as configured
  std::string host;             // parsed from server, IPv6 without brackets
  uint16_t port = 443;          // parsed from server (443 when it names none)
  std::string base_path;        // a path prefix in server ("" or "/k8s/clusters/x"), no trailing '/'
  std::string tls_server_name;  // kubeconfig tls-server-name: verified and sent as SNI instead of host
  std::string ca_pem;           // the CA bundle (certificate-authority file, or -data decoded);
                                // empty: the system's default roots
  bool insecure_skip_verify = false;
  std::string token;            // a static bearer token (kubeconfig `token`)
  std::string token_file;       // re-read when it changes (in-cluster token, kubeconfig `tokenFile`)
  std::string client_cert_pem;  // client-certificate(-data): the certificate, then any chain
  std::string client_key_pem;   // client-key(-data)
  std::string namespace_;       // the context's namespace, or the pod's namespace file; may be empty
  std::string origin;           // "in-cluster" or the kubeconfig's path, for logs

  // The bearer token for the next request ("" for none): token_file when set (as client-go, it takes
  // precedence over token), re-read whenever its inode, size or mtime changed, surrounding white
  // space trimmed; if it cannot be read the last value read stays in use, else `token`.
  std::string bearer() const;

 private:
  std::shared_ptr<detail::TokenFileCache> token_cache_ = make_token_cache();
  static std::shared_ptr<detail::TokenFileCache> make_token_cache();
};

// kubeconfig_path: explicit (--kubeconfig or spec.kubernetes.kubeconfig; a leading `~` is expanded)
// wins. Else in-cluster when KUBERNETES_SERVICE_HOST is set: https://$KUBERNETES_SERVICE_HOST:
// $KUBERNETES_SERVICE_PORT, token, ca.crt and namespace from /var/run/secrets/kubernetes.io/
// serviceaccount/ (the directory overridable by $WAYPOINT_SERVICEACCOUNT_DIR, for tests). Else the
// first existing file of $KUBECONFIG (a ':'-separated list; the files are not merged as kubectl
// does), else ~/.kube/config.
//
// From a kubeconfig: current-context → its context's cluster, user and namespace → the cluster's
// server, certificate-authority(-data), insecure-skip-tls-verify, tls-server-name → the user's
// token, tokenFile, client-certificate(-data), client-key(-data). Relative file paths are relative
// to the kubeconfig's directory (as kubectl). Other ways to log in (exec plugins, auth-provider,
// username/password), proxy-url, plain http and contradicting fields are refused by name.
//
// On failure: std::nullopt, and `error` says what is wrong and in which file and field.
std::optional<Access> resolve_access(const std::string& kubeconfig_path, std::string& error);

// Splits "https://host:port/prefix" (also "host:port", "[v6]:port") into the fields of `access`.
// Returns false with `error` set for another scheme, a bad port or an empty host.
bool parse_server(const std::string& server, Access& access, std::string& error);

// RFC 4648 base64 (white space ignored, padding required as kubectl writes it). nullopt if invalid.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace wp::kube
