#include "waypoint/hbone/pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "waypoint/net/socket.h"
#include "waypoint/tls/socket.h"

namespace wp::hbone {

const char* to_string(UpstreamFailure f) {
  switch (f) {
    case UpstreamFailure::ConnectFailed:
      return "connect_failed";
    case UpstreamFailure::Timeout:
      return "timeout";
    case UpstreamFailure::Refused:
      return "refused";
    case UpstreamFailure::Reset:
      return "reset";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// HboneClientConnection

HboneClientConnection::HboneClientConnection(event::Loop& loop, std::unique_ptr<net::Transport> transport,
                                             const net::SockAddr& addr, const H2Settings& settings, Pool& pool,
                                             stats::Block& stats)
    : H2Connection(loop, Role::Client, std::move(transport), settings, pool, stats),
      pool_(pool),
      idle_timer_(loop, [this] {
        if (stream_count() == 0 && state() == State::Open) {
          spdlog::debug("hbone: closing idle upstream connection to {}", peer_address().to_string());
          this->stats().add(stats::Id::upstream_cx_idle_closed);
          drain();
        }
      }) {
  set_peer_address(addr);
}

uint32_t HboneClientConnection::available_streams(uint32_t max_per_connection) const {
  const net::ConnState st = st_.state();
  if (state() != State::Open || (st != net::ConnState::Ready && st != net::ConnState::Busy)) {
    return 0;
  }
  uint32_t limit = std::min(max_per_connection, remote_max_concurrent_streams());
  return stream_count() >= limit ? 0 : limit - static_cast<uint32_t>(stream_count());
}

H2Stream* HboneClientConnection::open_tunnel(const std::string& authority, const H2Stream::HeaderList& extra,
                                             ConnectCallbacks* cb) {
  static const std::string kMethod = ":method";
  static const std::string kConnect = "CONNECT";
  static const std::string kAuthority = ":authority";
  std::vector<nghttp2_nv> nva = {make_nv(kMethod, kConnect), make_nv(kAuthority, authority)};
  for (const auto& [k, v] : extra) {
    nva.push_back(make_nv(k, v));
  }
  H2Stream* s = submit_request(nva);
  if (s == nullptr) {
    return nullptr;
  }
  s->set_connect_callbacks(cb);
  idle_timer_.stop();
  update_state();
  stats().add(stats::Id::upstream_tunnels_total);
  stats().add(stats::Id::upstream_tunnels_active);
  schedule_send();
  return s;
}

void HboneClientConnection::on_open() {
  opened_ = true;
  stats().add(stats::Id::upstream_cx_active);
}

// Streams are opened only once the server's SETTINGS arrived, so its concurrency limit is never
// overrun by a burst sent into a fresh connection.
void HboneClientConnection::on_remote_settings() {
  if (st_.state() == net::ConnState::Connecting) {
    st_.transition(net::ConnState::Ready);  // (drained meanwhile: it stays Draining)
  }
  update_state();
  pool_.on_connection_ready(*this);
}

void HboneClientConnection::update_state() {
  const net::ConnState st = st_.state();
  if (state() == State::Open && (st == net::ConnState::Ready || st == net::ConnState::Busy)) {
    st_.transition(available_streams(pool_.settings().max_streams_per_connection) > 0 ? net::ConnState::Ready
                                                                                      : net::ConnState::Busy);
  }
}

void HboneClientConnection::on_headers_complete(H2Stream& stream) {
  ConnectCallbacks* cb = stream.connect_callbacks();
  stream.set_connect_callbacks(nullptr);
  const std::string* status = stream.header(":status");
  if (status != nullptr && *status == "200") {
    stream.mark_open();
    if (cb != nullptr) {
      cb->on_connect_established(stream);
    } else {
      stream.reset();  // the requester went away meanwhile
    }
    return;
  }
  stats().add(stats::Id::upstream_tunnels_refused);
  int code = status != nullptr ? std::atoi(status->c_str()) : 0;
  if (cb != nullptr) {
    cb->on_connect_failed(code);
  }
  stream.reset();
}

void HboneClientConnection::on_stream_removed(H2Stream& stream) {
  stats().sub(stats::Id::upstream_tunnels_active);
  if (state() == State::Open) {
    update_state();
    if (stream_count() == 0) {
      idle_timer_.start(pool_.settings().idle_timeout);
    }
    pool_.on_connection_capacity(*this);
  }
}

void HboneClientConnection::on_closing() {
  idle_timer_.stop();
  st_.transition(state() == State::Closed ? net::ConnState::Closed : net::ConnState::Draining);
}

// ---------------------------------------------------------------------------------------------
// UpstreamRequest

UpstreamRequest::UpstreamRequest(Pool& pool, UpstreamTarget target, Callbacks& cb)
    : pool_(pool), target_(std::move(target)), cb_(cb), deadline_(pool.loop_, [this] { on_deadline(); }) {
  deadline_.start(pool.settings_.connect_timeout);
}

void UpstreamRequest::on_deadline() {
  if (state_ == State::Done) {
    return;
  }
  pool_.stats_.add(stats::Id::upstream_connect_timeout);
  if (state_ == State::Waiting) {
    pool_.cancel(*this);
  } else if (stream_ != nullptr) {
    stream_->set_connect_callbacks(nullptr);
    stream_->reset();
    stream_ = nullptr;
  }
  fail(UpstreamFailure::Timeout, 0);
}

UpstreamRequest::~UpstreamRequest() {
  if (state_ == State::Waiting) {
    pool_.cancel(*this);
  } else if (state_ == State::Submitted && stream_ != nullptr) {
    stream_->set_connect_callbacks(nullptr);
    stream_->reset();
  }
}

void UpstreamRequest::on_connect_established(H2Stream& stream) {
  state_ = State::Done;
  deadline_.stop();
  stream_ = nullptr;
  cb_.on_upstream_ready(stream);
}

void UpstreamRequest::on_connect_failed(int status) {
  stream_ = nullptr;
  fail(status == 0 ? UpstreamFailure::Reset : UpstreamFailure::Refused, status);
}

void UpstreamRequest::fail(UpstreamFailure f, int status) {
  state_ = State::Done;
  deadline_.stop();
  cb_.on_upstream_failed(f, status);
}

// ---------------------------------------------------------------------------------------------
// Pool

Pool::Pool(event::Loop& loop, tls::ContextPtr tls, const PoolSettings& settings, stats::Block& stats, Dialer* dialer)
    : loop_(loop), tls_(std::move(tls)), settings_(settings), stats_(stats), dialer_(dialer) {
  settings_.h2.handshake_timeout = settings_.connect_timeout;
}

Pool::~Pool() {
  close_all();
}

std::unique_ptr<TunnelRequest> Pool::open(UpstreamTarget target, TunnelCallbacks& cb) {
  std::string key = target.hbone_address.to_string() + "|" + target.identity;
  std::unique_ptr<UpstreamRequest> req(new UpstreamRequest(*this, std::move(target), cb));
  req->key_ = key;
  auto& slot = entries_[key];
  if (!slot) {
    slot = std::make_unique<Entry>(*this);
    slot->key = key;
    slot->address = req->target_.hbone_address;
    slot->identity = req->target_.identity;
  }
  slot->waiters.push_back(req.get());
  slot->pump_soon.schedule();  // never call back from inside open()
  return req;
}

Pool::Entry::Entry(Pool& pool)
    : pump_soon(pool.loop_, [&pool, this] {
        pool.pump(*this);
        pool.maybe_erase(*this);  // may free this entry (and this callback's Deferred): nothing after
      }) {}

Pool::Entry* Pool::find(const std::string& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second.get();
}

void Pool::pump(Entry& e) {
  while (!e.waiters.empty()) {
    HboneClientConnection* best = nullptr;
    uint32_t best_avail = 0;
    for (auto& c : e.conns) {
      uint32_t avail = c->available_streams(settings_.max_streams_per_connection);
      // Fill the busiest connection that still has room, so spare ones go idle and close.
      if (avail > 0 && (best == nullptr || avail < best_avail)) {
        best = c.get();
        best_avail = avail;
      }
    }
    if (best == nullptr) {
      if (e.dialing == nullptr) {
        dial(e);
      }
      return;
    }
    UpstreamRequest* r = e.waiters.front();
    e.waiters.pop_front();
    r->state_ = UpstreamRequest::State::Submitted;
    r->stream_ = best->open_tunnel(r->target_.authority, r->target_.headers, r);
    if (r->stream_ == nullptr) {
      r->fail(UpstreamFailure::Reset, 0);
    }
  }
}

std::unique_ptr<net::Transport> Pool::connect(const Entry& e) {
  if (dialer_ != nullptr) {
    return dialer_->dial(e.address, e.identity);
  }
  int fd = net::connect_tcp(e.address);
  if (fd < 0) {
    return nullptr;
  }
  return std::make_unique<tls::Socket>(loop_, fd, tls_, e.identity, settings_.h2.handshake_timeout);
}

void Pool::dial(Entry& e) {
  std::unique_ptr<net::Transport> transport = connect(e);
  stats_.add(stats::Id::upstream_cx_total);
  if (transport == nullptr) {
    spdlog::warn("hbone: connect to {} failed: {}", e.address.to_string(), std::strerror(errno));
    stats_.add(stats::Id::upstream_cx_connect_failed);
    auto waiters = std::move(e.waiters);
    e.waiters.clear();
    for (auto* r : waiters) {
      r->fail(UpstreamFailure::ConnectFailed, 0);
    }
    return;  // the caller erases the entry when it is empty
  }
  auto conn =
      std::make_unique<HboneClientConnection>(loop_, std::move(transport), e.address, settings_.h2, *this, stats_);
  conn->set_pool_key(&e.key);
  e.dialing = conn.get();
  e.conns.push_back(std::move(conn));
  e.dialing->start();
}

void Pool::cancel(UpstreamRequest& r) {
  if (Entry* e = find(r.key_)) {
    auto it = std::find(e->waiters.begin(), e->waiters.end(), &r);
    if (it != e->waiters.end()) {
      e->waiters.erase(it);
    }
    maybe_erase(*e);
  }
}

void Pool::on_connection_ready(HboneClientConnection& c) {
  Entry* e = find(*c.pool_key());
  if (e == nullptr) {
    return;
  }
  if (e->dialing == &c) {
    e->dialing = nullptr;
  }
  pump(*e);
}

void Pool::on_connection_capacity(HboneClientConnection& c) {
  if (Entry* e = find(*c.pool_key())) {
    if (!e->waiters.empty()) {
      e->pump_soon.schedule();  // not from inside nghttp2's stream-close callback
    }
  }
}

void Pool::on_connection_closed(H2Connection& conn) {
  auto& c = static_cast<HboneClientConnection&>(conn);
  c.st_.transition(net::ConnState::Closed);  // a failed dial or handshake closes without on_closing
  Entry* e = find(*c.pool_key());
  if (e == nullptr) {
    return;
  }
  bool failed_dial = e->dialing == &c;
  if (failed_dial) {
    e->dialing = nullptr;
    stats_.add(stats::Id::upstream_cx_connect_failed);
    spdlog::warn("hbone: upstream connection to {} ({}) failed before it was ready", e->address.to_string(),
                 e->identity);
  }
  if (c.opened()) {
    stats_.sub(stats::Id::upstream_cx_active);
  }
  for (auto it = e->conns.begin(); it != e->conns.end(); ++it) {
    if (it->get() == &c) {
      loop_.defer_delete(std::move(*it));
      e->conns.erase(it);
      break;
    }
  }
  if (failed_dial) {
    auto waiters = std::move(e->waiters);
    e->waiters.clear();
    for (auto* r : waiters) {
      r->fail(UpstreamFailure::ConnectFailed, 0);
    }
  } else if (!e->waiters.empty()) {
    pump(*e);
  }
  maybe_erase(*e);
}

void Pool::maybe_erase(Entry& e) {
  if (e.conns.empty() && e.waiters.empty() && e.dialing == nullptr) {
    entries_.erase(e.key);
  }
}

void Pool::drain_all() {
  for (auto& [k, e] : entries_) {
    for (auto& c : e->conns) {
      c->drain();
    }
  }
}

void Pool::drain_unless(const std::function<bool(const net::SockAddr& address, const std::string& identity)>& keep) {
  std::vector<HboneClientConnection*> gone;
  for (auto& [k, e] : entries_) {
    if (!keep(e->address, e->identity)) {
      for (auto& c : e->conns) {
        if (c->opened()) {  // a dial in progress serves the requests waiting for it first
          gone.push_back(c.get());
        }
      }
    }
  }
  for (auto* c : gone) {
    c->drain();
  }
}

void Pool::close_all() {
  std::vector<HboneClientConnection*> all;
  for (auto& [k, e] : entries_) {
    for (auto& c : e->conns) {
      all.push_back(c.get());
    }
  }
  for (auto* c : all) {
    c->close();
  }
}

size_t Pool::connection_count(net::ConnState state) const {
  size_t n = 0;
  for (const auto& [k, e] : entries_) {
    for (const auto& c : e->conns) {
      n += c->pool_state() == state ? 1 : 0;
    }
  }
  return n;
}

size_t Pool::connection_count() const {
  size_t n = 0;
  for (const auto& [k, e] : entries_) {
    n += e->conns.size();
  }
  return n;
}

}  // namespace wp::hbone
