// The writer and preallocator threads: every change to segment files happens
// here, in queue order.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "record.h"
#include "segment_log.h"

namespace raftline {

namespace {

constexpr const char* kPreallocFile = "next-segment.prealloc";

// Reserves the blocks of a new segment up front so appends do not allocate
// on the hot path and a full disk shows up before data is written, not
// halfway through a batch. Filesystems without fallocate just grow the file.
Error Preallocate(int fd, uint64_t bytes, const std::string& path) {
  int rc = ::fallocate(fd, 0, 0, static_cast<off_t>(bytes));
  if (rc != 0 && errno != EOPNOTSUPP && errno != ENOSYS) return Error::Io("preallocate", path, errno);
  return Error();
}

Error InternalError(const std::string& what) {
  Error e;
  e.kind = ErrorKind::kIo;
  e.message = "internal error in the segment log writer: " + what;
  return e;
}

}  // namespace

void SegmentLog::StartThreads() {
  writer_ = std::thread([this] { WriterLoop(); });
  preallocator_ = std::thread([this] { PreallocLoop(); });
}

void SegmentLog::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  queue_cv_.notify_all();
  prealloc_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (preallocator_.joinable()) preallocator_.join();
  std::lock_guard<std::mutex> lock(mu_);
  segments_.clear();
  disk_files_.clear();
  if (dir_lock_fd_ >= 0) {
    ::close(dir_lock_fd_);
    dir_lock_fd_ = -1;
  }
}

void SegmentLog::SetPath(SegmentFile* file, const std::string& name, bool open) {
  std::lock_guard<std::mutex> lock(mu_);
  file->path = JoinPath(dir_, name);
  file->open = open;
}

void SegmentLog::WriterLoop() {
  std::deque<WriteOp> batch;
  for (;;) {
    Error err;
    {
      // writer_busy_ is cleared only after a batch this thread ran: clearing
      // it here, on the first pass, could take it from a caller already
      // writing in the writer's place.
      std::unique_lock<std::mutex> lock(mu_);
      queue_cv_.wait(lock, [this] { return !writer_busy_ && (!queue_.empty() || closing_); });
      if (queue_.empty()) return;
      batch.swap(queue_);
      writer_busy_ = true;
      err = failed_;
    }
    const uint64_t last_seq = batch.back().seq;
    if (err.ok()) err = WriteBatch(batch);
    batch.clear();
    {
      // Released before the completion is delivered, so that the caller it
      // wakes can write in the writer's place at once. Its own completion
      // then settles this batch too, which is already on disk (or failed_
      // is set and it does not write).
      std::lock_guard<std::mutex> lock(mu_);
      writer_busy_ = false;
    }
    on_complete_(last_seq, err);
  }
}

Error SegmentLog::WriteBatch(std::deque<WriteOp>& batch) {
  std::vector<iovec> iov;
  SegmentFile* iov_file = nullptr;
  uint64_t iov_offset = 0;
  Error err;
  for (WriteOp& op : batch) {
    err = Execute(op, &iov, &iov_file, &iov_offset);
    if (!err.ok()) break;
  }
  if (err.ok()) err = Flush(&iov, iov_file, iov_offset);
  if (err.ok() && dirty_ && options_.sync) {
    const SegmentFile* open = disk_files_.back().get();
    err = Fdatasync(open->handle->fd(), open->path);
  }
  dirty_ = false;
  if (!err.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.ok()) failed_ = err;
  }
  return err;
}

Error SegmentLog::Execute(WriteOp& op, std::vector<iovec>* iov, SegmentFile** iov_file, uint64_t* iov_offset) {
  if (op.kind == WriteOp::Kind::kAppend) {
    for (WriteOp::Piece& piece : op.pieces) {
      const bool is_current = !disk_files_.empty() && disk_files_.back() == piece.file && piece.file->open;
      if (!is_current) {
        Error err = Flush(iov, *iov_file, *iov_offset);
        if (!err.ok()) return err;
        if (!(err = RollTo(piece.file)).ok()) return err;
      }
      SegmentFile* file = piece.file.get();
      if (piece.file_offset != file->disk_end) {
        return InternalError("append at byte " + std::to_string(piece.file_offset) + " of " + file->path +
                             " but the file ends at " + std::to_string(file->disk_end));
      }
      if (iov->empty()) {
        *iov_file = file;
        *iov_offset = piece.file_offset;
      }
      iov->push_back({const_cast<uint8_t*>(piece.data), piece.length});
      file->disk_end += piece.length;
      file->disk_last_index = piece.last_index;
      dirty_ = true;
    }
    return Error();
  }
  Error err = Flush(iov, *iov_file, *iov_offset);
  if (!err.ok()) return err;
  switch (op.kind) {
    case WriteOp::Kind::kTruncateSuffix: return DiskTruncateSuffix(op.arg, op.cut_file, op.cut_offset);
    case WriteOp::Kind::kTruncatePrefix: return DiskTruncatePrefix(op.arg);
    case WriteOp::Kind::kReset: return DiskReset(op.arg);
    default: return Error();
  }
}

Error SegmentLog::Flush(std::vector<iovec>* iov, SegmentFile* file, uint64_t offset) {
  if (iov->empty()) return Error();
  Error err = PwritevAll(file->handle->fd(), std::move(*iov), offset, file->path);
  iov->clear();
  return err;
}

Error SegmentLog::RollTo(const std::shared_ptr<SegmentFile>& next) {
  Error err = FinishOpenSegment();
  if (!err.ok()) return err;
  return CreateOpenSegment(next);
}

Error SegmentLog::FinishOpenSegment() {
  if (disk_files_.empty() || !disk_files_.back()->open) return Error();
  std::shared_ptr<SegmentFile> file = disk_files_.back();
  if (file->disk_last_index < file->first_index) {
    // Never received a record; an empty closed segment would be meaningless.
    disk_files_.pop_back();
    return UnlinkFile(file->path);
  }
  const int fd = file->handle->fd();
  if (::ftruncate(fd, static_cast<off_t>(file->disk_end)) != 0) return Error::Io("truncate", file->path, errno);
  // The data must be durable before the name claims the segment is complete.
  if (options_.sync) {
    Error err = Fdatasync(fd, file->path);
    if (!err.ok()) return err;
  }
  dirty_ = false;
  const std::string closed = ClosedSegmentName(file->first_index, file->disk_last_index);
  Error err = RenameFile(file->path, JoinPath(dir_, closed));
  if (!err.ok()) return err;
  SetPath(file.get(), closed, false);
  return Error();
}

Error SegmentLog::CreateOpenSegment(const std::shared_ptr<SegmentFile>& file) {
  const std::string name = OpenSegmentName(file->first_index);
  const std::string path = JoinPath(dir_, name);
  bool take_prealloc = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    prealloc_cv_.wait(lock, [this] { return !prealloc_busy_; });
    take_prealloc = prealloc_ready_;
    prealloc_ready_ = false;
    // A request left over from an earlier segment would wake the
    // preallocator now that nothing is ready: it would recreate (O_TRUNC) the
    // file under our feet, then report ready a file this rename moved away.
    // The request is made again once this segment is in place.
    prealloc_wanted_ = false;
  }
  int fd = -1;
  if (take_prealloc) {
    Error err = RenameFile(JoinPath(dir_, kPreallocFile), path);
    if (!err.ok()) return err;
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return Error::Io("open segment", path, errno);
  } else {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Error::Io("create segment", path, errno);
  }
  // Also for a taken file: one left by a crash in the middle of its
  // preallocation is short, and allocated blocks make this a no-op.
  Error err = Preallocate(fd, options_.segment_bytes, path);
  if (!err.ok()) {
    // No record went in yet: remove the file so a full disk leaves no
    // half-made segment behind and gets its space back.
    ::close(fd);
    ::unlink(path.c_str());
    return err;
  }
  auto handle = std::make_shared<FileHandle>(fd);
  err = FsyncDir(dir_);
  if (!err.ok()) return err;
  {
    std::lock_guard<std::mutex> lock(mu_);
    file->handle = handle;
    file->path = path;
    file->open = true;
    prealloc_wanted_ = true;
  }
  prealloc_cv_.notify_all();
  file->disk_end = 0;
  file->disk_last_index = file->first_index - 1;
  disk_files_.push_back(file);
  return Error();
}

void SegmentLog::PreallocLoop() {
  const std::string path = JoinPath(dir_, kPreallocFile);
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      prealloc_cv_.wait(lock, [this] { return closing_ || (prealloc_wanted_ && !prealloc_ready_); });
      if (closing_) return;
      prealloc_wanted_ = false;
      prealloc_busy_ = true;
    }
    bool ok = false;
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      // A failure here is not fatal: the writer creates the segment itself
      // and reports the error if it recurs there. The partial file goes, so
      // it holds no space the open segment may still need.
      ok = Preallocate(fd, options_.segment_bytes, path).ok() && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) ::unlink(path.c_str());
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      prealloc_busy_ = false;
      prealloc_ready_ = ok;
    }
    prealloc_cv_.notify_all();
  }
}

Error SegmentLog::DiskTruncateSuffix(uint64_t last_kept, const std::shared_ptr<SegmentFile>& cut_file,
                                     uint64_t cut_offset) {
  LogState state;
  state.first_index = disk_first_index_;
  state.pending = PendingOp::kTruncateSuffix;
  state.pending_arg = last_kept;
  Error err = SaveLogState(dir_, state);
  if (!err.ok()) return err;
  // Newest first, so a crash leaves a contiguous prefix of segments.
  while (!disk_files_.empty() && disk_files_.back()->first_index > last_kept) {
    if (!(err = UnlinkFile(disk_files_.back()->path)).ok()) return err;
    disk_files_.pop_back();
  }
  if (cut_file) {
    if (disk_files_.empty() || disk_files_.back() != cut_file) {
      return InternalError("suffix truncation lost track of the segment holding index " + std::to_string(last_kept));
    }
    if (!cut_file->open) {
      const std::string open = OpenSegmentName(cut_file->first_index);
      if (!(err = RenameFile(cut_file->path, JoinPath(dir_, open))).ok()) return err;
      SetPath(cut_file.get(), open, true);
    }
    const int fd = cut_file->handle->fd();
    if (::ftruncate(fd, static_cast<off_t>(cut_offset)) != 0) return Error::Io("truncate", cut_file->path, errno);
    if (!(err = Fdatasync(fd, cut_file->path)).ok()) return err;
    cut_file->disk_end = cut_offset;
    cut_file->disk_last_index = last_kept;
  }
  dirty_ = false;
  if (!(err = FsyncDir(dir_)).ok()) return err;
  state.pending = PendingOp::kNone;
  state.pending_arg = 0;
  return SaveLogState(dir_, state);
}

Error SegmentLog::DiskTruncatePrefix(uint64_t first_kept) {
  LogState state;
  state.first_index = first_kept;
  Error err = SaveLogState(dir_, state);
  if (!err.ok()) return err;
  disk_first_index_ = first_kept;
  bool removed = false;
  while (!disk_files_.empty() && disk_files_.front()->disk_last_index < first_kept) {
    if (disk_files_.front()->open) dirty_ = false;
    if (!(err = UnlinkFile(disk_files_.front()->path)).ok()) return err;
    disk_files_.erase(disk_files_.begin());
    removed = true;
  }
  return removed ? FsyncDir(dir_) : Error();
}

Error SegmentLog::DiskReset(uint64_t next_index) {
  LogState state;
  state.first_index = next_index;
  state.pending = PendingOp::kReset;
  Error err = SaveLogState(dir_, state);
  if (!err.ok()) return err;
  for (const auto& file : disk_files_) {
    if (!(err = UnlinkFile(file->path)).ok()) return err;
  }
  disk_files_.clear();
  dirty_ = false;
  disk_first_index_ = next_index;
  if (!(err = FsyncDir(dir_)).ok()) return err;
  state.pending = PendingOp::kNone;
  return SaveLogState(dir_, state);
}

}  // namespace raftline
