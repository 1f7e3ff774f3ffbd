#include "waypoint/stats/prometheus.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <map>

namespace wp::stats {

void Histogram::observe(double value) {
  size_t i = std::lower_bound(kBucketBounds.begin(), kBucketBounds.end(), value) - kBucketBounds.begin();
  ++counts[i];
  ++count;
  sum += value;
}

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < counts.size(); ++i) {
    counts[i] += other.counts[i];
  }
  count += other.count;
  sum += other.sum;
}

namespace {

// Prometheus label values escape backslash, double quote and newline.
void append_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void label(std::string& out, std::string_view name, std::string_view value) {
  if (!out.empty()) {
    out += ',';
  }
  out += name;
  out += "=\"";
  append_value(out, value);
  out += '"';
}

// The overflow series: every label but the reporter says it stands for many label sets.
const Labels& overflow_labels() {
  static const Labels l = [] {
    Labels o;
    Peer p{"overflow", "overflow", "overflow", "overflow", "overflow", "overflow", "overflow"};
    o.source = p;
    o.destination = p;
    o.destination_service = o.destination_service_name = o.destination_service_namespace = "overflow";
    o.request_protocol = "overflow";
    o.response_flags = "overflow";
    return o;
  }();
  return l;
}

void append_key(std::string& key, std::string_view v) {
  key.append(v);
  key += '\x1f';
}

void build_key(std::string& key, const Labels& l) {
  key.clear();
  for (const Peer* p : {&l.source, &l.destination}) {
    for (std::string_view v :
         {p->workload, p->namespace_, p->principal, p->app, p->version, p->canonical_service, p->canonical_revision}) {
      append_key(key, v);
    }
  }
  append_key(key, l.destination_service);
  append_key(key, l.destination_service_name);
  append_key(key, l.destination_service_namespace);
  append_key(key, l.request_protocol);
  append_key(key, l.response_flags);
  char code[12];
  auto end = std::to_chars(code, code + sizeof(code), l.response_code).ptr;
  key.append(code, end);
}

}  // namespace

std::string render_labels(const Labels& l, bool http) {
  std::string out;
  label(out, "reporter", "waypoint");
  label(out, "source_workload", l.source.workload);
  label(out, "source_canonical_service", l.source.canonical_service);
  label(out, "source_canonical_revision", l.source.canonical_revision);
  label(out, "source_workload_namespace", l.source.namespace_);
  label(out, "source_principal", l.source.principal);
  label(out, "source_app", l.source.app);
  label(out, "source_version", l.source.version);
  label(out, "source_cluster", "Kubernetes");
  label(out, "destination_workload", l.destination.workload);
  label(out, "destination_workload_namespace", l.destination.namespace_);
  label(out, "destination_principal", l.destination.principal);
  label(out, "destination_app", l.destination.app);
  label(out, "destination_version", l.destination.version);
  label(out, "destination_service", l.destination_service);
  label(out, "destination_service_name", l.destination_service_name);
  label(out, "destination_service_namespace", l.destination_service_namespace);
  label(out, "destination_canonical_service", l.destination.canonical_service);
  label(out, "destination_canonical_revision", l.destination.canonical_revision);
  label(out, "destination_cluster", "Kubernetes");
  label(out, "request_protocol", l.request_protocol);
  if (http) {
    label(out, "response_code", std::to_string(l.response_code));
    label(out, "grpc_response_status", "");
  }
  label(out, "response_flags", l.response_flags);
  label(out, "connection_security_policy", "mutual_tls");
  return out;
}

template <typename S>
S& SeriesStore::find(std::vector<S>& series, std::unordered_map<std::string, size_t>& index, const Labels& l,
                     bool http) {
  build_key(key_, l);
  auto it = index.find(key_);
  if (it != index.end()) {
    return series[it->second];
  }
  const Labels* labels = &l;
  if (size() >= kMaxSeries) {
    ++overflowed_;
    build_key(key_, overflow_labels());
    it = index.find(key_);
    if (it != index.end()) {
      return series[it->second];
    }
    labels = &overflow_labels();
  }
  index.emplace(key_, series.size());
  series.emplace_back();
  series.back().labels = render_labels(*labels, http);
  return series.back();
}

void SeriesStore::record_request(const Labels& l, double duration_ms, uint64_t request_bytes, uint64_t response_bytes) {
  HttpSeries& s = find(http_, http_index_, l, true);
  ++s.requests;
  s.duration_ms.observe(duration_ms);
  s.request_bytes.observe(static_cast<double>(request_bytes));
  s.response_bytes.observe(static_cast<double>(response_bytes));
}

void SeriesStore::tcp_opened(const Labels& l) {
  ++find(tcp_, tcp_index_, l, false).opened;
}

void SeriesStore::tcp_closed(const Labels& l, uint64_t sent, uint64_t received) {
  TcpSeries& s = find(tcp_, tcp_index_, l, false);
  ++s.closed;
  s.sent_bytes += sent;
  s.received_bytes += received;
}

MetricsSample SeriesStore::sample() const {
  MetricsSample out;
  out.http = http_;
  out.tcp = tcp_;
  out.series_overflow = overflowed_;
  return out;
}

MetricsSample merge(const std::vector<MetricsSample>& samples) {
  MetricsSample out;
  std::map<std::string_view, HttpSeries> http;
  std::map<std::string_view, TcpSeries> tcp;
  for (const auto& s : samples) {
    out.buffered_bytes += s.buffered_bytes;
    out.series_overflow += s.series_overflow;
    for (const auto& h : s.http) {
      HttpSeries& m = http[h.labels];
      m.labels = h.labels;
      m.requests += h.requests;
      m.duration_ms.merge(h.duration_ms);
      m.request_bytes.merge(h.request_bytes);
      m.response_bytes.merge(h.response_bytes);
    }
    for (const auto& t : s.tcp) {
      TcpSeries& m = tcp[t.labels];
      m.labels = t.labels;
      m.opened += t.opened;
      m.closed += t.closed;
      m.sent_bytes += t.sent_bytes;
      m.received_bytes += t.received_bytes;
    }
  }
  for (auto& [k, v] : http) {
    out.http.push_back(std::move(v));
  }
  for (auto& [k, v] : tcp) {
    out.tcp.push_back(std::move(v));
  }
  return out;
}

namespace {

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample_line(std::string& out, std::string_view name, std::string_view labels, std::string_view value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string number(uint64_t v) {
  return std::to_string(v);
}

std::string bound(double b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", b);
  return buf;
}

void histogram(std::string& out, std::string_view name, std::string_view help, const std::vector<HttpSeries>& series,
               const Histogram HttpSeries::*member) {
  header(out, name, "histogram", help);
  std::string bucket = std::string(name) + "_bucket";
  for (const auto& s : series) {
    const Histogram& h = s.*member;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.counts.size(); ++i) {
      cumulative += h.counts[i];
      std::string le = i < kBucketBounds.size() ? bound(kBucketBounds[i]) : "+Inf";
      sample_line(out, bucket, s.labels + ",le=\"" + le + "\"", number(cumulative));
    }
    sample_line(out, std::string(name) + "_sum", s.labels, number(h.sum));
    sample_line(out, std::string(name) + "_count", s.labels, number(h.count));
  }
}

template <typename S>
void counter(std::string& out, std::string_view name, std::string_view help, const std::vector<S>& series,
             uint64_t S::*member) {
  header(out, name, "counter", help);
  for (const auto& s : series) {
    sample_line(out, name, s.labels, number(s.*member));
  }
}

// Flat counters shown as one labelled family (one metric, a label per cause) instead of one
// metric each, so that a dashboard sums or splits them without knowing every name.
struct FamilyMember {
  Id id;
  const char* family;
  const char* label;
  const char* value;
};
constexpr FamilyMember kFamilies[] = {
    {Id::handshake_failed_not_tls, "waypoint_handshake_failures_total", "reason", "not_tls"},
    {Id::handshake_failed_protocol_version, "waypoint_handshake_failures_total", "reason", "protocol_version"},
    {Id::handshake_failed_no_certificate, "waypoint_handshake_failures_total", "reason", "no_certificate"},
    {Id::handshake_failed_untrusted_chain, "waypoint_handshake_failures_total", "reason", "untrusted_chain"},
    {Id::handshake_failed_bad_identity, "waypoint_handshake_failures_total", "reason", "bad_identity"},
    {Id::handshake_failed_no_alpn, "waypoint_handshake_failures_total", "reason", "no_alpn"},
    {Id::handshake_failed_timeout, "waypoint_handshake_failures_total", "reason", "timeout"},
    {Id::handshake_failed_io, "waypoint_handshake_failures_total", "reason", "io"},
    {Id::handshake_failed_other, "waypoint_handshake_failures_total", "reason", "other"},
    {Id::rq_no_route, "waypoint_local_replies_total", "cause", "no_route"},
    {Id::rq_authz_denied, "waypoint_local_replies_total", "cause", "authz_denied"},
    {Id::rq_redirect, "waypoint_local_replies_total", "cause", "redirect"},
    {Id::rq_direct_response, "waypoint_local_replies_total", "cause", "direct_response"},
    {Id::rq_fault_aborted, "waypoint_local_replies_total", "cause", "fault_abort"},
    {Id::rq_timeout, "waypoint_local_replies_total", "cause", "route_timeout"},
    {Id::rq_no_healthy_upstream, "waypoint_local_replies_total", "cause", "no_healthy_upstream"},
    {Id::upstream_rq_pending_overflow, "waypoint_local_replies_total", "cause", "circuit_breaker"},
    {Id::downstream_rq_malformed, "waypoint_local_replies_total", "cause", "malformed_request"},
};

const FamilyMember* family_of(Id id) {
  for (const auto& m : kFamilies) {
    if (m.id == id) {
      return &m;
    }
  }
  return nullptr;
}

}  // namespace

std::string render_prometheus(const MetricsSample& merged, const std::vector<const Block*>& blocks,
                              const ProcessMetrics& process) {
  std::string out;
  out.reserve(4096 + merged.http.size() * 8192 + merged.tcp.size() * 2048);
  counter(out, "istio_requests_total", "Requests through the waypoint, by Istio's standard labels.", merged.http,
          &HttpSeries::requests);
  histogram(out, "istio_request_duration_milliseconds", "Request duration, first byte in to last byte out.",
            merged.http, &HttpSeries::duration_ms);
  histogram(out, "istio_request_bytes", "Request sizes (header fields and body).", merged.http,
            &HttpSeries::request_bytes);
  histogram(out, "istio_response_bytes", "Response sizes (header fields and body).", merged.http,
            &HttpSeries::response_bytes);
  counter(out, "istio_tcp_sent_bytes_total", "Bytes sent to the client on TCP chains, counted when a tunnel ends.",
          merged.tcp, &TcpSeries::sent_bytes);
  counter(out, "istio_tcp_received_bytes_total",
          "Bytes received from the client on TCP chains, counted when a tunnel ends.", merged.tcp,
          &TcpSeries::received_bytes);
  counter(out, "istio_tcp_connections_opened_total", "TCP tunnels opened.", merged.tcp, &TcpSeries::opened);
  counter(out, "istio_tcp_connections_closed_total", "TCP tunnels closed.", merged.tcp, &TcpSeries::closed);

  // The proxy's own counters and gauges, summed over workers.
  std::map<std::string, std::string> families;  // family -> rendered block (kept in name order)
  for (int i = 0; i < kCount; ++i) {
    auto id = static_cast<Id>(i);
    const Info& inf = info(id);
    int64_t value = sum(blocks, id);
    if (const FamilyMember* m = family_of(id)) {
      std::string& block = families[m->family];
      if (block.empty()) {
        header(block, m->family, "counter",
               std::string_view(m->label) == "reason" ? "TLS handshakes refused on the HBONE port, by reason."
                                                      : "Requests answered by the waypoint itself, by cause.");
      }
      sample_line(block, m->family, std::string(m->label) + "=\"" + m->value + "\"", std::to_string(value));
      continue;
    }
    std::string name = std::string("waypoint_") + inf.name;
    bool is_counter = inf.kind == Kind::Counter;
    if (is_counter && !name.ends_with("_total")) {
      name += "_total";
    }
    header(out, name, is_counter ? "counter" : "gauge", inf.help);
    sample_line(out, name, "", std::to_string(value));
  }
  for (const auto& [name, block] : families) {
    out += block;
  }
  header(out, "waypoint_buffer_bytes", "gauge", "Pooled buffer bytes in use, all workers.");
  sample_line(out, "waypoint_buffer_bytes", "", std::to_string(merged.buffered_bytes));
  header(out, "waypoint_metric_series_overflow_total", "counter",
         "Label sets folded into the overflow series (per-worker series limit reached).");
  sample_line(out, "waypoint_metric_series_overflow_total", "", number(merged.series_overflow));
  header(out, "waypoint_workers", "gauge", "Worker threads.");
  sample_line(out, "waypoint_workers", "", std::to_string(process.workers));
  header(out, "waypoint_config_loads_total", "counter", "Configuration loads, by result (start-up and reloads).");
  sample_line(out, "waypoint_config_loads_total", "result=\"ok\"", std::to_string(process.config_loads_ok));
  sample_line(out, "waypoint_config_loads_total", "result=\"failed\"", std::to_string(process.config_loads_failed));
  header(out, "waypoint_config_incremental_loads_total", "counter",
         "Reloads of the Kubernetes API mode applied on top of the previous compile (only what changed rebuilt).");
  sample_line(out, "waypoint_config_incremental_loads_total", "", std::to_string(process.config_loads_incremental));
  header(out, "waypoint_config_load_cpu_seconds_total", "counter",
         "CPU time the reloads spent reading and compiling the configuration (start-up excluded).");
  sample_line(out, "waypoint_config_load_cpu_seconds_total", "", number(process.config_load_cpu_seconds));
  header(out, "waypoint_certificate_loads_total", "counter",
         "Certificate loads (cert chain, key, root), by result (start-up and rotations).");
  sample_line(out, "waypoint_certificate_loads_total", "result=\"ok\"", std::to_string(process.certificate_loads_ok));
  sample_line(out, "waypoint_certificate_loads_total", "result=\"failed\"",
              std::to_string(process.certificate_loads_failed));
  header(out, "waypoint_config_loaded_at_seconds", "gauge", "When the configuration in force was loaded (Unix time).");
  sample_line(out, "waypoint_config_loaded_at_seconds", "", number(process.config_loaded_at));
  header(out, "waypoint_ready", "gauge", "1 when serving (config loaded, listeners up, not draining).");
  sample_line(out, "waypoint_ready", "", process.ready ? "1" : "0");
  if (!process.kubernetes.empty()) {
    auto kind_label = [](const std::string& kind) { return "kind=\"" + kind + "\""; };
    header(out, "waypoint_kubernetes_watch_errors_total", "counter",
           "Failed LISTs, WATCHes and undecodable events from the Kubernetes API, by kind.");
    for (const auto& k : process.kubernetes) {
      sample_line(out, "waypoint_kubernetes_watch_errors_total", kind_label(k.kind), std::to_string(k.watch_errors));
    }
    header(out, "waypoint_kubernetes_events_total", "counter", "Watch events applied, by kind and type.");
    for (const auto& k : process.kubernetes) {
      for (const char* type : {"ADDED", "MODIFIED", "DELETED"}) {
        auto it = k.events.find(type);
        sample_line(out, "waypoint_kubernetes_events_total", kind_label(k.kind) + ",type=\"" + type + "\"",
                    std::to_string(it == k.events.end() ? 0 : it->second));
      }
    }
    header(out, "waypoint_kubernetes_last_sync_timestamp_seconds", "gauge",
           "When the kind was last listed or changed by an event (Unix time; 0: never).");
    for (const auto& k : process.kubernetes) {
      sample_line(out, "waypoint_kubernetes_last_sync_timestamp_seconds", kind_label(k.kind), number(k.last_sync));
    }
    header(out, "waypoint_kubernetes_objects", "gauge", "Objects held from the Kubernetes API, by kind.");
    for (const auto& k : process.kubernetes) {
      sample_line(out, "waypoint_kubernetes_objects", kind_label(k.kind), std::to_string(k.objects));
    }
    header(out, "waypoint_config_rejected_objects", "gauge",
           "Objects left out of the configuration in force (each reported with its reason), by kind.");
    for (const auto& [kind, n] : process.rejected_objects) {
      sample_line(out, "waypoint_config_rejected_objects", kind_label(kind), std::to_string(n));
    }
  }
  return out;
}

}  // namespace wp::stats
