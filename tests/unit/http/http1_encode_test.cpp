// HeaderMap and HTTP/1.1 serialization: framing choices, hop-by-hop removal, round trips.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "support/buffer_text.h"
#include "waypoint/http/http1_codec.h"

namespace {

using namespace wp::http;

std::string drain(wp::buffer::Buffer& b) {
  std::string s(b.length(), '\0');
  b.copy_out(s.data(), s.size());
  b.clear();
  return s;
}

const uint8_t* bytes(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

struct ServerSink : Http1ServerCallbacks {
  std::vector<RequestHead> heads;
  std::string body;
  std::vector<HeaderMap> trailers;
  size_t completes = 0;
  std::vector<CodecError> errors;
  void on_head(RequestHead&& h) override { heads.push_back(std::move(h)); }
  void on_body(wp::buffer::Buffer& b) override { body += wp::test::take_text(b); }
  void on_trailers(HeaderMap&& t) override { trailers.push_back(std::move(t)); }
  void on_message_complete() override { ++completes; }
  void on_error(const CodecError& e) override { errors.push_back(e); }
};

struct ClientSink : Http1ClientCallbacks {
  std::vector<ResponseHead> heads;
  std::string body;
  std::vector<HeaderMap> trailers;
  size_t completes = 0;
  std::vector<CodecError> errors;
  void on_head(ResponseHead&& h) override { heads.push_back(std::move(h)); }
  void on_body(wp::buffer::Buffer& b) override { body += wp::test::take_text(b); }
  void on_trailers(HeaderMap&& t) override { trailers.push_back(std::move(t)); }
  void on_message_complete() override { ++completes; }
  void on_error(const CodecError& e) override { errors.push_back(e); }
};

// Parses one request with a fresh server codec (the codec answers later encodes for it).
void parse_request(Http1ServerCodec& codec, const std::string& in) {
  size_t n = codec.feed(bytes(in), in.size());
  REQUIRE(n == in.size());
  codec.resume();
}

}  // namespace

TEST_CASE("http: HeaderMap keeps order, lowercases names and counts bytes") {
  HeaderMap h;
  h.add("Content-Type", "text/plain");
  h.add("X-A", "1");
  h.add("x-a", "2");
  CHECK(h.size() == 3);
  CHECK(h[0].name == "content-type");
  CHECK(h.get("CONTENT-TYPE") == "text/plain");
  CHECK(h.get_all("X-a") == std::vector<std::string_view>{"1", "2"});
  CHECK(h.count("x-a") == 2);
  CHECK(h.byte_size() == 12 + 10 + 3 + 1 + 3 + 1);
  h.set("X-A", "3");
  CHECK(h.get_all("x-a") == std::vector<std::string_view>{"3"});
  CHECK(h[1].name == "x-a");
  CHECK(h.byte_size() == 12 + 10 + 3 + 1);
  h.set("new", "v");
  CHECK(h[2].name == "new");
  CHECK(h.remove("X-A") == 1);
  CHECK_FALSE(h.get("x-a"));
  CHECK(h.byte_size() == 12 + 10 + 3 + 1);
  h.clear();
  CHECK(h.empty());
  CHECK(h.byte_size() == 0);
  CHECK(std::string(reason_phrase(431)) == "Request Header Fields Too Large");
}

TEST_CASE("http: response framing follows the request") {
  wp::buffer::Buffer out;
  SECTION("content-length when known") {
    ServerSink s;
    Http1ServerCodec codec(s);
    parse_request(codec, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    ResponseHead r;
    r.content_length = 3;
    r.headers.add("Content-Type", "text/plain");
    r.headers.add("Content-Length", "999");  // the model's field decides, not a stale header
    codec.encode_head(r, out);
    CHECK(codec.encode_body(bytes("abc"), 3, out));
    CHECK_FALSE(codec.encode_body(bytes("d"), 1, out));  // over the announced length
    CHECK(codec.encode_end(out));
    CHECK(drain(out) == "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nabc");
    CHECK_FALSE(codec.close_after_response());
  }
  SECTION("chunked for an HTTP/1.1 client, with trailers") {
    ServerSink s;
    Http1ServerCodec codec(s);
    parse_request(codec, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    ResponseHead r;
    r.status = 201;
    r.headers.add("Trailer", "x-checksum");
    codec.encode_head(r, out);
    codec.encode_body(bytes("hello"), 5, out);
    codec.encode_body(bytes(""), 0, out);  // an empty piece must not end the body
    codec.encode_body(bytes("0123456789abcdef!"), 17, out);
    HeaderMap t;
    t.add("X-Checksum", "42");
    t.add("Content-Length", "5");  // never allowed in trailers
    CHECK(codec.encode_end(out, &t));
    CHECK(drain(out) ==
          "HTTP/1.1 201 Created\r\ntrailer: x-checksum\r\ntransfer-encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n11\r\n0123456789abcdef!\r\n0\r\nx-checksum: 42\r\n\r\n");
  }
  SECTION("close-delimited for an HTTP/1.0 client, keep-alive when it asked") {
    ServerSink s;
    Http1ServerCodec codec(s);
    parse_request(codec, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ResponseHead r;
    r.headers.add("Trailer", "x");  // no chunked: the Trailer field goes too
    codec.encode_head(r, out);
    codec.encode_body(bytes("abc"), 3, out);
    codec.encode_end(out);
    CHECK(drain(out) == "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc");
    CHECK(codec.close_after_response());

    ServerSink s2;
    Http1ServerCodec codec2(s2);
    parse_request(codec2, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    r.content_length = 0;
    codec2.encode_head(r, out);
    codec2.encode_end(out);
    CHECK(drain(out) == "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n");
    CHECK_FALSE(codec2.close_after_response());
  }
  SECTION("no body for HEAD, 204 and 304") {
    ServerSink s;
    Http1ServerCodec codec(s);
    parse_request(codec, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    parse_request(codec, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    parse_request(codec, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    ResponseHead r;
    r.content_length = 1234;
    codec.encode_head(r, out);
    CHECK_FALSE(codec.encode_body(bytes("x"), 1, out));
    codec.encode_end(out);
    CHECK(drain(out) == "HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n");
    ResponseHead nc;
    nc.status = 204;
    nc.content_length = 5;
    codec.encode_head(nc, out);
    codec.encode_end(out);
    CHECK(drain(out) == "HTTP/1.1 204 No Content\r\n\r\n");
    ResponseHead nm;
    nm.status = 304;
    codec.encode_head(nm, out);
    codec.encode_end(out);
    CHECK(drain(out) == "HTTP/1.1 304 Not Modified\r\n\r\n");
  }
  SECTION("a request with Connection: close gets connection: close") {
    ServerSink s;
    Http1ServerCodec codec(s);
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    codec.feed(bytes(in), in.size());
    ResponseHead r;
    r.content_length = 0;
    codec.encode_head(r, out);
    CHECK(drain(out) == "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  }
}

TEST_CASE("http: hop-by-hop fields are dropped on re-serialization") {
  ServerSink s;
  Http1ServerCodec server(s);
  parse_request(server,
                "POST /x HTTP/1.1\r\nHost: svc.ns:80\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: 5\r\n"
                "Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Private: secret\r\n"
                "Transfer-Encoding: chunked\r\nTrailer: x-t\r\nX-Keep: yes\r\n\r\n"
                "3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n");
  REQUIRE(s.heads.size() == 1);
  REQUIRE(s.completes == 1);
  const RequestHead& h = s.heads[0];
  CHECK(h.chunked);
  CHECK(h.authority == "svc.ns:80");
  CHECK(h.headers.has("x-private"));  // the parsed model keeps everything

  ClientSink c;
  Http1ClientCodec client(c);
  wp::buffer::Buffer out;
  client.encode_head(h, out);
  client.encode_body(bytes(s.body), s.body.size(), out);
  client.encode_end(out, &s.trailers.at(0));
  CHECK(drain(out) ==
        "POST /x HTTP/1.1\r\nhost: svc.ns:80\r\ntrailer: x-t\r\nx-keep: yes\r\ntransfer-encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n");

  // The same head with a known length: content-length framing, no Trailer field.
  RequestHead h2 = h;
  h2.chunked = false;
  h2.content_length = 3;
  h2.keep_alive = false;
  client.encode_head(h2, out);
  client.encode_body(bytes("abc"), 3, out);
  CHECK(client.encode_end(out, &s.trailers.at(0)));
  CHECK(drain(out) ==
        "POST /x HTTP/1.1\r\nhost: svc.ns:80\r\nx-keep: yes\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc");

  // Fields with CR/LF/NUL (e.g. set by a filter) are never written.
  RequestHead bad;
  bad.method = "GET";
  bad.target.assign(1, '/');
  bad.authority.assign(1, 'a');
  bad.headers.add("x-inject", "a\r\nX-Evil: 1");
  bad.headers.add("x-ok", "fine");
  client.encode_head(bad, out);
  client.encode_end(out);
  CHECK(drain(out) == "GET / HTTP/1.1\r\nhost: a\r\nx-ok: fine\r\n\r\n");
}

TEST_CASE("http: request serialize -> parse -> same model") {
  RequestHead m;
  m.method = "PUT";
  m.target = "/api/v1/items?id=7&x=%20";
  m.authority = "reviews.default.svc.cluster.local:9080";
  m.headers.add("x-request-id", "abc");
  m.headers.add("accept", "a/b, c/d");
  m.headers.add("x-multi", "1");
  m.headers.add("x-multi", "2");
  m.content_length = 11;

  ClientSink c;
  Http1ClientCodec client(c);
  wp::buffer::Buffer out;
  client.encode_head(m, out);
  client.encode_body(bytes("hello world"), 11, out);
  client.encode_end(out);
  std::string wire = drain(out);

  ServerSink s;
  Http1ServerCodec server(s);
  REQUIRE(server.feed(bytes(wire), wire.size()) == wire.size());
  REQUIRE(s.heads.size() == 1);
  RequestHead p = std::move(s.heads[0]);
  CHECK(p.method == m.method);
  CHECK(p.target == m.target);
  CHECK(p.authority == m.authority);
  CHECK(p.version == Version::Http11);
  CHECK(p.content_length == m.content_length);
  CHECK_FALSE(p.chunked);
  CHECK(p.keep_alive);
  CHECK(s.body == "hello world");
  // The parsed fields are the model's plus the framing and Host the encoder wrote.
  HeaderMap expected;
  expected.add("host", m.authority);
  for (const Header& f : m.headers) {
    expected.add(f.name, f.value);
  }
  expected.add("content-length", "11");
  CHECK(p.headers == expected);
  // And re-serializing the parsed model gives the same bytes (a fixpoint).
  client.encode_head(p, out);
  client.encode_body(bytes("hello world"), 11, out);
  client.encode_end(out);
  CHECK(drain(out) == wire);
}

TEST_CASE("http: response serialize -> parse -> same model, chunked 1 MiB with trailers") {
  ServerSink s;
  Http1ServerCodec server(s);
  parse_request(server, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
  ResponseHead m;
  m.status = 200;
  m.reason = "Fine";
  m.headers.add("content-type", "application/octet-stream");
  m.headers.add("x-envoy-upstream-service-time", "3");
  std::string body(1 << 20, 'q');
  for (size_t i = 0; i < body.size(); i += 4093) {
    body[i] = static_cast<char>('a' + i % 26);
  }
  wp::buffer::Buffer out;
  server.encode_head(m, out);
  for (size_t off = 0; off < body.size(); off += 10000) {
    size_t n = std::min<size_t>(10000, body.size() - off);
    REQUIRE(server.encode_body(bytes(body) + off, n, out));
  }
  HeaderMap t;
  t.add("grpc-status", "0");
  server.encode_end(out, &t);
  std::string wire = drain(out);

  ClientSink c;
  Http1ClientCodec client(c);
  RequestHead req;
  req.method = "GET";
  req.target = "/big";
  req.authority = "a";
  client.encode_head(req, out);
  client.encode_end(out);
  out.clear();
  // Fed in 1000-byte reads.
  for (size_t off = 0; off < wire.size(); off += 1000) {
    size_t n = std::min<size_t>(1000, wire.size() - off);
    REQUIRE(client.feed(bytes(wire) + off, n) == n);
  }
  REQUIRE(c.errors.empty());
  REQUIRE(c.heads.size() == 1);
  CHECK(c.heads[0].status == 200);
  CHECK(c.heads[0].reason == "Fine");
  CHECK(c.heads[0].chunked);
  CHECK(c.heads[0].headers.get("content-type") == "application/octet-stream");
  CHECK(c.body == body);
  REQUIRE(c.trailers.size() == 1);
  CHECK(c.trailers[0].get("grpc-status") == "0");
  CHECK(c.completes == 1);
}

TEST_CASE("http: a client codec waits for the final response after 100 Continue") {
  ClientSink c;
  Http1ClientCodec client(c);
  wp::buffer::Buffer out;
  RequestHead req;
  req.method = "POST";
  req.target.assign(1, '/');
  req.authority.assign(1, 'a');
  req.content_length = 2;
  req.headers.add("expect", "100-continue");
  client.encode_head(req, out);
  CHECK(drain(out) == "POST / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n");
  std::string in = "HTTP/1.1 100 Continue\r\n\r\n";
  CHECK(client.feed(bytes(in), in.size()) == in.size());
  REQUIRE(c.heads.size() == 1);
  CHECK(c.heads[0].status == 100);
  CHECK(c.completes == 0);
  CHECK(client.encode_body(bytes("hi"), 2, out));
  CHECK(client.encode_end(out));
  in = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  CHECK(client.feed(bytes(in), in.size()) == in.size());
  CHECK(c.heads.size() == 2);
  CHECK(c.completes == 1);
  CHECK(c.errors.empty());
}
