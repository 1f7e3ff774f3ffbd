#pragma once
// A small streaming JSON writer (RFC 8259) for the access log and the admin API. It keeps track of
// commas and nesting itself, so callers only say what comes next; it never throws and never
// validates beyond that (a key outside an object is the caller's bug).
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace wp::json {

// Integers other than bool (which has its own JSON form).
template <typename T>
concept Integer = std::integral<T> && !std::same_as<T, bool>;

// Appends `s` as a quoted JSON string: '"' and '\' escaped, control characters as \n, \r, \t or
// \u00xx. Other bytes pass through unchanged (UTF-8 stays UTF-8).
void append_string(std::string& out, std::string_view s);

// `s` as a quoted JSON string.
std::string quote(std::string_view s);

class Writer {
 public:
  // indent 0: compact, one line. indent > 0: one element per line, nested by `indent` spaces.
  explicit Writer(int indent = 0) : indent_(indent) {}

  Writer& begin_object() { return open('{'); }
  Writer& end_object() { return close('}'); }
  Writer& begin_array() { return open('['); }
  Writer& end_array() { return close(']'); }

  // The key of the next value inside an object.
  Writer& key(std::string_view k);

  Writer& string(std::string_view v);
  Writer& boolean(bool v);
  Writer& null();
  Writer& number(double v);  // NaN and infinities have no JSON form: written as null
  template <Integer T>
  Writer& number(T v) {
    if constexpr (std::is_signed_v<T>) {
      return integer(static_cast<int64_t>(v));
    } else {
      return unsigned_integer(static_cast<uint64_t>(v));
    }
  }

  // key + value in one call, for the common flat fields.
  Writer& field(std::string_view k, std::string_view v) { return key(k).string(v); }
  Writer& field(std::string_view k, const char* v) { return key(k).string(v); }
  Writer& field(std::string_view k, const std::string& v) { return key(k).string(v); }
  Writer& field(std::string_view k, bool v) { return key(k).boolean(v); }
  Writer& field(std::string_view k, double v) { return key(k).number(v); }
  template <Integer T>
  Writer& field(std::string_view k, T v) {
    return key(k).number(v);
  }

  // Room for `bytes` of output at once: a large document (an admin dump of 100,000 endpoints is
  // ~36 MB) then never doubles its buffer as it grows, which holds the old and the new at once.
  // Room reserved and never written costs address space only.
  void reserve(size_t bytes) { out_.reserve(bytes); }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  Writer& open(char bracket);
  Writer& close(char bracket);
  Writer& integer(int64_t v);
  Writer& unsigned_integer(uint64_t v);
  void before_value();  // the comma and line break that precede a value (none after a key)
  void newline(size_t depth);

  std::string out_;
  std::vector<bool> has_items_;  // per open container: whether something was written in it
  bool after_key_ = false;
  int indent_ = 0;
};

}  // namespace wp::json
