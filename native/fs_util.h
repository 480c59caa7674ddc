// Small POSIX helpers that turn errno into messages naming the file involved.
#pragma once
#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

namespace raftline {

// Error kinds map one-to-one onto the typed errors of src/log.
enum class ErrorKind {
  kNone,
  kIo,         // a syscall failed (errno set)
  kCorrupt,    // on-disk data failed validation (file and offset set)
  kInvalid,    // the caller broke a contract (non-contiguous append, bad range)
  kClosed,     // the log is closed or failed earlier
  kRetry,      // a read raced with a truncation; reading again gives a consistent answer
};

struct Error {
  ErrorKind kind = ErrorKind::kNone;
  std::string message;
  std::string file;
  int64_t offset = -1;
  int errnum = 0;
  // A flush to stable storage (fsync, fdatasync) failed. The kernel may have
  // dropped the dirty pages or kept them marked clean, so what this process
  // reads back can differ from the disk: only a fresh process should trust it.
  bool sync_failed = false;

  bool ok() const { return kind == ErrorKind::kNone; }
  static Error Io(const std::string& what, const std::string& path, int errnum);
  static Error Corrupt(const std::string& what, const std::string& path, int64_t offset);
  static Error Invalid(const std::string& what);
  static Error SyncFailed(const std::string& what, const std::string& path, int errnum);
};

std::string JoinPath(const std::string& dir, const std::string& name);

// Creates `dir` and any missing parents, fsyncing each parent so the new
// entries survive a crash; an existing `dir` that is empty gets its parent
// fsynced too (its creator may have died before doing so).
Error MakeDirs(const std::string& dir);
// Each returns an Error of kind kIo naming `path` on failure.
Error FsyncDir(const std::string& dir);
Error WriteAll(int fd, const uint8_t* data, size_t length, const std::string& path);
Error PwriteAll(int fd, const uint8_t* data, size_t length, uint64_t offset, const std::string& path);
// Writes all iovecs starting at `offset`, splitting at IOV_MAX and resuming
// after short writes.
Error PwritevAll(int fd, std::vector<iovec> iov, uint64_t offset, const std::string& path);
// Reads exactly `length` bytes or reports how many it got in `*got`.
Error PreadFull(int fd, uint8_t* data, size_t length, uint64_t offset, const std::string& path, size_t* got);
Error Fdatasync(int fd, const std::string& path);
// Overwrites bytes [from, to) with zeros.
Error ZeroRange(int fd, uint64_t from, uint64_t to, const std::string& path);
Error ListDir(const std::string& dir, std::vector<std::string>* names);
Error FileSize(int fd, const std::string& path, uint64_t* size);
Error RenameFile(const std::string& from, const std::string& to);
Error UnlinkFile(const std::string& path);
// Writes `data` to dir/name atomically: temp file, fsync, rename, fsync dir.
Error AtomicReplace(const std::string& dir, const std::string& name, const std::vector<uint8_t>& data);
// Reads a whole small file as the disk holds it: fdatasync first (a sync
// failure is an error), then the cached pages dropped. `*exists` is false
// (and no error) when it is absent.
Error ReadDurableFile(const std::string& path, std::vector<uint8_t>* data, bool* exists);

// An owned file descriptor, closed when the last holder lets go. Readers keep
// one alive while the writer may unlink or rename the file underneath.
class FileHandle {
 public:
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle();
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace raftline
