// The segment log's own durable state: its first index (moved by prefix
// truncation and reset) and the truncation in progress, if any. Writing the
// pending truncation before touching segment files is what makes suffix
// truncation and reset restartable after a crash at any step.
#pragma once
#include <cstdint>
#include <string>

#include "fs_util.h"

namespace raftline {

enum class PendingOp : uint32_t { kNone = 0, kTruncateSuffix = 1, kReset = 2 };

struct LogState {
  uint64_t first_index = 1;
  PendingOp pending = PendingOp::kNone;
  uint64_t pending_arg = 0;  // last kept index for kTruncateSuffix
};

constexpr const char* kLogStateFile = "log-state";

Error SaveLogState(const std::string& dir, const LogState& state);
// Returns the default state (first index 1, nothing pending) when absent.
Error LoadLogState(const std::string& dir, LogState* state);

}  // namespace raftline
