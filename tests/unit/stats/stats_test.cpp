#include <catch2/catch.hpp>

#include "waypoint/stats/stats.h"

TEST_CASE("stats blocks are summed on scrape", "[stats]") {
  wp::stats::Block a;
  wp::stats::Block b;
  a.add(wp::stats::Id::tunnels_total, 3);
  b.add(wp::stats::Id::tunnels_total, 4);
  b.add(wp::stats::Id::tunnels_active);
  b.sub(wp::stats::Id::tunnels_active);
  std::vector<const wp::stats::Block*> blocks = {&a, &b};
  CHECK(wp::stats::sum(blocks, wp::stats::Id::tunnels_total) == 7);
  CHECK(wp::stats::sum(blocks, wp::stats::Id::tunnels_active) == 0);
  std::string text = wp::stats::render_text(blocks);
  CHECK(text.find("waypoint.tunnels_total: 7\n") != std::string::npos);
  CHECK(wp::stats::info(wp::stats::Id::tunnels_active).kind == wp::stats::Kind::Gauge);
}
