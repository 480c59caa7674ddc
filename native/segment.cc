#include "segment.h"

#include <sys/mman.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "record.h"

namespace raftline {

namespace {

constexpr size_t kIndexDigits = 20;

bool ParseDigits(const std::string& s, size_t pos, uint64_t* out) {
  if (s.size() < pos + kIndexDigits) return false;
  uint64_t v = 0;
  for (size_t i = pos; i < pos + kIndexDigits; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
  }
  *out = v;
  return true;
}

bool EndsWith(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Read-only view of a whole file. Segments are scanned once on open, so a
// private mapping avoids copying them through a buffer.
class MappedFile {
 public:
  MappedFile(int fd, size_t size) : size_(size) {
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = static_cast<const uint8_t*>(p);
        ::madvise(p, size_, MADV_SEQUENTIAL);
      }
    }
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  bool ok() const { return size_ == 0 || data_ != nullptr; }
  const uint8_t* data() const { return data_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_;
};

// Looks for an intact record of this log after the bad one at `bad_pos` (the
// record of index `bad_index`), from `from` on. Finding one means the damage
// is not a torn final write but corruption of data that was followed by more
// writes, which must not be discarded silently. A record of this log there
// holds a later index, by at most one per header's worth of bytes between
// the two (every record is at least a header), and no lower term than
// `last_term`. Intact records that do not (a client's value holding a copy of
// raftline records, in the payload of a torn record) prove nothing.
bool FindIntactRecordAfter(const uint8_t* data, size_t size, size_t bad_pos, size_t from, uint64_t bad_index,
                           uint64_t last_term, size_t* found_at) {
  const uint8_t first_byte = static_cast<uint8_t>(kRecordMagic & 0xff);
  size_t pos = from;
  while (pos + kRecordHeaderBytes <= size) {
    const void* hit = std::memchr(data + pos, first_byte, size - kRecordHeaderBytes + 1 - pos);
    if (hit == nullptr) return false;
    pos = static_cast<size_t>(static_cast<const uint8_t*>(hit) - data);
    RecordHeader h;
    if (CheckRecord(data + pos, size - pos, &h) == RecordCheck::kOk && h.index > bad_index &&
        h.index - bad_index <= (pos - bad_pos) / kRecordHeaderBytes && h.term >= last_term) {
      *found_at = pos;
      return true;
    }
    pos++;
  }
  return false;
}

// The unit a disk writes atomically. Aligned to file offsets, which is what
// a filesystem block (a multiple of it) maps onto.
constexpr size_t kSectorBytes = 512;

// Whether the bad record at `pos`, with no intact record after it, can be a
// write cut short rather than damage to a record written in full. A write
// cut short (power loss on a sector-atomic disk; kill -9, which tears at page
// boundaries) leaves whole sectors unwritten, and those still hold what the
// preallocation put there: zeros. A record written in full and fdatasynced
// may have been acknowledged to a leader, so dropping it could lose a
// committed entry; only a record that shows the mark of a tear may be cut.
bool IsTornWrite(const uint8_t* data, size_t size, size_t pos, RecordCheck check, const RecordHeader& h) {
  // The record, or its header, runs past the end of the file: its write
  // extended the file and stopped short. (A whole header is checksummed
  // before its length is compared with the file, so the length reaching past
  // the end is the one written, not a flipped bit.)
  if (check == RecordCheck::kShort) return true;
  // A zero header with bytes after it: the header was never written (a
  // written one starts with the non-zero magic), whatever reached the disk
  // after it (an out-of-order flush, or recovery's own zeroing of an earlier
  // cut, interrupted).
  if (check == RecordCheck::kZero) return true;
  // The record's span, by its length only when the header checksum vouches
  // for it: a flipped bit in the length must not stretch the span over the
  // zeros after the last record and make it look torn.
  size_t end = pos + kRecordHeaderBytes;
  if (check == RecordCheck::kBadPayloadCrc) end = pos + RecordBytes(h);
  end = std::min(end, size);
  // A sector's content up to its end counts, not just the record's bytes in
  // it: the few bytes a record puts at the start of a sector may be payload
  // zeros, while an unwritten sector is zero throughout (past the end of the
  // file counts as zero). The first sector is judged from `pos` on: before
  // it lie earlier records, written and synced, which say nothing about this
  // write (and a written record is never zero at `pos`, where its magic is).
  // A written sector holding only zeros (a payload zero over a whole sector,
  // or its last bytes followed by the zeros of the preallocation) is the one
  // case this cannot tell from a tear.
  for (size_t sector = pos - pos % kSectorBytes; sector < end; sector += kSectorBytes) {
    const size_t from = std::max(sector, pos);
    if (AllZero(data + from, std::min(sector + kSectorBytes, size) - from)) return true;
  }
  return false;
}

}  // namespace

std::string OpenSegmentName(uint64_t first_index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%020" PRIu64 ".open", first_index);
  return buf;
}

std::string ClosedSegmentName(uint64_t first_index, uint64_t last_index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%020" PRIu64 "-%020" PRIu64 ".seg", first_index, last_index);
  return buf;
}

SegmentNameKind ParseSegmentName(const std::string& name, uint64_t* first, uint64_t* last) {
  bool open = EndsWith(name, ".open");
  bool closed = EndsWith(name, ".seg");
  if (!open && !closed) return SegmentNameKind::kOther;
  if (open && name.size() == kIndexDigits + 5 && ParseDigits(name, 0, first)) {
    return SegmentNameKind::kOpen;
  }
  if (closed && name.size() == 2 * kIndexDigits + 5 && name[kIndexDigits] == '-' && ParseDigits(name, 0, first) &&
      ParseDigits(name, kIndexDigits + 1, last) && *last >= *first) {
    return SegmentNameKind::kClosed;
  }
  return SegmentNameKind::kMalformed;
}

void TermIndex::Append(uint64_t index, uint64_t term) {
  if (runs_.empty() || runs_.back().term != term) runs_.push_back({index, term});
}

uint64_t TermIndex::TermAt(uint64_t index) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), index,
                             [](uint64_t i, const Run& r) { return i < r.start_index; });
  return it == runs_.begin() ? 0 : (it - 1)->term;
}

void TermIndex::TruncateAfter(uint64_t last_kept) {
  while (!runs_.empty() && runs_.back().start_index > last_kept) runs_.pop_back();
}

Error ScanSegment(const std::string& path, int fd, uint64_t first_index, bool is_open, uint64_t expected_last,
                  uint64_t live_first, uint64_t* last_term, TermIndex* terms, ScanResult* out) {
  Error err = FileSize(fd, path, &out->file_bytes);
  if (!err.ok()) return err;
  const size_t size = static_cast<size_t>(out->file_bytes);
  MappedFile map(fd, size);
  if (!map.ok()) return Error::Io("map", path, errno);
  const uint8_t* data = map.data();

  uint64_t expect = first_index;
  size_t pos = 0;
  RecordCheck check = RecordCheck::kOk;
  RecordHeader h{};  // after the loop, the bad record's header when its checksum passed
  while (pos < size) {
    check = CheckRecord(data + pos, size - pos, &h);
    if (check != RecordCheck::kOk) break;
    if (h.index != expect) {
      return Error::Corrupt("record holds index " + std::to_string(h.index) + " where " + std::to_string(expect) +
                                " belongs",
                            path, static_cast<int64_t>(pos));
    }
    if (h.index > live_first && h.term < *last_term) {
      return Error::Corrupt("term " + std::to_string(h.term) + " of index " + std::to_string(h.index) +
                                " is below the preceding term " + std::to_string(*last_term),
                            path, static_cast<int64_t>(pos));
    }
    if (pos > UINT32_MAX) return Error::Corrupt("segment larger than 4 GiB", path, static_cast<int64_t>(pos));
    out->offsets.push_back(static_cast<uint32_t>(pos));
    terms->Append(h.index, h.term);
    *last_term = h.term;
    pos += RecordBytes(h);
    expect++;
  }
  out->last_index = expect - 1;
  out->valid_end = pos;

  if (!is_open) {
    if (pos < size) {
      return Error::Corrupt(std::string("closed segment has a bad record (") + RecordCheckName(check) + ")", path,
                            static_cast<int64_t>(pos));
    }
    if (out->last_index != expected_last) {
      return Error::Corrupt("closed segment ends at index " + std::to_string(out->last_index) +
                                " but its name says " + std::to_string(expected_last) + " (truncated file?)",
                            path, static_cast<int64_t>(pos));
    }
    return Error();
  }
  if (pos < size) {
    size_t intact_at = 0;
    // A bad record whose header checksum passed (its payload's did not, or
    // runs past the end of the file) spans the length it gives; records
    // inside its payload are a client's bytes, not later writes.
    const bool header_vouched =
        check == RecordCheck::kBadPayloadCrc || (check == RecordCheck::kShort && size - pos >= kRecordHeaderBytes);
    size_t search_from = pos + 1;
    if (header_vouched) search_from = std::max(search_from, std::min(size, pos + RecordBytes(h)));
    if (FindIntactRecordAfter(data, size, pos, search_from, expect, *last_term, &intact_at)) {
      return Error::Corrupt(std::string("bad record (") + RecordCheckName(check) + ") followed by an intact record at byte " +
                                std::to_string(intact_at) + "; this is not a torn tail, refusing to drop data",
                            path, static_cast<int64_t>(pos));
    }
    for (size_t i = size; i > pos; i--) {
      if (data[i - 1] != 0) {
        out->dirty_end = i;
        break;
      }
    }
    if (out->dirty_end != 0 && !IsTornWrite(data, size, pos, check, h)) {
      return Error::Corrupt(std::string("bad last record (") + RecordCheckName(check) +
                                ") is not a torn write: none of its 512-byte sectors is zero-filled as a write cut short "
                                "leaves them, so it may have been acknowledged; refusing to drop it (restore the file, "
                                "or rebuild this node from its peers)",
                            path, static_cast<int64_t>(pos));
    }
  }
  return Error();
}

}  // namespace raftline
