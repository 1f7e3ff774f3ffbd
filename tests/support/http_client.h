#pragma once
// HTTP inside one HBONE tunnel of the test client (tests/support/hbone_client.h), for L7 tests:
// HTTP/1.1 (sequential keep-alive requests, raw bytes for pipelining and smuggling attempts) and
// h2c (many concurrent streams), both parsed with the project's own codecs. Each blocking call
// runs the client's loop until it is done or its timeout passes. The tunnel must outlive the
// connection object; one connection object per tunnel.
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/hbone_client.h"
#include "waypoint/http/h2c_codec.h"
#include "waypoint/http/http1_codec.h"

namespace wp::testing {

// Request header fields, in order (brace-initializable: {{"x-status", "503"}}).
using Fields = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;  // 0: no (final) response head arrived
  http::HeaderMap headers;
  std::string body;
  http::HeaderMap trailers;
  bool complete = false;    // the whole message arrived
  uint32_t reset_code = 0;  // h2c: the stream's close error code (RST_STREAM), 0 when it ended cleanly
  std::string header(std::string_view name) const;  // first value, "" when absent
};

struct RequestOptions {
  std::chrono::milliseconds timeout = std::chrono::seconds(10);
  bool chunked = false;  // HTTP/1.1: send the body chunked (one chunk) instead of with Content-Length
  bool close = false;    // HTTP/1.1: "connection: close"
};

class Http1Conn final : private http::Http1ClientCallbacks {
 public:
  Http1Conn(HboneTestClient& client, TestTunnel& tunnel);
  ~Http1Conn() override;
  Http1Conn(const Http1Conn&) = delete;
  Http1Conn& operator=(const Http1Conn&) = delete;

  // Sends one request and waits for its response. Host: the "host" field of `headers`, else
  // "svc". The body goes with Content-Length (none for an empty body on GET/HEAD/DELETE/OPTIONS).
  // On timeout, a closed tunnel or a parse error the response is returned as far as it arrived
  // (complete == false).
  HttpResponse request(const std::string& method, const std::string& path, const Fields& headers = {},
                       const std::string& body = "", const RequestOptions& opts = {});

  // Raw bytes into the tunnel (several requests, smuggling attempts...). Their responses are
  // parsed as answers to non-HEAD requests.
  void send_raw(const std::string& bytes);
  // Waits for n more responses (or the tunnel's end, a parse error, the timeout); returns those
  // that arrived, in order, plus a last incomplete one if one had started.
  std::vector<HttpResponse> read_responses(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // The far end ended the tunnel (EOF, reset, or the CONNECT was refused).
  bool closed() const { return tunnel_.eof || tunnel_.closed || tunnel_.failed; }
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The response parser's error ("" when none): the far end sent something that is not HTTP/1.1.
  const std::string& error() const { return error_; }
  TestTunnel& tunnel() { return tunnel_; }

 private:
  void on_bytes(const uint8_t* data, size_t len);
  void expect_one();  // registers one more expected (non-HEAD) response with the codec
  bool wait_tunnel(std::chrono::milliseconds timeout);
  HttpResponse take_partial();

  // Http1ClientCallbacks
  void on_head(http::ResponseHead&& head) override;
  void on_body(buffer::Buffer& data) override;
  void on_trailers(http::HeaderMap&& trailers) override;
  void on_message_complete() override;
  void on_error(const http::CodecError& error) override;

  HboneTestClient& client_;
  TestTunnel& tunnel_;
  http::Http1ClientCodec codec_;
  size_t expected_ = 0;  // responses registered with the codec and not yet complete
  bool raw_ = false;     // raw bytes were sent: keep one response expected at all times
  HttpResponse current_;
  std::deque<HttpResponse> ready_;
  std::string error_;
};

class H2cConn final : private http::H2cClientCallbacks {
 public:
  // Sends the client preface at once (queued until the tunnel is up).
  H2cConn(HboneTestClient& client, TestTunnel& tunnel, const http::H2cSettings& settings = {});
  ~H2cConn() override;
  H2cConn(const H2cConn&) = delete;
  H2cConn& operator=(const H2cConn&) = delete;

  // Opens a stream: HEADERS (:authority = the "host" field, else "svc"), then the body with
  // END_STREAM. Returns the stream id, or -1 when no stream can be opened now (the server's
  // concurrency limit, GOAWAY, a failed session).
  int32_t start(const std::string& method, const std::string& path, const Fields& headers = {},
                const std::string& body = "");
  // The response of a stream so far (complete once it ended; reset_code when it was reset).
  HttpResponse& response(int32_t id);
  // The stream is gone (complete, reset, or the tunnel ended).
  bool done(int32_t id) const;
  // Runs the loop until every stream in ids is done; false on timeout.
  bool run_until_done(const std::vector<int32_t>& ids, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // start + run_until_done + response.
  HttpResponse request(const std::string& method, const std::string& path, const Fields& headers = {},
                       const std::string& body = "", std::chrono::milliseconds timeout = std::chrono::seconds(10));

  bool closed() const { return tunnel_.eof || tunnel_.closed || tunnel_.failed; }
  const std::string& error() const { return error_; }  // session error ("" when none)
  http::H2cClientCodec& codec() { return codec_; }
  TestTunnel& tunnel() { return tunnel_; }

 private:
  struct StreamState {
    HttpResponse response;
    bool closed = false;
  };
  void flush();

  // H2cClientCallbacks
  void on_response(int32_t stream, http::ResponseHead&& head) override;
  void on_response_body(int32_t stream, buffer::Buffer& data) override;
  void on_response_trailers(int32_t stream, http::HeaderMap&& trailers) override;
  void on_response_end(int32_t stream) override;
  void on_stream_closed(int32_t stream, uint32_t error_code) override;
  void on_error(const http::CodecError& error) override;

  HboneTestClient& client_;
  TestTunnel& tunnel_;
  http::H2cClientCodec codec_;
  std::map<int32_t, StreamState> streams_;
  std::string error_;
};

}  // namespace wp::testing
