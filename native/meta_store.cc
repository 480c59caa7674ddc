#include "meta_store.h"

#include <cstring>

#include "crc32c.h"

namespace raftline {
namespace {

constexpr uint32_t kMetaVersion = 1;
constexpr size_t kMetaHeaderBytes = 16;

void PutU32(std::vector<uint8_t>* out, uint32_t v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);
  out->insert(out->end(), b, b + 4);
}

uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

Error SaveMetaFile(const std::string& dir, const std::string& name, uint32_t magic,
                   const std::vector<uint8_t>& payload) {
  if (payload.size() > kMaxMetaPayloadBytes) {
    return Error::Invalid("meta state of " + std::to_string(payload.size()) + " bytes exceeds the " +
                          std::to_string(kMaxMetaPayloadBytes) + "-byte limit");
  }
  std::vector<uint8_t> file;
  file.reserve(kMetaHeaderBytes + payload.size());
  PutU32(&file, magic);
  PutU32(&file, kMetaVersion);
  PutU32(&file, static_cast<uint32_t>(payload.size()));
  PutU32(&file, Crc32c(0, payload.data(), payload.size()));
  file.insert(file.end(), payload.begin(), payload.end());
  return AtomicReplace(dir, name, file);
}

Error LoadMetaFile(const std::string& dir, const std::string& name, uint32_t magic,
                   std::vector<uint8_t>* payload, bool* exists) {
  std::string path = JoinPath(dir, name);
  Error err = UnlinkFile(path + ".tmp");
  if (!err.ok()) return err;
  std::vector<uint8_t> file;
  err = ReadSmallFile(path, &file, exists);
  if (!err.ok() || !*exists) return err;
  if (file.size() < kMetaHeaderBytes) return Error::Corrupt("state file shorter than its header", path, 0);
  if (GetU32(file.data()) != magic) return Error::Corrupt("not a raftline state file (bad magic)", path, 0);
  if (GetU32(file.data() + 4) != kMetaVersion) {
    return Error::Corrupt("unsupported state file version " + std::to_string(GetU32(file.data() + 4)), path, 4);
  }
  uint32_t length = GetU32(file.data() + 8);
  if (length != file.size() - kMetaHeaderBytes) {
    return Error::Corrupt("state file length " + std::to_string(file.size()) + " does not match its header",
                          path, 8);
  }
  if (Crc32c(0, file.data() + kMetaHeaderBytes, length) != GetU32(file.data() + 12)) {
    return Error::Corrupt("state file checksum mismatch", path, 12);
  }
  payload->assign(file.begin() + kMetaHeaderBytes, file.end());
  return Error();
}

}  // namespace raftline
