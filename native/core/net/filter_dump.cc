#include "net/filter_dump.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/thread_name.h"

namespace netplane::core {

namespace {

// pcap's record header (host byte order, microsecond timestamps, as QEMU writes it).
struct PcapRecord {
  uint32_t ts_sec;
  uint32_t ts_usec;
  uint32_t caplen;
  uint32_t len;
};
static_assert(sizeof(PcapRecord) == 16, "pcap record header is 16 bytes");

struct PcapFileHeader {
  uint32_t magic = 0xa1b2c3d4;
  uint16_t version_major = 2;
  uint16_t version_minor = 4;
  int32_t thiszone = 0;
  uint32_t sigfigs = 0;
  uint32_t snaplen = 0;
  uint32_t linktype = 1;  // LINKTYPE_ETHERNET
};
static_assert(sizeof(PcapFileHeader) == 24, "pcap file header is 24 bytes");

constexpr size_t kRecordAlign = 8;
constexpr size_t kDrainBatch = 256 * 1024;
constexpr auto kWriterPeriod = std::chrono::milliseconds(2);

size_t RecordSpace(uint32_t caplen) { return (sizeof(PcapRecord) + caplen + kRecordAlign - 1) & ~(kRecordAlign - 1); }

size_t RoundUpPow2(size_t n) {
  size_t p = 4096;
  while (p < n) p <<= 1;
  return p;
}

void AddRelaxed(std::atomic<uint64_t>& c, uint64_t n) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

CaptureRing::CaptureRing(size_t capacity, uint32_t maxlen, unsigned directions)
    : cap_(RoundUpPow2(std::max(capacity, RecordSpace(maxlen)))), maxlen_(maxlen), directions_(directions) {
  buf_ = std::make_unique<uint8_t[]>(cap_);
}

void CaptureRing::CopyIn(uint64_t pos, const void* src, size_t n) {
  const size_t off = pos & (cap_ - 1);
  const size_t first = std::min(n, cap_ - off);
  std::memcpy(buf_.get() + off, src, first);
  if (first < n) std::memcpy(buf_.get(), static_cast<const uint8_t*>(src) + first, n - first);
}

void CaptureRing::CopyOut(uint64_t pos, void* dst, size_t n) const {
  const size_t off = pos & (cap_ - 1);
  const size_t first = std::min(n, cap_ - off);
  std::memcpy(dst, buf_.get() + off, first);
  if (first < n) std::memcpy(static_cast<uint8_t*>(dst) + first, buf_.get(), n - first);
}

void CaptureRing::Push(const uint8_t* eth, uint32_t len) {
  const uint32_t caplen = std::min(len, maxlen_);
  const size_t space = RecordSpace(caplen);
  const uint64_t head = head_.load(std::memory_order_relaxed);
  const uint64_t tail = tail_.load(std::memory_order_acquire);
  if (cap_ - (head - tail) < space) {
    AddRelaxed(dropped_, 1);
    AddRelaxed(dropped_bytes_, len);
    return;
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  PcapRecord rec{static_cast<uint32_t>(ts.tv_sec), static_cast<uint32_t>(ts.tv_nsec / 1000), caplen, len};
  CopyIn(head, &rec, sizeof(rec));
  CopyIn(head + sizeof(rec), eth, caplen);
  head_.store(head + space, std::memory_order_release);
  AddRelaxed(frames_, 1);
  AddRelaxed(bytes_, len);
}

CaptureCounters CaptureRing::counters() const {
  return {frames_.load(std::memory_order_relaxed), bytes_.load(std::memory_order_relaxed),
          dropped_.load(std::memory_order_relaxed), dropped_bytes_.load(std::memory_order_relaxed)};
}

size_t CaptureRing::Drain(std::vector<uint8_t>* out, size_t max_bytes) {
  uint64_t tail = tail_.load(std::memory_order_relaxed);
  const uint64_t head = head_.load(std::memory_order_acquire);
  size_t records = 0;
  while (tail != head && out->size() < max_bytes) {
    PcapRecord rec;
    CopyOut(tail, &rec, sizeof(rec));
    const size_t at = out->size();
    out->resize(at + sizeof(rec) + rec.caplen);
    std::memcpy(out->data() + at, &rec, sizeof(rec));
    CopyOut(tail + sizeof(rec), out->data() + at + sizeof(rec), rec.caplen);
    tail += RecordSpace(rec.caplen);
    records++;
  }
  tail_.store(tail, std::memory_order_release);
  return records;
}

FilterDump::~FilterDump() { Stop(); }

Status FilterDump::Start(const FilterDumpConfig& cfg) {
  if (cfg.maxlen == 0) return Status::Invalid("maxlen must be at least 1");
  if (cfg.rings == 0) return Status::Invalid("a capture needs at least one queue");
  int fd = ::open(cfg.path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    return Status::Errno(e, "open", "net dump: can't open " + cfg.path + ": " + std::strerror(e));
  }
  fd_.Reset(fd);
  PcapFileHeader hdr;
  hdr.snaplen = cfg.maxlen;
  if (::write(fd, &hdr, sizeof(hdr)) != static_cast<ssize_t>(sizeof(hdr))) {
    int e = errno ? errno : EIO;
    fd_.Reset();
    return Status::Errno(e, "write",
                         "filter-dump: can't write the pcap header to '" + cfg.path + "': " + std::strerror(e));
  }
  file_bytes_.store(sizeof(hdr), std::memory_order_relaxed);
  for (size_t i = 0; i < cfg.rings; i++)
    rings_.push_back(std::make_unique<CaptureRing>(cfg.buffer_bytes, cfg.maxlen, cfg.directions));
  staging_.reserve(kDrainBatch + 65536 + sizeof(PcapRecord));
  writer_ = std::thread([this] { WriterLoop(); });
  return Status::Ok();
}

void FilterDump::WriteAll(const std::vector<uint8_t>& data, size_t records) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd_.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      // Records cut by the failure are lost: counted, and the reason kept.
      AddRelaxed(write_errors_, records);
      std::lock_guard<std::mutex> lock(err_mu_);
      write_error_ = std::string("write: ") + std::strerror(e);
      return;
    }
    done += static_cast<size_t>(n);
    AddRelaxed(file_bytes_, static_cast<uint64_t>(n));
  }
  AddRelaxed(written_, records);
}

bool FilterDump::DrainOnce() {
  bool any = false;
  for (auto& r : rings_) {
    for (;;) {
      staging_.clear();
      size_t records = r->Drain(&staging_, kDrainBatch);
      if (records == 0) break;
      any = true;
      WriteAll(staging_, records);
    }
  }
  return any;
}

void FilterDump::WriterLoop() {
  SetThreadName("np-dump");
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    bool any = DrainOnce();
    lock.lock();
    // The producers never signal (that would cost them a syscall): poll at a short period.
    if (!any && !stop_) cv_.wait_for(lock, kWriterPeriod);
  }
  lock.unlock();
  DrainOnce();
}

void FilterDump::Stop() {
  if (writer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    writer_.join();
  }
  fd_.Reset();
}

FilterDumpStats FilterDump::Stats() const {
  FilterDumpStats s;
  for (const auto& r : rings_) {
    CaptureCounters c = r->counters();
    s.total.frames += c.frames;
    s.total.bytes += c.bytes;
    s.total.dropped += c.dropped;
    s.total.dropped_bytes += c.dropped_bytes;
  }
  s.written = written_.load(std::memory_order_relaxed);
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  s.file_bytes = file_bytes_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(err_mu_);
  s.write_error = write_error_;
  return s;
}

}  // namespace netplane::core
