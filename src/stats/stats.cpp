#include "waypoint/stats/stats.h"

namespace wp::stats {
namespace {
const Info kInfo[] = {
#define WP_STATS_INFO(name, kind, help) {#name, Kind::kind, help},
    WP_STATS_LIST(WP_STATS_INFO)
#undef WP_STATS_INFO
};
}  // namespace

const Info& info(Id id) {
  return kInfo[static_cast<int>(id)];
}

int64_t sum(const std::vector<const Block*>& blocks, Id id) {
  int64_t total = 0;
  for (const auto* b : blocks) {
    total += b->get(id);
  }
  return total;
}

std::string render_text(const std::vector<const Block*>& blocks) {
  std::string out;
  for (int i = 0; i < kCount; ++i) {
    auto id = static_cast<Id>(i);
    out += "waypoint.";
    out += kInfo[i].name;
    out += ": ";
    out += std::to_string(sum(blocks, id));
    out += "\n";
  }
  return out;
}

}  // namespace wp::stats
