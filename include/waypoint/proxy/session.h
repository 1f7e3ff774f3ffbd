#pragma once
// Downstream HTTP sessions: the requests inside one HBONE tunnel. Http1Session parses HTTP/1.1
// (keep-alive, pipelining answered in order: the codec pauses after each request and resumes only
// once its response is complete); H2cSession parses h2c and runs one ActiveRequest per stream.
#include <functional>
#include <memory>
#include <unordered_map>

#include "waypoint/hbone/h2_connection.h"
#include "waypoint/http/h2c_codec.h"
#include "waypoint/http/http1_codec.h"
#include "waypoint/proxy/chain.h"

namespace wp::proxy {

using http::CodecError;
using http::CodecState;
using http::H2cServerCallbacks;
using http::H2cServerCodec;
using http::H2cSettings;
using http::Http1ServerCallbacks;
using http::Http1ServerCodec;

class Session : public event::DeferredDeletable {
 public:
  using Done = std::function<void(Session&)>;
  ~Session() override = default;
  virtual void abort() = 0;  // shutdown: reset the tunnel and every request
};

class Http1Session final : public Session,
                           public hbone::TunnelHandler,
                           public Http1ServerCallbacks,
                           public DownstreamStream {
 public:
  // `initial` holds bytes already read from the tunnel (while sniffing) and not yet consumed;
  // `eof`: the client's EOF was already seen then.
  Http1Session(WorkerContext& worker, TunnelInfo info, hbone::Tunnel& tunnel, buffer::Buffer initial, bool eof,
               Done done);
  ~Http1Session() override;
  // Session and DownstreamStream: both reset the tunnel (HTTP/1.1 cannot abort one response alone).
  void abort() override;

  // hbone::TunnelHandler
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override;
  void on_tunnel_eof(hbone::Tunnel& t) override;
  void on_tunnel_drained(hbone::Tunnel& t, size_t bytes) override;
  void on_tunnel_closed(hbone::Tunnel& t, bool clean) override;

  // Http1ServerCallbacks
  void on_head(RequestHead&& head) override;
  void on_body(buffer::Buffer& data) override;
  void on_trailers(HeaderMap&& trailers) override;
  void on_message_complete() override;
  void on_error(const CodecError& error) override;

  // DownstreamStream
  void send_head(ResponseHead& head, bool end_stream) override;
  void send_body(buffer::Buffer& data, bool end_stream) override;
  void send_trailers(const HeaderMap& trailers) override;
  void send_continue() override;
  void consume(size_t request_body_bytes) override;
  size_t send_pending() const override;

 private:
  void parse();
  void response_done();
  void request_finished(ActiveRequest& r);
  void close_tunnel(bool reset);
  void maybe_done();
  // What the session's one timer waits for: the head of a request (requestHeadersTimeout, from
  // the tunnel's start or a request's first byte → 408), the next request on a kept-alive tunnel
  // (idleTimeout → close), or the client's end after ours (then the tunnel is reset).
  enum class Wait { None, Head, Idle, Linger };
  void wait_for(Wait what);
  void on_timer();

  WorkerContext& w_;
  TunnelInfo info_;
  hbone::Tunnel* tunnel_;  // null once closed
  Http1ServerCodec codec_;
  event::Timer timer_;
  Wait wait_ = Wait::None;
  bool head_timer_used_ = false;
  Done done_;
  buffer::Buffer in_;
  size_t body_delivered_ = 0;  // body bytes handed out during the current feed()
  std::unique_ptr<ActiveRequest> current_;
  bool request_done_ = false;   // the current request was parsed to its end
  bool response_done_ = false;  // the current response was written in full
  bool close_after_ = false;
  bool eof_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool started_ = false;
  event::Deferred start_;   // the first parse, once the owner has stored the session
  event::Deferred resume_;  // the next pipelined request, after the response's callbacks
};

class H2cSession final : public Session, public hbone::TunnelHandler, public H2cServerCallbacks {
 public:
  H2cSession(WorkerContext& worker, TunnelInfo info, hbone::Tunnel& tunnel, buffer::Buffer initial, bool eof,
             Done done);
  ~H2cSession() override;
  void abort() override;

  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override;
  void on_tunnel_eof(hbone::Tunnel& t) override;
  void on_tunnel_drained(hbone::Tunnel& t, size_t bytes) override;
  void on_tunnel_closed(hbone::Tunnel& t, bool clean) override;

  void on_request(int32_t stream, RequestHead&& head, bool end_stream) override;
  void on_request_body(int32_t stream, buffer::Buffer& data) override;
  void on_request_trailers(int32_t stream, HeaderMap&& trailers) override;
  void on_request_end(int32_t stream) override;
  void on_stream_closed(int32_t stream, uint32_t error_code) override;
  void on_stream_drained(int32_t stream) override;
  void on_stream_refused(int32_t stream) override;
  void on_error(const CodecError& error) override;

 private:
  class Stream;
  friend class Stream;
  void flush();
  void feed(buffer::Buffer& data);
  void close_tunnel(bool reset);
  void maybe_done();
  void start();

  WorkerContext& w_;
  TunnelInfo info_;
  hbone::Tunnel* tunnel_;  // null once closed
  H2cServerCodec codec_;
  Done done_;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  buffer::Buffer early_;  // bytes received before the session started (sniffed ones first)
  bool early_eof_ = false;
  bool started_ = false;
  bool in_flush_ = false;
  bool failed_ = false;
  bool finished_ = false;
  event::Deferred start_;  // feeds the early bytes once the owner has stored the session
  event::Deferred fail_;   // ends the tunnel after a codec error, outside the codec's callbacks
};

}  // namespace wp::proxy
