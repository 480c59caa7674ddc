#include "fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <cerrno>
#include <cstring>

namespace raftline {

Error Error::Io(const std::string& what, const std::string& path, int errnum) {
  Error e;
  e.kind = ErrorKind::kIo;
  e.message = what + " " + path + ": " + std::strerror(errnum);
  e.file = path;
  e.errnum = errnum;
  return e;
}

Error Error::SyncFailed(const std::string& what, const std::string& path, int errnum) {
  Error e = Io(what, path, errnum);
  e.sync_failed = true;
  return e;
}

Error Error::Corrupt(const std::string& what, const std::string& path, int64_t offset) {
  Error e;
  e.kind = ErrorKind::kCorrupt;
  e.message = path + " at byte " + std::to_string(offset) + ": " + what;
  e.file = path;
  e.offset = offset;
  return e;
}

Error Error::Invalid(const std::string& what) {
  Error e;
  e.kind = ErrorKind::kInvalid;
  e.message = what;
  return e;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

std::string ParentDir(const std::string& dir) {
  size_t slash = dir.find_last_of('/', dir.size() > 1 ? dir.size() - 2 : 0);
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : dir.substr(0, slash);
}

}  // namespace

Error MakeDirs(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Error::Io("open log directory", dir, ENOTDIR);
    // An empty directory may be one a process created and was killed before
    // it synced the parent (below): its entry would not survive a power loss
    // along with what this process is about to write in it. A directory this
    // code created holds nothing until that sync is done.
    std::vector<std::string> names;
    Error err = ListDir(dir, &names);
    if (!err.ok()) return err;
    return names.empty() ? FsyncDir(ParentDir(dir)) : Error();
  }
  if (errno != ENOENT) return Error::Io("stat", dir, errno);
  const std::string parent = ParentDir(dir);
  Error err = MakeDirs(parent);
  if (!err.ok()) return err;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Error::Io("create directory", dir, errno);
  return FsyncDir(parent);
}

Error FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::Io("open directory", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Error::SyncFailed("fsync directory", dir, err);
  return Error();
}

Error WriteAll(int fd, const uint8_t* data, size_t length, const std::string& path) {
  while (length > 0) {
    ssize_t n = ::write(fd, data, length);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Io("write", path, errno);
    }
    data += n;
    length -= static_cast<size_t>(n);
  }
  return Error();
}

Error PwriteAll(int fd, const uint8_t* data, size_t length, uint64_t offset, const std::string& path) {
  while (length > 0) {
    ssize_t n = ::pwrite(fd, data, length, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Io("write", path, errno);
    }
    data += n;
    length -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Error();
}

Error PwritevAll(int fd, std::vector<iovec> iov, uint64_t offset, const std::string& path) {
  size_t first = 0;
  while (first < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = ::pwritev(fd, iov.data() + first, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Io("write", path, errno);
    }
    offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      first++;
    }
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return Error();
}

Error PreadFull(int fd, uint8_t* data, size_t length, uint64_t offset, const std::string& path, size_t* got) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, data + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      *got = done;
      return Error::Io("read", path, errno);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  *got = done;
  return Error();
}

Error Fdatasync(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) return Error::SyncFailed("fdatasync", path, errno);
  return Error();
}

Error ZeroRange(int fd, uint64_t from, uint64_t to, const std::string& path) {
  static const std::vector<uint8_t> zeros(1 << 16, 0);
  while (from < to) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), to - from));
    Error err = PwriteAll(fd, zeros.data(), n, from, path);
    if (!err.ok()) return err;
    from += n;
  }
  return Error();
}

Error ListDir(const std::string& dir, std::vector<std::string>* names) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Error::Io("open directory", dir, errno);
  errno = 0;
  while (dirent* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    if (name != "." && name != "..") names->push_back(name);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return Error::Io("read directory", dir, err);
  std::sort(names->begin(), names->end());
  return Error();
}

Error FileSize(int fd, const std::string& path, uint64_t* size) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Error::Io("stat", path, errno);
  *size = static_cast<uint64_t>(st.st_size);
  return Error();
}

Error RenameFile(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return Error::Io("rename to " + to + ":", from, errno);
  return Error();
}

Error UnlinkFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::Io("unlink", path, errno);
  return Error();
}

Error AtomicReplace(const std::string& dir, const std::string& name, const std::vector<uint8_t>& data) {
  std::string final_path = JoinPath(dir, name);
  std::string tmp_path = final_path + ".tmp";
  int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error::Io("create", tmp_path, errno);
  Error err;
  {
    FileHandle guard(fd);
    err = WriteAll(fd, data.data(), data.size(), tmp_path);
    // Not a SyncFailed: the file is discarded below, so no untrusted page survives.
    if (err.ok() && ::fsync(fd) != 0) err = Error::Io("fsync", tmp_path, errno);
  }
  if (!err.ok()) {
    // A full disk must not keep losing space to a half-written state file;
    // the old state is untouched either way.
    ::unlink(tmp_path.c_str());
    return err;
  }
  err = RenameFile(tmp_path, final_path);
  if (!err.ok()) {
    // rename can fail with ENOSPC too (a directory that needs a new block).
    ::unlink(tmp_path.c_str());
    return err;
  }
  return FsyncDir(dir);
}

Error ReadDurableFile(const std::string& path, std::vector<uint8_t>* data, bool* exists) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      *exists = false;
      return Error();
    }
    return Error::Io("open", path, errno);
  }
  FileHandle guard(fd);
  *exists = true;
  Error err = Fdatasync(fd, path);
  if (!err.ok()) return err;
  // Pages whose writeback failed in an earlier process are clean but not on
  // the disk; dropping them makes the read below come from the disk. Advisory
  // (Linux drops clean pages), as in the segment log's recovery.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  uint64_t size = 0;
  err = FileSize(fd, path, &size);
  if (!err.ok()) return err;
  data->resize(size);
  size_t got = 0;
  err = PreadFull(fd, data->data(), size, 0, path, &got);
  if (!err.ok()) return err;
  data->resize(got);
  return Error();
}

}  // namespace raftline
