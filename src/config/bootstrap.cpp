// The WaypointBootstrap document (SPEC §5). Its spec is strict: an unknown field is an error, so a
// typo never silently falls back to a default.
#include <algorithm>
#include <array>
#include <filesystem>

#include "config/resources.h"

namespace wp::config {

namespace {

constexpr std::array kLogLevels = {"trace", "debug", "info", "warn", "error", "off"};

// Two listeners collide when they share a port and an address, or either is the any-address.
bool collide(const net::SockAddr& a, const net::SockAddr& b) {
  auto any = [](const net::IpAddr& ip) {
    for (size_t i = 0; i < ip.size(); ++i) {
      if (ip.bytes()[i] != 0) {
        return false;
      }
    }
    return true;
  };
  return a.port() == b.port() && (a.ip() == b.ip() || any(a.ip()) || any(b.ip()));
}

std::string resolve(const std::string& config_path, const std::string& file) {
  std::filesystem::path path(file);
  if (path.is_absolute()) {
    return file;
  }
  return (std::filesystem::path(config_path).parent_path() / path).lexically_normal().string();
}

}  // namespace

std::optional<BootstrapResource> parse_bootstrap(const Node& doc, const ObjectMeta& meta, Diagnostics& diag,
                                                 const std::string& config_path) {
  BootstrapResource out;
  Bootstrap& b = out.bootstrap;
  b.name = meta.name;
  b.namespace_ = meta.namespace_.empty() ? "default" : meta.namespace_;
  b.listeners = {net::SockAddr(net::IpAddr::v4(0), 15008), net::SockAddr(net::IpAddr::v4(0x7F000001), 15000),
                 net::SockAddr(net::IpAddr::v4(0), 15020), net::SockAddr(net::IpAddr::v4(0), 15021)};
  Reader r(diag, "WaypointBootstrap " + b.name);

  Node spec = child(doc, "spec");
  if (!present(spec)) {
    r.error(doc, "spec", "required");
    return std::nullopt;
  }
  if (!r.expect_map(spec, "spec")) {
    return std::nullopt;
  }

  auto text = [&](std::string& target) {
    return [&r, &target](const Node& v, const std::string& path) {
      target = r.nonempty_string(v, path).value_or(target);
    };
  };
  auto address = [&](net::SockAddr& target) {
    return [&r, &target](const Node& v, const std::string& path) {
      auto value = r.string(v, path);
      if (!value) {
        return;
      }
      if (auto addr = net::SockAddr::parse(*value)) {
        target = *addr;
      } else {
        r.error(v, path, "\"" + *value + "\" is not an IP:port address (port 1..65535)");
      }
    };
  };
  auto count = [&](auto& target, int64_t min, int64_t max) {
    return [&r, &target, min, max](const Node& v, const std::string& path) {
      if (auto value = r.integer(v, path, min, max)) {
        target = static_cast<std::remove_reference_t<decltype(target)>>(*value);
      }
    };
  };
  auto port = [&](uint16_t& target) {
    return [&r, &target](const Node& v, const std::string& path) { target = r.port(v, path).value_or(target); };
  };
  auto timeout = [&](Millis& target) {
    return [&r, &target](const Node& v, const std::string& path) {
      if (auto value = r.duration(v, path)) {
        if (value->count() == 0) {
          r.error(v, path, "must be greater than 0");
        } else {
          target = *value;
        }
      }
    };
  };
  auto tls_file = [&](BootstrapResource::TlsFile& file) {
    return [&r, &file](const Node& v, const std::string& path) {
      if (auto value = r.nonempty_string(v, path)) {
        file.written = *value;
        file.at = mark_of(v);
      }
    };
  };
  constexpr uint32_t kMaxU32 = 0xFFFFFFFF;

  Node tls_node;
  out.gateway_at = mark_of(spec);
  r.strict_map(
      spec, "spec",
      {
          {"gateway",
           [&](const Node& v, const std::string& path) {
             out.gateway_at = mark_of(v);
             text(b.gateway)(v, path);
           }},
          {"trustDomain",
           [&](const Node& v, const std::string& path) {
             text(b.trust_domain)(v, path);
             if (b.trust_domain.find('/') != std::string::npos) {
               r.error(v, path, "a trust domain cannot contain '/'");
             }
           }},
          {"clusterDomain", text(b.cluster_domain)},
          {"listeners",
           [&](const Node& v, const std::string& path) {
             r.strict_map(v, path,
                          {{"hbone", address(b.listeners.hbone)},
                           {"admin", address(b.listeners.admin)},
                           {"metrics", address(b.listeners.metrics)},
                           {"health", address(b.listeners.health)},
                           {"allowNonLoopbackAdmin", [&](const Node& flag, const std::string& flag_path) {
                              b.listeners.allow_non_loopback_admin = r.boolean(flag, flag_path).value_or(false);
                            }}});
           }},
          {"tls",
           [&](const Node& v, const std::string& path) {
             tls_node = v;
             r.strict_map(v, path,
                          {{"certChain", tls_file(out.cert_chain)},
                           {"privateKey", tls_file(out.private_key)},
                           {"rootCert", tls_file(out.root_cert)}});
           }},
          {"upstream",
           [&](const Node& v, const std::string& path) {
             auto& u = b.upstream;
             r.strict_map(v, path,
                          {{"hbonePort", port(u.hbone_port)},
                           {"connectTimeout", timeout(u.connect_timeout)},
                           {"maxStreamsPerConnection", count(u.max_streams_per_connection, 1, kMaxU32)},
                           {"idleTimeout", timeout(u.idle_timeout)}});
           }},
          {"downstream",
           [&](const Node& v, const std::string& path) {
             auto& d = b.downstream;
             r.strict_map(v, path,
                          {{"maxConcurrentStreams", count(d.max_concurrent_streams, 1, kMaxU32)},
                           {"keepaliveInterval", timeout(d.keepalive_interval)},
                           {"keepaliveTimeout", timeout(d.keepalive_timeout)},
                           {"handshakeTimeout", timeout(d.handshake_timeout)},
                           {"maxConnections", count(d.max_connections, 1, kMaxU32)},
                           {"maxHeaderListBytes", count(d.max_header_list_bytes, 1, kMaxU32)},
                           {"maxConsecutiveEmptyFrames", count(d.max_consecutive_empty_frames, 0, kMaxU32)},
                           {"prematureResetTotalStreamCount",
                            count(d.premature_reset_total_stream_count, 0, kMaxU32)},
                           {"prematureResetMinStreamLifetime", timeout(d.premature_reset_min_stream_lifetime)}});
           }},
          {"http",
           [&](const Node& v, const std::string& path) {
             auto& h = b.http;
             r.strict_map(
                 v, path,
                 {{"requestHeadersTimeout", timeout(h.request_headers_timeout)},
                  {"idleTimeout", timeout(h.idle_timeout)},
                  {"headersWithUnderscoresAction", [&](const Node& a, const std::string& a_path) {
                     auto value = r.string(a, a_path);
                     if (!value) {
                       return;
                     }
                     if (*value == "ALLOW") {
                       h.headers_with_underscores = UnderscoreHeaders::Allow;
                     } else if (*value == "DROP_HEADER") {
                       h.headers_with_underscores = UnderscoreHeaders::DropHeader;
                     } else if (*value == "REJECT_REQUEST") {
                       h.headers_with_underscores = UnderscoreHeaders::RejectRequest;
                     } else {
                       r.error(a, a_path, "\"" + *value + "\" is not ALLOW, DROP_HEADER or REJECT_REQUEST");
                     }
                   }}});
           }},
          {"adminListeners",
           [&](const Node& v, const std::string& path) {
             auto& a = b.admin_listeners;
             r.strict_map(v, path,
                          {{"maxConnections", count(a.max_connections, 1, 65536)},
                           {"idleTimeout", timeout(a.idle_timeout)},
                           {"maxRequestBytes", count(a.max_request_bytes, 1024, 1 << 24)}});
           }},
          {"kubernetes",
           [&](const Node& v, const std::string& path) {
             b.kubernetes.enabled = true;
             if (v.IsMap() && v.size() == 0) {
               return;  // `kubernetes: {}`: every default
             }
             r.strict_map(v, path,
                          {{"namespace", text(b.kubernetes.namespace_)}, {"kubeconfig", text(b.kubernetes.kubeconfig)}});
           }},
          {"concurrency", count(b.concurrency, 0, 1024)},
          {"log",
           [&](const Node& v, const std::string& path) {
             r.strict_map(v, path,
                          {{"level",
                            [&](const Node& level, const std::string& level_path) {
                              auto value = r.string(level, level_path);
                              if (!value) {
                                return;
                              }
                              if (std::find(kLogLevels.begin(), kLogLevels.end(), *value) == kLogLevels.end()) {
                                r.error(level, level_path,
                                        "\"" + *value + "\" is not a log level (trace, debug, info, warn, error, off)");
                              } else {
                                b.log_level = *value;
                              }
                            }},
                           {"accessLog", text(b.access_log)}});
           }},
      });

  if (b.gateway.empty() && !present(child(spec, "gateway"))) {
    r.error(spec, "spec.gateway", "required (the name of the Gateway this waypoint serves)");
  }

  const std::pair<const char*, net::SockAddr*> listeners[] = {{"hbone", &b.listeners.hbone},
                                                              {"admin", &b.listeners.admin},
                                                              {"metrics", &b.listeners.metrics},
                                                              {"health", &b.listeners.health}};
  Node listeners_node = child(spec, "listeners");
  for (size_t i = 0; i < std::size(listeners); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (collide(*listeners[i].second, *listeners[j].second)) {
        Node at = child(listeners_node, listeners[i].first);
        r.error(present(at) ? at : spec, std::string("spec.listeners.") + listeners[i].first,
                listeners[i].second->to_string() + " collides with the " + listeners[j].first + " listener " +
                    listeners[j].second->to_string());
      }
    }
  }

  if (!b.listeners.admin.ip().is_loopback() && !b.listeners.allow_non_loopback_admin) {
    Node at = child(listeners_node, "admin");
    r.error(present(at) ? at : spec, "spec.listeners.admin",
            b.listeners.admin.to_string() +
                " is not a loopback address; the admin API can change the running proxy (POST /logging, "
                "/drain_listeners), so exposing it needs spec.listeners.allowNonLoopbackAdmin: true");
  }

  const std::pair<const char*, BootstrapResource::TlsFile*> tls_files[] = {
      {"certChain", &out.cert_chain}, {"privateKey", &out.private_key}, {"rootCert", &out.root_cert}};
  for (const auto& [key, file] : tls_files) {
    if (file->written.empty() && !present(child(tls_node, key))) {
      r.error(present(tls_node) ? tls_node : spec, std::string("spec.tls.") + key, "required");
    }
  }
  b.tls = {resolve(config_path, out.cert_chain.written), resolve(config_path, out.private_key.written),
           resolve(config_path, out.root_cert.written)};
  return out;
}

}  // namespace wp::config
