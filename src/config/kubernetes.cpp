// Kubernetes and Gateway API resources: Gateway, Service, Pod. Unlike the bootstrap these are read
// leniently (kubectl output carries many fields the waypoint does not use); only the fields below
// are checked.
#include <algorithm>
#include <cctype>

#include "config/resources.h"

namespace wp::config {

namespace {

constexpr std::string_view kForServiceAccount = "istio.io/for-service-account";

std::map<std::string, std::string> metadata_map(Reader& r, const Node& doc, const char* key) {
  return r.string_map(child(child(doc, "metadata"), key), std::string("metadata.") + key);
}

// Istio's rule: appProtocol when set, else the port name up to the first '-' ("http-web").
ChainProtocol chain_protocol(std::string_view app_protocol, std::string_view port_name) {
  std::string word(app_protocol.empty() ? port_name.substr(0, port_name.find('-')) : app_protocol);
  std::transform(word.begin(), word.end(), word.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view http : {"http", "http2", "h2c", "grpc", "grpc-web", "kubernetes.io/h2c"}) {
    if (word == http) {
      return ChainProtocol::Http;
    }
  }
  return word == "tcp" ? ChainProtocol::Tcp : ChainProtocol::Sniff;
}

bool speaks_http2(std::string_view app_protocol, std::string_view port_name) {
  std::string word(app_protocol.empty() ? port_name.substr(0, port_name.find('-')) : app_protocol);
  std::transform(word.begin(), word.end(), word.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return word == "http2" || word == "h2c" || word == "grpc" || word == "kubernetes.io/h2c";
}

// One entry of spec.ports; nullopt when it is skipped (UDP, SCTP) or unreadable. Field errors are
// reported here; parse_service then drops the whole Service.
std::optional<ServicePort> parse_service_port(Reader& r, const Node& node, const std::string& path) {
  if (!r.expect_map(node, path)) {
    return std::nullopt;
  }
  ServicePort port;
  if (Node name = child(node, "name"); present(name)) {
    port.name = r.string(name, path + ".name").value_or("");
  }
  Node number = child(node, "port");
  if (!present(number)) {
    r.error(node, path + ".port", "required");
    return std::nullopt;
  }
  port.port = r.port(number, path + ".port").value_or(0);
  port.target_port_number = port.port;
  if (Node target = child(node, "targetPort"); present(target)) {
    // IntOrString: a number (or something meant as one) is a port, anything else a port name.
    auto text = r.nonempty_string(target, path + ".targetPort");
    if (text && (std::isdigit(static_cast<unsigned char>(text->front())) || text->front() == '-')) {
      port.target_port_number = r.port(target, path + ".targetPort").value_or(0);
    } else if (text) {
      port.target_port_name = *text;
      port.target_port_number = 0;
    }
  }
  if (Node app = child(node, "appProtocol"); present(app)) {
    port.app_protocol = r.string(app, path + ".appProtocol").value_or("");
  }
  if (Node protocol = child(node, "protocol"); present(protocol)) {
    auto value = r.string(protocol, path + ".protocol");
    if (value == "UDP" || value == "SCTP") {
      r.warn(protocol, path + ".protocol", *value + " ports are not served; skipped");
      return std::nullopt;
    }
    if (value && value != "TCP") {
      r.error(protocol, path + ".protocol", "\"" + *value + "\" is not a protocol (TCP, UDP, SCTP)");
    }
  }
  port.protocol = chain_protocol(port.app_protocol, port.name);
  port.http2 = speaks_http2(port.app_protocol, port.name);
  return port;
}

// The checks of the waypoint's own Gateway, made on every Gateway while its document is at hand.
void gateway_problems(const Node& doc, const std::string& name, Diagnostics& diag) {
  Reader r(diag, "Gateway " + name);
  Node spec = child(doc, "spec");
  if (!present(spec)) {
    r.error(doc, "spec", "required (gatewayClassName: istio-waypoint and the mesh listener)");
    return;
  }
  if (!r.expect_map(spec, "spec")) {
    return;
  }
  if (auto cls = r.required_string(spec, "gatewayClassName", "spec.gatewayClassName");
      cls && *cls != "istio-waypoint") {
    r.error(child(spec, "gatewayClassName"), "spec.gatewayClassName", "\"" + *cls + "\" is not istio-waypoint");
  }
  Node listeners = child(spec, "listeners");
  auto is_mesh = [](const Node& l) {
    auto field = [&](const char* key) {
      Node v = child(l, key);
      return v.IsScalar() ? v.Scalar() : std::string();
    };
    return field("name") == "mesh" && field("port") == "15008" && field("protocol") == "HBONE";
  };
  if (listeners.IsSequence() && std::any_of(listeners.begin(), listeners.end(), is_mesh)) {
    return;
  }
  r.error(present(listeners) ? listeners : spec, "spec.listeners",
          "needs a listener {name: mesh, port: 15008, protocol: HBONE}");
}

}  // namespace

std::optional<GatewayResource> parse_gateway(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap,
                                             Diagnostics& diag) {
  Reader r(diag, "Gateway " + meta.name);
  GatewayResource out{Gateway{meta.name, bootstrap.namespace_, "", mark_of(doc)}, {}};
  Diagnostics problems("");
  gateway_problems(doc, meta.name, problems);
  out.problems = problems.errors();
  auto annotations = metadata_map(r, doc, "annotations");
  if (auto it = annotations.find(std::string(kForServiceAccount)); it != annotations.end()) {
    out.gateway.for_service_account = it->second;
  }
  return out;
}

void check_gateway(const GatewayResource& gateway, Diagnostics& diag) {
  for (const auto& problem : gateway.problems) {
    diag.error(problem.at, problem.message);
  }
}

std::optional<ServiceResource> parse_service(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap,
                                             Diagnostics& diag) {
  size_t errors_before = diag.error_count();
  Reader r(diag, "Service " + meta.name);
  ServiceResource out;
  Service& s = out.service;
  s.name = meta.name;
  s.namespace_ = bootstrap.namespace_;
  s.fqdn = s.name + "." + s.namespace_ + ".svc." + bootstrap.cluster_domain;
  s.mark = mark_of(doc);
  s.labels = metadata_map(r, doc, "labels");

  Node spec = child(doc, "spec");
  if (!present(spec)) {
    r.error(doc, "spec", "required");
    return std::nullopt;
  }
  if (!r.expect_map(spec, "spec")) {
    return std::nullopt;
  }
  if (Node type = child(spec, "type"); present(type) && r.string(type, "spec.type") == "ExternalName") {
    diag.ignore("Service " + s.namespace_ + "/" + s.name +
                ": type ExternalName is a DNS alias with no endpoints of its own; not served");
    return std::nullopt;
  }
  // The API server assigns clusterIP (manifests rarely carry one); "None" is a headless Service.
  // Without a VIP the Service is reached only through its pods' IPs.
  Node cluster_ip = child(spec, "clusterIP");
  Node cluster_ips = child(spec, "clusterIPs");
  auto add_vip = [&](const Node& node, const std::string& path) {
    if (node.IsScalar() && node.Scalar() == "None") {
      return;
    }
    if (auto ip = r.ip(node, path)) {
      if (std::find(s.cluster_ips.begin(), s.cluster_ips.end(), *ip) == s.cluster_ips.end()) {
        s.cluster_ips.push_back(*ip);
      }
    }
  };
  if (present(cluster_ip)) {
    add_vip(cluster_ip, "spec.clusterIP");
  }
  if (present(cluster_ips) && r.expect_sequence(cluster_ips, "spec.clusterIPs")) {
    for (size_t i = 0; i < cluster_ips.size(); ++i) {
      add_vip(cluster_ips[i], "spec.clusterIPs[" + std::to_string(i) + "]");
    }
  }
  if (!s.cluster_ips.empty()) {
    s.cluster_ip = s.cluster_ips.front();
  } else if (!present(cluster_ip) && !present(cluster_ips)) {
    r.warn(spec, "spec.clusterIP",
           "not set (the API server assigns it in a cluster): served through its pods' IPs only, no VIP");
  }
  if (const Node ports = child(spec, "ports"); present(ports) && r.expect_sequence(ports, "spec.ports")) {
    for (size_t i = 0; i < ports.size(); ++i) {
      std::string path = "spec.ports[" + std::to_string(i) + "]";
      if (auto port = parse_service_port(r, ports[i], path)) {
        s.ports.push_back(*port);
        out.port_marks.push_back({mark_of(child(ports[i], "port")), mark_of(child(ports[i], "targetPort"))});
        out.port_paths.push_back(path);
      }
    }
  }
  s.selector = r.string_map(child(spec, "selector"), "spec.selector");
  if (diag.error_count() != errors_before) {
    return std::nullopt;
  }
  return out;
}

namespace {

bool lower_alnum(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

// `name` without its last "-segment" when that segment satisfies `pred`.
template <typename Pred>
std::optional<std::string> strip_segment(const std::string& name, Pred pred) {
  auto dash = name.rfind('-');
  if (dash == std::string::npos || dash == 0 || !pred(std::string_view(name).substr(dash + 1))) {
    return std::nullopt;
  }
  return name.substr(0, dash);
}

// The workload a pod belongs to, as Istio names it: a ReplicaSet owner stands for its Deployment
// (the ReplicaSet's name without its hash), a Job for its CronJob (without the schedule suffix),
// any other controller for itself. Without ownerReferences (trimmed config) the generated name
// "<deployment>-<hash>-<5 chars>" is recognised; anything else is its own workload.
std::string workload_of(const Node& meta, const std::string& pod_name,
                        const std::map<std::string, std::string>& labels) {
  for (const auto& owner : child(meta, "ownerReferences")) {
    Node kind = child(owner, "kind");
    Node name = child(owner, "name");
    if (!kind.IsScalar() || !name.IsScalar() || name.Scalar().empty()) {
      continue;
    }
    const std::string owner_name = name.Scalar();
    if (kind.Scalar() == "ReplicaSet") {
      return strip_segment(owner_name, lower_alnum).value_or(owner_name);
    }
    if (kind.Scalar() == "Job") {
      auto digits = [](std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit); };
      return strip_segment(owner_name, digits).value_or(owner_name);
    }
    return owner_name;
  }
  auto hash = labels.find("pod-template-hash");
  if (hash != labels.end()) {
    auto at = pod_name.rfind("-" + hash->second + "-");
    if (at != std::string::npos && at > 0) {
      return pod_name.substr(0, at);
    }
  }
  auto random5 = [](std::string_view s) { return s.size() == 5 && lower_alnum(s); };
  auto rs_hash = [](std::string_view s) { return s.size() >= 6 && s.size() <= 10 && lower_alnum(s); };
  if (auto rs = strip_segment(pod_name, random5)) {
    if (auto deployment = strip_segment(*rs, rs_hash)) {
      return *deployment;
    }
  }
  return pod_name;
}

std::string first_label(const std::map<std::string, std::string>& labels, std::initializer_list<const char*> keys,
                        const std::string& otherwise) {
  for (const char* key : keys) {
    auto it = labels.find(key);
    if (it != labels.end() && !it->second.empty()) {
      return it->second;
    }
  }
  return otherwise;
}

void workload_labels(PodTemplate& p, const std::string& pod_name, const Node& meta) {
  p.workload = workload_of(meta, pod_name, p.labels);
  p.app = first_label(p.labels, {"app"}, "unknown");
  p.version = first_label(p.labels, {"version"}, "unknown");
  p.canonical_service =
      first_label(p.labels, {"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"}, p.workload);
  p.canonical_revision =
      first_label(p.labels, {"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"}, "latest");
  // The pod's own name is not kept in the template its workload's pods share (Pod's accessors).
  if (p.workload == pod_name) {
    p.workload.clear();
    p.workload_is_name = true;
  }
  if (p.canonical_service == pod_name) {
    p.canonical_service.clear();
    p.canonical_is_name = true;
  }
}

}  // namespace

std::optional<PodResource> parse_pod(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap,
                                     Diagnostics& diag) {
  size_t errors_before = diag.error_count();
  Reader r(diag, "Pod " + meta.name);
  PodResource out;
  Pod pod;
  pod.name = meta.name;
  pod.mark = mark_of(doc);
  PodTemplate p;
  p.namespace_ = bootstrap.namespace_;
  p.labels = metadata_map(r, doc, "labels");

  Node spec = child(doc, "spec");
  if (Node sa = child(spec, "serviceAccountName"); present(sa)) {
    auto value = r.string(sa, "spec.serviceAccountName");
    if (value && !value->empty()) {
      p.service_account = *value;
    }
  }
  const Node containers = child(spec, "containers");
  if (present(containers) && r.expect_sequence(containers, "spec.containers")) {
    for (size_t i = 0; i < containers.size(); ++i) {
      std::string container_path = "spec.containers[" + std::to_string(i) + "]";
      const Node ports = child(containers[i], "ports");
      if (!present(ports) || !r.expect_sequence(ports, container_path + ".ports")) {
        continue;
      }
      for (size_t j = 0; j < ports.size(); ++j) {
        std::string path = container_path + ".ports[" + std::to_string(j) + "]";
        Node name = child(ports[j], "name");
        Node number = child(ports[j], "containerPort");
        if (!present(name)) {
          continue;  // only named ports matter: they resolve a Service's named targetPort
        }
        auto port_name = r.string(name, path + ".name");
        if (!present(number)) {
          r.error(ports[j], path + ".containerPort", "required");
          continue;
        }
        auto port = r.port(number, path + ".containerPort");
        if (port_name && port && !p.named_ports.emplace(*port_name, *port).second) {
          r.error(name, path + ".name", "port name " + *port_name + " is used twice");
        }
      }
    }
  }

  Node status = child(doc, "status");
  if (Node ip = child(status, "podIP"); present(ip)) {
    if (auto value = r.ip(ip, "status.podIP")) {
      pod.ip = *value;
      out.has_ip = true;
      out.ip_at = mark_of(ip);
    }
  }
  if (Node phase = child(status, "phase"); present(phase)) {
    pod.ready = pod.ready && r.string(phase, "status.phase") == "Running";
  }
  if (Node conditions = child(status, "conditions");
      present(conditions) && r.expect_sequence(conditions, "status.conditions")) {
    for (const auto& condition : conditions) {
      Node type = child(condition, "type");
      Node value = child(condition, "status");
      if (type.IsScalar() && type.Scalar() == "Ready") {
        pod.ready = pod.ready && value.IsScalar() && value.Scalar() == "True";
      }
    }
  }
  // A pod being deleted is terminating: it takes no new requests, whatever its Ready condition says
  // (the kubelet flips that only later), as the endpoints controller decides.
  if (present(child(child(doc, "metadata"), "deletionTimestamp"))) {
    pod.ready = false;
  }
  p.spiffe_id = "spiffe://" + bootstrap.trust_domain + "/ns/" + p.namespace_ + "/sa/" + p.service_account;
  workload_labels(p, pod.name, child(doc, "metadata"));
  if (diag.error_count() != errors_before) {
    return std::nullopt;
  }
  pod.shared = PodTemplate::intern(std::move(p));
  out.pod = std::make_shared<const Pod>(std::move(pod));
  return out;
}

}  // namespace wp::config
