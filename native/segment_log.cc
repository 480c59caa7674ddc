#include "segment_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "record.h"

namespace raftline {

namespace {

constexpr uint64_t kMinSegmentBytes = 4096;
constexpr uint64_t kMaxSegmentBytes = 1u << 30;
constexpr const char* kPreallocFile = "next-segment.prealloc";

uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

SegmentLog::SegmentLog(std::string dir, const LogOptions& options, CompletionFn on_complete)
    : dir_(std::move(dir)), options_(options), on_complete_(std::move(on_complete)) {}

SegmentLog::~SegmentLog() { Close(); }

Error SegmentLog::Open(const std::string& dir, const LogOptions& options, CompletionFn on_complete,
                       std::unique_ptr<SegmentLog>* out, RecoveryReport* report) {
  if (options.segment_bytes < kMinSegmentBytes || options.segment_bytes > kMaxSegmentBytes) {
    return Error::Invalid("segmentBytes must be between " + std::to_string(kMinSegmentBytes) + " and " +
                          std::to_string(kMaxSegmentBytes) + ", got " + std::to_string(options.segment_bytes));
  }
  Error err = MakeDirs(dir);
  if (!err.ok()) return err;
  std::unique_ptr<SegmentLog> log(new SegmentLog(dir, options, std::move(on_complete)));
  err = log->LockDir();
  if (!err.ok()) return err;
  err = log->Recover(report);
  if (!err.ok()) return err;
  log->StartThreads();
  *out = std::move(log);
  return Error();
}

Error SegmentLog::LockDir() {
  dir_lock_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_lock_fd_ < 0) return Error::Io("open log directory", dir_, errno);
  int rc;
  do {
    rc = ::flock(dir_lock_fd_, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Error();
  const int errnum = errno;
  Error err = Error::Io("lock log directory", dir_, errnum);
  if (errnum == EWOULDBLOCK) {
    err.message = "log directory " + dir_ +
                  " is in use: another process (or another open log in this one) holds its lock; "
                  "only one may open it at a time";
  }
  return err;
}

Error SegmentLog::Recover(RecoveryReport* report) {
  LogState state;
  Error err = LoadLogState(dir_, &state);
  if (!err.ok()) return err;

  std::vector<std::string> names;
  err = ListDir(dir_, &names);
  if (!err.ok()) return err;

  struct Found {
    uint64_t first;
    uint64_t last;
    std::string name;
  };
  std::vector<Found> closed;
  std::vector<Found> opens;
  for (const std::string& name : names) {
    uint64_t first = 0, last = 0;
    switch (ParseSegmentName(name, &first, &last)) {
      case SegmentNameKind::kOpen: opens.push_back({first, 0, name}); break;
      case SegmentNameKind::kClosed: closed.push_back({first, last, name}); break;
      case SegmentNameKind::kMalformed:
        return Error::Corrupt("file name looks like a segment but is not one this log writes; move it away",
                              JoinPath(dir_, name), 0);
      case SegmentNameKind::kOther:
        if (name == kPreallocFile) prealloc_ready_ = true;
        break;
    }
  }

  auto remove = [&](const std::string& name) -> Error {
    report->removed_segments++;
    return UnlinkFile(JoinPath(dir_, name));
  };

  if (state.pending == PendingOp::kReset) {
    for (const Found& f : closed) {
      if (!(err = remove(f.name)).ok()) return err;
    }
    for (const Found& f : opens) {
      if (!(err = remove(f.name)).ok()) return err;
    }
    closed.clear();
    opens.clear();
    if (!(err = FsyncDir(dir_)).ok()) return err;
    state.pending = PendingOp::kNone;
    if (!(err = SaveLogState(dir_, state)).ok()) return err;
    report->replayed_truncation = true;
  }

  if (opens.size() > 1) {
    return Error::Corrupt("more than one open segment (also " + opens[0].name + ")", JoinPath(dir_, opens[1].name),
                          0);
  }
  std::sort(closed.begin(), closed.end(), [](const Found& a, const Found& b) { return a.first < b.first; });
  // A prefix truncation records the new first index before unlinking, so a
  // crash can leave whole segments below it; finish the job.
  size_t skip = 0;
  while (skip < closed.size() && closed[skip].last < state.first_index) {
    if (!(err = remove(closed[skip].name)).ok()) return err;
    skip++;
  }
  closed.erase(closed.begin(), closed.begin() + static_cast<std::ptrdiff_t>(skip));

  std::vector<Found> all = closed;
  if (!opens.empty()) all.push_back(opens[0]);
  for (size_t i = 1; i < all.size(); i++) {
    uint64_t want = all[i - 1].last + 1;
    if (all[i].first > want) {
      return Error::Corrupt("missing segment: no file holds indexes " + std::to_string(want) + ".." +
                                std::to_string(all[i].first - 1),
                            JoinPath(dir_, all[i].name), 0);
    }
    if (all[i].first < want) {
      return Error::Corrupt("segment overlaps " + all[i - 1].name, JoinPath(dir_, all[i].name), 0);
    }
  }
  if (!all.empty() && all[0].first > state.first_index) {
    return Error::Corrupt("missing segment: the log starts at index " + std::to_string(state.first_index) +
                              " but its first segment starts at " + std::to_string(all[0].first),
                          JoinPath(dir_, all[0].name), 0);
  }

  uint64_t last_term = 0;
  for (size_t i = 0; i < all.size(); i++) {
    const Found& f = all[i];
    const bool is_open = !opens.empty() && i + 1 == all.size();
    const std::string path = JoinPath(dir_, f.name);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return Error::Io("open segment", path, errno);
    auto handle = std::make_shared<FileHandle>(fd);
    if (is_open) {
      // What the scan finds counts as durable, so it must be what the disk
      // holds. Records of a process killed before its fdatasync (or of a
      // batch of this process that failed after its writes) may be only in
      // the page cache: flush them. Pages whose writeback failed (the process
      // that saw the failure exited on it) are marked clean although the disk
      // lacks them, and a new fdatasync reports nothing: drop the cached pages
      // so the scan reads the disk.
      if (!(err = Fdatasync(fd, path)).ok()) return err;
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // advisory: Linux drops clean pages
    }
    ScanResult scan;
    err = ScanSegment(path, fd, f.first, is_open, f.last, state.first_index, &last_term, &terms_, &scan);
    if (!err.ok()) return err;
    if (is_open && scan.dirty_end > scan.valid_end) {
      // Bytes of a write that never completed: zero them, or a later append
      // of a different length could leave parts of them looking like
      // records. Zeroing rather than truncating keeps the preallocation.
      // The cut record's header goes last, once the rest is on disk: a
      // zeroing cut short by a crash then leaves a header that still spans
      // its payload, and no payload without a header, whose bytes (a
      // client's value) could hold what reads as records.
      const uint64_t header_end = std::min<uint64_t>(scan.dirty_end, scan.valid_end + kRecordHeaderBytes);
      if (!(err = ZeroRange(fd, header_end, scan.dirty_end, path)).ok()) return err;
      if (!(err = Fdatasync(fd, path)).ok()) return err;
      if (!(err = ZeroRange(fd, scan.valid_end, header_end, path)).ok()) return err;
      if (!(err = Fdatasync(fd, path)).ok()) return err;
      report->truncated_bytes = scan.dirty_end - scan.valid_end;
      report->truncated_file = path;
      report->truncated_offset = scan.valid_end;
    }
    if (is_open && scan.last_index < state.first_index) {
      // Everything in it was compacted away; the next append starts afresh.
      if (!(err = remove(f.name)).ok()) return err;
      terms_.Clear();
      continue;
    }
    auto file = std::make_shared<SegmentFile>();
    file->first_index = f.first;
    file->path = path;
    file->handle = handle;
    file->open = is_open;
    file->disk_last_index = scan.last_index;
    file->disk_end = scan.valid_end;
    disk_files_.push_back(file);
    scan.offsets.shrink_to_fit();
    segments_.push_back(Segment{file, f.first, scan.last_index, std::move(scan.offsets), scan.valid_end, is_open});
  }
  // Likewise a rename or unlink whose directory fsync never happened.
  if (!(err = FsyncDir(dir_)).ok()) return err;

  first_index_ = state.first_index;
  disk_first_index_ = state.first_index;
  last_index_ = segments_.empty() ? first_index_ - 1 : segments_.back().last_index;
  durable_index_ = last_index_;

  if (state.pending == PendingOp::kTruncateSuffix) {
    report->replayed_truncation = true;
    uint64_t last_kept = std::max(state.pending_arg, first_index_ - 1);
    if (last_kept < last_index_) {
      std::shared_ptr<SegmentFile> cut_file;
      uint64_t cut_offset = 0;
      TruncateIndexAfter(last_kept, &cut_file, &cut_offset);
      return DiskTruncateSuffix(last_kept, cut_file, cut_offset);
    }
    state.pending = PendingOp::kNone;
    return SaveLogState(dir_, state);
  }
  return Error();
}

Error SegmentLog::CheckUsable() const {
  if (closing_) {
    Error e;
    e.kind = ErrorKind::kClosed;
    e.message = "the log is closed";
    return e;
  }
  if (!failed_.ok()) {
    Error e = failed_;
    e.kind = ErrorKind::kClosed;
    e.message = "the log stopped after a write failure (" + failed_.message +
                "); close and reopen it to recover what reached the disk";
    return e;
  }
  return Error();
}

uint64_t SegmentLog::Sequence(WriteOp& op) {
  op.seq = next_seq_++;
  pending_.push_back({op.seq, last_index_});
  return op.seq;
}

Error SegmentLog::Enqueue(WriteOp op, uint64_t* seq) {
  *seq = Sequence(op);
  queue_.push_back(std::move(op));
  queue_cv_.notify_one();
  return Error();
}

Error SegmentLog::Append(uint8_t* data, size_t length, bool seal, bool on_caller, uint64_t* seq, bool* completed) {
  *completed = false;
  std::unique_lock<std::mutex> lock(mu_);
  Error err = CheckUsable();
  if (!err.ok()) return err;
  if (length == 0) return Error::Invalid("append of an empty batch");

  struct Parsed {
    size_t offset;
    size_t bytes;
    uint64_t index;
    uint64_t term;
  };
  std::vector<Parsed> records;
  uint64_t expect = last_index_ + 1;
  // Terms must not decrease within the log; an empty log (fresh, reset or
  // fully compacted) accepts any term.
  uint64_t prev_term = last_index_ >= first_index_ ? terms_.LastTerm() : 0;
  size_t pos = 0;
  // Built only when reporting an error: this loop runs for every record.
  auto where = [&records, &pos]() {
    return "record " + std::to_string(records.size()) + " of the batch (byte " + std::to_string(pos) + ")";
  };
  while (pos < length) {
    RecordHeader h;
    if (seal) {
      if (length - pos < kRecordHeaderBytes) return Error::Invalid(where() + " is cut short");
      h.payload_bytes = Load32(data + pos + 4);
      h.term = Load64(data + pos + 8);
      h.index = Load64(data + pos + 16);
      if (h.payload_bytes > kMaxPayloadBytes) {
        return Error::Invalid(where() + ": payload of " + std::to_string(h.payload_bytes) + " bytes exceeds " +
                              std::to_string(kMaxPayloadBytes));
      }
      if (length - pos - kRecordHeaderBytes < h.payload_bytes) return Error::Invalid(where() + " is cut short");
    } else {
      RecordCheck check = ParseRecord(data + pos, length - pos, true, &h);
      if (check != RecordCheck::kOk) return Error::Invalid(where() + " is not a valid record: " + RecordCheckName(check));
    }
    if (h.index != expect) {
      return Error::Invalid("non-contiguous append: " + where() + " has index " + std::to_string(h.index) +
                            ", expected " + std::to_string(expect) + " (last index is " +
                            std::to_string(last_index_) + ")");
    }
    if (h.index > kMaxIndex) return Error::Invalid("index " + std::to_string(h.index) + " exceeds 2^53-1");
    if (h.term < prev_term) {
      return Error::Invalid("term went backwards: " + where() + " has term " + std::to_string(h.term) +
                            " after term " + std::to_string(prev_term));
    }
    records.push_back({pos, RecordBytes(h), h.index, h.term});
    prev_term = h.term;
    expect++;
    pos += RecordBytes(h);
  }
  if (seal) {
    for (const Parsed& r : records) SealRecord(data + r.offset);
  }

  WriteOp op;
  op.kind = WriteOp::Kind::kAppend;
  for (const Parsed& r : records) {
    Segment* seg = segments_.empty() ? nullptr : &segments_.back();
    const bool has_records = seg != nullptr && seg->last_index >= seg->first_index;
    if (seg == nullptr || !seg->writable || (has_records && seg->end_offset + r.bytes > options_.segment_bytes)) {
      if (seg != nullptr) {
        seg->offsets.shrink_to_fit();
        seg->writable = false;
      }
      auto file = std::make_shared<SegmentFile>();
      file->first_index = r.index;
      file->path = JoinPath(dir_, OpenSegmentName(r.index));
      segments_.push_back(Segment{file, r.index, r.index - 1, {}, 0, true});
      seg = &segments_.back();
    }
    if (op.pieces.empty() || op.pieces.back().file != seg->file) {
      op.pieces.push_back({seg->file, seg->end_offset, data + r.offset, 0, 0});
    }
    op.pieces.back().length += r.bytes;
    op.pieces.back().last_index = r.index;
    seg->offsets.push_back(static_cast<uint32_t>(seg->end_offset));
    seg->end_offset += r.bytes;
    seg->last_index = r.index;
    terms_.Append(r.index, r.term);
  }
  last_index_ = records.back().index;
  // A roll syncs the old segment, may wait for the preallocator and syncs
  // the directory: more than the one sync a caller agrees to block for.
  const bool rolls = op.pieces.size() > 1 || !op.pieces.front().file->handle;
  if (!on_caller || rolls || writer_busy_ || !queue_.empty() || !failed_.ok()) return Enqueue(std::move(op), seq);

  // The writer is idle and nothing is queued before this op: do its work
  // here, in its place, without waking it (and without it waking us back).
  *seq = Sequence(op);
  writer_busy_ = true;
  std::deque<WriteOp> batch;
  batch.push_back(std::move(op));
  lock.unlock();
  err = WriteBatch(batch);
  if (err.ok()) OnCompleted(*seq, err);
  lock.lock();
  writer_busy_ = false;
  // The writer's wait ignored anything queued or a close requested while
  // this thread held writer_busy_; a wake-up with neither would only cost
  // it a context switch.
  const bool writer_has_work = !queue_.empty() || closing_;
  lock.unlock();
  if (writer_has_work) queue_cv_.notify_one();
  // A failure is reported like one on the writer thread, through the
  // completion callback, so callers handle it in one place.
  if (err.ok()) {
    *completed = true;
  } else {
    on_complete_(*seq, err);
  }
  return Error();
}

void SegmentLog::TruncateIndexAfter(uint64_t last_kept, std::shared_ptr<SegmentFile>* cut_file,
                                    uint64_t* cut_offset) {
  while (!segments_.empty() && segments_.back().first_index > last_kept) segments_.pop_back();
  cut_file->reset();
  *cut_offset = 0;
  if (!segments_.empty()) {
    Segment& s = segments_.back();
    const size_t keep = static_cast<size_t>(last_kept - s.first_index + 1);
    if (keep < s.offsets.size()) {
      s.end_offset = s.offsets[keep];
      s.offsets.resize(keep);
    }
    s.last_index = last_kept;
    s.writable = true;  // the writer reopens it as the open segment
    *cut_file = s.file;
    *cut_offset = s.end_offset;
  }
  terms_.TruncateAfter(last_kept);
  last_index_ = last_kept;
  durable_index_ = std::min(durable_index_, last_kept);
  truncations_++;
}

Error SegmentLog::TruncateSuffix(uint64_t last_kept, uint64_t* seq) {
  std::lock_guard<std::mutex> lock(mu_);
  Error err = CheckUsable();
  if (!err.ok()) return err;
  if (last_kept + 1 < first_index_) {
    return Error::Invalid("truncateSuffix(" + std::to_string(last_kept) + ") would cut below the first index " +
                          std::to_string(first_index_) + "; use reset() to start over");
  }
  if (last_kept > last_index_) {
    return Error::Invalid("truncateSuffix(" + std::to_string(last_kept) + ") is beyond the last index " +
                          std::to_string(last_index_));
  }
  WriteOp op;
  if (last_kept == last_index_) {
    op.kind = WriteOp::Kind::kBarrier;
  } else {
    op.kind = WriteOp::Kind::kTruncateSuffix;
    op.arg = last_kept;
    TruncateIndexAfter(last_kept, &op.cut_file, &op.cut_offset);
  }
  return Enqueue(std::move(op), seq);
}

Error SegmentLog::TruncatePrefix(uint64_t first_kept, uint64_t* seq) {
  std::lock_guard<std::mutex> lock(mu_);
  Error err = CheckUsable();
  if (!err.ok()) return err;
  if (first_kept > last_index_ + 1) {
    return Error::Invalid("truncatePrefix(" + std::to_string(first_kept) + ") is beyond the last index + 1 (" +
                          std::to_string(last_index_ + 1) + "); use reset() after installing a snapshot");
  }
  WriteOp op;
  if (first_kept <= first_index_) {
    op.kind = WriteOp::Kind::kBarrier;
  } else {
    op.kind = WriteOp::Kind::kTruncatePrefix;
    op.arg = first_kept;
    first_index_ = first_kept;
    while (!segments_.empty() && segments_.front().last_index < first_kept) segments_.pop_front();
  }
  return Enqueue(std::move(op), seq);
}

Error SegmentLog::Reset(uint64_t next_index, uint64_t* seq) {
  std::lock_guard<std::mutex> lock(mu_);
  Error err = CheckUsable();
  if (!err.ok()) return err;
  if (next_index < 1 || next_index > kMaxIndex) {
    return Error::Invalid("reset(" + std::to_string(next_index) + "): the next index must be in 1..2^53-1");
  }
  segments_.clear();
  terms_.Clear();
  first_index_ = next_index;
  last_index_ = next_index - 1;
  durable_index_ = next_index - 1;
  truncations_++;
  WriteOp op;
  op.kind = WriteOp::Kind::kReset;
  op.arg = next_index;
  return Enqueue(std::move(op), seq);
}

void SegmentLog::OnCompleted(uint64_t seq, const Error& err) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t durable = durable_index_;
  bool popped = false;
  while (!pending_.empty() && pending_.front().seq <= seq) {
    durable = pending_.front().last_index_after;
    pending_.pop_front();
    popped = true;
  }
  if (!popped || !err.ok()) return;
  // A truncation queued after `seq` already lowered the index; entries past
  // its cut are not the ones that were just synced.
  for (const PendingSummary& p : pending_) durable = std::min(durable, p.last_index_after);
  // Truncations and resets lower the index when they are called; a
  // completion only raises it. An append finishing after a reset to a later
  // index would otherwise pull it back below the new first index.
  durable_index_ = std::max(durable_index_, durable);
}

Error SegmentLog::Read(uint64_t from, uint64_t to_exclusive, uint64_t max_bytes, ReadResult* out) {
  struct Chunk {
    std::shared_ptr<FileHandle> handle;
    std::string path;
    uint64_t offset;
    uint64_t bytes;
    uint64_t first_index;
    uint64_t count;
  };
  std::vector<Chunk> chunks;
  uint64_t total = 0;
  uint64_t epoch = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) {
      Error e;
      e.kind = ErrorKind::kClosed;
      e.message = "the log is closed";
      return e;
    }
    if (to_exclusive < from) return Error::Invalid("read range is reversed");
    if (from < first_index_) {
      return Error::Invalid("index " + std::to_string(from) + " is below the first index " +
                            std::to_string(first_index_) + " (compacted)");
    }
    if (to_exclusive - 1 > last_index_ && to_exclusive > from) {
      return Error::Invalid("index " + std::to_string(to_exclusive - 1) + " is beyond the last index " +
                            std::to_string(last_index_));
    }
    if (to_exclusive > from && to_exclusive - 1 > durable_index_) {
      return Error::Invalid("index " + std::to_string(to_exclusive - 1) + " is not durable yet (durable up to " +
                            std::to_string(durable_index_) + "); await its append first");
    }
    epoch = truncations_;
    auto it = std::upper_bound(segments_.begin(), segments_.end(), from,
                               [](uint64_t i, const Segment& s) { return i < s.first_index; });
    if (it != segments_.begin()) --it;
    uint64_t index = from;
    bool full = false;
    for (; it != segments_.end() && index < to_exclusive && !full; ++it) {
      const Segment& s = *it;
      if (index > s.last_index) continue;
      if (!s.file->handle) return Error::Invalid("index " + std::to_string(index) + " is not durable yet");
      Chunk c{s.file->handle, s.file->path, s.offsets[index - s.first_index], 0, index, 0};
      for (; index < to_exclusive && index <= s.last_index; index++) {
        const uint64_t start = s.offsets[index - s.first_index];
        const uint64_t end = index < s.last_index ? s.offsets[index + 1 - s.first_index] : s.end_offset;
        if (total > 0 && total + (end - start) > max_bytes) {
          full = true;
          break;
        }
        total += end - start;
        c.bytes += end - start;
        c.count++;
      }
      if (c.count > 0) chunks.push_back(std::move(c));
    }
  }

  auto raced = [&]() {
    std::lock_guard<std::mutex> lock(mu_);
    return truncations_ != epoch;
  };
  auto retry = []() {
    Error e;
    e.kind = ErrorKind::kRetry;
    e.message = "the log was truncated while this read ran; read again";
    return e;
  };

  out->records.resize(total);
  out->count = 0;
  uint64_t at = 0;
  for (const Chunk& c : chunks) {
    size_t got = 0;
    Error err = PreadFull(c.handle->fd(), out->records.data() + at, c.bytes, c.offset, c.path, &got);
    if (!err.ok()) return err;
    if (got < c.bytes) {
      if (raced()) return retry();
      return Error::Corrupt("segment ends early: wanted " + std::to_string(c.bytes) + " bytes, got " +
                                std::to_string(got),
                            c.path, static_cast<int64_t>(c.offset + got));
    }
    uint64_t pos = 0;
    for (uint64_t k = 0; k < c.count; k++) {
      RecordHeader h;
      RecordCheck check = CheckRecord(out->records.data() + at + pos, c.bytes - pos, &h);
      if (check != RecordCheck::kOk || h.index != c.first_index + k) {
        if (raced()) return retry();
        std::string what = check != RecordCheck::kOk
                               ? std::string(RecordCheckName(check))
                               : "record holds index " + std::to_string(h.index) + " where " +
                                     std::to_string(c.first_index + k) + " belongs";
        return Error::Corrupt(what, c.path, static_cast<int64_t>(c.offset + pos));
      }
      pos += RecordBytes(h);
    }
    at += c.bytes;
    out->count += c.count;
  }
  if (raced()) return retry();
  return Error();
}

uint64_t SegmentLog::FirstIndex() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_index_;
}

uint64_t SegmentLog::LastIndex() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_index_;
}

uint64_t SegmentLog::DurableIndex() const {
  std::lock_guard<std::mutex> lock(mu_);
  return durable_index_;
}

uint64_t SegmentLog::TermAt(uint64_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (index < first_index_ || index > last_index_) return 0;
  return terms_.TermAt(index);
}

uint64_t SegmentLog::IndexMemoryBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t bytes = terms_.MemoryBytes();
  for (const Segment& s : segments_) bytes += sizeof(Segment) + sizeof(SegmentFile) + s.offsets.capacity() * 4;
  return bytes;
}

uint64_t SegmentLog::SegmentCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return segments_.size();
}

}  // namespace raftline
