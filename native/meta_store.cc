#include "meta_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "crc32c.h"

namespace raftline {
namespace {

constexpr uint32_t kVariableVersion = 1;
constexpr uint32_t kBlockVersion = 2;
constexpr size_t kHeaderBytes = 16;
constexpr size_t kCrcOffset = 12;

void PutU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The block's checksum covers every byte but its own field.
uint32_t BlockCrc(const uint8_t* block) {
  uint32_t crc = Crc32c(0, block, kCrcOffset);
  return Crc32c(crc, block + kHeaderBytes, kMetaBlockBytes - kHeaderBytes);
}

std::vector<uint8_t> Encode(uint32_t magic, const std::vector<uint8_t>& payload) {
  const bool block = kHeaderBytes + payload.size() <= kMetaBlockBytes;
  std::vector<uint8_t> file(block ? kMetaBlockBytes : kHeaderBytes + payload.size(), 0);
  PutU32(file.data(), magic);
  PutU32(file.data() + 4, block ? kBlockVersion : kVariableVersion);
  PutU32(file.data() + 8, static_cast<uint32_t>(payload.size()));
  std::memcpy(file.data() + kHeaderBytes, payload.data(), payload.size());
  PutU32(file.data() + kCrcOffset, block ? BlockCrc(file.data()) : Crc32c(0, payload.data(), payload.size()));
  return file;
}

// Rewrites `path` in place when it is a block file of this magic; `*done`
// says whether it was.
Error RewriteBlock(const std::string& path, uint32_t magic, const std::vector<uint8_t>& block, bool* done) {
  *done = false;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? Error() : Error::Io("open", path, errno);
  FileHandle guard(fd);
  uint64_t size = 0;
  Error err = FileSize(fd, path, &size);
  if (!err.ok() || size != kMetaBlockBytes) return err;
  uint8_t header[8];
  size_t got = 0;
  err = PreadFull(fd, header, sizeof header, 0, path, &got);
  if (!err.ok() || got != sizeof header || GetU32(header) != magic || GetU32(header + 4) != kBlockVersion) return err;
  if (!(err = PwriteAll(fd, block.data(), block.size(), 0, path)).ok()) return err;
  if (!(err = Fdatasync(fd, path)).ok()) return err;
  *done = true;
  return Error();
}

}  // namespace

Error SaveMetaFile(const std::string& dir, const std::string& name, uint32_t magic,
                   const std::vector<uint8_t>& payload, bool in_place) {
  if (payload.size() > kMaxMetaPayloadBytes) {
    return Error::Invalid("meta state of " + std::to_string(payload.size()) + " bytes exceeds the " +
                          std::to_string(kMaxMetaPayloadBytes) + "-byte limit");
  }
  std::vector<uint8_t> file = Encode(magic, payload);
  if (in_place && file.size() == kMetaBlockBytes) {
    bool done = false;
    Error err = RewriteBlock(JoinPath(dir, name), magic, file, &done);
    if (!err.ok() || done) return err;
  }
  return AtomicReplace(dir, name, file);
}

Error LoadMetaFile(const std::string& dir, const std::string& name, uint32_t magic,
                   std::vector<uint8_t>* payload, bool* exists) {
  std::string path = JoinPath(dir, name);
  Error err = UnlinkFile(path + ".tmp");
  if (!err.ok()) return err;
  std::vector<uint8_t> file;
  err = ReadDurableFile(path, &file, exists);
  if (!err.ok() || !*exists) return err;
  // A rename whose directory sync never happened.
  if (!(err = FsyncDir(dir)).ok()) return err;
  if (file.size() < kHeaderBytes) return Error::Corrupt("state file shorter than its header", path, 0);
  if (GetU32(file.data()) != magic) return Error::Corrupt("not a raftline state file (bad magic)", path, 0);
  const uint32_t version = GetU32(file.data() + 4);
  const uint32_t length = GetU32(file.data() + 8);
  if (version == kBlockVersion) {
    if (file.size() != kMetaBlockBytes) {
      return Error::Corrupt("state file of " + std::to_string(file.size()) + " bytes is not one " +
                                std::to_string(kMetaBlockBytes) + "-byte block",
                            path, 0);
    }
    if (BlockCrc(file.data()) != GetU32(file.data() + kCrcOffset)) {
      return Error::Corrupt("state file checksum mismatch", path, kCrcOffset);
    }
    if (length > kMetaBlockBytes - kHeaderBytes) {
      return Error::Corrupt("state length " + std::to_string(length) + " exceeds its block", path, 8);
    }
  } else if (version == kVariableVersion) {
    if (length != file.size() - kHeaderBytes) {
      return Error::Corrupt("state file length " + std::to_string(file.size()) + " does not match its header",
                            path, 8);
    }
    if (Crc32c(0, file.data() + kHeaderBytes, length) != GetU32(file.data() + kCrcOffset)) {
      return Error::Corrupt("state file checksum mismatch", path, kCrcOffset);
    }
  } else {
    return Error::Corrupt("unsupported state file version " + std::to_string(version), path, 4);
  }
  payload->assign(file.begin() + kHeaderBytes, file.begin() + kHeaderBytes + length);
  return Error();
}

}  // namespace raftline
