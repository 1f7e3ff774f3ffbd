#include "waypoint/http/headers.h"

#include "waypoint/http/message.h"

namespace wp::http {

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
    v.remove_prefix(1);
  }
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
    v.remove_suffix(1);
  }
  return v;
}
namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = lower(c);
  }
  return out;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool is_hop_by_hop(std::string_view n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "transfer-encoding" || n == "te" ||
         n == "upgrade";
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  if (fields_.empty() && fields_.capacity() == 0) {
    fields_.reserve(8);  // one allocation for a typical head instead of four as it grows
  }
  fields_.push_back(Header{lowercase(name), std::string(value)});
  bytes_ += name.size() + value.size();
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  bool placed = false;
  for (auto it = fields_.begin(); it != fields_.end();) {
    if (iequals(it->name, name)) {
      bytes_ -= it->name.size() + it->value.size();
      if (!placed) {
        it->value.assign(value);
        bytes_ += it->name.size() + it->value.size();
        placed = true;
        ++it;
      } else {
        it = fields_.erase(it);
      }
    } else {
      ++it;
    }
  }
  if (!placed) {
    add(name, value);
  }
}

size_t HeaderMap::remove(std::string_view name) {
  size_t removed = 0;
  for (auto it = fields_.begin(); it != fields_.end();) {
    if (iequals(it->name, name)) {
      bytes_ -= it->name.size() + it->value.size();
      it = fields_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

std::optional<std::string_view> HeaderMap::get(std::string_view name) const {
  for (const Header& h : fields_) {
    if (iequals(h.name, name)) {
      return std::string_view(h.value);
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> HeaderMap::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const Header& h : fields_) {
    if (iequals(h.name, name)) {
      out.emplace_back(h.value);
    }
  }
  return out;
}

size_t HeaderMap::count(std::string_view name) const {
  size_t n = 0;
  for (const Header& h : fields_) {
    if (iequals(h.name, name)) {
      ++n;
    }
  }
  return n;
}

void HeaderMap::clear() {
  fields_.clear();
  bytes_ = 0;
}

bool HeaderMap::operator==(const HeaderMap& o) const {
  if (fields_.size() != o.fields_.size()) {
    return false;
  }
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (fields_[i].name != o.fields_[i].name || fields_[i].value != o.fields_[i].value) {
      return false;
    }
  }
  return true;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

namespace {

bool is_framing_lookalike(std::string_view name) {
  auto same = [&](std::string_view target) {
    if (name.size() != target.size()) {
      return false;
    }
    for (size_t i = 0; i < name.size(); ++i) {
      char c = name[i] == '_' ? '-' : name[i];
      if (c != target[i]) {
        return false;
      }
    }
    return true;
  };
  return same("content-length") || same("transfer-encoding");
}

}  // namespace

UnderscoreVerdict check_underscores(HeaderMap& headers, UnderscoreAction action) {
  std::vector<std::string> drop;
  for (const Header& h : headers) {
    if (h.name.find('_') == std::string::npos) {
      continue;
    }
    if (is_framing_lookalike(h.name)) {
      return UnderscoreVerdict::FramingLookalike;
    }
    if (action == UnderscoreAction::RejectRequest) {
      return UnderscoreVerdict::Rejected;
    }
    if (action == UnderscoreAction::DropHeader) {
      drop.push_back(h.name);
    }
  }
  for (const std::string& name : drop) {
    headers.remove(name);
  }
  return drop.empty() ? UnderscoreVerdict::Ok : UnderscoreVerdict::Dropped;
}

}  // namespace wp::http
