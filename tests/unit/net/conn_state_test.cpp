#include <catch2/catch.hpp>

#include "waypoint/net/conn_pool.h"

using wp::net::ConnState;
using wp::net::PoolConnState;
using wp::net::transition_allowed;

TEST_CASE("pooled connection states: every edge of the table", "[http][pool]") {
  const ConnState all[] = {ConnState::Connecting, ConnState::Ready, ConnState::Busy, ConnState::Draining,
                           ConnState::Closed};
  // from \ to: Connecting Ready Busy Draining Closed
  const bool expected[5][5] = {
      {true, true, true, true, true},      // Connecting: anywhere
      {false, true, true, true, true},     // Ready: never back to Connecting
      {false, true, true, true, true},     // Busy: never back to Connecting
      {false, false, false, true, true},   // Draining: only Closed
      {false, false, false, false, true},  // Closed: stays
  };
  for (int f = 0; f < 5; ++f) {
    for (int t = 0; t < 5; ++t) {
      INFO(wp::net::to_string(all[f]) << " -> " << wp::net::to_string(all[t]));
      CHECK(transition_allowed(all[f], all[t]) == expected[f][t]);
    }
  }
}

TEST_CASE("pooled connection states: a refused transition leaves the state as it was", "[http][pool]") {
  PoolConnState s;
  CHECK(s.state() == ConnState::Connecting);
  CHECK(s.transition(ConnState::Busy));
  CHECK(s.transition(ConnState::Ready));
  CHECK(s.transition(ConnState::Draining));
  CHECK_FALSE(s.transition(ConnState::Ready));  // a draining connection takes no new exchange
  CHECK(s.state() == ConnState::Draining);
  CHECK(s.transition(ConnState::Closed));
  CHECK_FALSE(s.transition(ConnState::Connecting));
  CHECK(s.state() == ConnState::Closed);
}
