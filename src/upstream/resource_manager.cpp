#include "waypoint/upstream/resource_manager.h"

#include <spdlog/spdlog.h>

namespace wp::upstream {

const char* to_string(Resource r) {
  switch (r) {
    case Resource::Connections:
      return "connections";
    case Resource::PendingRequests:
      return "pending requests";
    case Resource::Requests:
      return "requests";
    case Resource::Retries:
      return "retries";
  }
  return "?";
}

void ResourceManager::inc(Resource r) {
  ++counts_[index(r)];
  if (r == Resource::PendingRequests) {
    stats_.add(stats::Id::upstream_rq_pending_active);
  }
}

void ResourceManager::dec(Resource r) {
  uint32_t& c = counts_[index(r)];
  if (c == 0) {
    spdlog::error("cluster {}: {} released below zero (a bug)", cluster_, to_string(r));
    return;
  }
  --c;
  if (r == Resource::PendingRequests) {
    stats_.sub(stats::Id::upstream_rq_pending_active);
  }
}

}  // namespace wp::upstream
