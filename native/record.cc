#include "record.h"

#include <cstring>

#include "crc32c.h"

namespace raftline {
namespace {

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

constexpr size_t kHeaderCrcOffset = 28;
constexpr size_t kPayloadCrcOffset = 24;

}  // namespace

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != 0) return false;
  }
  return true;
}

const char* RecordCheckName(RecordCheck check) {
  switch (check) {
    case RecordCheck::kOk: return "ok";
    case RecordCheck::kShort: return "record cut short";
    case RecordCheck::kZero: return "zero-filled header";
    case RecordCheck::kBadMagic: return "bad magic or version";
    case RecordCheck::kBadHeaderCrc: return "header checksum mismatch";
    case RecordCheck::kBadLength: return "payload length out of range";
    case RecordCheck::kBadPayloadCrc: return "payload checksum mismatch";
  }
  return "unknown";
}

RecordCheck ParseRecord(const uint8_t* p, size_t available, bool verify_payload, RecordHeader* out) {
  if (available < kRecordHeaderBytes) {
    return AllZero(p, available) ? RecordCheck::kZero : RecordCheck::kShort;
  }
  if (Load<uint16_t>(p) != kRecordMagic || p[2] != kRecordVersion) {
    return AllZero(p, kRecordHeaderBytes) ? RecordCheck::kZero : RecordCheck::kBadMagic;
  }
  if (Crc32c(0, p, kHeaderCrcOffset) != Load<uint32_t>(p + kHeaderCrcOffset)) return RecordCheck::kBadHeaderCrc;
  out->type = p[3];
  out->payload_bytes = Load<uint32_t>(p + 4);
  out->term = Load<uint64_t>(p + 8);
  out->index = Load<uint64_t>(p + 16);
  out->payload_crc = Load<uint32_t>(p + kPayloadCrcOffset);
  if (out->payload_bytes > kMaxPayloadBytes) return RecordCheck::kBadLength;
  if (available - kRecordHeaderBytes < out->payload_bytes) return RecordCheck::kShort;
  if (verify_payload && Crc32c(0, p + kRecordHeaderBytes, out->payload_bytes) != out->payload_crc) {
    return RecordCheck::kBadPayloadCrc;
  }
  return RecordCheck::kOk;
}

RecordCheck CheckRecord(const uint8_t* p, size_t available, RecordHeader* out) {
  return ParseRecord(p, available, true, out);
}

void SealRecord(uint8_t* p) {
  Store<uint16_t>(p, kRecordMagic);
  p[2] = kRecordVersion;
  uint32_t payload_bytes = Load<uint32_t>(p + 4);
  Store<uint32_t>(p + kPayloadCrcOffset, Crc32c(0, p + kRecordHeaderBytes, payload_bytes));
  Store<uint32_t>(p + kHeaderCrcOffset, Crc32c(0, p, kHeaderCrcOffset));
}

}  // namespace raftline
