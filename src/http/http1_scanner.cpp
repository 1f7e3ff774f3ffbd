#include "http1_scanner.h"

#include <algorithm>

namespace wp::http::detail {
namespace {

constexpr size_t kMaxChunkLine = 4096;

bool is_tchar(uint8_t c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// HTAB, SP, VCHAR, obs-text.
bool is_field_char(uint8_t c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

int hex_value(uint8_t c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace

void RawScanner::begin_head() {
  s_ = S::Start;
  trailers_ = false;
  bytes_ = 0;
  fields_ = 0;
  spaces_ = 0;
  target_ = 0;
}

void RawScanner::begin_chunked() {
  s_ = S::Size0;
  trailers_ = false;
  line_ = 0;
  size_digits_ = 0;
  chunk_left_ = 0;
}

RawScanner::Result RawScanner::scan(const uint8_t* p, size_t n) {
  Result r;
  size_t i = 0;
  auto fail = [&](ScanError e) {
    r.consumed = i;
    r.error = e;
    return r;
  };
  while (i < n) {
    if (s_ == S::Done) {
      break;
    }
    if (s_ == S::Data) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_left_, n - i));
      i += take;
      chunk_left_ -= take;
      if (chunk_left_ == 0) {
        s_ = S::DataCr;
      }
      continue;
    }
    const uint8_t c = p[i];
    const bool counted = s_ <= S::EndCr;  // head or trailer section bytes
    if (counted && ++bytes_ > max_bytes_) {
      return fail(ScanError::HeadTooLarge);
    }
    switch (s_) {
      case S::Start:
        if (c == '\r') {
          s_ = S::StartCr;
        } else if (c == '\n') {
          return fail(ScanError::BareLf);
        } else if (c < 0x20 || c == 0x7f) {
          return fail(ScanError::BadStartLine);
        } else {
          s_ = S::StartLine;
          spaces_ = c == ' ' ? 1 : 0;
        }
        break;
      case S::StartCr:
        if (c != '\n') {
          return fail(ScanError::BareCr);
        }
        s_ = S::Start;
        break;
      case S::StartLine:
        if (c == '\r') {
          s_ = S::StartLineCr;
        } else if (c == '\n') {
          return fail(ScanError::BareLf);
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
          return fail(ScanError::BadStartLine);
        } else if (c == ' ') {
          ++spaces_;
        } else if (spaces_ == 1 && ++target_ > max_target_) {
          return fail(ScanError::TargetTooLong);
        }
        break;
      case S::StartLineCr:
        if (c != '\n') {
          return fail(ScanError::BareCr);
        }
        s_ = S::LineStart;
        break;
      case S::LineStart:
        if (c == '\r') {
          s_ = S::EndCr;
        } else if (c == '\n') {
          return fail(ScanError::BareLf);
        } else if (c == ' ' || c == '\t') {
          return fail(ScanError::ObsFold);
        } else if (c == ':') {
          return fail(ScanError::EmptyFieldName);
        } else if (!is_tchar(c)) {
          return fail(ScanError::BadFieldName);
        } else {
          if (++fields_ > max_fields_) {
            return fail(ScanError::TooManyFields);
          }
          s_ = S::Name;
        }
        break;
      case S::Name:
        if (c == ':') {
          s_ = S::Value;
        } else if (c == ' ' || c == '\t') {
          return fail(ScanError::FieldNameSpace);
        } else if (c == '\r' || c == '\n' || !is_tchar(c)) {
          return fail(ScanError::BadFieldName);
        }
        break;
      case S::Value:
        if (c == '\r') {
          s_ = S::ValueCr;
        } else if (c == '\n') {
          return fail(ScanError::BareLf);
        } else if (!is_field_char(c)) {
          return fail(ScanError::BadFieldValue);
        }
        break;
      case S::ValueCr:
        if (c != '\n') {
          return fail(ScanError::BareCr);
        }
        s_ = S::LineStart;
        break;
      case S::EndCr:
        if (c != '\n') {
          return fail(ScanError::BareCr);
        }
        s_ = S::Done;
        ++i;
        r.consumed = i;
        r.done = true;
        return r;
      case S::Size0:
      case S::Size: {
        ++line_;
        int v = hex_value(c);
        if (v >= 0) {
          if (++size_digits_ > 16) {
            return fail(ScanError::BadChunkSize);
          }
          chunk_left_ = (chunk_left_ << 4) | static_cast<uint64_t>(v);
          s_ = S::Size;
        } else if (s_ == S::Size && c == ';') {
          s_ = S::Ext;
        } else if (s_ == S::Size && c == '\r') {
          s_ = S::SizeCr;
        } else {
          return fail(ScanError::BadChunkSize);
        }
        break;
      }
      case S::Ext:
        if (++line_ > kMaxChunkLine) {
          return fail(ScanError::BadChunkExt);
        }
        if (c == '\r') {
          s_ = S::SizeCr;
        } else if (!is_field_char(c)) {
          return fail(ScanError::BadChunkExt);
        }
        break;
      case S::SizeCr:
        if (c != '\n') {
          return fail(ScanError::BareCr);
        }
        line_ = 0;
        size_digits_ = 0;
        if (chunk_left_ == 0) {
          // Last chunk: the trailer section follows, with its own byte and field budget.
          trailers_ = true;
          bytes_ = 0;
          fields_ = 0;
          s_ = S::LineStart;
        } else {
          s_ = S::Data;
        }
        break;
      case S::DataCr:
        if (c != '\r') {
          return fail(ScanError::ChunkDataNoCrlf);
        }
        s_ = S::DataLf;
        break;
      case S::DataLf:
        if (c != '\n') {
          return fail(ScanError::ChunkDataNoCrlf);
        }
        s_ = S::Size0;
        break;
      case S::Data:
      case S::Done:
        break;
    }
    ++i;
  }
  r.consumed = i;
  r.done = s_ == S::Done;
  return r;
}

}  // namespace wp::http::detail
