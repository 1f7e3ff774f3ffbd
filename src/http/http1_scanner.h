#pragma once
// A raw byte scanner that runs ahead of llhttp over every head, chunk-size line, chunk-data
// terminator and trailer section, enforcing what llhttp 8.1 (loose build, no lenient flags) lets
// through: CRLF-only line endings (no bare CR or LF), no obs-fold, field names that are non-empty
// tokens with no whitespace, field values without control characters, chunk data followed by CRLF,
// strict chunk-size lines, and the head byte/field-count limits. It keeps its state across calls,
// so a head may be split at any byte.
#include <cstddef>
#include <cstdint>

namespace wp::http::detail {

enum class ScanError : uint8_t {
  None,
  BadStartLine,     // control character or bare CR/LF in the start line
  BareCr,           // CR not followed by LF
  BareLf,           // LF not preceded by CR
  ObsFold,          // a field line starting with SP/HTAB
  EmptyFieldName,   // ":value"
  FieldNameSpace,   // whitespace inside or after a field name
  BadFieldName,     // non-token character in a field name, or a line without ':'
  BadFieldValue,    // control character in a field value
  HeadTooLarge,     // head (or trailer section) over max_head_bytes
  TooManyFields,    // over max_headers fields
  TargetTooLong,    // request target over max_target_bytes
  BadChunkSize,     // not hex, too long, or whitespace
  BadChunkExt,      // control character or too long
  ChunkDataNoCrlf,  // chunk data not followed by CRLF
};

class RawScanner {
 public:
  // max_target_bytes bounds the second word of the start line (the request target); pass SIZE_MAX
  // for responses.
  RawScanner(size_t max_head_bytes, size_t max_fields, size_t max_target_bytes)
      : max_bytes_(max_head_bytes), max_fields_(max_fields), max_target_(max_target_bytes) {}

  void begin_head();     // a new message starts (leading empty lines are tolerated)
  void begin_chunked();  // the head ended and a chunked body follows

  struct Result {
    size_t consumed = 0;  // bytes accepted (the erroneous byte excluded)
    bool done = false;    // the head (begin_head) or the whole chunked body + trailers ended
    ScanError error = ScanError::None;
  };
  // Scans up to the end of the current section; never past it.
  Result scan(const uint8_t* p, size_t n);

  bool in_trailers() const { return trailers_; }

 private:
  enum class S : uint8_t {
    Start,
    StartCr,
    StartLine,
    StartLineCr,
    LineStart,
    Name,
    Value,
    ValueCr,
    EndCr,
    Size0,
    Size,
    Ext,
    SizeCr,
    Data,
    DataCr,
    DataLf,
    Done,
  };

  size_t max_bytes_;
  size_t max_fields_;
  size_t max_target_;
  S s_ = S::Start;
  bool trailers_ = false;
  size_t bytes_ = 0;   // head or trailer bytes so far
  size_t fields_ = 0;  // fields so far
  size_t line_ = 0;    // bytes in the current chunk-size line
  int spaces_ = 0;     // spaces seen in the start line
  size_t target_ = 0;  // request target bytes so far
  int size_digits_ = 0;
  uint64_t chunk_left_ = 0;
};

}  // namespace wp::http::detail
