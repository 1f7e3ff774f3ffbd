#include "support/http_client.h"

namespace wp::testing {
namespace {

// Splits `headers` into the authority (the "host" field, else "svc") and the other fields.
void fill_request(http::RequestHead& head, const std::string& method, const std::string& path, const Fields& headers) {
  head.method = method;
  head.target = path;
  head.authority = "svc";
  for (const auto& [name, value] : headers) {
    if (http::iequals(name, "host")) {
      head.authority = value;
    } else {
      head.headers.add(name, value);
    }
  }
}

bool bodyless_method(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "DELETE" || method == "OPTIONS";
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  auto v = headers.get(name);
  return v ? std::string(*v) : std::string();
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1

Http1Conn::Http1Conn(HboneTestClient& client, TestTunnel& tunnel) : client_(client), tunnel_(tunnel), codec_(*this) {
  tunnel_.on_receive = [this](const uint8_t* data, size_t len) { on_bytes(data, len); };
  tunnel_.on_far_eof = [this] { codec_.finish(); };  // completes a close-delimited response
  if (!tunnel_.received.empty()) {
    std::string early;
    early.swap(tunnel_.received);
    on_bytes(reinterpret_cast<const uint8_t*>(early.data()), early.size());
  }
}

Http1Conn::~Http1Conn() {
  tunnel_.on_receive = nullptr;
  tunnel_.on_far_eof = nullptr;
}

void Http1Conn::expect_one() {
  // The codec matches responses to the requests it encoded: encode a request nobody sends.
  http::RequestHead dummy;
  dummy.method = "GET";
  dummy.target.assign(1, '/');
  dummy.authority = "svc";
  buffer::Buffer scratch;
  codec_.encode_head(dummy, scratch);
  codec_.encode_end(scratch);
  ++expected_;
}

void Http1Conn::on_bytes(const uint8_t* data, size_t len) {
  if (raw_ && expected_ == 0) {
    expect_one();
  }
  codec_.feed(data, len);  // the client codec never pauses; after an error it refuses the rest
}

bool Http1Conn::wait_tunnel(std::chrono::milliseconds timeout) {
  client_.run_until([this] { return tunnel_.done() || tunnel_.closed; }, timeout);
  return tunnel_.established() && !tunnel_.closed;
}

HttpResponse Http1Conn::take_partial() {
  HttpResponse r = std::move(current_);
  current_ = HttpResponse();
  return r;
}

HttpResponse Http1Conn::request(const std::string& method, const std::string& path, const Fields& headers,
                                const std::string& body, const RequestOptions& opts) {
  auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  if (!wait_tunnel(opts.timeout)) {
    return {};
  }
  http::RequestHead head;
  fill_request(head, method, path, headers);
  if (opts.chunked) {
    head.chunked = true;
  } else if (!body.empty() || !bodyless_method(method)) {
    head.content_length = body.size();
  }
  head.keep_alive = !opts.close;
  buffer::Buffer out;
  codec_.encode_head(head, out);
  ++expected_;
  const auto* p = reinterpret_cast<const uint8_t*>(body.data());
  for (size_t off = 0; off < body.size(); off += 65536) {
    codec_.encode_body(p + off, std::min<size_t>(65536, body.size() - off), out);
  }
  codec_.encode_end(out);
  tunnel_.send(out);

  size_t want = ready_.size() + 1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  client_.run_until([&] { return ready_.size() >= want || closed() || codec_.state() == http::CodecState::Error; },
                    std::max(left, std::chrono::milliseconds(1)));
  if (ready_.empty()) {
    return take_partial();
  }
  HttpResponse r = std::move(ready_.front());
  ready_.pop_front();
  return r;
}

void Http1Conn::send_raw(const std::string& bytes) {
  raw_ = true;
  if (expected_ == 0) {
    expect_one();
  }
  tunnel_.send(bytes);
}

std::vector<HttpResponse> Http1Conn::read_responses(size_t n, std::chrono::milliseconds timeout) {
  client_.run_until([&] { return ready_.size() >= n || closed() || codec_.state() == http::CodecState::Error; },
                    timeout);
  std::vector<HttpResponse> out;
  while (out.size() < n && !ready_.empty()) {
    out.push_back(std::move(ready_.front()));
    ready_.pop_front();
  }
  if (out.size() < n && current_.status != 0) {
    out.push_back(take_partial());
  }
  return out;
}

bool Http1Conn::wait_closed(std::chrono::milliseconds timeout) {
  return client_.run_until([this] { return closed(); }, timeout);
}

void Http1Conn::on_head(http::ResponseHead&& head) {
  if (head.status < 200) {
    return;  // 1xx: the final response follows
  }
  current_ = HttpResponse();
  current_.status = head.status;
  current_.headers = std::move(head.headers);
}

void Http1Conn::on_body(buffer::Buffer& data) {
  data.for_each([&](const uint8_t* p, size_t n) { current_.body.append(reinterpret_cast<const char*>(p), n); });
  data.clear();
}

void Http1Conn::on_trailers(http::HeaderMap&& trailers) {
  current_.trailers = std::move(trailers);
}

void Http1Conn::on_message_complete() {
  current_.complete = true;
  ready_.push_back(take_partial());
  if (expected_ > 0) {
    --expected_;
  }
  if (raw_ && expected_ == 0) {
    expect_one();  // before the next head is parsed
  }
}

void Http1Conn::on_error(const http::CodecError& error) {
  error_ = error.reason;
}

// ---------------------------------------------------------------------------------------------
// h2c

H2cConn::H2cConn(HboneTestClient& client, TestTunnel& tunnel, const http::H2cSettings& settings)
    : client_(client), tunnel_(tunnel), codec_(*this, settings) {
  tunnel_.on_receive = [this](const uint8_t* data, size_t len) {
    codec_.feed(data, len);
    flush();
  };
  tunnel_.on_far_eof = [this] {
    codec_.finish();
    flush();
  };
  flush();  // the preface and our SETTINGS
}

H2cConn::~H2cConn() {
  tunnel_.on_receive = nullptr;
  tunnel_.on_far_eof = nullptr;
}

void H2cConn::flush() {
  buffer::Buffer out;
  codec_.output(out);
  if (!out.empty()) {
    tunnel_.send(out);
  }
}

int32_t H2cConn::start(const std::string& method, const std::string& path, const Fields& headers,
                       const std::string& body) {
  http::RequestHead head;
  fill_request(head, method, path, headers);
  if (!body.empty() || !bodyless_method(method)) {
    head.content_length = body.size();
  }
  int32_t id = codec_.submit_request(head, body.empty());
  if (id < 0) {
    return id;
  }
  streams_[id];
  if (!body.empty()) {
    buffer::Buffer b;
    b.append(body.data(), body.size());
    codec_.send_body(id, b, true);
  }
  flush();
  return id;
}

HttpResponse& H2cConn::response(int32_t id) {
  return streams_[id].response;
}

bool H2cConn::done(int32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() || it->second.closed || tunnel_.closed || tunnel_.failed;
}

bool H2cConn::run_until_done(const std::vector<int32_t>& ids, std::chrono::milliseconds timeout) {
  return client_.run_until(
      [&] {
        for (int32_t id : ids) {
          if (!done(id)) {
            return false;
          }
        }
        return true;
      },
      timeout);
}

HttpResponse H2cConn::request(const std::string& method, const std::string& path, const Fields& headers,
                              const std::string& body, std::chrono::milliseconds timeout) {
  int32_t id = start(method, path, headers, body);
  if (id < 0) {
    return {};
  }
  run_until_done({id}, timeout);
  return response(id);
}

void H2cConn::on_response(int32_t stream, http::ResponseHead&& head) {
  HttpResponse& r = streams_[stream].response;
  r.status = head.status;
  r.headers = std::move(head.headers);
}

void H2cConn::on_response_body(int32_t stream, buffer::Buffer& data) {
  const size_t len = data.length();
  data.for_each(
      [&](const uint8_t* p, size_t n) { streams_[stream].response.body.append(reinterpret_cast<const char*>(p), n); });
  data.clear();
  codec_.consume(stream, len);
}

void H2cConn::on_response_trailers(int32_t stream, http::HeaderMap&& trailers) {
  streams_[stream].response.trailers = std::move(trailers);
}

void H2cConn::on_response_end(int32_t stream) {
  streams_[stream].response.complete = true;
}

void H2cConn::on_stream_closed(int32_t stream, uint32_t error_code) {
  StreamState& s = streams_[stream];
  s.closed = true;
  s.response.reset_code = error_code;
}

void H2cConn::on_error(const http::CodecError& error) {
  error_ = error.reason;
}

}  // namespace wp::testing
