#pragma once
// One HTTP/2 connection over a TLS socket (nghttp2), the shared core of both HBONE directions:
// settings, flow control, keepalive PINGs, GOAWAY, and the streams that are our Tunnels.
// HboneServerConnection (terminate) and HboneClientConnection (originate) derive from it.
#include <nghttp2/nghttp2.h>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "waypoint/event/loop.h"
#include "waypoint/hbone/h2_core.h"
#include "waypoint/hbone/h2_guards.h"
#include "waypoint/hbone/tunnel.h"
#include "waypoint/net/address.h"
#include "waypoint/net/transport.h"
#include "waypoint/stats/stats.h"

namespace wp::hbone {

struct H2Settings {
  uint32_t max_concurrent_streams = 100;
  uint32_t stream_window = 4u << 20;       // 4 MiB
  uint32_t connection_window = 16u << 20;  // 16 MiB
  uint32_t max_frame_size = 1u << 20;      // 1 MiB
  uint32_t max_header_list_bytes = 16384;
  std::chrono::milliseconds keepalive_interval{10'000};  // 0 disables PINGs
  std::chrono::milliseconds keepalive_timeout{20'000};
  std::chrono::milliseconds handshake_timeout{10'000};
  H2Limits limits;  // empty-frame and premature-reset guards (server side)
};

class H2Connection;
class ConnectCallbacks;

// One HTTP/2 stream. As a Tunnel it carries the CONNECT payload both ways.
class H2Stream final : public DownstreamTunnel, public event::DeferredDeletable {
 public:
  enum class State { Headers, Pending, Open, Closed };
  using HeaderList = std::vector<std::pair<std::string, std::string>>;

  H2Stream(H2Connection& conn, int32_t id);
  ~H2Stream() override;

  // Tunnel
  void set_handler(TunnelHandler* handler) override;
  void write(buffer::Buffer& data) override;
  void write_eof() override;
  void consume(size_t bytes) override;
  void reset() override;
  size_t write_pending() const override { return send_buf_.length(); }

  int32_t id() const { return id_; }
  State state() const { return state_; }
  H2Connection& connection() { return conn_; }
  const HeaderList& headers() const { return headers_; }
  const std::string* header(std::string_view name) const;  // first value, or nullptr
  bool header_overflow() const { return header_budget_.overflow(); }
  bool remote_eof() const { return remote_eof_; }
  bool headers_done() const { return headers_done_; }  // the request/response HEADERS were complete

  // Server side: answer the request. 200 opens the tunnel; anything else ends the stream.
  void respond(int status, const HeaderList& extra);
  void respond(int status) override { respond(status, {}); }
  // Client side: the pending CONNECT's outcome goes to `cb` (cleared once reported).
  void set_connect_callbacks(ConnectCallbacks* cb) { connect_cb_ = cb; }
  ConnectCallbacks* connect_callbacks() const { return connect_cb_; }
  void mark_open() { state_ = State::Open; }

 private:
  friend class H2Connection;
  void add_header(std::string_view name, std::string_view value);
  void on_data(const uint8_t* data, size_t len);
  void on_remote_eof();
  void on_closed(uint32_t error_code);
  void flush_drained();
  ssize_t read_data(size_t length, uint32_t* flags);
  int send_data(const uint8_t* framehd, size_t length, size_t padlen);
  void submit_data_provider_if_needed();

  H2Connection& conn_;
  int32_t id_;
  State state_ = State::Headers;
  HeaderList headers_;
  HeaderBudget header_budget_;
  bool headers_done_ = false;
  TunnelHandler* handler_ = nullptr;
  ConnectCallbacks* connect_cb_ = nullptr;
  buffer::Buffer recv_buf_;  // received, not yet taken by a handler
  buffer::Buffer send_buf_;  // written by the handler, not yet framed
  size_t unconsumed_ = 0;    // delivered to the handler (or discarded) and not yet consumed
  size_t drained_ = 0;       // framed since the handler was last told
  bool remote_eof_ = false;
  bool eof_delivered_ = false;
  bool local_eof_ = false;  // write_eof() called
  bool data_deferred_ = false;
  event::Deferred drain_soon_;  // tells the handler what was framed, once per loop iteration
  bool reset_after_response_ = false;
  bool answered_ = false;       // server: response headers submitted
  bool reset_by_peer_ = false;  // a RST_STREAM arrived for it
  std::chrono::steady_clock::time_point created_at_ = std::chrono::steady_clock::now();
};

// The outcome of a client CONNECT.
class ConnectCallbacks {
 public:
  virtual ~ConnectCallbacks() = default;
  virtual void on_connect_established(H2Stream& stream) = 0;  // :status 200
  // status is the non-200 :status, or 0 when the stream or connection died first.
  virtual void on_connect_failed(int status) = 0;
};

class H2Connection : public net::TransportCallbacks, public event::DeferredDeletable {
 public:
  enum class Role { Server, Client };
  enum class State { Handshaking, Open, Draining, Closed };

  // Told once when the connection is finished; the owner then defer-deletes it.
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void on_connection_closed(H2Connection& conn) = 0;
  };

  H2Connection(event::Loop& loop, Role role, std::unique_ptr<net::Transport> transport, const H2Settings& settings,
               Owner& owner, stats::Block& stats);
  ~H2Connection() override;

  void start();
  // Graceful: GOAWAY (last stream id), finish open streams, then close.
  void drain();
  // Immediate: every stream is told it closed.
  void close();

  State state() const { return state_; }
  Role role() const { return role_; }
  event::Loop& loop() { return loop_; }
  stats::Block& stats() { return stats_; }
  const std::string& peer_identity() const { return transport_->peer_identity(); }
  const net::SockAddr& peer_address() const { return peer_address_; }
  void set_peer_address(const net::SockAddr& a) { peer_address_ = a; }
  size_t stream_count() const { return streams_.size(); }
  H2Stream* stream_by_id(int32_t id) { return find_stream(id); }
  uint32_t remote_max_concurrent_streams() const;
  nghttp2_session* session() { return session_; }
  void schedule_send();

 protected:
  virtual void on_open() {}
  // The peer's first SETTINGS frame arrived (its stream limit is known from here on).
  virtual void on_remote_settings() {}
  virtual void on_headers_complete(H2Stream& stream) = 0;
  virtual void on_stream_removed(H2Stream& stream) {}
  virtual void on_closing() {}
  virtual void on_handshake_failed(net::HandshakeFailure failure) {}
  H2Stream& add_stream(int32_t id);
  // Submits a request whose body is the stream's send buffer; returns the new stream or nullptr.
  H2Stream* submit_request(const std::vector<nghttp2_nv>& nva);
  static nghttp2_data_provider data_provider(H2Stream* stream);
  H2Stream* find_stream(int32_t id);
  const H2Settings& settings() const { return settings_; }
  H2SessionSettings session_settings() const {
    return {settings_.stream_window, settings_.connection_window, settings_.max_frame_size,
            settings_.max_header_list_bytes};
  }

 private:
  friend class H2Stream;
  // net::TransportCallbacks
  void on_transport_connected() override;
  void on_transport_data(const uint8_t* data, size_t len) override;
  void on_transport_writable() override;
  void on_transport_closed(net::CloseReason reason, net::HandshakeFailure failure) override;

  void send_now();
  void finish(bool notify_owner);
  void count_protocol_error();
  void keepalive_tick();
  void maybe_close_when_idle();
  // Ends the connection for abuse: GOAWAY(code) through nghttp2, then close once it is out.
  void terminate(uint32_t error_code, stats::Id counter, const char* why);
  void goaway_by_hand(uint32_t error_code);

  static nghttp2_session_callbacks* callbacks();
  static ssize_t send_cb(nghttp2_session*, const uint8_t* data, size_t len, int flags, void* user);
  static int send_data_cb(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                          nghttp2_data_source* source, void* user);
  static int on_begin_headers_cb(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header_cb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                          const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int on_frame_recv_cb(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_frame_send_cb(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk_recv_cb(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data, size_t len,
                                   void* user);
  static int on_stream_close_cb(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);

  event::Loop& loop_;
  Role role_;
  H2Settings settings_;
  Owner& owner_;
  stats::Block& stats_;
  std::unique_ptr<net::Transport> transport_;
  nghttp2_session* session_ = nullptr;
  State state_ = State::Handshaking;
  net::SockAddr peer_address_;
  std::unordered_map<int32_t, std::unique_ptr<H2Stream>> streams_;
  event::Timer keepalive_timer_;
  std::chrono::steady_clock::time_point ping_sent_at_{};
  bool ping_outstanding_ = false;
  bool remote_settings_seen_ = false;
  bool protocol_error_counted_ = false;
  event::Deferred send_soon_;  // one nghttp2_session_send per loop iteration
  bool in_send_ = false;
  bool inject_stream_limit_ = false;  // server: our first SETTINGS still to carry the stream limit
  bool goaway_sent_ = false;
  bool terminated_ = false;
  EmptyFrameGuard empty_frames_;
  PrematureResetGuard premature_resets_;
  std::vector<uint8_t> scratch_;
};

}  // namespace wp::hbone
