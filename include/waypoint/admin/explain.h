#pragma once
// `waypoint explain`: one request dry-run through the decisions the data path makes — chain
// selection, authorization, route, fault, clusters and endpoints, retries and timeouts — with the
// resource that made each one. It calls the data path's own functions (internal::select_chain,
// filters::PolicySet::evaluate, router::match, ...) on a loaded Snapshot and opens no socket, so
// what it prints cannot drift from what a tunnel would get.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "waypoint/config/snapshot.h"
#include "waypoint/net/address.h"

namespace wp::admin {

struct ExplainRequest {
  std::string principal;  // the client's SPIFFE ID ("spiffe://td/ns/<ns>/sa/<sa>"), as mTLS gives it
  net::SockAddr to;       // the CONNECT's destination: a service VIP:port or a pod IP:port
  std::string method = "GET";
  std::string path = "/";  // origin-form target; a query string is split off as the data path does
  // Empty: a Host header among `headers`, else "<service fqdn>:<port>" for a VIP, "IP:PORT" for a pod.
  std::string authority;
  std::vector<std::pair<std::string, std::string>> headers;
  // The client address (the CONNECT's forwarded for=). Unset: the first served pod with the
  // principal's identity, else 0.0.0.0 (said so in the text).
  std::optional<net::IpAddr> source_ip;
  // Auto explains a sniffed chain (unnamed service port, pod IP) both as HTTP and as TCP, and exits
  // with the HTTP case's code unless that is 0; callers given HTTP details (method, path, headers,
  // authority) should pass Http. A port that says http or tcp is explained as what it is.
  enum class Protocol { Auto, Http, Tcp } protocol = Protocol::Auto;
};

// Exit codes of `waypoint explain` (1 is a config error and 4 a usage error, decided by the CLI).
constexpr int kExplainAllowed = 0;  // allowed and routed (the text says what the upstream side may still answer)
constexpr int kExplainDenied = 2;   // denied by an AuthorizationPolicy (403, or 401 / reset on TCP)
constexpr int kExplainNoRoute = 3;  // no chain for the destination (503) or no route matched (404)
constexpr int kExplainRefused = 5;  // the request itself is refused before authorization (501, 400: DPE)

struct Explanation {
  int exit_code = kExplainAllowed;
  std::string text;  // one decision per line, each naming the resource that made it
};

Explanation explain(const config::Snapshot& snapshot, const ExplainRequest& request);

}  // namespace wp::admin
