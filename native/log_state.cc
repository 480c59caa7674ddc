#include "log_state.h"

#include <cstring>
#include <vector>

#include "meta_store.h"

namespace raftline {
namespace {
constexpr size_t kPayloadBytes = 24;
}

Error SaveLogState(const std::string& dir, const LogState& state) {
  std::vector<uint8_t> payload(kPayloadBytes);
  uint32_t pending = static_cast<uint32_t>(state.pending);
  uint32_t reserved = 0;
  std::memcpy(payload.data(), &state.first_index, 8);
  std::memcpy(payload.data() + 8, &pending, 4);
  std::memcpy(payload.data() + 12, &reserved, 4);
  std::memcpy(payload.data() + 16, &state.pending_arg, 8);
  // A save that fails fails the log; reopening it loads (and syncs) the file afresh.
  return SaveMetaFile(dir, kLogStateFile, kLogStateMagic, payload, true);
}

Error LoadLogState(const std::string& dir, LogState* state) {
  std::vector<uint8_t> payload;
  bool exists = false;
  Error err = LoadMetaFile(dir, kLogStateFile, kLogStateMagic, &payload, &exists);
  if (!err.ok()) return err;
  *state = LogState();
  if (!exists) return Error();
  std::string path = JoinPath(dir, kLogStateFile);
  if (payload.size() != kPayloadBytes) return Error::Corrupt("log state has the wrong size", path, 16);
  uint32_t pending = 0;
  std::memcpy(&state->first_index, payload.data(), 8);
  std::memcpy(&pending, payload.data() + 8, 4);
  std::memcpy(&state->pending_arg, payload.data() + 16, 8);
  if (pending > static_cast<uint32_t>(PendingOp::kReset)) {
    return Error::Corrupt("log state names unknown pending operation " + std::to_string(pending), path, 24);
  }
  if (state->first_index == 0) return Error::Corrupt("log state has first index 0", path, 16);
  state->pending = static_cast<PendingOp>(pending);
  return Error();
}

}  // namespace raftline
