// The record framing shared by segment files and AppendEntries on the wire.
// See docs/log-format.md for the byte layout and the reasons behind it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace raftline {

constexpr size_t kRecordHeaderBytes = 32;
constexpr uint16_t kRecordMagic = 0x4C52;  // bytes 'R' 'L'
constexpr uint8_t kRecordVersion = 1;
constexpr uint32_t kMaxPayloadBytes = 256u << 20;
constexpr uint64_t kMaxIndex = (uint64_t{1} << 53) - 1;  // JS safe integers

struct RecordHeader {
  uint8_t type;
  uint32_t payload_bytes;
  uint64_t term;
  uint64_t index;
  uint32_t payload_crc;
};

enum class RecordCheck {
  kOk,
  kShort,          // fewer bytes than a header or than the header's payload length
  kZero,           // the header bytes are all zero (preallocated or zero-filled space)
  kBadMagic,       // neither zero nor a raftline record header
  kBadHeaderCrc,   // header checksum mismatch
  kBadLength,      // payload length over kMaxPayloadBytes
  kBadPayloadCrc,  // payload checksum mismatch
};

const char* RecordCheckName(RecordCheck check);

// Parses and verifies the record at `p` (at most `available` bytes). On kOk,
// `out` holds the header and the record spans kRecordHeaderBytes + payload.
RecordCheck CheckRecord(const uint8_t* p, size_t available, RecordHeader* out);

// Same, but trusts the payload (header-only check) when `verify_payload` is false.
RecordCheck ParseRecord(const uint8_t* p, size_t available, bool verify_payload, RecordHeader* out);

// Fills in both checksums of a record whose other header fields and payload
// are in place. Used when JS framed the batch itself.
void SealRecord(uint8_t* p);

// Whether the `n` bytes at `p` are all zero, as preallocated space is.
bool AllZero(const uint8_t* p, size_t n);

inline size_t RecordBytes(const RecordHeader& h) { return kRecordHeaderBytes + h.payload_bytes; }

}  // namespace raftline
