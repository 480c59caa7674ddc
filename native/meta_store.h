// Small durable state: Raft's term and vote (src/log MetaStore) and the
// segment log's own first index and pending truncation (log_state.h).
//
// Two layouts, little-endian, both starting u32 magic, u32 version:
// - version 2, the block: u32 payload bytes, u32 CRC32C of the whole block
//   but this field (padding included), the payload, zeros to 512 bytes. The
//   file is exactly one block, so it can be rewritten in place: one
//   fdatasync makes it durable with no directory entry to sync. That rests on
//   the device writing a 512-byte sector whole or not at all across a power
//   loss (as PostgreSQL's control file does); where one tears, the block
//   fails its checksum and loading reports it corrupt, never an older state
//   (docs/log-format.md).
// - version 1, for a payload too big for a block (and as written by earlier
//   releases): u32 payload bytes, u32 CRC32C of the payload, the payload.
// A save that cannot go in place (no block file yet, a payload too big for
// one, or the caller's say-so) replaces the file instead: `name.tmp` is
// written and fsynced, renamed over `name`, and the directory fsynced, so a
// reader sees either the old or the new state in full.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fs_util.h"

namespace raftline {

constexpr uint32_t kMetaMagic = 0x544D4C52;      // "RLMT"
constexpr uint32_t kLogStateMagic = 0x54534C52;  // "RLST"
constexpr uint32_t kMaxMetaPayloadBytes = 1u << 20;
constexpr size_t kMetaBlockBytes = 512;

// `in_place` allows rewriting an existing block file in place. The caller
// must pass false when it cannot vouch that the file on disk, directory
// entry included, is durable: after an earlier save failed, say.
Error SaveMetaFile(const std::string& dir, const std::string& name, uint32_t magic,
                   const std::vector<uint8_t>& payload, bool in_place);

// `*exists` is false when the file is absent. A leftover `name.tmp` from a
// crash mid-save is removed: the rename never happened, so it was never state.
// The file and the directory are synced before the file is read: what a
// killed process wrote or renamed without its sync is only in the page
// cache, and must not be trusted unless it reaches the disk.
Error LoadMetaFile(const std::string& dir, const std::string& name, uint32_t magic,
                   std::vector<uint8_t>* payload, bool* exists);

}  // namespace raftline
