// discovery.k8s.io/v1 EndpointSlice: where a Service's endpoints come from in a cluster (the
// endpoints controller writes them from the Service's selector and the pods' readiness). Read
// leniently, as kubectl prints them; only the fields below matter.
#include "config/resources.h"

namespace wp::config {

namespace {
constexpr std::string_view kServiceName = "kubernetes.io/service-name";

// A condition as the API defines it: unset means "unknown", which consumers read as `unknown`.
bool condition(Reader& r, const Node& conditions, const char* key, const std::string& path, bool unknown) {
  Node value = child(conditions, key);
  if (!present(value)) {
    return unknown;
  }
  return r.boolean(value, path + "." + key).value_or(unknown);
}
}  // namespace

std::optional<EndpointSliceResource> parse_endpoint_slice(const Node& doc, const ObjectMeta& meta,
                                                          Diagnostics& diag) {
  size_t errors_before = diag.error_count();
  Reader r(diag, "EndpointSlice " + meta.name);
  EndpointSliceResource out;
  out.name = meta.name;
  auto labels = r.string_map(child(child(doc, "metadata"), "labels"), "metadata.labels");
  auto service = labels.find(std::string(kServiceName));
  if (service == labels.end() || service->second.empty()) {
    diag.ignore("EndpointSlice " + meta.name + ": no label " + std::string(kServiceName) + " (not a Service's slice)");
    return std::nullopt;
  }
  out.service = service->second;
  Node type = child(doc, "addressType");
  std::string address_type = present(type) ? r.string(type, "addressType").value_or("") : "";
  if (address_type != "IPv4" && address_type != "IPv6") {
    diag.ignore("EndpointSlice " + meta.name + ": addressType " + (address_type.empty() ? "unset" : address_type) +
                " is not served (IPv4 and IPv6 only)");
    return std::nullopt;
  }
  if (Node ports = child(doc, "ports"); present(ports) && r.expect_sequence(ports, "ports")) {
    for (size_t i = 0; i < ports.size(); ++i) {
      std::string path = "ports[" + std::to_string(i) + "]";
      if (!r.expect_map(ports[i], path)) {
        continue;
      }
      Node protocol = child(ports[i], "protocol");
      if (present(protocol) && r.string(protocol, path + ".protocol").value_or("TCP") != "TCP") {
        continue;  // UDP and SCTP ports are not served (the Service's port says so once)
      }
      Node number = child(ports[i], "port");
      if (!present(number)) {
        continue;  // "all ports" (a slice of a selector-less Service): nothing to CONNECT to
      }
      std::string name;
      if (Node n = child(ports[i], "name"); present(n)) {
        name = r.string(n, path + ".name").value_or("");
      }
      if (auto port = r.port(number, path + ".port")) {
        out.ports.emplace_back(std::move(name), *port);
      }
    }
  }
  if (Node endpoints = child(doc, "endpoints");
      present(endpoints) && r.expect_sequence(endpoints, "endpoints")) {
    for (size_t i = 0; i < endpoints.size(); ++i) {
      std::string path = "endpoints[" + std::to_string(i) + "]";
      const Node& e = endpoints[i];
      if (!r.expect_map(e, path)) {
        continue;
      }
      EndpointSliceResource::Endpoint ep;
      Node conditions = child(e, "conditions");
      if (present(conditions) && r.expect_map(conditions, path + ".conditions")) {
        std::string cpath = path + ".conditions";
        ep.ready = condition(r, conditions, "ready", cpath, true);
        ep.terminating = condition(r, conditions, "terminating", cpath, false);
      }
      if (Node ref = child(e, "targetRef"); present(ref) && r.expect_map(ref, path + ".targetRef")) {
        Node kind = child(ref, "kind");
        Node name = child(ref, "name");
        if (present(kind) && kind.IsScalar() && kind.Scalar() == "Pod" && present(name)) {
          ep.pod = r.string(name, path + ".targetRef.name").value_or("");
        }
      }
      Node addresses = child(e, "addresses");
      if (present(addresses) && r.expect_sequence(addresses, path + ".addresses")) {
        for (size_t j = 0; j < addresses.size(); ++j) {
          if (auto ip = r.ip(addresses[j], path + ".addresses[" + std::to_string(j) + "]")) {
            ep.addresses.push_back(*ip);
          }
        }
      }
      out.endpoints.push_back(std::move(ep));
    }
  }
  if (diag.error_count() != errors_before) {
    return std::nullopt;
  }
  return out;
}

}  // namespace wp::config
