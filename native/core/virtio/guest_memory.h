// GuestMemory: a guest's memory as a table of regions, and the only way the virtqueue code
// reaches it. Every address a guest (or a vhost-user front-end) hands over is translated
// here with its length, so nothing outside a region is ever touched.
//
// A region is { guest-physical base, size, front-end user address, host pointer }. It is
// either
//  - mapped: MAP_SHARED of fd + offset (a memfd, QEMU's SET_MEM_TABLE); unmapped by the
//    last owner. The fd is only used during Map(): the caller keeps it;
//  - borrowed: memory the embedder already owns (a SharedArrayBuffer of an in-process
//    hypervisor); never unmapped here, and the embedder keeps it alive for as long as any
//    GuestMemory over it lives. Its user address is its guest address.
//
// Validation (Map/Wrap fail with StatusCode::kInvalidInput naming the region and reason):
// no regions or more than kMaxRegions, zero size, base + size overflowing u64 (guest,
// user and file offset), regions overlapping in guest-physical or in user-address space,
// a file offset that is not page-aligned, a region past the end of its file (the mmap
// would succeed and the first touch past EOF raise SIGBUS).
//
// Lifetime: GuestMemory is immutable once built and shared (std::shared_ptr) by every
// queue that uses it, so a mapping lives until the last queue drops it. Any thread may
// translate; nothing here locks.
//
// Translation: Translate() splits [addr, addr + len) at region ends into host iovecs (a
// buffer that crosses regions works); it fails on a gap, an overflow, or more pieces than
// the caller has room for. TranslateContiguous() is for what must be one host range (ring
// parts, whose fields are read with atomics).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace netplane::core {

enum class AddrSpace : uint8_t { kGuest, kUser };

// "0x1f000": how addresses are spelled in the messages of this layer.
std::string HexU64(uint64_t v);

struct GuestRegionSpec {
  uint64_t guest_addr = 0;
  uint64_t size = 0;
  uint64_t user_addr = 0;
  int fd = -1;
  uint64_t fd_offset = 0;
};

struct BorrowedRegionSpec {
  uint64_t guest_addr = 0;
  uint8_t* host = nullptr;
  uint64_t size = 0;
};

struct GuestRegion {
  uint64_t guest_addr = 0;
  uint64_t size = 0;
  uint64_t user_addr = 0;
  uint8_t* host = nullptr;
  // What munmap needs for a mapped region (the mapping starts at the page-aligned offset).
  void* map_base = nullptr;
  size_t map_len = 0;
};

class GuestMemory {
 public:
  static constexpr size_t kMaxRegions = 64;

  static Result<std::shared_ptr<GuestMemory>> Map(const std::vector<GuestRegionSpec>& specs);
  static Result<std::shared_ptr<GuestMemory>> Wrap(const std::vector<BorrowedRegionSpec>& specs);
  ~GuestMemory();  // unmaps mapped regions
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Host iovecs for [addr, addr + len) written at out[0..); returns how many (0 for len 0),
  // kOutside when any byte is outside every region or addr + len overflows, kNoRoom when
  // more than max pieces would be needed.
  static constexpr int kOutside = -1;
  static constexpr int kNoRoom = -2;
  int Translate(AddrSpace space, uint64_t addr, uint64_t len, iovec* out, int max) const;
  // One host pointer for the whole range, or nullptr (outside, overflow, or crossing a
  // region end).
  uint8_t* TranslateContiguous(AddrSpace space, uint64_t addr, uint64_t len) const;

  const std::vector<GuestRegion>& regions() const { return regions_; }
  uint64_t total_bytes() const;

 private:
  GuestMemory() = default;
  const GuestRegion* Find(AddrSpace space, uint64_t addr) const;
  static Status CheckTable(const std::vector<GuestRegion>& regions);

  std::vector<GuestRegion> regions_;
};

}  // namespace netplane::core
