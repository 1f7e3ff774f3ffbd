#pragma once
// Protocol sniffing for tunnels whose chain does not say HTTP or TCP (a service port without an
// http/tcp appProtocol or name, or a pod IP): the first bytes the client sends decide. The h2c
// client preface → h2c; an HTTP/1 request line (known method, SP, target, SP, "HTTP/") → HTTP/1.1;
// anything else → TCP. Until the bytes decide, the answer is NeedMore; the listener gives up after
// a short timeout (a server-first protocol, where the client waits) and treats the tunnel as TCP.
#include <cstddef>
#include <cstdint>

namespace wp::internal {

enum class Sniffed { NeedMore, Http1, H2c, Tcp };

// Looks at most at the first kMaxSniffBytes bytes: a request line longer than that is still
// classified by its method and first SP.
constexpr size_t kMaxSniffBytes = 64;
Sniffed sniff(const uint8_t* data, size_t len);

const char* to_string(Sniffed s);

}  // namespace wp::internal
