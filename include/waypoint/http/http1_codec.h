#pragma once
// Streaming HTTP/1.1 codecs on llhttp 8.1, strict.
//
// Parsing is push-based and in place: feed() hands bytes to llhttp, events go to a Callbacks object,
// and on_body() hands the body over as a Buffer (never buffered by the codec): fed a Buffer, the
// codec moves a slice that is all body instead of copying it. Next to llhttp, a raw
// scanner checks every head, chunk framing line and trailer byte for what llhttp 8.1 lets through
// (obs-fold, bare CR/LF, bad field names, chunk data without CRLF...), and the head callbacks check
// the framing semantics (CL+TE, duplicate Content-Length, Transfer-Encoding lists, Host...).
//
// After each message the server codec pauses: feed() returns the bytes consumed up to the end of
// that message, and the caller answers it, then calls resume() and feeds the rest (pipelining is
// answered in order). After a message that does not keep the connection alive, the codec is closed
// and discards whatever follows.
//
// Heads are serialized from the model, never forwarded raw: `name: value\r\n` lines (names
// lowercase, as stored), hop-by-hop fields dropped, framing chosen by the encoder.
//
// Strictness (request side status; on the response side every error is a 502 upstream error):
//   400  obs-fold; bare CR or bare LF anywhere in a head, chunk line or trailers; empty field name or
//        whitespace in/after one; control characters in values; CL+TE; duplicate Content-Length
//        (even equal); non-numeric CL; Transfer-Encoding on HTTP/1.0; TE where chunked is not the
//        single final coding (`chunked, identity`, `gzip`, `chunked, chunked`, two TE fields);
//        Content-Length / Transfer-Encoding / Host in trailers; chunk data not followed by CRLF;
//        bad chunk sizes (whitespace, 0x, > 16 hex digits); missing, duplicate or invalid Host on
//        HTTP/1.1; a target that is not origin-form (absolute-form is refused) except OPTIONS *;
//        unknown methods and anything else llhttp rejects;
//        a TE list ending in chunked with another coding (`identity, chunked`, `gzip, chunked`);
//        a version other than HTTP/1.0 and HTTP/1.1 (HTTP/0.9, 1.2, 2.0, 3.0...).
//   501  CONNECT. `Chunked` in any letter case is accepted (codings are case-insensitive).
//   417  an Expect other than a single `100-continue` on HTTP/1.1 (ignored on HTTP/1.0).
//   414 / 431  the limits in Http1Limits. Upgrade is never honoured: the request stays HTTP.
//
// Callbacks must not destroy the codec (defer deletion).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "waypoint/buffer/buffer.h"
#include "waypoint/http/message.h"

namespace wp::http {

struct Http1Limits {
  size_t max_head_bytes = 64 * 1024;  // start line + fields, and separately the trailer section
  size_t max_headers = 100;           // fields in the head, and separately in the trailers
  size_t max_url_bytes = 16 * 1024;   // request target
};

template <class Head>
class Http1Callbacks {
 public:
  virtual ~Http1Callbacks() = default;
  virtual void on_head(Head&& head) = 0;
  // Body bytes, in order: take them all (move them out of `data`). Fed by feed(Buffer&), a body
  // that fills a whole input slice arrives as that slice (no copy); other body bytes are copied
  // into `data` once.
  virtual void on_body(buffer::Buffer& data) = 0;
  virtual void on_trailers(HeaderMap&& trailers) = 0;
  virtual void on_message_complete() = 0;
  // Called once; the codec then refuses further input. The connection should be closed (after the
  // local reply on the server side).
  virtual void on_error(const CodecError& error) = 0;
};
using Http1ServerCallbacks = Http1Callbacks<RequestHead>;
using Http1ClientCallbacks = Http1Callbacks<ResponseHead>;

enum class CodecState : uint8_t {
  Running,  // accepting input
  Paused,   // a message completed; call resume() before feeding more (server only)
  Closed,   // the connection ends after the last message; further input is discarded
  Error,    // on_error was called; further input is refused
};

namespace detail {
class Http1Parser;
class BodyEncoder;
}  // namespace detail

// Downstream side: parses requests, serializes responses.
class Http1ServerCodec {
 public:
  explicit Http1ServerCodec(Http1ServerCallbacks& callbacks, const Http1Limits& limits = {});
  ~Http1ServerCodec();
  Http1ServerCodec(const Http1ServerCodec&) = delete;
  Http1ServerCodec& operator=(const Http1ServerCodec&) = delete;

  // Returns the bytes consumed. Less than len when a message completed (state Paused) or on error.
  // In state Closed, every byte is consumed and discarded.
  size_t feed(const uint8_t* data, size_t len);
  // Parses the front slice of `in` and drains the bytes consumed from it (body slices leave by
  // on_body). Returns the bytes consumed, as feed(data, len) over that slice would.
  size_t feed(buffer::Buffer& in);
  // Resumes after a completed message (no-op unless Paused).
  void resume();
  // The downstream closed its side. A request cut short is reported through on_error (400,
  // counter downstream_rq_incomplete); returns false then.
  bool finish();
  CodecState state() const;

  // Serialization of the answers, in request order (one response per parsed request). The
  // framing: Content-Length when head.content_length is set; no body for a HEAD request or a
  // 1xx/204/304 status; else chunked to an HTTP/1.1 client, close-delimited to an HTTP/1.0 one.
  // "connection: close" is written when the request or the head said so or when close-delimited.
  void encode_head(const ResponseHead& head, buffer::Buffer& out);
  // Body bytes. Returns false when they exceed the announced Content-Length or no body is allowed.
  bool encode_body(const uint8_t* data, size_t len, buffer::Buffer& out);
  bool encode_body(buffer::Buffer& data, buffer::Buffer& out);  // takes all of data, moving slices
  // Ends the response (last chunk + trailers when chunked; trailers are dropped otherwise).
  // Returns false when fewer bytes than the announced Content-Length were written.
  bool encode_end(buffer::Buffer& out, const HeaderMap* trailers = nullptr);
  // "HTTP/1.1 100 Continue\r\n\r\n".
  static void encode_continue(buffer::Buffer& out);
  // True when the response being (or last) encoded requires closing the connection after it.
  bool close_after_response() const;

 private:
  std::unique_ptr<detail::Http1Parser> parser_;
  std::unique_ptr<detail::BodyEncoder> encoder_;
  bool close_after_ = false;
};

// Upstream side: serializes requests, parses responses.
class Http1ClientCodec {
 public:
  explicit Http1ClientCodec(Http1ClientCallbacks& callbacks, const Http1Limits& limits = {});
  ~Http1ClientCodec();
  Http1ClientCodec(const Http1ClientCodec&) = delete;
  Http1ClientCodec& operator=(const Http1ClientCodec&) = delete;

  // Responses are matched to the requests encoded so far (the method decides whether a body
  // follows). 1xx responses are delivered through on_head only (no on_message_complete); the final
  // response follows. A response with no request outstanding is an error (502).
  size_t feed(const uint8_t* data, size_t len);
  size_t feed(buffer::Buffer& in);  // as Http1ServerCodec::feed(Buffer&)
  // The upstream closed: completes a close-delimited response; a response cut short is an error.
  bool finish();
  CodecState state() const;

  // Always written as HTTP/1.1 with "host: <authority>"; Content-Length when set, else chunked
  // when head.chunked, else no body. "connection: close" when !head.keep_alive.
  void encode_head(const RequestHead& head, buffer::Buffer& out);
  bool encode_body(const uint8_t* data, size_t len, buffer::Buffer& out);
  bool encode_body(buffer::Buffer& data, buffer::Buffer& out);
  bool encode_end(buffer::Buffer& out, const HeaderMap* trailers = nullptr);

 private:
  std::unique_ptr<detail::Http1Parser> parser_;
  std::unique_ptr<detail::BodyEncoder> encoder_;
};

}  // namespace wp::http
