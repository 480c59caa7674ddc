#include "crc32c.h"

#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#elif defined(__aarch64__)
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

namespace raftline {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78u;  // reflected Castagnoli

struct Tables {
  uint32_t t[8][256];
  Tables() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c >> 1) ^ ((c & 1) ? kPolynomial : 0);
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
      for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

inline uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;  // all supported targets are little-endian
}

#if defined(__x86_64__) || defined(__aarch64__)
// The hardware instruction has a latency of about three cycles but a throughput
// of one per cycle, so long inputs are processed as three interleaved streams
// which are then merged. Merging needs "advance a CRC register over kStride
// zero bytes", a linear map over GF(2) that we tabulate once per byte lane.
constexpr size_t kStride = 512;

struct ShiftTables {
  uint32_t lane[4][256];
  ShiftTables() {
    const Tables& tb = GetTables();
    uint32_t basis[32];
    for (int bit = 0; bit < 32; bit++) {
      uint32_t c = 1u << bit;
      for (size_t i = 0; i < kStride; i++) c = (c >> 8) ^ tb.t[0][c & 0xff];
      basis[bit] = c;
    }
    for (int l = 0; l < 4; l++) {
      for (uint32_t b = 0; b < 256; b++) {
        uint32_t v = 0;
        for (int k = 0; k < 8; k++) {
          if (b & (1u << k)) v ^= basis[l * 8 + k];
        }
        lane[l][b] = v;
      }
    }
  }
  uint32_t Advance(uint32_t c) const {
    return lane[0][c & 0xff] ^ lane[1][(c >> 8) & 0xff] ^ lane[2][(c >> 16) & 0xff] ^ lane[3][c >> 24];
  }
};

const ShiftTables& GetShiftTables() {
  static const ShiftTables tables;
  return tables;
}
#endif

#if defined(__x86_64__)
#define RAFTLINE_HW_TARGET __attribute__((target("sse4.2")))
RAFTLINE_HW_TARGET inline uint32_t HwByte(uint32_t c, uint8_t v) { return _mm_crc32_u8(c, v); }
RAFTLINE_HW_TARGET inline uint32_t HwWord(uint32_t c, uint64_t v) {
  return static_cast<uint32_t>(_mm_crc32_u64(c, v));
}
#elif defined(__aarch64__)
#define RAFTLINE_HW_TARGET __attribute__((target("+crc")))
RAFTLINE_HW_TARGET inline uint32_t HwByte(uint32_t c, uint8_t v) { return __crc32cb(c, v); }
RAFTLINE_HW_TARGET inline uint32_t HwWord(uint32_t c, uint64_t v) { return __crc32cd(c, v); }
#endif

#if defined(__x86_64__) || defined(__aarch64__)
RAFTLINE_HW_TARGET uint32_t HardwareImpl(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = HwByte(c, *p++);
    n--;
  }
  if (n >= 3 * kStride) {
    const ShiftTables& shift = GetShiftTables();
    while (n >= 3 * kStride) {
      uint32_t c1 = 0, c2 = 0;
      for (size_t i = 0; i < kStride; i += 8) {
        c = HwWord(c, LoadLe64(p + i));
        c1 = HwWord(c1, LoadLe64(p + kStride + i));
        c2 = HwWord(c2, LoadLe64(p + 2 * kStride + i));
      }
      c = shift.Advance(shift.Advance(c) ^ c1) ^ c2;
      p += 3 * kStride;
      n -= 3 * kStride;
    }
  }
  while (n >= 8) {
    c = HwWord(c, LoadLe64(p));
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = HwByte(c, *p++);
    n--;
  }
  return ~c;
}
#endif

#if defined(__x86_64__)
bool DetectHardware() { return __builtin_cpu_supports("sse4.2"); }
const char* kHardwareName = "sse4.2";
#elif defined(__aarch64__)
bool DetectHardware() { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
const char* kHardwareName = "armv8-crc";
#else
uint32_t HardwareImpl(uint32_t crc, const uint8_t* p, size_t n) { return Crc32cPortable(crc, p, n); }
bool DetectHardware() { return false; }
const char* kHardwareName = "none";
#endif

const bool kHardwareAvailable = DetectHardware();

}  // namespace

uint32_t Crc32cPortable(uint32_t crc, const uint8_t* p, size_t n) {
  const Tables& tb = GetTables();
  uint32_t c = ~crc;
  while (n >= 8) {
    uint64_t v = LoadLe64(p) ^ c;
    c = tb.t[7][v & 0xff] ^ tb.t[6][(v >> 8) & 0xff] ^ tb.t[5][(v >> 16) & 0xff] ^
        tb.t[4][(v >> 24) & 0xff] ^ tb.t[3][(v >> 32) & 0xff] ^ tb.t[2][(v >> 40) & 0xff] ^
        tb.t[1][(v >> 48) & 0xff] ^ tb.t[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = (c >> 8) ^ tb.t[0][(c ^ *p++) & 0xff];
    n--;
  }
  return ~c;
}

uint32_t Crc32cHardware(uint32_t crc, const uint8_t* data, size_t length) {
  return HardwareImpl(crc, data, length);
}

bool Crc32cHardwareAvailable() { return kHardwareAvailable; }

const char* Crc32cHardwareName() { return kHardwareAvailable ? kHardwareName : "none"; }

uint32_t Crc32c(uint32_t crc, const uint8_t* data, size_t length) {
  return kHardwareAvailable ? HardwareImpl(crc, data, length) : Crc32cPortable(crc, data, length);
}

}  // namespace raftline
