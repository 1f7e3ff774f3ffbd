#pragma once
// Runs an event::Loop in a unit test until a condition holds: its timers fire as they would on a
// worker (a 2 ms tick keeps the loop turning while nothing else is due).
#include <uv.h>

#include <chrono>

#include "waypoint/event/loop.h"

namespace wp::test {

// True when `cond` held within `limit`.
template <class F>
bool run_until(event::Loop& loop, F cond, std::chrono::milliseconds limit = std::chrono::seconds(2)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  event::Timer tick(loop, [] {});
  tick.start(std::chrono::milliseconds(2), std::chrono::milliseconds(2));
  while (!cond() && std::chrono::steady_clock::now() < deadline) {
    uv_run(loop.uv(), UV_RUN_ONCE);
  }
  return cond();
}

}  // namespace wp::test
