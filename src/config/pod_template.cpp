// The interned PodTemplates (snapshot.h): one table for the process, keyed by a hash of the
// template's content, holding weak references so that a template lives exactly as long as pods
// hold it.
#include <functional>
#include <mutex>
#include <unordered_map>

#include "waypoint/config/snapshot.h"

namespace wp::config {

namespace {

void mix(size_t& h, size_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
}

size_t hash_of(const PodTemplate& t) {
  std::hash<std::string_view> str;
  size_t h = 0;
  for (const std::string* s : {&t.namespace_, &t.service_account, &t.spiffe_id, &t.workload, &t.app, &t.version,
                               &t.canonical_service, &t.canonical_revision}) {
    mix(h, str(*s));
  }
  for (const auto& [k, v] : t.labels) {
    mix(h, str(k));
    mix(h, str(v));
  }
  mix(h, (t.workload_is_name ? 1 : 0) | (t.canonical_is_name ? 2 : 0));
  for (const auto& [k, v] : t.named_ports) {
    mix(h, str(k));
    mix(h, v);
  }
  return h;
}

struct Table {
  std::mutex mu;
  std::unordered_multimap<size_t, std::weak_ptr<const PodTemplate>> by_hash;
};

Table& table() {
  static Table* t = new Table();  // never destroyed: templates may outlive static destruction
  return *t;
}

// A template's last pod went: its entry (expired now) is dropped with any other expired one of
// that hash.
struct Forget {
  size_t hash;
  void operator()(const PodTemplate* t) const {
    {
      Table& tab = table();
      std::lock_guard<std::mutex> lock(tab.mu);
      auto [first, last] = tab.by_hash.equal_range(hash);
      for (auto it = first; it != last;) {
        it = it->second.expired() ? tab.by_hash.erase(it) : std::next(it);
      }
    }
    delete t;
  }
};

}  // namespace

std::shared_ptr<const PodTemplate> PodTemplate::intern(PodTemplate t) {
  const size_t hash = hash_of(t);
  return intern(std::move(t), hash);
}

std::shared_ptr<const PodTemplate> PodTemplate::intern(PodTemplate t, size_t hash) {
  // Declared before the lock: a template locked here and released as its last holder goes runs
  // Forget, which takes the lock again.
  std::vector<std::shared_ptr<const PodTemplate>> looked_at;
  Table& tab = table();
  std::lock_guard<std::mutex> lock(tab.mu);
  auto [first, last] = tab.by_hash.equal_range(hash);
  size_t alike = 0;
  for (auto it = first; it != last; ++it, ++alike) {
    if (auto held = it->second.lock()) {
      if (*held == t) {
        return held;
      }
      looked_at.push_back(std::move(held));
    }
  }
  std::shared_ptr<const PodTemplate> made(new PodTemplate(std::move(t)), Forget{hash});
  if (alike < kMaxAlike) {
    tab.by_hash.emplace(hash, made);
  }
  return made;
}

size_t PodTemplate::interned() {
  Table& tab = table();
  std::lock_guard<std::mutex> lock(tab.mu);
  return tab.by_hash.size();
}

const std::shared_ptr<const PodTemplate>& PodTemplate::none() {
  static const auto* empty = new std::shared_ptr<const PodTemplate>(std::make_shared<const PodTemplate>());
  return *empty;
}

}  // namespace wp::config
