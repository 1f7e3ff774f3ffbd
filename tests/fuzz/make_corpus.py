#!/usr/bin/env python3
"""Writes the seed corpora of the codec fuzz targets (http1_server, http1_client, h2c_server,
h2c_client) under tests/fuzz/corpus/. Each seed is the driver's option bytes (see the comment at the
top of each *_fuzz.cpp) followed by the byte stream; HTTP/2 frames and HPACK blocks are built here
(literal fields, a few static-table indexes, incremental indexing), never copied from elsewhere.

  python3 tests/fuzz/make_corpus.py          # rewrites the four directories

Files found by fuzzing and added by hand sit next to these under other names (found-*): they are
kept, only the names written here are replaced.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- HTTP/1.1 ------------------------------------------------------------------------------------

def h1_server(name, stream, flags=0, seed=0):
    """flags: &3 split, &4 answer from on_head, &8 send 100 Continue, &16 small limits."""
    write("http1_server", name, bytes([flags, seed]) + stream)


def h1_client(name, stream, flags=0, kinds=0, seed=0):
    """flags: &3 requests-1, &4 one more request per response, &0x18 split, &0x20 small limits.
    kinds: 2 bits per request, 0 GET, 1 HEAD, 2 POST + Content-Length, 3 POST chunked."""
    write("http1_client", name, bytes([flags, kinds, seed]) + stream)


def http1_server_seeds():
    get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    h1_server("get", get)
    h1_server("get-bytewise", b"GET /index.html?q=1 HTTP/1.1\r\nHost: svc.local:8080\r\nAccept: */*\r\n\r\n", 1)
    h1_server("post-content-length", b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 3, 7)
    h1_server("chunked-trailers",
              b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
              b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n", 2, 3)
    h1_server("chunked-upper-case", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
              b"A\r\n0123456789\r\n0\r\n\r\n", 3)
    pipelined = (get + b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                 b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n"
                 b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
                 b"PUT /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
                 b"DELETE /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    for seed in (0, 1, 2, 5):
        h1_server("pipelined-%d" % seed, pipelined, 2 if seed & 1 else 3, seed)
    h1_server("pipelined-early-answer", pipelined, 4 | 3, 9)
    h1_server("http10-keep-alive",
              b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nHost: a\r\n\r\n", 0, 1)
    h1_server("connection-close-then-more", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + get, 0, 2)
    h1_server("expect-continue",
              b"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody" + get, 8 | 2, 4)
    h1_server("expect-unknown", b"POST /e HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx")
    h1_server("leading-crlf", b"\r\n\r\n" + get)
    h1_server("head", b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n" * 3, 0, 6)
    h1_server("upgrade-ignored", b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
              b"\x81\x05hello" + get)
    h1_server("incomplete-body", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    h1_server("incomplete-head", b"GET / HTTP/1.1\r\nHost: a\r\nAcc")
    # Refused: framing ambiguities (request smuggling) and malformed heads.
    smuggling = {
        "smuggle-cl-te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        "smuggle-te-cl": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n"
                         b"0\r\n\r\nX",
        "smuggle-dup-cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "smuggle-cl-list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
        "smuggle-cl-plus": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
        "smuggle-te-identity": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "smuggle-te-gzip-chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "smuggle-te-twice": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"0\r\n\r\n",
        "smuggle-te-space-before-colon": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "smuggle-te-http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "smuggle-obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n",
        "smuggle-bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
        "smuggle-bare-cr": b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
        "smuggle-chunk-size-space": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        "smuggle-chunk-size-0x": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        "smuggle-chunk-size-long": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   b"00000000000000005\r\nhello\r\n0\r\n\r\n",
        "smuggle-chunk-no-crlf": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        "smuggle-chunk-lf-only": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        "smuggle-trailer-cl": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n",
        "smuggle-nul-value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
        "smuggle-space-in-name": b"GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n",
        "smuggle-empty-name": b"GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n",
        "bad-absolute-form": b"GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "bad-version-12": b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        "bad-version-09": b"GET /\r\n\r\n",
        "bad-missing-host": b"GET / HTTP/1.1\r\n\r\n",
        "bad-dup-host": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "bad-host-chars": b"GET / HTTP/1.1\r\nHost: a b@c\r\n\r\n",
        "bad-method": b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n",
        "connect-501": b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    }
    for name, data in sorted(smuggling.items()):
        h1_server(name, get + data, 2, len(name))
    h1_server("small-limits-431", b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(9))
              + b"\r\n", 16)
    h1_server("small-limits-414", b"GET /" + b"a" * 80 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 16)
    h1_server("small-limits-head-bytes", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 600 + b"\r\n\r\n", 16 | 3)


def http1_client_seeds():
    ok5 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    h1_client("200-content-length", ok5)
    h1_client("200-bytewise", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", 0x08)
    h1_client("chunked-trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"4;a=b\r\nwiki\r\n5\r\npedia\r\n0\r\nx-sum: 9\r\nx-other: 1\r\n\r\n", 0x10)
    h1_client("close-delimited", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 0x18)
    h1_client("http10-close-delimited", b"HTTP/1.0 200 OK\r\n\r\nold style")
    h1_client("http10-keep-alive", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx" + ok5, 1)
    h1_client("head-then-get", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + ok5, 1, 0b0001)
    h1_client("head-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + ok5, 1, 0b0001)
    h1_client("100-continue", b"HTTP/1.1 100 Continue\r\n\r\n" + ok5, 0, 0b10)
    h1_client("103-then-204", b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
              b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 0x10)
    h1_client("1xx-with-length", b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n" + ok5)
    h1_client("304-with-length", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n" + ok5, 1)
    pipelined = (ok5 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                 b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnot\r\n0\r\n\r\n"
                 b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye")
    for kinds in (0b00000000, 0b11100100, 0b01010101):
        h1_client("pipelined-%02x" % kinds, pipelined, 3 | 0x10, kinds, kinds & 0x3f)
    h1_client("reuse", ok5 * 5, 4 | 0x18, 0, 3)
    h1_client("response-without-request", ok5 + ok5)
    h1_client("connection-close-then-more", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx" + ok5, 1)
    h1_client("truncated-body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    h1_client("truncated-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    h1_client("status-999", b"HTTP/1.1 999 Whatever\r\nContent-Length: 0\r\n\r\n")
    h1_client("empty-reason", b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")
    bad = {
        "bad-101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        "bad-cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "bad-dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "bad-te-identity": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "bad-version-2": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "bad-bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        "bad-obs-fold": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "bad-status-line": b"HTTP/1.1 20 OK\r\n\r\n",
        "bad-trailer-te": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: x\r\n\r\n",
    }
    for name, data in sorted(bad.items()):
        h1_client(name, data, 0x10, 0, len(name))
    h1_client("small-limits-431", b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10)) + b"\r\n",
              0x20)


# --- HTTP/2 --------------------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(type_, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([type_, flags]) + struct.pack(">I", stream) + payload


def settings(*pairs):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


SETTINGS_ACK = frame(SETTINGS, ACK, 0)


def hpack_int(value, prefix_bits, first):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack(fields):
    """fields: (name, value) pairs as literals without indexing; an int is a static-table index;
    ("+", name, value) is a literal with incremental indexing."""
    out = b""
    for f in fields:
        if isinstance(f, int):
            out += hpack_int(f, 7, 0x80)
        elif f[0] == "+":
            name, value = f[1].encode(), f[2].encode()
            out += b"\x40" + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value
        else:
            name, value = f[0].encode(), f[1].encode()
            out += b"\x00" + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value
    return out


def headers(stream, fields, end_stream=False, end_headers=True):
    return frame(HEADERS, (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0), stream,
                 hpack(fields))


def data(stream, payload, end_stream=False):
    return frame(DATA, END_STREAM if end_stream else 0, stream, payload)


def rst(stream, code):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def window_update(stream, increment):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def goaway(last, code, debug=b""):
    return frame(GOAWAY, 0, 0, struct.pack(">II", last, code) + debug)


def ping(payload=b"12345678", ack=False):
    return frame(PING, ACK if ack else 0, 0, payload)


def request(method="GET", path="/", authority="svc.local", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)] + list(extra)


def h2_server(name, stream, flags=0, seed=0):
    """flags: &1 no automatic preface, &2 consume in rounds, &0x0c split, &0x10 small settings,
    &0x20 GOAWAY after the first request, &0x40 destroy without finish()."""
    write("h2c_server", name, bytes([flags, seed]) + stream)


def h2_client(name, stream, flags=0, seed=0):
    """flags: &3 requests-1, &4 consume in rounds, &0x18 split, &0x20 small settings,
    &0x40 destroy without finish(), &0x80 a new request on each on_capacity."""
    write("h2c_client", name, bytes([flags, seed]) + stream)


def h2c_server_seeds():
    hello = settings((3, 100), (4, 65535)) + SETTINGS_ACK
    get1 = headers(1, request(), end_stream=True)
    for seed in range(6):  # the driver's answer differs with the seed
        h2_server("get-%d" % seed, hello + get1, 0, seed)
    h2_server("get-static-indexes", hello + frame(HEADERS, END_STREAM | END_HEADERS, 1, hpack([0x82, 0x86, 0x84, (
        ":authority", "a")])), 0x04, 1)
    post = headers(1, request("POST", "/up", extra=[("content-length", "5"), ("content-type", "text/plain")]))
    for seed in range(4):
        h2_server("post-body-%d" % seed, hello + post + data(1, b"hel") + data(1, b"lo", True), 2 if seed & 1 else 0,
                  seed + 10)
    h2_server("post-trailers", hello + headers(1, request("POST", "/t", extra=[("te", "trailers")])) +
              data(1, b"abc") + headers(1, [("grpc-status", "0")], end_stream=True), 0x08, 3)
    multi = hello
    for sid in (1, 3, 5):
        multi += headers(sid, request("POST", "/m%d" % sid))
    for sid in (5, 1, 3):
        multi += data(sid, b"x" * sid, True)
    for seed in range(3):
        h2_server("multi-streams-%d" % seed, multi, 0x0c, seed + 20)
    block = hpack(request(extra=[("x-long", "v" * 40)]))
    h2_server("continuation", hello + frame(HEADERS, END_STREAM, 1, block[:10]) + frame(CONTINUATION, 0, 1, block[10:30])
              + frame(CONTINUATION, END_HEADERS, 1, block[30:]), 0, 4)
    padded_block = hpack(request("POST"))
    h2_server("padded", hello + frame(HEADERS, PADDED | END_HEADERS, 1, b"\x03" + padded_block + b"\0\0\0") +
              frame(DATA, PADDED | END_STREAM, 1, b"\x02hi\0\0"), 0, 5)
    h2_server("priority-flag", hello + frame(HEADERS, PRIORITY_FLAG | END_HEADERS | END_STREAM, 1,
                                             struct.pack(">IB", 0, 15) + hpack(request())), 0, 6)
    h2_server("control-frames", hello + ping() + ping(b"abcdefgh", True) + frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 1))
              + window_update(0, 1000) + get1 + window_update(1, 5000), 0x04, 7)
    h2_server("client-reset", hello + headers(1, request("POST")) + data(1, b"partial") + rst(1, 8), 0, 8)
    h2_server("client-goaway", hello + get1 + goaway(0, 0) + headers(3, request(), True), 0, 9)
    h2_server("client-goaway-error", hello + get1 + goaway(0, 1, b"bye"), 0, 10)
    h2_server("bad-preface", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1)
    h2_server("preface-in-input", PREFACE + hello + get1, 1 | 0x0c, 11)
    h2_server("flow-control-violation", hello + headers(1, request("POST")) + data(1, b"z" * 300, True), 0x10, 12)
    h2_server("content-length-mismatch", hello + headers(1, request("POST", extra=[("content-length", "10")])) +
              data(1, b"abc", True) + headers(3, request(), True), 0, 13)
    h2_server("connection-header", hello + headers(1, request(extra=[("connection", "keep-alive")]), True) +
              headers(3, request(), True), 0, 14)
    h2_server("uppercase-name", hello + headers(1, request(extra=[("X-Upper", "1")]), True), 0, 15)
    h2_server("even-stream", hello + headers(2, request(), True), 0, 16)
    h2_server("data-on-idle-stream", hello + data(7, b"no", True), 0, 17)
    h2_server("header-list-431", hello + headers(1, request(extra=[("x-big", "b" * 300)]), True) +
              headers(3, request("POST", extra=[("x-big", "b" * 300)])) + data(3, b"body"), 0x10, 18)
    h2_server("max-concurrent", hello + b"".join(headers(s, request(), True) for s in (1, 3, 5, 7)), 0x10, 19)
    small_window = settings((4, 10)) + SETTINGS_ACK
    for seed in range(3):
        h2_server("small-peer-window-%d" % seed, small_window + headers(1, request("POST")) + data(1, b"x" * 50, True) +
                  window_update(0, 100000) + window_update(1, 100000) + window_update(1, 100000), 0x08, 30 + seed)
    h2_server("window-overflow", hello + get1 + window_update(0, 0x7fffffff), 0, 20)
    h2_server("settings-change", hello + get1 + settings((1, 0), (5, 32768), (4, 1 << 20), (6, 1000)), 0, 21)
    h2_server("settings-bad-window", hello + settings((4, 0x80000000)), 0, 22)
    h2_server("expect-continue", hello + headers(1, request("POST", extra=[("expect", "100-continue"),
                                                                            ("content-length", "2")])) +
              data(1, b"ok", True), 0, 23)
    h2_server("connect", hello + headers(1, [(":method", "CONNECT"), (":authority", "backend:443")]) + data(1, b"tls"), 0,
              24)
    h2_server("split-cookies", hello + headers(1, request(extra=[("cookie", "a=1"), ("cookie", "b=2")]), True), 0, 25)
    h2_server("dynamic-table", hello + headers(1, request() + [("+", "x-tenant", "blue")], True) +
              frame(HEADERS, END_STREAM | END_HEADERS, 3, hpack([0x82, 0x86, 0x84, ("+", ":authority", "a"), 63])), 0, 26)
    rapid = hello
    for sid in range(1, 41, 2):
        rapid += headers(sid, request(), False) + rst(sid, 8)
    h2_server("rapid-reset", rapid, 0, 27)
    h2_server("goaway-after-first", hello + headers(1, request(), True) + headers(3, request(), True), 0x20, 28)
    h2_server("destroy-open", hello + headers(1, request("POST")) + headers(3, request("POST")) + data(1, b"a"), 0x40, 29)
    h2_server("trailers-without-end", hello + headers(1, request("POST")) + data(1, b"a") +
              headers(1, [("x-t", "1")], end_stream=False), 0, 31)
    h2_server("push-promise-from-client", hello + frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\2" + hpack(request())), 0,
              32)


def h2c_client_seeds():
    hello = settings((3, 100), (4, 65535)) + SETTINGS_ACK
    ok = [(":status", "200")]
    h2_client("200-end-stream", hello + headers(1, ok, True))
    h2_client("200-static-index", hello + frame(HEADERS, END_STREAM | END_HEADERS, 1, hpack([0x88])), 0x08, 1)
    h2_client("200-body", hello + headers(1, ok + [("content-length", "5")]) + data(1, b"hel") + data(1, b"lo", True),
              0x10, 2)
    h2_client("interim-then-final", hello + headers(1, [(":status", "100")]) + headers(1, [(":status", "103"), (
        "link", "</a>")]) + headers(1, ok) + data(1, b"x", True), 0, 3)
    h2_client("trailers", hello + headers(1, ok) + data(1, b"body") + headers(1, [("grpc-status", "0")], True), 0, 4)
    h2_client("204", hello + headers(1, [(":status", "204")], True), 0, 5)
    h2_client("refused", hello + rst(1, 7), 0, 6)
    h2_client("goaway", hello + goaway(1, 0) + headers(1, ok, True), 1, 7)
    h2_client("goaway-error", hello + goaway(0, 2, b"internal"), 1, 8)
    h2_client("push-promise", hello + frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\2" + hpack(request())), 0, 9)
    h2_client("max-concurrent-1", settings((3, 1)) + SETTINGS_ACK + headers(1, ok, True) + headers(3, ok, True), 0x80 | 1,
              10)
    h2_client("unopened-stream", hello + headers(5, ok, True), 0, 11)
    h2_client("content-length-mismatch", hello + headers(1, ok + [("content-length", "10")]) + data(1, b"abc", True), 0,
              12)
    multi = hello + b"".join(headers(s, ok + [("content-length", "2")]) for s in (7, 5, 3, 1))
    multi += b"".join(data(s, b"ab", True) for s in (1, 3, 5, 7))
    for seed in range(4):
        h2_client("four-streams-%d" % seed, multi, 3 | (0x18 if seed & 1 else 0), 13 + seed)
    h2_client("reset-no-error-after-partial", hello + headers(1, ok) + data(1, b"part") + rst(1, 0), 0, 17)
    h2_client("header-list-too-big", hello + headers(1, ok + [("x-big", "b" * 300)], True) + headers(3, ok, True), 0x20 | 1,
              18)
    h2_client("ping", hello + ping() + headers(1, ok, True), 0, 19)
    h2_client("data-on-stream-0", hello + data(0, b"bad"), 0, 20)
    h2_client("missing-status", hello + headers(1, [("server", "x")], True), 0, 21)
    h2_client("connection-header", hello + headers(1, ok + [("connection", "close")], True), 0, 22)
    h2_client("head-with-length", hello + headers(1, ok + [("content-length", "100")], True), 0, 23)
    for seed in range(3):  # the seed decides the request kinds, some stream bodies larger than a window
        h2_client("window-updates-%d" % seed, settings((4, 100)) + SETTINGS_ACK + window_update(0, 200000) +
                  window_update(1, 200000) + window_update(3, 200000) + headers(1, ok) + headers(3, ok, True) +
                  data(1, b"d", True), 0x04 | 1, 40 + seed)
    h2_client("flow-control-violation", hello + headers(1, ok) + data(1, b"v" * 300, True), 0x20, 24)
    h2_client("continuation", hello + frame(HEADERS, END_STREAM, 1, hpack(ok)) +
              frame(CONTINUATION, END_HEADERS, 1, hpack([("server", "split")])), 0, 25)
    h2_client("no-settings-first", headers(1, ok, True), 0, 26)
    h2_client("settings-ack-only", SETTINGS_ACK, 0, 27)
    h2_client("destroy-open", hello + headers(1, ok), 0x40 | 2, 28)
    h2_client("dynamic-table", hello + headers(1, [("+", ":status", "200"), ("+", "x-a", "b")], True) +
              frame(HEADERS, END_STREAM | END_HEADERS, 3, hpack([63, 62])), 1, 29)
    h2_client("split-pieces", hello + headers(1, ok + [("content-length", "6")]) + data(1, b"abc") + data(1, b"def", True),
              0x18, 30)


if __name__ == "__main__":
    http1_server_seeds()
    http1_client_seeds()
    h2c_server_seeds()
    h2c_client_seeds()
