#include "waypoint/filters/authz.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace wp::filters {

const char* to_string(Action a) {
  switch (a) {
    case Action::Allow:
      return "ALLOW";
    case Action::Deny:
      return "DENY";
    case Action::Audit:
      return "AUDIT";
  }
  return "?";
}

namespace {

constexpr std::string_view kSpiffeScheme = "spiffe://";

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool same_char(char a, char b, bool icase) {
  return icase ? lower(a) == lower(b) : a == b;
}

bool equal(std::string_view a, std::string_view b, bool icase) {
  if (!icase || a.size() != b.size()) {
    return a == b;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

// The namespace and service account of "spiffe://<td>/ns/<ns>/sa/<sa>", exactly that shape: every
// segment non-empty, no further segments.
struct SpiffeParts {
  std::string_view ns, sa;
};

std::optional<SpiffeParts> split_spiffe(std::string_view id) {
  if (!id.starts_with(kSpiffeScheme)) {
    return std::nullopt;
  }
  id.remove_prefix(kSpiffeScheme.size());
  std::array<std::string_view, 5> seg;  // td, "ns", <ns>, "sa", <sa>
  for (size_t i = 0; i < seg.size(); ++i) {
    size_t slash = id.find('/');
    bool last = i + 1 == seg.size();
    if ((slash == std::string_view::npos) != last) {
      return std::nullopt;  // too few or too many segments
    }
    seg[i] = id.substr(0, slash);
    if (seg[i].empty()) {
      return std::nullopt;
    }
    id.remove_prefix(last ? id.size() : slash + 1);
  }
  if (seg[1] != "ns" || seg[3] != "sa") {
    return std::nullopt;
  }
  return SpiffeParts{seg[2], seg[4]};
}

// Istio's principal format: the SPIFFE ID without its scheme.
std::string_view strip_scheme(std::string_view id) {
  if (id.starts_with(kSpiffeScheme)) {
    id.remove_prefix(kSpiffeScheme.size());
  }
  return id;
}

// Whether `m` matches the string a + "/" + b, without building it (evaluation must not allocate).
bool matches_joined(const StringMatch& m, std::string_view a, std::string_view b) {
  const size_t n = a.size() + 1 + b.size();
  const size_t k = m.value.size();
  auto at = [&](size_t i) { return i < a.size() ? a[i] : i == a.size() ? '/' : b[i - a.size() - 1]; };
  auto equal_from = [&](size_t off) {
    for (size_t i = 0; i < k; ++i) {
      if (!same_char(at(off + i), m.value[i], m.ignore_case)) {
        return false;
      }
    }
    return true;
  };
  switch (m.kind) {
    case StringMatch::Kind::Any:
      return true;
    case StringMatch::Kind::Exact:
      return n == k && equal_from(0);
    case StringMatch::Kind::Prefix:
      return n >= k && equal_from(0);
    case StringMatch::Kind::Suffix:
      return n >= k && equal_from(n - k);
  }
  return false;
}

// One field and its not-form. `present` is false when the attribute does not exist (no peer
// identity, no such header, no SNI): then the positive list cannot match and the not-list has
// nothing to exclude. The positive list matches when any value does; the not-list when none does.
template <class T, class Pred>
bool field(const std::vector<T>& in, const std::vector<T>& not_in, bool present, Pred&& match) {
  if (!in.empty() && !(present && std::any_of(in.begin(), in.end(), match))) {
    return false;
  }
  return not_in.empty() || !present || std::none_of(not_in.begin(), not_in.end(), match);
}

auto str_is(std::string_view s) {
  return [s](const StringMatch& m) { return m.matches(s); };
}
auto ip_in(const net::IpAddr& ip) {
  return [&ip](const Cidr& c) { return c.contains(ip); };
}
auto port_is(uint16_t port) {
  return [port](uint16_t p) { return p == port; };
}

// The identity-derived attributes, computed once per evaluation.
struct Peer {
  explicit Peer(std::string_view id)
      : has_principal(!id.empty()), principal(strip_scheme(id)), parts(split_spiffe(id)) {}
  bool has_principal;
  std::string_view principal;  // without "spiffe://"
  std::optional<SpiffeParts> parts;
  auto service_account_is() const {
    return [this](const StringMatch& m) { return parts && matches_joined(m, parts->ns, parts->sa); };
  }
  std::string_view ns() const { return parts ? parts->ns : std::string_view(); }
};

bool source_matches(const Source& s, const Attributes& a, const Peer& peer) {
  return field(s.principals, s.not_principals, peer.has_principal, str_is(peer.principal)) &&
         field(s.namespaces, s.not_namespaces, peer.parts.has_value(), str_is(peer.ns())) &&
         field(s.service_accounts, s.not_service_accounts, peer.parts.has_value(), peer.service_account_is()) &&
         field(s.ip_blocks, s.not_ip_blocks, true, ip_in(a.source_ip)) &&
         field(s.remote_ip_blocks, s.not_remote_ip_blocks, true, ip_in(a.remote_ip));
}

// Without L7 attributes (a DENY rule on a TCP chain) the L7 fields are ignored, i.e. match.
bool operation_matches(const Operation& o, const Attributes& a) {
  if (!field(o.ports, o.not_ports, true, port_is(a.destination_port))) {
    return false;
  }
  if (!a.http) {
    return true;
  }
  auto method_is = [&](const std::string& m) { return m == a.method; };
  // As Istio generates them, a host pattern matches the authority as sent or without its port
  // ("reviews" matches "reviews:9080").
  std::string_view bare = a.host;
  if (size_t colon = bare.rfind(':');
      colon != std::string_view::npos && bare.find(']', colon) == std::string_view::npos) {
    bare = bare.substr(0, colon);
  }
  auto host_is = [&](const StringMatch& m) { return m.matches(a.host) || m.matches(bare); };
  return field(o.hosts, o.not_hosts, true, host_is) && field(o.methods, o.not_methods, true, method_is) &&
         field(o.paths, o.not_paths, true, str_is(a.path));
}

bool condition_matches(const Condition& c, const Attributes& a, const Peer& peer) {
  switch (c.key) {
    case Condition::Key::RequestHeader: {
      if (!a.http) {
        return true;  // DENY on a TCP chain: ignored (an ALLOW rule never gets here)
      }
      auto v = a.header != nullptr ? a.header(a.header_ctx, c.header) : std::nullopt;
      return field(c.values, c.not_values, v.has_value(), str_is(v.value_or(std::string_view())));
    }
    case Condition::Key::SourceIp:
      return field(c.cidrs, c.not_cidrs, true, ip_in(a.source_ip));
    case Condition::Key::RemoteIp:
      return field(c.cidrs, c.not_cidrs, true, ip_in(a.remote_ip));
    case Condition::Key::DestinationIp:
      return field(c.cidrs, c.not_cidrs, true, ip_in(a.destination_ip));
    case Condition::Key::SourceNamespace:
      return field(c.values, c.not_values, peer.parts.has_value(), str_is(peer.ns()));
    case Condition::Key::SourcePrincipal:
      return field(c.values, c.not_values, peer.has_principal, str_is(peer.principal));
    case Condition::Key::SourceServiceAccount:
      return field(c.values, c.not_values, peer.parts.has_value(), peer.service_account_is());
    case Condition::Key::DestinationPort:
      return field(c.ports, c.not_ports, true, port_is(a.destination_port));
    case Condition::Key::ConnectionSni:
      return field(c.values, c.not_values, !a.sni.empty(), str_is(a.sni));
  }
  return false;
}

bool rule_matches(const Rule& r, Action action, const Attributes& a, const Peer& peer) {
  if (!a.http && r.needs_l7 && action != Action::Deny) {
    return false;  // fail closed: an ALLOW/AUDIT rule that needs L7 never matches on TCP
  }
  auto source = [&](const Source& s) { return source_matches(s, a, peer); };
  auto operation = [&](const Operation& o) { return operation_matches(o, a); };
  auto condition = [&](const Condition& c) { return condition_matches(c, a, peer); };
  return (r.from.empty() || std::any_of(r.from.begin(), r.from.end(), source)) &&
         (r.to.empty() || std::any_of(r.to.begin(), r.to.end(), operation)) &&
         std::all_of(r.when.begin(), r.when.end(), condition);
}

// The index of the first matching rule of `p`, or -1 (always for a policy without rules).
int first_match(const Policy& p, const Attributes& a, const Peer& peer) {
  for (size_t i = 0; i < p.rules.size(); ++i) {
    if (rule_matches(p.rules[i], p.action, a, peer)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool needs_l7(const Rule& r) {
  auto op = [](const Operation& o) {
    return !o.hosts.empty() || !o.not_hosts.empty() || !o.methods.empty() || !o.not_methods.empty() ||
           !o.paths.empty() || !o.not_paths.empty();
  };
  auto cond = [](const Condition& c) { return c.key == Condition::Key::RequestHeader; };
  return std::any_of(r.to.begin(), r.to.end(), op) || std::any_of(r.when.begin(), r.when.end(), cond);
}

}  // namespace

StringMatch StringMatch::parse(std::string_view pattern, bool ignore_case) {
  StringMatch m;
  m.ignore_case = ignore_case;
  // As Istio: "*" first, then a leading '*' (so "*a*" is the suffix "a*"), then a trailing one.
  if (pattern == "*") {
    m.kind = Kind::Any;
  } else if (pattern.starts_with('*')) {
    m.kind = Kind::Suffix;
    m.value = pattern.substr(1);
  } else if (pattern.ends_with('*')) {
    m.kind = Kind::Prefix;
    m.value = pattern.substr(0, pattern.size() - 1);
  } else {
    m.kind = Kind::Exact;
    m.value = pattern;
  }
  return m;
}

bool StringMatch::matches(std::string_view s) const {
  switch (kind) {
    case Kind::Any:
      return true;
    case Kind::Exact:
      return equal(s, value, ignore_case);
    case Kind::Prefix:
      return s.size() >= value.size() && equal(s.substr(0, value.size()), value, ignore_case);
    case Kind::Suffix:
      return s.size() >= value.size() && equal(s.substr(s.size() - value.size()), value, ignore_case);
  }
  return false;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  auto ip = net::IpAddr::parse(text.substr(0, slash));  // inet_pton: no brackets, zones or spaces
  if (!ip) {
    return std::nullopt;
  }
  const unsigned max = ip->is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    // 1-3 decimal digits, no sign, no leading zero (as Go's netip.ParsePrefix).
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) {
      return std::nullopt;
    }
    prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') {
        return std::nullopt;
      }
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (prefix > max) {
      return std::nullopt;
    }
  }
  // Clear the host bits: Istio accepts "10.1.2.3/8" as 10.0.0.0/8.
  std::array<uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), ip->bytes(), ip->size());
  for (size_t i = 0; i < ip->size(); ++i) {
    unsigned keep = std::min(8u, prefix - std::min(prefix, static_cast<unsigned>(8 * i)));
    bytes[i] &= static_cast<uint8_t>(0xff00u >> keep);
  }
  Cidr c;
  c.base = net::IpAddr::from_bytes(ip->family(), bytes.data());
  c.prefix = static_cast<uint8_t>(prefix);
  return c;
}

bool Cidr::contains(const net::IpAddr& ip) const {
  if (ip.family() != base.family()) {
    return false;  // no IPv4-mapped IPv6 equivalence
  }
  const size_t full = prefix / 8;
  if (std::memcmp(ip.bytes(), base.bytes(), full) != 0) {
    return false;
  }
  const unsigned rest = prefix % 8;
  return rest == 0 || (ip.bytes()[full] & static_cast<uint8_t>(0xff00u >> rest)) == base.bytes()[full];
}

void PolicySet::add(Policy policy) {
  for (Rule& r : policy.rules) {
    r.needs_l7 = needs_l7(r);
  }
  switch (policy.action) {
    case Action::Deny:
      deny_.push_back(std::move(policy));
      break;
    case Action::Allow:
      allow_.push_back(std::move(policy));
      break;
    case Action::Audit:
      audit_.push_back(std::move(policy));
      break;
  }
}

Verdict PolicySet::evaluate(const Attributes& a) const {
  const Peer peer(a.principal);
  Verdict v;
  // AUDIT first only so that it is reported whatever the verdict; it never changes it.
  v.audited = std::any_of(audit_.begin(), audit_.end(), [&](const Policy& p) { return first_match(p, a, peer) >= 0; });
  for (const Policy& p : deny_) {
    if (int r = first_match(p, a, peer); r >= 0) {
      v.allowed = false;
      v.decided_by = &p;
      v.rule = r;
      return v;
    }
  }
  if (allow_.empty()) {
    return v;  // no ALLOW policy: allowed, decided by nobody
  }
  for (const Policy& p : allow_) {
    if (int r = first_match(p, a, peer); r >= 0) {
      v.decided_by = &p;
      v.rule = r;
      return v;
    }
  }
  v.allowed = false;  // ALLOW policies exist and none matched
  return v;
}

std::string_view spiffe_namespace(std::string_view principal) {
  auto parts = split_spiffe(principal);
  return parts ? parts->ns : std::string_view();
}

std::string spiffe_service_account(std::string_view principal) {
  auto parts = split_spiffe(principal);
  if (!parts) {
    return {};
  }
  std::string out(parts->ns);
  out += '/';
  out += parts->sa;
  return out;
}

}  // namespace wp::filters
