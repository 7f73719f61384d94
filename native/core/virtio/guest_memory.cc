#include "virtio/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace netplane::core {

std::string HexU64(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

namespace {

std::string RegionName(size_t i) { return "guest memory region " + std::to_string(i); }

// [base, base + size) must not wrap: the last byte is base + size - 1.
bool Overflows(uint64_t base, uint64_t size) { return size != 0 && base > UINT64_MAX - (size - 1); }

// Two sorted-by-start ranges overlap: report the first pair.
Status CheckOverlap(const std::vector<GuestRegion>& regions, bool user) {
  std::vector<size_t> order(regions.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto start = [&](size_t i) { return user ? regions[i].user_addr : regions[i].guest_addr; };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return start(a) < start(b); });
  for (size_t k = 1; k < order.size(); ++k) {
    size_t a = order[k - 1], b = order[k];
    // a's last byte, no overflow (checked before)
    if (start(a) + (regions[a].size - 1) >= start(b))
      return Status::InvalidInput(RegionName(b) + " overlaps " + RegionName(a) + " in " +
                                  (user ? "front-end user" : "guest-physical") + " address space (" + HexU64(start(b)) +
                                  " is inside " + HexU64(start(a)) + "+" + HexU64(regions[a].size) + ")");
  }
  return Status::Ok();
}

void UnmapAll(std::vector<GuestRegion>* regions) {
  for (GuestRegion& r : *regions)
    if (r.map_base) ::munmap(r.map_base, r.map_len);
  regions->clear();
}

}  // namespace

Status GuestMemory::CheckTable(const std::vector<GuestRegion>& regions) {
  if (regions.empty()) return Status::InvalidInput("guest memory table has no regions");
  if (regions.size() > kMaxRegions)
    return Status::InvalidInput("guest memory table has " + std::to_string(regions.size()) +
                                " regions, more than the " + std::to_string(kMaxRegions) + " allowed");
  for (size_t i = 0; i < regions.size(); ++i) {
    const GuestRegion& r = regions[i];
    if (r.size == 0) return Status::InvalidInput(RegionName(i) + " has size 0");
    if (Overflows(r.guest_addr, r.size))
      return Status::InvalidInput(RegionName(i) + ": guest address " + HexU64(r.guest_addr) + " + size " +
                                  HexU64(r.size) + " overflows 64 bits");
    if (Overflows(r.user_addr, r.size))
      return Status::InvalidInput(RegionName(i) + ": user address " + HexU64(r.user_addr) + " + size " +
                                  HexU64(r.size) + " overflows 64 bits");
  }
  Status s = CheckOverlap(regions, false);
  if (!s.ok()) return s;
  return CheckOverlap(regions, true);
}

Result<std::shared_ptr<GuestMemory>> GuestMemory::Map(const std::vector<GuestRegionSpec>& specs) {
  using R = Result<std::shared_ptr<GuestMemory>>;
  std::vector<GuestRegion> regions;
  for (const GuestRegionSpec& sp : specs)
    regions.push_back({sp.guest_addr, sp.size, sp.user_addr, nullptr, nullptr, 0});
  Status s = CheckTable(regions);
  if (!s.ok()) return R::Fail(s);
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  for (size_t i = 0; i < specs.size(); ++i) {
    const GuestRegionSpec& sp = specs[i];
    if (sp.fd < 0) return R::Fail(Status::InvalidInput(RegionName(i) + " has no fd"));
    if (Overflows(sp.fd_offset, sp.size))
      return R::Fail(Status::InvalidInput(RegionName(i) + ": file offset " + HexU64(sp.fd_offset) + " + size " +
                                          HexU64(sp.size) + " overflows 64 bits"));
    struct stat st;
    if (::fstat(sp.fd, &st) != 0)
      return R::Fail(Status::Errno(
          errno, "fstat", RegionName(i) + ": fstat(fd " + std::to_string(sp.fd) + ") failed: " + std::strerror(errno)));
    if (!S_ISREG(st.st_mode))
      return R::Fail(Status::InvalidInput(RegionName(i) + ": fd " + std::to_string(sp.fd) +
                                          " is not a regular file (memfd, shm or hugetlbfs)"));
    // A mapping past EOF succeeds, and the first touch there raises SIGBUS: refuse it.
    if (static_cast<uint64_t>(st.st_size) < sp.fd_offset + sp.size)
      return R::Fail(Status::InvalidInput(RegionName(i) + ": offset " + HexU64(sp.fd_offset) + " + size " +
                                          HexU64(sp.size) + " is past the end of its file (" +
                                          HexU64(static_cast<uint64_t>(st.st_size)) + " bytes)"));
    // mmap wants a page-aligned offset: map from the page below and step over the rest.
    const uint64_t aligned = sp.fd_offset & ~(page - 1);
    const uint64_t delta = sp.fd_offset - aligned;
    if (sp.size > SIZE_MAX - delta) return R::Fail(Status::InvalidInput(RegionName(i) + " is too large to map"));
    size_t len = static_cast<size_t>(sp.size + delta);
    void* base = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, sp.fd, static_cast<off_t>(aligned));
    if (base == MAP_FAILED) {
      int err = errno;
      UnmapAll(&regions);
      return R::Fail(Status::Errno(err, "mmap",
                                   RegionName(i) + ": mmap of " + HexU64(sp.size) + " bytes at offset " +
                                       HexU64(sp.fd_offset) + " failed: " + std::strerror(err)));
    }
    regions[i].map_base = base;
    regions[i].map_len = len;
    regions[i].host = static_cast<uint8_t*>(base) + delta;
  }
  std::shared_ptr<GuestMemory> m(new GuestMemory());
  m->regions_ = std::move(regions);
  return R::Of(std::move(m));
}

Result<std::shared_ptr<GuestMemory>> GuestMemory::Wrap(const std::vector<BorrowedRegionSpec>& specs) {
  using R = Result<std::shared_ptr<GuestMemory>>;
  std::vector<GuestRegion> regions;
  for (size_t i = 0; i < specs.size(); ++i) {
    const BorrowedRegionSpec& sp = specs[i];
    if (!sp.host && sp.size != 0) return R::Fail(Status::InvalidInput(RegionName(i) + " has no memory"));
    regions.push_back({sp.guest_addr, sp.size, sp.guest_addr, sp.host, nullptr, 0});
  }
  Status s = CheckTable(regions);
  if (!s.ok()) return R::Fail(s);
  std::shared_ptr<GuestMemory> m(new GuestMemory());
  m->regions_ = std::move(regions);
  return R::Of(std::move(m));
}

GuestMemory::~GuestMemory() { UnmapAll(&regions_); }

uint64_t GuestMemory::total_bytes() const {
  uint64_t n = 0;
  for (const GuestRegion& r : regions_) n += r.size;
  return n;
}

const GuestRegion* GuestMemory::Find(AddrSpace space, uint64_t addr) const {
  for (const GuestRegion& r : regions_) {
    uint64_t base = space == AddrSpace::kGuest ? r.guest_addr : r.user_addr;
    if (addr >= base && addr - base < r.size) return &r;
  }
  return nullptr;
}

int GuestMemory::Translate(AddrSpace space, uint64_t addr, uint64_t len, iovec* out, int max) const {
  if (len == 0) return 0;
  if (Overflows(addr, len)) return kOutside;
  int n = 0;
  while (len > 0) {
    const GuestRegion* r = Find(space, addr);
    if (!r) return kOutside;
    if (n == max) return kNoRoom;
    uint64_t off = addr - (space == AddrSpace::kGuest ? r->guest_addr : r->user_addr);
    uint64_t take = std::min(r->size - off, len);
    out[n++] = {r->host + off, static_cast<size_t>(take)};
    addr += take;  // may wrap to 0 only when len reaches 0 (no overflow, checked above)
    len -= take;
  }
  return n;
}

uint8_t* GuestMemory::TranslateContiguous(AddrSpace space, uint64_t addr, uint64_t len) const {
  if (len == 0 || Overflows(addr, len)) return nullptr;
  const GuestRegion* r = Find(space, addr);
  if (!r) return nullptr;
  uint64_t off = addr - (space == AddrSpace::kGuest ? r->guest_addr : r->user_addr);
  if (len > r->size - off) return nullptr;
  return r->host + off;
}

}  // namespace netplane::core
