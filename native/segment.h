// One segment file and the scan that recovers its records.
//
// Names: the open segment is `<first>.open`; closed segments are
// `<first>-<last>.seg`; indexes are zero-padded to 20 digits so names sort in
// log order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fs_util.h"

namespace raftline {

std::string OpenSegmentName(uint64_t first_index);
std::string ClosedSegmentName(uint64_t first_index, uint64_t last_index);

enum class SegmentNameKind { kOpen, kClosed, kOther, kMalformed };
// Classifies a directory entry. kMalformed: ends in .open or .seg but is not
// a name this log writes, which is reported rather than ignored.
SegmentNameKind ParseSegmentName(const std::string& name, uint64_t* first, uint64_t* last);

// A segment file on disk. `path`, `handle` and `open` are written by the
// writer thread under the log's mutex; `disk_*` are the writer's alone.
struct SegmentFile {
  uint64_t first_index = 0;
  std::string path;
  std::shared_ptr<FileHandle> handle;  // null until the writer creates it
  bool open = true;
  uint64_t disk_last_index = 0;  // last index written to the file
  uint64_t disk_end = 0;         // bytes of records written to the file
};

// Term of each run of entries: terms never decrease, so a handful of runs
// describe millions of entries.
class TermIndex {
 public:
  void Append(uint64_t index, uint64_t term);
  // Term of `index`, which must be covered by some run.
  uint64_t TermAt(uint64_t index) const;
  void TruncateAfter(uint64_t last_kept);
  void Clear() { runs_.clear(); }
  uint64_t LastTerm() const { return runs_.empty() ? 0 : runs_.back().term; }
  size_t MemoryBytes() const { return runs_.capacity() * sizeof(Run); }

 private:
  struct Run {
    uint64_t start_index;
    uint64_t term;
  };
  std::vector<Run> runs_;
};

struct ScanResult {
  uint64_t last_index = 0;        // first_index - 1 when the file holds no record
  std::vector<uint32_t> offsets;  // byte offset of each record, in index order
  uint64_t valid_end = 0;         // byte after the last intact record
  uint64_t file_bytes = 0;
  uint64_t dirty_end = 0;         // byte after the last non-zero byte past valid_end (a torn write); 0 if none
};

// Scans `path`, whose first record must carry `first_index`, verifying every
// checksum and that indexes run on by one and terms never decrease (starting
// from `*last_term`, which is updated) among entries from `live_first` on;
// older records were compacted away logically and may precede a reset of
// terms. A closed segment must hold exactly
// first..`expected_last` and nothing after. An open segment may end in
// zero-filled space, or in a torn write: a bad last record that runs past the
// end of the file or has a zero-filled 512-byte sector, as a write cut short
// leaves it. Anything else that fails validation is corruption, including a
// bad last record written in full, which may have been acknowledged.
Error ScanSegment(const std::string& path, int fd, uint64_t first_index, bool is_open, uint64_t expected_last,
                  uint64_t live_first, uint64_t* last_term, TermIndex* terms, ScanResult* out);

}  // namespace raftline
