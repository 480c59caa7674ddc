// The segment log: an append-only sequence of records indexed 1, 2, 3, ...
// split across segment files, with group-committed durability.
//
// Threads: the JS thread calls Append/Truncate*/Reset (which validate, update
// the in-memory index at once and queue the disk work) and the getters; one
// writer thread does all file mutation in queue order (writer.cc), except an
// Append that finds it idle with nothing queued and may do its own write on
// the JS thread (`writer_busy_` keeps the two apart); one preallocator thread
// prepares the next segment file; reads may run on any thread. `mu_` guards
// everything shared between them.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fs_util.h"
#include "log_state.h"
#include "segment.h"

namespace raftline {

struct LogOptions {
  uint64_t segment_bytes = 64u << 20;
  bool sync = true;  // false: skip fdatasync (tests and benchmarks only)
};

struct RecoveryReport {
  uint64_t truncated_bytes = 0;  // torn tail bytes removed from the open segment
  std::string truncated_file;
  uint64_t truncated_offset = 0;
  uint64_t removed_segments = 0;  // segments deleted to finish an interrupted truncation
  bool replayed_truncation = false;
};

// Completion of every queued operation up to and including `seq`. Called on
// the writer thread; the binding forwards it to the JS thread.
using CompletionFn = std::function<void(uint64_t seq, const Error& err)>;

struct ReadResult {
  std::vector<uint8_t> records;  // framed records, as on disk and on the wire
  uint64_t count = 0;
};

class SegmentLog {
 public:
  static Error Open(const std::string& dir, const LogOptions& options, CompletionFn on_complete,
                    std::unique_ptr<SegmentLog>* out, RecoveryReport* report);
  ~SegmentLog();

  // Queues `count` records framed in data[0, length). With `seal`, the
  // checksums (and magic) are computed here; otherwise they are verified.
  // The caller keeps the bytes alive and unchanged until completion of the
  // returned sequence number.
  // With `on_caller`, if the writer is idle and nothing is queued, the write
  // and its fdatasync happen on the calling thread instead, before this
  // returns; `*completed` then says the op is durable and already counted
  // (OnCompleted ran; the completion callback will not). A failure there is
  // reported through the completion callback, as from the writer.
  Error Append(uint8_t* data, size_t length, bool seal, bool on_caller, uint64_t* seq, bool* completed);
  Error TruncateSuffix(uint64_t last_kept, uint64_t* seq);
  Error TruncatePrefix(uint64_t first_kept, uint64_t* seq);
  Error Reset(uint64_t next_index, uint64_t* seq);

  // JS thread: records that `seq` completed, advancing the durable index.
  void OnCompleted(uint64_t seq, const Error& err);

  // Records [from, to_exclusive), stopping before max_bytes is exceeded but
  // returning at least one record. Only durable records can be read.
  Error Read(uint64_t from, uint64_t to_exclusive, uint64_t max_bytes, ReadResult* out);

  uint64_t FirstIndex() const;
  uint64_t LastIndex() const;
  uint64_t DurableIndex() const;
  // 0 when `index` is outside [FirstIndex, LastIndex].
  uint64_t TermAt(uint64_t index) const;
  // Bytes held by the in-memory index (offsets and term runs).
  uint64_t IndexMemoryBytes() const;
  uint64_t SegmentCount() const;

  // Finishes queued work, stops the threads and closes files. Blocks.
  void Close();

 private:
  struct Segment {
    std::shared_ptr<SegmentFile> file;
    uint64_t first_index;
    uint64_t last_index;  // first_index - 1 while empty
    std::vector<uint32_t> offsets;
    uint64_t end_offset;
    // Appends may go here. Only the last segment can be writable, and only if
    // it is (or is about to become) the open one: after a crash between
    // closing a segment and creating the next, the last one is closed.
    bool writable;
  };

  struct WriteOp {
    enum class Kind { kAppend, kTruncateSuffix, kTruncatePrefix, kReset, kBarrier };
    struct Piece {
      std::shared_ptr<SegmentFile> file;
      uint64_t file_offset;
      const uint8_t* data;
      size_t length;
      uint64_t last_index;
    };
    Kind kind = Kind::kBarrier;
    uint64_t seq = 0;
    std::vector<Piece> pieces;
    uint64_t arg = 0;
    std::shared_ptr<SegmentFile> cut_file;
    uint64_t cut_offset = 0;
  };

  struct PendingSummary {
    uint64_t seq;
    uint64_t last_index_after;
  };

  SegmentLog(std::string dir, const LogOptions& options, CompletionFn on_complete);
  // Takes an exclusive flock on the log directory, held until Close: a second
  // opener (another process, or another SegmentLog here) would recover a tail
  // this one is still writing and append over its records.
  Error LockDir();
  Error Recover(RecoveryReport* report);
  // Numbers `op` and records what completing it makes durable.
  uint64_t Sequence(WriteOp& op);
  Error Enqueue(WriteOp op, uint64_t* seq);
  Error CheckUsable() const;
  void TruncateIndexAfter(uint64_t last_kept, std::shared_ptr<SegmentFile>* cut_file, uint64_t* cut_offset);

  // writer.cc
  void StartThreads();
  void WriterLoop();
  // Executes a batch of queued ops and syncs them; the writer thread's job,
  // done by whichever thread holds writer_busy_.
  Error WriteBatch(std::deque<WriteOp>& batch);
  void PreallocLoop();
  Error Execute(WriteOp& op, std::vector<iovec>* iov, SegmentFile** iov_file, uint64_t* iov_offset);
  Error Flush(std::vector<iovec>* iov, SegmentFile* file, uint64_t offset);
  Error RollTo(const std::shared_ptr<SegmentFile>& next);
  Error FinishOpenSegment();
  Error CreateOpenSegment(const std::shared_ptr<SegmentFile>& file);
  Error DiskTruncateSuffix(uint64_t last_kept, const std::shared_ptr<SegmentFile>& cut_file, uint64_t cut_offset);
  Error DiskTruncatePrefix(uint64_t first_kept);
  Error DiskReset(uint64_t next_index);
  void SetPath(SegmentFile* file, const std::string& name, bool open);

  const std::string dir_;
  int dir_lock_fd_ = -1;
  const LogOptions options_;
  const CompletionFn on_complete_;

  mutable std::mutex mu_;
  // In-memory index (JS thread writes, readers read, both under mu_).
  std::deque<Segment> segments_;
  TermIndex terms_;
  uint64_t first_index_ = 1;
  uint64_t last_index_ = 0;
  uint64_t durable_index_ = 0;
  uint64_t truncations_ = 0;  // bumped by every suffix truncation and reset; readers detect races with it
  Error failed_;              // sticky writer error
  bool closing_ = false;

  // Writer queue (under mu_).
  std::deque<WriteOp> queue_;
  std::condition_variable queue_cv_;
  uint64_t next_seq_ = 1;
  // Some thread is executing ops (the writer, or the JS thread in Append);
  // the other must not. Everything marked "writer thread only" belongs to it.
  bool writer_busy_ = false;

  // JS thread only.
  std::deque<PendingSummary> pending_;

  // Writer thread only, or the thread holding writer_busy_ (and Recover,
  // before the writer starts).
  std::vector<std::shared_ptr<SegmentFile>> disk_files_;
  uint64_t disk_first_index_ = 1;
  bool dirty_ = false;  // bytes written to the open segment since its last fdatasync

  // Preallocation (under mu_).
  std::condition_variable prealloc_cv_;
  bool prealloc_wanted_ = false;
  bool prealloc_busy_ = false;
  bool prealloc_ready_ = false;

  std::thread writer_;
  std::thread preallocator_;
};

}  // namespace raftline
