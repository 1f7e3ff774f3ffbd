#include "waypoint/internal/listener.h"

#include <spdlog/spdlog.h>

namespace wp::internal {

std::string ChainMatch::name() const {
  switch (kind) {
    case Kind::Vip:
      return vip->name;
    case Kind::Pod:
      return "direct-tcp";
    case Kind::None:
      return "";
  }
  return "";
}

ChainMatch select_chain(const config::Snapshot& snapshot, const net::SockAddr& destination) {
  ChainMatch m;
  if (const auto* vip = snapshot.find_vip(destination)) {
    m.kind = ChainMatch::Kind::Vip;
    m.vip = vip;
  } else if (const auto* pod = snapshot.find_pod(destination.ip())) {
    m.kind = ChainMatch::Kind::Pod;
    m.pod = pod;
  }
  return m;
}

InternalListener::InternalListener(event::Loop& loop, hbone::Pool& pool, stats::Block& stats, AccessLog& log)
    : loop_(loop), pool_(pool), stats_(stats), log_(log) {}

void InternalListener::reject(const hbone::InboundConnect& request, TunnelRecord& record, int status,
                              const char* flags) {
  record.response_code = status;
  record.response_flags = flags;
  log_.log(record);
  request.stream.respond(status);
}

InternalListener::~InternalListener() {
  abort_all();
}

void InternalListener::set_snapshot(config::SnapshotPtr snapshot) {
  snapshot_ = std::move(snapshot);
  rr_.clear();
}

const config::Endpoint* InternalListener::pick_round_robin(const config::Cluster& cluster) {
  if (cluster.endpoints.empty()) {
    return nullptr;
  }
  uint32_t& cursor = rr_[&cluster];
  const config::Endpoint* ep = &cluster.endpoints[cursor % cluster.endpoints.size()];
  ++cursor;
  return ep;
}

void InternalListener::on_connect_request(const hbone::InboundConnect& request) {
  const config::Snapshot& snap = *snapshot_;
  ChainMatch match = select_chain(snap, request.destination);
  TunnelRecord record;
  record.start = std::chrono::system_clock::now();
  record.chain = match.kind == ChainMatch::Kind::None ? "-" : match.name();
  record.source_principal = request.peer_identity;
  record.source_address = request.source_ip.to_string();
  record.destination = request.destination.to_string();
  record.upstream_host = "-";
  const config::Pod* pod = nullptr;
  net::SockAddr authority;
  switch (match.kind) {
    case ChainMatch::Kind::None:
      stats_.add(stats::Id::tunnels_rejected_not_served);
      spdlog::info("tunnel from {} to {}: not served by this waypoint: 503", request.peer_identity,
                   request.destination.to_string());
      reject(request, record, 503, "NR");  // no route: nothing here serves that destination
      return;
    case ChainMatch::Kind::Vip: {
      const config::Endpoint* ep = pick_round_robin(match.vip->cluster);
      if (ep == nullptr) {
        stats_.add(stats::Id::tunnels_rejected_no_endpoint);
        spdlog::info("tunnel from {} to {} ({}): no ready endpoint: 503", request.peer_identity,
                     request.destination.to_string(), match.vip->name);
        reject(request, record, 503, "UH");  // no healthy upstream
        return;
      }
      pod = ep->pod;
      authority = ep->address;
      break;
    }
    case ChainMatch::Kind::Pod:
      pod = match.pod;
      authority = request.destination;  // cluster encap: the same pod and port
      break;
  }

  hbone::UpstreamTarget target;
  target.hbone_address = net::SockAddr(pod->ip, snap.bootstrap.upstream.hbone_port);
  target.identity = pod->spiffe_id;
  target.authority = authority.to_string();
  const net::IpAddr& src = request.source_ip;
  target.headers.emplace_back("forwarded",
                              src.is_v4() ? "for=\"" + src.to_string() + "\"" : "for=\"[" + src.to_string() + "]\"");
  if (request.traceparent != nullptr) {
    target.headers.emplace_back("traceparent", *request.traceparent);
  }
  if (request.baggage != nullptr) {
    target.headers.emplace_back("baggage", *request.baggage);
  }

  record.upstream_host = authority.to_string();
  auto proxy =
      std::make_unique<TcpProxy>(request.stream, std::move(record), snapshot_, stats_, log_, [this](TcpProxy& p) {
        auto it = proxies_.find(&p);
        if (it != proxies_.end()) {
          loop_.defer_delete(std::move(it->second));
          proxies_.erase(it);
        }
      });
  TcpProxy* raw = proxy.get();
  proxies_.emplace(raw, std::move(proxy));
  raw->start(pool_, std::move(target));
}

void InternalListener::abort_all() {
  std::vector<TcpProxy*> all;
  for (auto& [p, owned] : proxies_) {
    all.push_back(p);
  }
  for (auto* p : all) {
    p->abort();
  }
}

}  // namespace wp::internal
