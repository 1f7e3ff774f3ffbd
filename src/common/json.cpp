#include "waypoint/common/json.h"

#include <charconv>
#include <cmath>

namespace wp::json {

void append_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0x0f];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string quote(std::string_view s) {
  std::string out;
  append_string(out, s);
  return out;
}

void Writer::newline(size_t depth) {
  if (indent_ > 0) {
    out_ += '\n';
    out_.append(depth * static_cast<size_t>(indent_), ' ');
  }
}

void Writer::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (has_items_.empty()) {
    return;
  }
  if (has_items_.back()) {
    out_ += ',';
  }
  has_items_.back() = true;
  newline(has_items_.size());
}

Writer& Writer::key(std::string_view k) {
  before_value();
  append_string(out_, k);
  out_ += indent_ > 0 ? ": " : ":";
  after_key_ = true;
  return *this;
}

Writer& Writer::open(char bracket) {
  before_value();
  out_ += bracket;
  has_items_.push_back(false);
  return *this;
}

Writer& Writer::close(char bracket) {
  bool had_items = !has_items_.empty() && has_items_.back();
  if (!has_items_.empty()) {
    has_items_.pop_back();
  }
  if (had_items) {
    newline(has_items_.size());
  }
  out_ += bracket;
  return *this;
}

Writer& Writer::string(std::string_view v) {
  before_value();
  append_string(out_, v);
  return *this;
}

Writer& Writer::boolean(bool v) {
  before_value();
  out_ += v ? "true" : "false";
  return *this;
}

Writer& Writer::null() {
  before_value();
  out_ += "null";
  return *this;
}

Writer& Writer::integer(int64_t v) {
  before_value();
  out_ += std::to_string(v);
  return *this;
}

Writer& Writer::unsigned_integer(uint64_t v) {
  before_value();
  out_ += std::to_string(v);
  return *this;
}

Writer& Writer::number(double v) {
  if (!std::isfinite(v)) {
    return null();
  }
  before_value();
  // Shortest text that reads back as the same double ("90", "33.333333333333336").
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out_.append(buf, ec == std::errc() ? end : buf);
  return *this;
}

}  // namespace wp::json
