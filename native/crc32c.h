// CRC32C (Castagnoli), as used by iSCSI, ext4 and LevelDB. Every record header
// and payload in the segment log is protected by it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace raftline {

// Extends `crc` (0 for a fresh checksum) over `data`, using the CPU instruction
// when the processor has one and the table otherwise.
uint32_t Crc32c(uint32_t crc, const uint8_t* data, size_t length);

// The portable slicing-by-8 table implementation, exposed so tests can check
// that it agrees with the hardware path.
uint32_t Crc32cPortable(uint32_t crc, const uint8_t* data, size_t length);

// The hardware implementation; only valid when Crc32cHardwareAvailable().
uint32_t Crc32cHardware(uint32_t crc, const uint8_t* data, size_t length);

bool Crc32cHardwareAvailable();

// "sse4.2", "armv8-crc" or "none".
const char* Crc32cHardwareName();

}  // namespace raftline
