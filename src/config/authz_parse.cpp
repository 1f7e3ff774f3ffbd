// AuthorizationPolicy → filters::Policy. Read like the routing resources (unknown fields of the
// Kubernetes object are ignored), but every field the waypoint evaluates is checked, and what Istio
// would silently ignore or cannot do here is an error: CUSTOM actions, unknown `when` keys,
// request principals (no RequestAuthentication), malformed CIDRs and ports.
#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "config/authz.h"

namespace wp::config {
namespace {

using filters::Cidr;
using filters::Condition;
using filters::StringMatch;

std::vector<std::string> strings(Reader& r, const Node& map, const char* key, const std::string& path) {
  std::vector<std::string> out;
  for_each_item(r, map, key, path, [&](const Node& item, const std::string& item_path) {
    if (auto s = r.string(item, item_path)) {
      out.push_back(*s);
    }
  });
  return out;
}

std::vector<StringMatch> patterns(Reader& r, const Node& map, const char* key, const std::string& path,
                                  bool ignore_case = false) {
  std::vector<StringMatch> out;
  for (const auto& s : strings(r, map, key, path)) {
    out.push_back(StringMatch::parse(s, ignore_case));
  }
  return out;
}

std::vector<Cidr> cidrs(Reader& r, const Node& map, const char* key, const std::string& path) {
  std::vector<Cidr> out;
  for_each_item(r, map, key, path, [&](const Node& item, const std::string& item_path) {
    auto s = r.string(item, item_path);
    if (!s) {
      return;
    }
    if (auto c = Cidr::parse(*s)) {
      out.push_back(*c);
    } else {
      r.error(item, item_path, "\"" + *s + "\" is not an IP address or CIDR");
    }
  });
  return out;
}

// Istio writes ports as strings ("8080"); plain integers are accepted too.
std::vector<uint16_t> ports(Reader& r, const Node& map, const char* key, const std::string& path) {
  std::vector<uint16_t> out;
  for_each_item(r, map, key, path, [&](const Node& item, const std::string& item_path) {
    auto s = r.string(item, item_path);
    if (!s) {
      return;
    }
    if (auto p = net::parse_port(*s)) {
      out.push_back(*p);
    } else {
      r.error(item, item_path, "\"" + *s + "\" is not a port (1..65535)");
    }
  });
  return out;
}

void reject(Reader& r, const Node& map, const char* key, const std::string& path, std::string_view why) {
  if (Node n = child(map, key); present(n)) {
    r.error(n, path + "." + key, why);
  }
}

filters::Source parse_source(Reader& r, const Node& node, const std::string& path) {
  filters::Source s;
  if (!r.expect_map(node, path)) {
    return s;
  }
  s.principals = patterns(r, node, "principals", path);
  s.not_principals = patterns(r, node, "notPrincipals", path);
  s.namespaces = patterns(r, node, "namespaces", path);
  s.not_namespaces = patterns(r, node, "notNamespaces", path);
  s.service_accounts = patterns(r, node, "serviceAccounts", path);
  s.not_service_accounts = patterns(r, node, "notServiceAccounts", path);
  s.ip_blocks = cidrs(r, node, "ipBlocks", path);
  s.not_ip_blocks = cidrs(r, node, "notIpBlocks", path);
  s.remote_ip_blocks = cidrs(r, node, "remoteIpBlocks", path);
  s.not_remote_ip_blocks = cidrs(r, node, "notRemoteIpBlocks", path);
  for (const char* key : {"requestPrincipals", "notRequestPrincipals"}) {
    reject(r, node, key, path, "request principals need RequestAuthentication (JWT), which the waypoint does not do");
  }
  return s;
}

filters::Operation parse_operation(Reader& r, const Node& node, const std::string& path) {
  filters::Operation o;
  if (!r.expect_map(node, path)) {
    return o;
  }
  o.hosts = patterns(r, node, "hosts", path, true);
  o.not_hosts = patterns(r, node, "notHosts", path, true);
  o.ports = ports(r, node, "ports", path);
  o.not_ports = ports(r, node, "notPorts", path);
  o.methods = strings(r, node, "methods", path);
  o.not_methods = strings(r, node, "notMethods", path);
  o.paths = patterns(r, node, "paths", path);
  o.not_paths = patterns(r, node, "notPaths", path);
  return o;
}

// "request.headers[x-user]" → RequestHeader with header "x-user"; the other keys by name.
std::optional<Condition> parse_condition(Reader& r, const Node& node, const std::string& path) {
  if (!r.expect_map(node, path)) {
    return std::nullopt;
  }
  auto key = r.required_string(node, "key", path + ".key");
  if (!key) {
    return std::nullopt;
  }
  Condition c;
  static const std::pair<std::string_view, Condition::Key> kKeys[] = {
      {"source.ip", Condition::Key::SourceIp},
      {"remote.ip", Condition::Key::RemoteIp},
      {"source.namespace", Condition::Key::SourceNamespace},
      {"source.principal", Condition::Key::SourcePrincipal},
      {"source.serviceAccount", Condition::Key::SourceServiceAccount},
      {"destination.ip", Condition::Key::DestinationIp},
      {"destination.port", Condition::Key::DestinationPort},
      {"connection.sni", Condition::Key::ConnectionSni},
  };
  const std::string prefix = "request.headers[";
  bool known = false;
  if (key->size() > prefix.size() + 1 && key->compare(0, prefix.size(), prefix) == 0 && key->back() == ']') {
    c.key = Condition::Key::RequestHeader;
    c.header = key->substr(prefix.size(), key->size() - prefix.size() - 1);
    std::transform(c.header.begin(), c.header.end(), c.header.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    known = true;
  }
  for (const auto& [name, k] : kKeys) {
    if (*key == name) {
      c.key = k;
      known = true;
    }
  }
  if (!known) {
    r.error(child(node, "key"), path + ".key",
            "unknown key \"" + *key +
                "\" (Istio ignores unknown keys silently; the waypoint refuses them so a typo cannot open access)");
    return std::nullopt;
  }
  switch (c.key) {
    case Condition::Key::SourceIp:
    case Condition::Key::RemoteIp:
    case Condition::Key::DestinationIp:
      c.cidrs = cidrs(r, node, "values", path);
      c.not_cidrs = cidrs(r, node, "notValues", path);
      break;
    case Condition::Key::DestinationPort:
      c.ports = ports(r, node, "values", path);
      c.not_ports = ports(r, node, "notValues", path);
      break;
    default:
      c.values = patterns(r, node, "values", path);
      c.not_values = patterns(r, node, "notValues", path);
      break;
  }
  bool empty = c.values.empty() && c.not_values.empty() && c.cidrs.empty() && c.not_cidrs.empty() && c.ports.empty() &&
               c.not_ports.empty();
  if (empty) {
    r.error(node, path, "needs values or notValues");
    return std::nullopt;
  }
  return c;
}

}  // namespace

void parse_authorization_policy(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap, Diagnostics& diag,
                                std::vector<AuthzPolicySpec>& out) {
  size_t errors_before = diag.error_count();
  Reader r(diag, "AuthorizationPolicy " + meta.name);
  AuthzPolicySpec spec;
  spec.policy.name = bootstrap.namespace_ + "/" + meta.name;
  spec.mark = mark_of(doc);
  Node s = child(doc, "spec");
  if (present(s) && !r.expect_map(s, "spec")) {
    return;
  }
  if (Node action = child(s, "action"); present(action)) {
    auto a = r.string(action, "spec.action");
    if (!a) {
      return;
    }
    if (*a == "ALLOW") {
      spec.policy.action = filters::Action::Allow;
    } else if (*a == "DENY") {
      spec.policy.action = filters::Action::Deny;
    } else if (*a == "AUDIT") {
      spec.policy.action = filters::Action::Audit;
    } else if (*a == "CUSTOM") {
      r.error(action, "spec.action", "CUSTOM (an external authorizer) is not supported by the waypoint");
      return;
    } else {
      r.error(action, "spec.action", "\"" + *a + "\" is not ALLOW, DENY or AUDIT");
      return;
    }
  }
  // Targets: the Gateway (every served Service) or Services by name. Istio's waypoints ignore
  // policies that do not target them, selector-only ones included.
  Node refs = child(s, "targetRefs");
  Node single = child(s, "targetRef");
  std::vector<Node> targets;
  if (present(refs) && r.expect_sequence(refs, "spec.targetRefs")) {
    for (size_t i = 0; i < refs.size(); ++i) {
      targets.push_back(refs[i]);
    }
  }
  if (present(single)) {
    targets.push_back(single);
  }
  if (targets.empty()) {
    r.warn(present(s) ? s : doc, "spec.targetRefs",
           "none: ignored (a waypoint applies only policies whose targetRefs name its Gateway or a Service)");
    return;
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    const Node& t = targets[i];
    std::string path = "spec.targetRefs[" + std::to_string(i) + "]";
    if (!r.expect_map(t, path)) {
      continue;
    }
    auto kind = r.required_string(t, "kind", path + ".kind");
    auto name = r.required_string(t, "name", path + ".name");
    if (!kind || !name) {
      continue;
    }
    if (*kind == "Gateway") {
      if (*name == bootstrap.gateway) {
        spec.gateway = true;
      } else {
        r.warn(t, path,
               "Gateway " + *name + " is not this waypoint (" + bootstrap.gateway + "); this target is ignored");
      }
    } else if (*kind == "Service") {
      spec.services.push_back(*name);
    } else {
      r.warn(t, path + ".kind", *kind + " is not a target the waypoint applies (Gateway or Service); ignored");
    }
  }
  if (Node selector = child(s, "selector"); present(selector)) {
    r.warn(selector, "spec.selector", "ignored: the waypoint applies policies by targetRefs");
  }
  for_each_item(r, s, "rules", "spec", [&](const Node& item, const std::string& path) {
    filters::Rule rule;
    if (!r.expect_map(item, path)) {
      return;
    }
    for_each_item(r, item, "from", path, [&](const Node& f, const std::string& fpath) {
      Node source = child(f, "source");
      if (!present(source)) {
        r.error(f, fpath + ".source", "required");
        return;
      }
      rule.from.push_back(parse_source(r, source, fpath + ".source"));
    });
    for_each_item(r, item, "to", path, [&](const Node& t, const std::string& tpath) {
      Node op = child(t, "operation");
      if (!present(op)) {
        r.error(t, tpath + ".operation", "required");
        return;
      }
      rule.to.push_back(parse_operation(r, op, tpath + ".operation"));
    });
    for_each_item(r, item, "when", path, [&](const Node& w, const std::string& wpath) {
      if (auto c = parse_condition(r, w, wpath)) {
        rule.when.push_back(std::move(*c));
      }
    });
    spec.policy.rules.push_back(std::move(rule));
  });
  if (diag.error_count() != errors_before) {
    return;
  }
  if (spec.gateway || !spec.services.empty()) {
    out.push_back(std::move(spec));
  }
}

}  // namespace wp::config

namespace wp::config {

void compile_authz(const std::vector<const AuthzPolicySpec*>& policies, Diagnostics& diag, Snapshot& snapshot) {
  for (const AuthzPolicySpec* spec : policies) {
    if (spec->gateway) {
      snapshot.authz_gateway.add(spec->policy);
    }
  }
  for (const auto& service : snapshot.services) {
    snapshot.authz_services.emplace(service.name, policy_set_for(service.name, policies, snapshot.authz_gateway));
  }
  snapshot.authz_policy_count = policies.size();
  warn_authz(policies, snapshot, diag);
}

std::shared_ptr<const filters::PolicySet> policy_set_for(const std::string& service,
                                                         const std::vector<const AuthzPolicySpec*>& policies,
                                                         const filters::PolicySet& gateway) {
  auto set = std::make_shared<filters::PolicySet>(gateway);
  for (const AuthzPolicySpec* spec : policies) {
    if (std::find(spec->services.begin(), spec->services.end(), service) != spec->services.end()) {
      set->add(spec->policy);
    }
  }
  return set;
}

void warn_authz(const std::vector<const AuthzPolicySpec*>& policies, const Snapshot& snapshot, Diagnostics& diag) {
  // L7 fields on a TCP chain cannot be evaluated: said here, and failed closed at run time.
  auto needs_l7 = [](const filters::Rule& rule) {
    for (const auto& o : rule.to) {
      if (!o.hosts.empty() || !o.not_hosts.empty() || !o.methods.empty() || !o.not_methods.empty() ||
          !o.paths.empty() || !o.not_paths.empty()) {
        return true;
      }
    }
    return std::any_of(rule.when.begin(), rule.when.end(),
                       [](const filters::Condition& c) { return c.key == filters::Condition::Key::RequestHeader; });
  };
  // Each policy with such fields against the TCP Services it targets, in the Services' order; a
  // policy on Services looks up its targets (not every Service: a namespace of a policy per
  // Service would take services x policies steps on every policy change).
  std::vector<bool> tcp;
  std::unordered_map<std::string_view, size_t> index;
  for (size_t i = 0; i < snapshot.services.size(); ++i) {
    const Service& service = snapshot.services[i];
    tcp.push_back(std::any_of(service.ports.begin(), service.ports.end(),
                              [](const ServicePort& p) { return p.protocol == ChainProtocol::Tcp; }));
    index.emplace(service.name, i);
  }
  std::vector<size_t> targets;
  for (const AuthzPolicySpec* p : policies) {
    const AuthzPolicySpec& spec = *p;
    if (!std::any_of(spec.policy.rules.begin(), spec.policy.rules.end(), needs_l7)) {
      continue;
    }
    targets.clear();
    if (spec.gateway) {
      for (size_t i = 0; i < tcp.size(); ++i) {
        targets.push_back(i);
      }
    } else {
      for (const std::string& name : spec.services) {
        if (auto it = index.find(name); it != index.end()) {
          targets.push_back(it->second);
        }
      }
    }
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    for (size_t i : targets) {
      if (tcp[i]) {
        diag.warning(spec.mark, "AuthorizationPolicy " + spec.policy.name + ": HTTP fields (hosts, methods, paths, " +
                                    "request.headers) cannot apply to the TCP ports of Service " +
                                    snapshot.services[i].name +
                                    (spec.policy.action == filters::Action::Deny
                                         ? ": there the DENY rules ignore them (fail closed)"
                                         : ": there the rules using them never match (fail closed)"));
      }
    }
  }
  for (const AuthzPolicySpec* p : policies) {
    const AuthzPolicySpec& spec = *p;
    for (const auto& name : spec.services) {
      if (snapshot.authz_services.count(name) == 0) {
        diag.warning(spec.mark, "AuthorizationPolicy " + spec.policy.name + ": Service " + name +
                                    " is not served by this waypoint; that target is ignored");
      }
    }
  }
}

}  // namespace wp::config
