#include "waypoint/net/conn_pool.h"

#include <spdlog/spdlog.h>

namespace wp::net {

const char* to_string(ConnState s) {
  switch (s) {
    case ConnState::Connecting:
      return "Connecting";
    case ConnState::Ready:
      return "Ready";
    case ConnState::Busy:
      return "Busy";
    case ConnState::Draining:
      return "Draining";
    case ConnState::Closed:
      return "Closed";
  }
  return "?";
}

bool PoolConnState::transition(ConnState to) {
  if (!transition_allowed(state_, to)) {
    spdlog::error("upstream connection: refused state change {} -> {} (a bug)", to_string(state_), to_string(to));
    return false;
  }
  state_ = to;
  return true;
}

}  // namespace wp::net
