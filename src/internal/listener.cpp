#include "waypoint/internal/listener.h"

#include <spdlog/spdlog.h>

#include <random>

#include "waypoint/config/names.h"

#include "waypoint/router/route_match.h"

namespace wp::internal {

std::string ChainMatch::name(Sniffed sniffed) const {
  bool http = sniffed == Sniffed::Http1 || sniffed == Sniffed::H2c;
  switch (kind) {
    case Kind::Vip:
      if (http && vip->protocol != config::ChainProtocol::Tcp) {
        return config::inbound_vip_name(vip->port->port, "http", vip->service->fqdn);
      }
      return vip->name;
    case Kind::Pod:
      return http ? "direct-http" : "direct-tcp";
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

namespace {

// The headers of a re-originated CONNECT: the client's address and the trace context.
hbone::H2Stream::HeaderList upstream_connect_headers(const net::IpAddr& src, const std::string& traceparent,
                                                     const std::string& baggage) {
  hbone::H2Stream::HeaderList h;
  h.emplace_back("forwarded", src.is_v4() ? "for=\"" + src.to_string() + "\"" : "for=\"[" + src.to_string() + "]\"");
  if (!traceparent.empty()) {
    h.emplace_back("traceparent", traceparent);
  }
  if (!baggage.empty()) {
    h.emplace_back("baggage", baggage);
  }
  return h;
}

}  // namespace

struct InternalListener::Accepted {
  hbone::H2Stream* stream = nullptr;
  config::SnapshotPtr snapshot;
  ChainMatch match;
  net::SockAddr destination;
  net::IpAddr source_ip;
  std::string peer_identity;
  std::string traceparent;
  std::string baggage;
  std::chrono::system_clock::time_point start;
  const config::Service* routed_service = nullptr;  // a tcp[] route's destination (telemetry)
};

// Holds a tunnel answered 200 until its first bytes say which protocol it carries.
class InternalListener::Sniffer final : public hbone::TunnelHandler, public event::DeferredDeletable {
 public:
  Sniffer(InternalListener& l, Accepted a, bool http_only)
      : listener_(l), accepted_(std::move(a)), http_only_(http_only), timer_(l.loop_, [this] { on_timeout(); }) {
    // A sniffed chain that stays silent is TCP (server-first protocols); an HTTP chain's tunnel
    // must bring its request head within requestHeadersTimeout, which the session enforces from
    // the tunnel's start: after that long undecided, it becomes HTTP/1.1 and answers 408.
    timer_.start(http_only_ ? accepted_.snapshot->bootstrap.http.request_headers_timeout : kSniffTimeout);
  }
  ~Sniffer() override {
    if (accepted_.stream != nullptr) {
      accepted_.stream->set_handler(nullptr);
    }
  }
  void start() { accepted_.stream->set_handler(this); }
  Accepted& accepted() { return accepted_; }
  void abort() {
    if (accepted_.stream != nullptr) {
      hbone::H2Stream* s = accepted_.stream;
      s->set_handler(nullptr);
      accepted_.stream = nullptr;
      s->reset();
    }
    done(Sniffed::NeedMore);
  }

  void on_tunnel_data(hbone::Tunnel&, buffer::Buffer& data) override {
    bytes_.move_from(data);
    decide();
  }
  void on_tunnel_eof(hbone::Tunnel&) override {
    eof_ = true;
    decide();
  }
  void on_tunnel_drained(hbone::Tunnel&, size_t) override {}
  void on_tunnel_closed(hbone::Tunnel&, bool) override {
    accepted_.stream = nullptr;
    done(Sniffed::NeedMore);
  }

 private:
  void decide() {
    if (decided_) {
      return;
    }
    uint8_t head[kMaxSniffBytes];
    size_t n = bytes_.copy_out(head, sizeof(head));
    Sniffed s = sniff(head, n);
    if (s == Sniffed::NeedMore && (eof_ || n >= kMaxSniffBytes)) {
      s = Sniffed::Tcp;
    }
    if (s != Sniffed::NeedMore) {
      done(s);
    }
  }
  void on_timeout() {
    if (decided_) {
      return;
    }
    if (http_only_) {
      done(Sniffed::Http1);  // its head timer has run out already: 408
      return;
    }
    listener_.stats_.add(stats::Id::chains_sniff_timeout);
    done(Sniffed::Tcp);
  }
  void done(Sniffed s) {
    if (decided_) {
      return;
    }
    decided_ = true;
    timer_.stop();
    if (accepted_.stream != nullptr) {
      accepted_.stream->set_handler(nullptr);
    }
    listener_.sniffed(*this, s, std::move(bytes_), eof_);
  }

  InternalListener& listener_;
  Accepted accepted_;
  bool http_only_;
  event::Timer timer_;
  buffer::Buffer bytes_;
  bool eof_ = false;
  bool decided_ = false;
};

InternalListener::InternalListener(event::Loop& loop, hbone::Pool& pool, stats::Block& stats, Telemetry& log)
    : loop_(loop),
      pool_(pool),
      stats_(stats),
      log_(log),
      http_pool_(loop, pool, stats, pool.settings().idle_timeout),
      clusters_(stats),
      mirrors_(loop),
      ctx_{loop, stats, log, http_pool_, clusters_, mirrors_} {
  std::random_device rd;
  ctx_.rng_state = (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;
  ctx_.snapshot = &snapshot_;
}

// L4 authorization of a TCP chain (a TCP service port, or a sniffed chain that turned out TCP).
bool InternalListener::authorize_l4(const Accepted& a) {
  const ChainMatch& m = a.match;
  const filters::PolicySet& set = a.snapshot->authz_for(m.kind == ChainMatch::Kind::Vip ? m.vip : nullptr);
  if (set.empty()) {
    return true;
  }
  filters::Verdict v = set.evaluate(filters::Attributes::l4(a.peer_identity, a.source_ip, a.destination));
  if (v.audited) {
    stats_.add(stats::Id::authz_audited);
  }
  if (!v.allowed) {
    stats_.add(stats::Id::tunnels_rejected_authz);
    spdlog::info("tunnel from {} to {}: denied by {}", a.peer_identity, a.destination.to_string(),
                 v.decided_by != nullptr ? v.decided_by->name : std::string("no matching ALLOW policy"));
  }
  return v.allowed;
}

// A CONNECT refused before any upstream exists: answered `status` and logged.
void InternalListener::reject(const Accepted& a, const std::string& chain, int status, const char* flags) {
  TunnelRecord record;
  record.start = a.start;
  record.chain = chain;
  record.source_principal = a.peer_identity;
  record.source_address = a.source_ip.to_string();
  record.destination = a.destination.to_string();
  record.response_code = status;
  record.response_flags = flags;
  record.source_pod = a.snapshot != nullptr ? a.snapshot->find_pod(a.source_ip) : nullptr;
  record.destination_service = a.match.kind == ChainMatch::Kind::Vip ? a.match.vip->service : nullptr;
  log_.tcp_opened(record);
  log_.log(record);
  a.stream->respond(status);
}

InternalListener::~InternalListener() {
  abort_all();
}

void InternalListener::set_snapshot(config::SnapshotPtr snapshot) {
  bool change = snapshot_ != nullptr && snapshot_ != snapshot;
  snapshot_ = std::move(snapshot);
  clusters_.set_snapshot(snapshot_);
  rr_.clear();
  if (!change) {
    return;
  }
  // Requests and tunnels in flight finish on the old snapshot. Upstream HTTP tunnels are not
  // reused across the change, and pooled connections to pods the new config no longer has
  // drain: GOAWAY, they close when their last tunnel ends.
  http_pool_.retire_all();
  // Each pooled connection is looked up in the new snapshot (a few connections, not every pod:
  // a snapshot of 10,000 pods costs nothing more here than one of ten).
  const uint16_t port = snapshot_->bootstrap.upstream.hbone_port;
  pool_.drain_unless([this, port](const net::SockAddr& address, const std::string& identity) {
    const config::Pod* pod = address.port() == port ? snapshot_->find_pod(address.ip()) : nullptr;
    return pod != nullptr && pod->spiffe_id() == identity;
  });
}

const config::Endpoint* InternalListener::pick_round_robin(const std::vector<config::Endpoint>& endpoints,
                                                           const void* cluster) {
  if (endpoints.empty()) {
    return nullptr;
  }
  uint32_t& cursor = rr_[cluster];
  const config::Endpoint* ep = &endpoints[cursor % endpoints.size()];
  ++cursor;
  return ep;
}

const config::Endpoint* InternalListener::pick_tcp_endpoint(Accepted& a) {
  const config::TcpRouteTable* table = a.match.vip->tcp_routes;
  if (table != nullptr && !table->route.clusters.empty()) {
    const config::RoutedCluster& c = *router::pick(table->route, ctx_.random()).cluster;
    a.routed_service = c.service;
    return pick_round_robin(c.endpoints, &c);
  }
  return pick_round_robin(a.match.vip->cluster.endpoints, &a.match.vip->cluster);
}

void InternalListener::on_connect_request(const hbone::InboundConnect& request) {
  ChainMatch match = select_chain(*snapshot_, request.destination);
  Accepted a;
  a.stream = &request.stream;
  a.snapshot = snapshot_;
  a.match = match;
  a.destination = request.destination;
  a.source_ip = request.source_ip;
  a.peer_identity = request.peer_identity;
  a.traceparent = request.traceparent != nullptr ? *request.traceparent : "";
  a.baggage = request.baggage != nullptr ? *request.baggage : "";
  a.start = std::chrono::system_clock::now();

  if (match.kind == ChainMatch::Kind::None) {
    stats_.add(stats::Id::tunnels_rejected_not_served);
    spdlog::info("tunnel from {} to {}: not served by this waypoint: 503", request.peer_identity,
                 request.destination.to_string());
    reject(a, "-", 503, "NR");  // no route: nothing here serves that destination
    return;
  }
  if (match.kind == ChainMatch::Kind::Vip && match.vip->protocol == config::ChainProtocol::Tcp) {
    if (!authorize_l4(a)) {
      reject(a, match.vip->name, 401, "-");  // denied: the pod is never dialled
      return;
    }
    // A TCP service port: the CONNECT's answer waits for the upstream tunnel (503 when it fails).
    const config::Endpoint* ep = pick_tcp_endpoint(a);
    if (ep == nullptr) {
      stats_.add(stats::Id::tunnels_rejected_no_endpoint);
      spdlog::info("tunnel from {} to {} ({}): no ready endpoint: 503", request.peer_identity,
                   request.destination.to_string(), match.vip->name);
      reject(a, match.vip->name, 503, "UH");  // no healthy upstream
      return;
    }
    start_tcp(a, ep->pod, ep->address, false, {}, false);
    return;
  }
  // HTTP and sniffed chains: answered at once; each request (or the sniffed TCP stream) is decided
  // inside the tunnel.
  bool http_only = match.kind == ChainMatch::Kind::Vip && match.vip->protocol == config::ChainProtocol::Http;
  request.stream.respond(200);
  auto sniffer = std::make_unique<Sniffer>(*this, std::move(a), http_only);
  Sniffer* raw = sniffer.get();
  sniffers_.emplace(raw, std::move(sniffer));
  raw->start();
}

void InternalListener::sniffed(Sniffer& s, Sniffed protocol, buffer::Buffer initial, bool eof) {
  auto it = sniffers_.find(&s);
  if (it == sniffers_.end()) {
    return;
  }
  Accepted a = std::move(s.accepted());
  s.accepted().stream = nullptr;
  loop_.defer_delete(std::move(it->second));  // it called us: freed after this callback
  sniffers_.erase(it);
  if (a.stream == nullptr || protocol == Sniffed::NeedMore) {
    return;  // the tunnel went away while sniffing
  }
  const ChainMatch& m = a.match;
  bool http_port = m.kind == ChainMatch::Kind::Vip && m.vip->protocol == config::ChainProtocol::Http;
  if (protocol == Sniffed::Tcp && !http_port) {
    stats_.add(stats::Id::chains_sniffed_tcp);
    if (!authorize_l4(a)) {
      a.stream->reset();  // the CONNECT was answered before sniffing: a deny can only reset
      return;
    }
    if (m.kind == ChainMatch::Kind::Pod) {
      start_tcp(a, m.pod, a.destination, true, std::move(initial), eof);
      return;
    }
    const config::Endpoint* ep = pick_tcp_endpoint(a);
    if (ep == nullptr) {
      stats_.add(stats::Id::tunnels_rejected_no_endpoint);
      a.stream->reset();
      return;
    }
    start_tcp(a, ep->pod, ep->address, true, std::move(initial), eof);
    return;
  }
  if (protocol == Sniffed::Tcp) {
    protocol = Sniffed::Http1;  // an HTTP port that does not speak HTTP: the codec answers 400
  } else {
    stats_.add(protocol == Sniffed::H2c ? stats::Id::chains_sniffed_h2c : stats::Id::chains_sniffed_http1);
  }
  start_http(a, protocol, std::move(initial), eof);
}

void InternalListener::start_http(Accepted& a, Sniffed protocol, buffer::Buffer initial, bool eof) {
  const ChainMatch& m = a.match;
  proxy::TunnelInfo info;
  info.snapshot = a.snapshot;
  info.chain = m.name(protocol);
  info.destination = a.destination;
  info.source_principal = a.peer_identity;
  info.source_ip = a.source_ip;
  info.source_pod = a.snapshot->find_pod(a.source_ip);
  info.traceparent = a.traceparent;
  info.opened = std::chrono::steady_clock::now() - std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                       std::chrono::system_clock::now() - a.start);
  info.client = a.source_ip.to_string();
  info.connect_headers = upstream_connect_headers(a.source_ip, a.traceparent, a.baggage);
  info.authz = &a.snapshot->authz_for(m.kind == ChainMatch::Kind::Vip ? m.vip : nullptr);
  if (m.kind == ChainMatch::Kind::Vip) {
    info.routes = m.vip->routes;
    info.upstream_h2c =
        m.vip->port->http2 || (m.vip->protocol == config::ChainProtocol::Sniff && protocol == Sniffed::H2c);
  } else {
    info.direct_pod = m.pod;
    info.upstream_h2c = protocol == Sniffed::H2c;
  }
  auto done = [this](proxy::Session& s) {
    auto it = sessions_.find(&s);
    if (it != sessions_.end()) {
      loop_.defer_delete(std::move(it->second));
      sessions_.erase(it);
    }
  };
  std::unique_ptr<proxy::Session> session;
  if (protocol == Sniffed::H2c) {
    session = std::make_unique<proxy::H2cSession>(ctx_, std::move(info), *a.stream, std::move(initial), eof, done);
  } else {
    session = std::make_unique<proxy::Http1Session>(ctx_, std::move(info), *a.stream, std::move(initial), eof, done);
  }
  proxy::Session* raw = session.get();
  sessions_.emplace(raw, std::move(session));
}

void InternalListener::start_tcp(Accepted& a, const config::Pod* pod, net::SockAddr authority, bool answered,
                                 buffer::Buffer initial, bool eof) {
  const config::Snapshot& snap = *a.snapshot;
  TunnelRecord record;
  record.start = a.start;
  record.chain = a.match.name(Sniffed::Tcp);
  record.source_principal = a.peer_identity;
  record.source_address = a.source_ip.to_string();
  record.destination = a.destination.to_string();
  record.upstream_host = authority.to_string();
  record.source_pod = snap.find_pod(a.source_ip);
  record.destination_pod = pod;
  record.destination_service = a.routed_service != nullptr             ? a.routed_service
                               : a.match.kind == ChainMatch::Kind::Vip ? a.match.vip->service
                                                                       : nullptr;
  log_.tcp_opened(record);

  hbone::UpstreamTarget target;
  target.hbone_address = net::SockAddr(pod->ip, snap.bootstrap.upstream.hbone_port);
  target.identity = pod->spiffe_id();
  target.authority = authority.to_string();
  target.headers = upstream_connect_headers(a.source_ip, a.traceparent, a.baggage);
  auto proxy = std::make_unique<TcpProxy>(*a.stream, std::move(record), a.snapshot, stats_, log_, [this](TcpProxy& p) {
    auto it = proxies_.find(&p);
    if (it != proxies_.end()) {
      loop_.defer_delete(std::move(it->second));
      proxies_.erase(it);
    }
  });
  TcpProxy* raw = proxy.get();
  proxies_.emplace(raw, std::move(proxy));
  if (answered) {
    raw->start_answered(pool_, std::move(target), std::move(initial), eof);
  } else {
    raw->start(pool_, std::move(target));
  }
}

void InternalListener::abort_all() {
  std::vector<Sniffer*> sn;
  for (auto& [p, owned] : sniffers_) {
    sn.push_back(p);
  }
  for (auto* p : sn) {
    p->abort();
  }
  std::vector<proxy::Session*> ss;
  for (auto& [p, owned] : sessions_) {
    ss.push_back(p);
  }
  for (auto* p : ss) {
    p->abort();
  }
  std::vector<TcpProxy*> all;
  for (auto& [p, owned] : proxies_) {
    all.push_back(p);
  }
  for (auto* p : all) {
    p->abort();
  }
  mirrors_.abort_all();
  http_pool_.close_all();
}

}  // namespace wp::internal
