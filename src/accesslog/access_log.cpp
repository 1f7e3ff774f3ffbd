#include "waypoint/accesslog/access_log.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>

#include "waypoint/common/json.h"

namespace wp::accesslog {
namespace {

std::string iso8601(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

AccessLog::AccessLog(event::Loop& loop, const std::string& target, stats::Block& stats)
    : stats_(stats), flush_after_io_(loop, [this] { flush(); }) {
  if (target.empty() || target == "off") {
    return;
  }
  if (target == "stdout") {
    fd_ = STDOUT_FILENO;
  } else if (target == "stderr") {
    fd_ = STDERR_FILENO;
  } else {
    fd_ = ::open(target.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    owns_fd_ = fd_ >= 0;
    if (fd_ < 0) {
      spdlog::error("access log {}: {}; access logging is off", target, std::strerror(errno));
    }
  }
}

AccessLog::~AccessLog() {
  flush();
  if (owns_fd_) {
    ::close(fd_);
  }
}

std::string AccessLog::format(const TunnelRecord& r) {
  std::string out = "{\"start_time\":\"" + iso8601(r.start) + "\",\"protocol\":\"" + r.protocol +
                    "\",\"duration_ms\":" +
                    std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(r.duration).count()) +
                    ",\"response_code\":" + std::to_string(r.response_code);
  auto text = [&out](const char* key, std::string_view value) {
    out += ",\"";
    out += key;
    out += "\":";
    json::append_string(out, value);
  };
  auto number = [&out](const char* key, uint64_t value) {
    out += ",\"";
    out += key;
    out += "\":";
    out += std::to_string(value);
  };
  // A field with no value is "-", as Envoy's formatter writes it (records leave such fields empty).
  auto or_dash = [](std::string_view value) { return value.empty() ? std::string_view("-") : value; };
  text("response_flags", r.response_flags);
  bool http = std::string_view(r.protocol) != "tcp";
  text("route_name", or_dash(http ? r.route : r.chain));
  if (http) {
    text("method", r.method);
    text("path", r.path);
    text("chain", r.chain);
    text("upstream_cluster", or_dash(r.cluster));
    text("x_request_id", r.request_id);
    number("attempts", r.attempts);
  }
  text("source_principal", r.source_principal);
  text("downstream_remote_address", r.source_address);
  text("authority", r.destination);
  text("upstream_host", or_dash(r.upstream_host));
  number("bytes_received", r.bytes_received);
  number("bytes_sent", r.bytes_sent);
  out += "}";
  return out;
}

void AccessLog::log(const TunnelRecord& r) {
  if (fd_ < 0) {
    return;
  }
  if (pending_.size() > kMaxPending) {
    stats_.add(stats::Id::access_log_dropped);
    return;
  }
  pending_ += format(r);
  pending_ += '\n';
  flush_after_io_.schedule();  // one write per loop iteration; goes with the writer
}

void AccessLog::flush() {
  if (fd_ < 0) {
    return;
  }
  size_t off = 0;
  while (off < pending_.size()) {
    ssize_t n = ::write(fd_, pending_.data() + off, pending_.size() - off);
    if (n <= 0) {
      stats_.add(stats::Id::access_log_dropped);  // a failing target: drop what is left
      break;
    }
    off += static_cast<size_t>(n);
  }
  pending_.clear();
}

}  // namespace wp::accesslog
