#pragma once
// The states every pooled upstream connection goes through (an HBONE connection, an HTTP/1.1
// tunnel, an h2c tunnel), and the one checked function that moves between them (Envoy's
// ActiveClient states). In net/ because both hbone/ (HBONE connections) and http/ (the tunnels
// inside them) pool connections.
//
//   Connecting ──► Busy ◄──► Ready          Busy: carrying all the exchanges it may (an HTTP/1.1
//       │           │          │                  tunnel's one; an h2c tunnel or HBONE connection
//       │           │          │                  with no free stream)
//       │           ▼          ▼            Ready: may take a new exchange now (idle kept-alive
//       └──────► Draining ◄────┘                  HTTP/1.1; h2c / HBONE with a free stream)
//                   │                       Draining: takes no new exchange; closes once the ones
//       (any) ──────┴─────► Closed                    in progress end (config change, GOAWAY,
//                                                     maxRequestsPerConnection)
// Connecting may also go straight to Ready (an h2c tunnel) and to Closed (it failed).
#include <cstdint>

namespace wp::net {

enum class ConnState : uint8_t { Connecting, Ready, Busy, Draining, Closed };

const char* to_string(ConnState s);

// True when a connection may go from `from` to `to` (staying in a state is allowed).
constexpr bool transition_allowed(ConnState from, ConnState to) {
  if (from == to) {
    return true;
  }
  switch (from) {
    case ConnState::Connecting:
      return true;  // to any other state
    case ConnState::Ready:
    case ConnState::Busy:
      return to != ConnState::Connecting;
    case ConnState::Draining:
      return to == ConnState::Closed;
    case ConnState::Closed:
      return false;
  }
  return false;
}

// The state of one pooled connection. transition() is the only way to change it: an edge the table
// does not allow is a bug, which it logs (with both states) and refuses, leaving the state as it was.
class PoolConnState {
 public:
  ConnState state() const { return state_; }
  bool transition(ConnState to);

 private:
  ConnState state_ = ConnState::Connecting;
};

}  // namespace wp::net
