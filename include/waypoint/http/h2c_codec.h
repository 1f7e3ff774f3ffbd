#pragma once
// h2c (HTTP/2 over cleartext, prior knowledge) codecs on nghttp2, for HTTP/2 spoken *inside* an
// HBONE tunnel: the tunnel is the byte stream, so these codecs do no I/O. Bytes in go to feed();
// bytes out are collected with output() after any call (the owner writes them to the tunnel).
// Messages use the same model as HTTP/1.1 (RequestHead / ResponseHead / HeaderMap): pseudo-headers
// map to method / target / authority and status; hop-by-hop fields are never sent.
//
// Flow control is manual: received DATA reopens the peer's windows only when the owner calls
// consume(stream, n) after passing the bytes on, so memory per stream stays bounded by the window.
// Body bytes given to send_body() are queued per stream and framed as the peer's windows allow;
// pending_body() tells how much is still queued (backpressure).
//
// Callbacks run inside feed() and output(); they may call the codec's submit/send/reset methods
// but must not destroy the codec (defer deletion).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "waypoint/buffer/buffer.h"
#include "waypoint/hbone/h2_guards.h"
#include "waypoint/http/message.h"

namespace wp::http {

struct H2cSettings {
  uint32_t max_concurrent_streams = 100;       // SETTINGS_MAX_CONCURRENT_STREAMS we announce
  uint32_t initial_window_size = 1024 * 1024;  // per stream
  uint32_t connection_window_size = 4 * 1024 * 1024;
  uint32_t max_frame_size = 16384;
  size_t max_header_list_bytes = 64 * 1024;  // larger request/response header blocks: the
                                             // stream is answered 431 (server) / reset (client)
  const char* scheme = "http";               // client: the :scheme of requests ("https" over TLS, bench/)
  hbone::H2Limits limits;                    // server: empty-frame and premature-reset guards
};

class H2cServerCallbacks {
 public:
  virtual ~H2cServerCallbacks() = default;
  // A complete request header block; `end_stream`: it carried END_STREAM (no body follows, and
  // on_request_end follows at once).
  virtual void on_request(int32_t stream, RequestHead&& head, bool end_stream) = 0;
  // Body bytes (copied once from the DATA frames): take them all; consume() them once passed on.
  virtual void on_request_body(int32_t stream, buffer::Buffer& data) = 0;
  virtual void on_request_trailers(int32_t stream, HeaderMap&& trailers) = 0;
  virtual void on_request_end(int32_t stream) = 0;  // END_STREAM received
  // The stream is gone: closed normally after both sides ended (error_code 0) or reset by either
  // side / lost with the session. Called once per stream on which on_request was called.
  virtual void on_stream_closed(int32_t stream, uint32_t error_code) = 0;
  // Queued response body of `stream` was framed (pending_body decreased): room to send more.
  virtual void on_stream_drained(int32_t stream) {}
  // A new stream over max_concurrent_streams was refused (RST_STREAM REFUSED_STREAM); nothing
  // else happens to the session.
  virtual void on_stream_refused(int32_t stream) {}
  // Session-level failure (bad preface, protocol error, GOAWAY received...). Once called, the
  // owner flushes output() (the codec has queued a GOAWAY when appropriate) and closes the tunnel.
  virtual void on_error(const CodecError& error) = 0;
};

class H2cServerCodec {
 public:
  H2cServerCodec(H2cServerCallbacks& callbacks, const H2cSettings& settings = {});
  ~H2cServerCodec();
  H2cServerCodec(const H2cServerCodec&) = delete;
  H2cServerCodec& operator=(const H2cServerCodec&) = delete;

  // Feeds received bytes (starting with the client preface). Returns false after a session error.
  bool feed(const uint8_t* data, size_t len);
  // The peer half-closed the tunnel: streams still open are closed (on_stream_closed with an error).
  void finish();

  void respond(int32_t stream, const ResponseHead& head, bool end_stream);
  void send_body(int32_t stream, buffer::Buffer& data, bool end_stream);  // takes all of data
  void send_trailers(int32_t stream, const HeaderMap& trailers);          // ends the stream
  void reset(int32_t stream, uint32_t error_code);                        // RST_STREAM
  void consume(int32_t stream, size_t bytes);
  size_t pending_body(int32_t stream) const;
  void goaway();  // graceful: no new streams

  // Everything nghttp2 can send now; appended to `out`. Calls on_stream_drained / on_stream_closed
  // as frames go out.
  void output(buffer::Buffer& out);
  bool want_output() const;
  size_t active_streams() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class H2cClientCallbacks {
 public:
  virtual ~H2cClientCallbacks() = default;
  // The final response head (1xx heads are skipped); on_response_end follows at once on END_STREAM.
  virtual void on_response(int32_t stream, ResponseHead&& head) = 0;
  virtual void on_response_body(int32_t stream, buffer::Buffer& data) = 0;  // as on_request_body
  virtual void on_response_trailers(int32_t stream, HeaderMap&& trailers) = 0;
  virtual void on_response_end(int32_t stream) = 0;
  // Stream gone: error_code 0 after a complete exchange; NGHTTP2_REFUSED_STREAM (7) when the server
  // refused it (safe to retry); other codes for resets and a lost session.
  virtual void on_stream_closed(int32_t stream, uint32_t error_code) = 0;
  virtual void on_stream_drained(int32_t stream) {}
  // The server's SETTINGS arrived (available_streams() may have changed) or a stream slot freed.
  virtual void on_capacity() {}
  virtual void on_error(const CodecError& error) = 0;  // session failure or GOAWAY received
};

class H2cClientCodec {
 public:
  H2cClientCodec(H2cClientCallbacks& callbacks, const H2cSettings& settings = {});
  ~H2cClientCodec();
  H2cClientCodec(const H2cClientCodec&) = delete;
  H2cClientCodec& operator=(const H2cClientCodec&) = delete;

  bool feed(const uint8_t* data, size_t len);
  void finish();  // the server half-closed the tunnel: every open stream closes with an error

  // Returns the new stream id, or -1 when no stream can be opened now (limit reached, GOAWAY,
  // session failed). :scheme is "http"; :authority from head.authority; :path from head.target.
  int32_t submit_request(const RequestHead& head, bool end_stream);
  void send_body(int32_t stream, buffer::Buffer& data, bool end_stream);
  void send_trailers(int32_t stream, const HeaderMap& trailers);
  void reset(int32_t stream, uint32_t error_code);
  void consume(int32_t stream, size_t bytes);
  size_t pending_body(int32_t stream) const;

  void output(buffer::Buffer& out);
  bool want_output() const;
  size_t active_streams() const;
  // Streams that can still be opened under the server's SETTINGS_MAX_CONCURRENT_STREAMS (100
  // assumed until the server's SETTINGS arrive); 0 after GOAWAY or an error.
  uint32_t available_streams() const;
  bool usable() const;  // no error and no GOAWAY

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Everything `codec` (H2cServerCodec or H2cClientCodec) can send now, appended to `out`.
template <class Codec>
void collect_output(Codec& codec, buffer::Buffer& out) {
  while (codec.want_output()) {
    size_t before = out.length();
    codec.output(out);
    if (out.length() == before) {
      break;
    }
  }
}

}  // namespace wp::http
