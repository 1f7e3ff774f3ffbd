#pragma once
// A Tunnel is one HBONE CONNECT stream seen as a duplex, flow-controlled byte stream. Downstream
// tunnels are streams of a terminated (server) HTTP/2 connection; upstream tunnels are streams of
// a re-originated (client) one. Whoever reads a tunnel sets a TunnelHandler and acknowledges the
// bytes it has passed on with consume(): only consumed bytes reopen the peer's flow-control window,
// so memory per tunnel stays bounded by the HTTP/2 stream window.
#include <cstddef>
#include <cstdint>

#include "waypoint/buffer/buffer.h"

namespace wp::hbone {

class Tunnel;

class TunnelHandler {
 public:
  virtual ~TunnelHandler() = default;
  // Bytes from the peer. Take them all (move them out of `data`); consume() them once passed on.
  virtual void on_tunnel_data(Tunnel& tunnel, buffer::Buffer& data) = 0;
  // The peer half-closed (END_STREAM): no more data will come.
  virtual void on_tunnel_eof(Tunnel& tunnel) = 0;
  // `bytes` previously written with write() were handed to the peer's connection.
  virtual void on_tunnel_drained(Tunnel& tunnel, size_t bytes) = 0;
  // The stream is gone (clean: both directions ended normally; otherwise reset or connection
  // lost). The Tunnel must not be used after this call.
  virtual void on_tunnel_closed(Tunnel& tunnel, bool clean) = 0;
};

class Tunnel {
 public:
  virtual ~Tunnel() = default;
  // Pending received data (and a pending EOF) is delivered at once.
  virtual void set_handler(TunnelHandler* handler) = 0;
  virtual void write(buffer::Buffer& data) = 0;  // takes all of data
  virtual void write_eof() = 0;                  // END_STREAM after the written data
  virtual void consume(size_t bytes) = 0;        // reopen the peer's window by `bytes`
  virtual void reset() = 0;                      // abort: RST_STREAM(CANCEL)
  virtual size_t write_pending() const = 0;      // bytes written but not yet handed to the connection
};

// A downstream tunnel: a CONNECT that the waypoint answers. What TcpProxy needs of one (the HBONE
// stream, or a fake in unit tests).
class DownstreamTunnel : public Tunnel {
 public:
  // 200 opens the tunnel; any other status ends the stream.
  virtual void respond(int status) = 0;
};

}  // namespace wp::hbone
