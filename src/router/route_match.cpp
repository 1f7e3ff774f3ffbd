#include "waypoint/router/route_match.h"

#include <algorithm>
#include <re2/re2.h>

namespace wp::router {

namespace {

using config::StringMatch;

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal(std::string_view a, std::string_view b, bool icase) {
  if (a.size() != b.size()) {
    return false;
  }
  if (!icase) {
    return a == b;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool starts_with(std::string_view text, std::string_view prefix, bool icase) {
  return text.size() >= prefix.size() && equal(text.substr(0, prefix.size()), prefix, icase);
}

// Gateway API PathPrefix: whole segments; a trailing '/' in the prefix is ignored.
bool path_prefix(std::string_view path, std::string_view prefix, bool icase) {
  while (!prefix.empty() && prefix.back() == '/') {
    prefix.remove_suffix(1);
  }
  if (!starts_with(path, prefix, icase)) {
    return false;
  }
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

// The first value of query parameter `name` ("" for "?name" or "?name="), or nullopt. No
// percent-decoding: names and values are compared as they appear on the wire.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

bool key_matches(const config::KeyMatch& k, std::optional<std::string_view> value) {
  bool holds = value.has_value() && (!k.value || matches(*k.value, *value));
  return holds != k.invert;
}

}  // namespace

void split_target(std::string_view target, std::string_view& path, std::string_view& query) {
  size_t q = target.find('?');
  path = target.substr(0, q);
  query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (size_t hash = query.find('#'); hash != std::string_view::npos) {
    query = query.substr(0, hash);
  }
}

bool matches(const StringMatch& m, std::string_view value) {
  switch (m.kind) {
    case StringMatch::Kind::Exact:
      return equal(value, m.value, m.ignore_case);
    case StringMatch::Kind::Prefix:
      return starts_with(value, m.value, m.ignore_case);
    case StringMatch::Kind::PathPrefix:
      return path_prefix(value, m.value, m.ignore_case);
    case StringMatch::Kind::Regex:
      return m.regex != nullptr && RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *m.regex);
  }
  return false;
}

bool matches(const config::RouteMatch& m, const RequestView& request) {
  if (m.uri && !matches(*m.uri, request.path)) {
    return false;
  }
  if (m.method && !matches(*m.method, request.method)) {
    return false;
  }
  if (m.authority && !matches(*m.authority, request.authority)) {
    return false;
  }
  for (const auto& h : m.headers) {
    std::optional<std::string_view> value;
    if (request.headers != nullptr) {
      value = request.headers->get(h.name);
    }
    if (!key_matches(h, value)) {
      return false;
    }
  }
  for (const auto& q : m.query_params) {
    if (!key_matches(q, query_param(request.query, q.name))) {
      return false;
    }
  }
  return true;
}

const config::RouteMatch* matched_block(const config::Route& route, const RequestView& request) {
  for (const auto& m : route.matches) {
    if (matches(m, request)) {
      return &m;
    }
  }
  return nullptr;
}

bool matches(const config::Route& route, const RequestView& request) {
  return route.matches.empty() || matched_block(route, request) != nullptr;
}

const config::Route* match(const config::RouteTable& table, const RequestView& request) {
  for (const auto& route : table.routes) {
    if (matches(route, request)) {
      return &route;
    }
  }
  return nullptr;
}

namespace {

template <typename R>
const config::WeightedCluster& pick_from(const R& route, uint32_t random) {
  if (route.total_weight == 0) {
    return route.clusters.front();
  }
  uint32_t point = random % route.total_weight;
  auto it = std::upper_bound(route.cumulative_weights.begin(), route.cumulative_weights.end(), point);
  return route.clusters[static_cast<size_t>(it - route.cumulative_weights.begin())];
}

}  // namespace

const config::WeightedCluster& pick(const config::Route& route, uint32_t random) {
  return pick_from(route, random);
}

const config::WeightedCluster& pick(const config::TcpRoute& route, uint32_t random) {
  return pick_from(route, random);
}

}  // namespace wp::router
