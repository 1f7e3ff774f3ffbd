#include "waypoint/accesslog/telemetry.h"

#include "waypoint/filters/authz.h"

namespace wp::accesslog {

namespace {

stats::Peer peer(const config::Pod& pod) {
  return {pod.workload(), pod.namespace_(),        pod.spiffe_id(),         pod.app(),
          pod.version(),  pod.canonical_service(), pod.canonical_revision()};
}

bool is_tcp(const TunnelRecord& r) {
  return std::string_view(r.protocol) == "tcp";
}

}  // namespace

stats::Labels Telemetry::labels(const TunnelRecord& r) {
  stats::Labels l;
  if (r.source_pod != nullptr && r.source_pod->spiffe_id() == r.source_principal) {
    l.source = peer(*r.source_pod);
  } else if (!r.source_principal.empty()) {
    // Not a pod this waypoint knows: what the certificate says is all there is.
    l.source.principal = r.source_principal;
    std::string_view ns = filters::spiffe_namespace(r.source_principal);
    if (!ns.empty()) {
      l.source.namespace_ = ns;
    }
  }
  if (r.destination_pod != nullptr) {
    l.destination = peer(*r.destination_pod);
  }
  if (r.destination_service != nullptr) {
    l.destination_service = r.destination_service->fqdn;
    l.destination_service_name = r.destination_service->name;
    l.destination_service_namespace = r.destination_service->namespace_;
    if (r.destination_pod == nullptr) {
      l.destination.namespace_ = r.destination_service->namespace_;
    }
  }
  l.request_protocol = is_tcp(r) ? "tcp" : (r.grpc ? "grpc" : "http");
  l.response_code = r.response_code;
  l.response_flags = r.response_flags;
  return l;
}

void Telemetry::log(const TunnelRecord& r) {
  stats::Labels l = labels(r);
  if (is_tcp(r)) {
    series_.tcp_closed(l, r.bytes_sent, r.bytes_received);
  } else {
    series_.record_request(l, static_cast<double>(r.duration.count()) / 1000.0,
                           r.request_header_bytes + r.bytes_received, r.response_header_bytes + r.bytes_sent);
  }
  log_.log(r);
}

void Telemetry::tcp_opened(const TunnelRecord& r) {
  series_.tcp_opened(labels(r));
}

}  // namespace wp::accesslog
