#pragma once
// AuthorizationPolicy, compiled: plain structs built once at config time, and an evaluation that
// allocates nothing (SPEC §4, Istio's semantics). Depends only on net/, so config/ can hold the
// compiled sets in its Snapshot; request headers are reached through a lookup function.
//
// Evaluation for one target (the Gateway's policies plus the Service's):
//   1. any matching DENY policy denies;
//   2. AUDIT policies only mark the request (audited) and never change the verdict;
//   3. with no ALLOW policy the request is allowed; otherwise at least one ALLOW policy must match.
// A policy matches when any of its rules matches; a policy without rules never matches (Istio's
// "allow-nothing": an ALLOW policy with no rules denies everything); a rule with no from/to/when
// (`- {}`) matches everything.
// A rule matches when every part matches: `from` (any entry), `to` (any entry), and every `when`.
// Within a source/operation entry every present field must match (AND), and a field matches when
// any of its values does (OR); a `notX` field matches when none of its values does.
//
// On a TCP chain only L4 attributes exist. A rule that needs L7 attributes (to.operation hosts,
// methods or paths; when request.headers) fails closed, as Istio does: in an ALLOW policy such a
// rule never matches; in a DENY policy its L7 parts are ignored and the rest decides.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waypoint/net/address.h"

namespace wp::filters {

// Istio's string patterns: "*" (anything, even empty), "abc*" (prefix), "*abc" (suffix), else exact.
struct StringMatch {
  enum class Kind : uint8_t { Exact, Prefix, Suffix, Any };
  Kind kind = Kind::Exact;
  std::string value;  // without the '*'
  bool ignore_case = false;

  static StringMatch parse(std::string_view pattern, bool ignore_case = false);
  bool matches(std::string_view s) const;
};

// An IPv4 or IPv6 CIDR ("10.0.0.0/8", "2001:db8::/32"); a bare address is a /32 or /128.
struct Cidr {
  net::IpAddr base;  // host bits cleared
  uint8_t prefix = 0;

  static std::optional<Cidr> parse(std::string_view text);  // nullopt when malformed
  bool contains(const net::IpAddr& ip) const;               // false across families
};

struct Source {
  std::vector<StringMatch> principals, not_principals;              // against the SPIFFE ID without "spiffe://"
  std::vector<StringMatch> namespaces, not_namespaces;              // against the namespace of the SPIFFE ID
  std::vector<StringMatch> service_accounts, not_service_accounts;  // "ns/sa" of the SPIFFE ID
  std::vector<Cidr> ip_blocks, not_ip_blocks;                       // source.ip
  std::vector<Cidr> remote_ip_blocks, not_remote_ip_blocks;         // remote.ip
};

struct Operation {
  std::vector<StringMatch> hosts, not_hosts;      // L7: Host / :authority, case-insensitive, with or without its port
  std::vector<uint16_t> ports, not_ports;         // destination port (L4)
  std::vector<std::string> methods, not_methods;  // L7: exact, case-sensitive
  std::vector<StringMatch> paths, not_paths;      // L7: path without the query string
};

struct Condition {
  enum class Key : uint8_t {
    RequestHeader,         // request.headers[name] (L7)
    SourceIp,              // source.ip (CIDRs)
    RemoteIp,              // remote.ip (CIDRs)
    SourceNamespace,       // source.namespace
    SourcePrincipal,       // source.principal
    SourceServiceAccount,  // source.serviceAccount ("ns/sa")
    DestinationIp,         // destination.ip (CIDRs)
    DestinationPort,       // destination.port
    ConnectionSni,         // connection.sni
  };
  Key key = Key::SourceIp;
  std::string header;                           // RequestHeader: the field name, lowercase
  std::vector<StringMatch> values, not_values;  // string keys
  std::vector<Cidr> cidrs, not_cidrs;           // IP keys
  std::vector<uint16_t> ports, not_ports;       // DestinationPort
};

struct Rule {
  std::vector<Source> from;
  std::vector<Operation> to;
  std::vector<Condition> when;
  bool needs_l7 = false;  // set by PolicySet::add: some part needs L7 attributes
};

enum class Action : uint8_t { Allow, Deny, Audit };
const char* to_string(Action a);  // "ALLOW", "DENY", "AUDIT"

struct Policy {
  std::string name;  // "namespace/name", for logs and the verdict
  Action action = Action::Allow;
  std::vector<Rule> rules;
};

// Everything evaluation looks at, by reference: build it on the stack per request or per tunnel.
struct Attributes {
  std::string_view principal;  // the peer's SPIFFE ID, e.g. "spiffe://cluster.local/ns/a/sa/b"; "" if none
  net::IpAddr source_ip;       // the CONNECT's forwarded for= address, else the TCP peer
  net::IpAddr remote_ip;       // the original client as far as known (same as source_ip on TCP)
  net::IpAddr destination_ip;  // the CONNECT's destination
  uint16_t destination_port = 0;
  std::string_view sni;
  bool http = false;                    // L7 attributes below are present (an HTTP request); false on a TCP chain
  std::string_view host, method, path;  // path: without the query string
  // The first value of a request header (name lowercase); nullopt when absent. Null: no headers.
  using HeaderLookup = std::optional<std::string_view> (*)(const void* ctx, std::string_view name);
  HeaderLookup header = nullptr;
  const void* header_ctx = nullptr;

  // The L4 part, as every chain knows it: the peer, the client address, the CONNECT's destination.
  static Attributes l4(std::string_view principal, const net::IpAddr& source, const net::SockAddr& destination) {
    Attributes a;
    a.principal = principal;
    a.source_ip = source;
    a.remote_ip = source;
    a.destination_ip = destination.ip();
    a.destination_port = destination.port();
    return a;
  }
};

// Points into the PolicySet that produced it: use it while that set (its Snapshot) lives.
struct Verdict {
  bool allowed = true;
  bool audited = false;
  const Policy* decided_by = nullptr;  // the DENY that denied or the ALLOW that allowed (nullptr:
                                       // no ALLOW policy applied, or none matched)
  int rule = -1;                       // index of the matching rule in decided_by
};

// The policies that apply to one target, split by action, in config order.
class PolicySet {
 public:
  void add(Policy policy);  // computes each rule's needs_l7
  bool empty() const { return deny_.empty() && allow_.empty() && audit_.empty(); }
  Verdict evaluate(const Attributes& a) const;  // allocation-free
  // The policies by action, in config order (for config_dump and explain).
  const std::vector<Policy>& deny() const { return deny_; }
  const std::vector<Policy>& allow() const { return allow_; }
  const std::vector<Policy>& audit() const { return audit_; }

 private:
  std::vector<Policy> deny_, allow_, audit_;
};

// The namespace (a view into `principal`) and "<ns>/<sa>" of a SPIFFE ID
// ("spiffe://td/ns/<ns>/sa/<sa>"); empty when the ID does not have that shape. Evaluation matches
// service accounts without building the string.
std::string_view spiffe_namespace(std::string_view principal);
std::string spiffe_service_account(std::string_view principal);

}  // namespace wp::filters
