// Small state replaced atomically: Raft's term and vote (src/log MetaStore) and
// the segment log's own first index and pending truncation (log_state.h).
//
// File layout, little-endian: u32 magic, u32 version (1), u32 payload bytes,
// u32 CRC32C of the payload, then the payload. Writes go to `name.tmp`, are
// fsynced, renamed over `name`, and the directory is fsynced, so a reader sees
// either the old or the new state in full.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fs_util.h"

namespace raftline {

constexpr uint32_t kMetaMagic = 0x544D4C52;      // "RLMT"
constexpr uint32_t kLogStateMagic = 0x54534C52;  // "RLST"
constexpr uint32_t kMaxMetaPayloadBytes = 1u << 20;

Error SaveMetaFile(const std::string& dir, const std::string& name, uint32_t magic,
                   const std::vector<uint8_t>& payload);

// `*exists` is false when the file is absent. A leftover `name.tmp` from a
// crash mid-save is removed: the rename never happened, so it was never state.
Error LoadMetaFile(const std::string& dir, const std::string& name, uint32_t magic,
                   std::vector<uint8_t>* payload, bool* exists);

}  // namespace raftline
