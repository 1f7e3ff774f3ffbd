#pragma once
// Private to config/: the resources read from the file, before scoping and compilation. Each keeps
// the YAML nodes that later checks (scope, chains, certificates) report against.
// They hold no node of the documents they were read from (only positions), so each document can be
// freed once its resources are read.
#include <optional>
#include <string>
#include <vector>

#include "config/reader.h"
#include "waypoint/config/snapshot.h"

namespace wp::config {

// What the loader reads from every resource before dispatching it.
struct ObjectMeta {
  std::string kind;
  std::string name;        // metadata.name
  std::string namespace_;  // metadata.namespace; empty when unset
};

struct BootstrapResource {
  Bootstrap bootstrap;
  Mark gateway_at;  // spec.gateway (or spec when missing)
  // tls paths as written, and where; the resolved paths are in bootstrap.tls.
  struct TlsFile {
    std::string written;
    Mark at;
  };
  TlsFile cert_chain;
  TlsFile private_key;
  TlsFile root_cert;
};

struct GatewayResource {
  Gateway gateway;
  // What check_gateway reports should this be the waypoint's Gateway (class, mesh listener),
  // found while parsing.
  std::vector<Diagnostics::Entry> problems;
};

struct ServiceResource {
  Service service;
  struct PortMarks {
    Mark port;         // spec.ports[i].port
    Mark target_port;  // spec.ports[i].targetPort (1:1 when absent)
  };
  std::vector<PortMarks> port_marks;    // of each kept port (parallel to service.ports)
  std::vector<std::string> port_paths;  // "spec.ports[i]" as numbered in the file
};

struct PodResource {
  // Shared with the snapshots that serve the pod (the piece is the one read, not a copy).
  std::shared_ptr<const Pod> pod;
  bool has_ip = false;
  Mark ip_at;  // status.podIP
};

// A Service's endpoints as the endpoints controller publishes them (discovery.k8s.io/v1).
struct EndpointSliceResource {
  struct Endpoint {
    std::vector<net::IpAddr> addresses;
    bool ready = true;         // conditions.ready (unset: ready)
    bool terminating = false;  // conditions.terminating
    std::string pod;           // targetRef.name when targetRef.kind is Pod
  };
  std::string name;
  std::string service;  // label kubernetes.io/service-name
  std::vector<Endpoint> endpoints;
  std::vector<std::pair<std::string, uint16_t>> ports;  // TCP ports: name ("" when unnamed) -> port
};

struct VirtualServiceSpec;
struct DestinationRuleSpec;
struct HttpRouteResource;
struct AuthzPolicySpec;

// Everything in the waypoint's namespace that it reads, in file order: pointers into what reading
// each resource produced (the loader's outcomes, or the ObjectCache's, which outlive the compile).
struct Resources {
  BootstrapResource bootstrap;
  std::vector<const GatewayResource*> gateways;
  std::vector<const ServiceResource*> services;
  std::vector<const PodResource*> pods;
  std::vector<const EndpointSliceResource*> endpoint_slices;
  std::vector<const VirtualServiceSpec*> virtual_services;
  std::vector<const DestinationRuleSpec*> destination_rules;
  std::vector<const HttpRouteResource*> http_routes;
  std::vector<const AuthzPolicySpec*> policies;
  // The Kubernetes API mode: a missing Gateway is a state to wait out (nothing served), not an error.
  bool api_mode = false;
};

// "WaypointBootstrap" document → bootstrap. `config_path` resolves the relative tls paths.
std::optional<BootstrapResource> parse_bootstrap(const Node& doc, const ObjectMeta& meta, Diagnostics& diag,
                                                 const std::string& config_path);

// Kubernetes resources already known to be in the waypoint's namespace; nullopt when unusable.
std::optional<GatewayResource> parse_gateway(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap,
                                             Diagnostics& diag);
std::optional<ServiceResource> parse_service(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap,
                                             Diagnostics& diag);
std::optional<PodResource> parse_pod(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap,
                                     Diagnostics& diag);

// An EndpointSlice; nullopt when unusable or not a Service's IP slice (reported as ignored).
std::optional<EndpointSliceResource> parse_endpoint_slice(const Node& doc, const ObjectMeta& meta, Diagnostics& diag);

// Checks the gateway named by the bootstrap (class and mesh listener).
void check_gateway(const GatewayResource& gateway, Diagnostics& diag);

// Reads and checks the certificate files named in the bootstrap (PEM parses, key matches).
void check_certificates(const BootstrapResource& bootstrap, Diagnostics& diag);

}  // namespace wp::config
