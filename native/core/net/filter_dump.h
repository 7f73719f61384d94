// filter-dump: QEMU's pcap capture of the frames crossing one netdev, built so that it never
// slows the data plane. Each captured client (a netdev queue) owns a CaptureRing: the
// client's home thread copies the frame (up to maxlen bytes) with a timestamp into the ring
// and returns; a writer thread of the FilterDump drains every ring into the pcap file. When
// a ring is full the frame is not captured and counted (dropped frames and bytes): nothing
// waits, nothing is lost without a count.
//
// Threading: CaptureRing::Push runs on the client's home thread only (one producer); the
// writer thread is the only consumer. The rings are fixed when the FilterDump starts; the
// client pointers to them are set and cleared by the graph on each client's thread, so once
// Detach returns no producer touches a ring again and Stop may drain and free them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace netplane::core {

// Which frames of a netdev a capture takes (QEMU's queue=rx|tx|all): rx are frames the
// netdev receives (towards its device), tx the frames it sends (from its device).
enum CaptureDirection : unsigned { kCaptureRx = 1, kCaptureTx = 2, kCaptureAll = 3 };

struct CaptureCounters {
  uint64_t frames = 0;         // copied into the ring
  uint64_t bytes = 0;          // their frame bytes (original lengths)
  uint64_t dropped = 0;        // not captured: the ring was full
  uint64_t dropped_bytes = 0;  // their frame bytes
};

class CaptureRing {
 public:
  CaptureRing(size_t capacity, uint32_t maxlen, unsigned directions);
  CaptureRing(const CaptureRing&) = delete;
  CaptureRing& operator=(const CaptureRing&) = delete;

  bool wants(CaptureDirection d) const { return (directions_ & d) != 0; }
  // Producer (the client's home thread): copy one ethernet frame; never blocks.
  void Push(const uint8_t* eth, uint32_t len);
  CaptureCounters counters() const;

  // Consumer (the writer thread): append whole pcap records to out, up to about max_bytes.
  // Returns the number of records taken.
  size_t Drain(std::vector<uint8_t>* out, size_t max_bytes);

 private:
  void CopyIn(uint64_t pos, const void* src, size_t n);
  void CopyOut(uint64_t pos, void* dst, size_t n) const;

  std::unique_ptr<uint8_t[]> buf_;
  const size_t cap_;  // a power of two
  const uint32_t maxlen_;
  const unsigned directions_;
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the producer
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the consumer
  // One writer each (the producer): relaxed load + store, readable from anywhere.
  alignas(64) std::atomic<uint64_t> frames_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> dropped_bytes_{0};
};

struct FilterDumpConfig {
  std::string path;
  uint32_t maxlen = 65536;                // QEMU's default snap length
  size_t buffer_bytes = 4 * 1024 * 1024;  // per captured queue, rounded up to a power of two
  unsigned directions = kCaptureAll;
  size_t rings = 1;  // one per captured queue
};

struct FilterDumpStats {
  CaptureCounters total;      // summed over the rings
  uint64_t written = 0;       // records written to the file
  uint64_t write_errors = 0;  // records lost to a failed write (counted, e.g. ENOSPC)
  uint64_t file_bytes = 0;    // bytes in the file, global header included
  std::string write_error;    // the last write failure, empty if none
};

class FilterDump {
 public:
  FilterDump() = default;
  ~FilterDump();
  FilterDump(const FilterDump&) = delete;
  FilterDump& operator=(const FilterDump&) = delete;

  // Create/truncate the file (mode 0644, as QEMU), write the pcap header, start the writer.
  Status Start(const FilterDumpConfig& cfg);
  CaptureRing* ring(size_t i) { return rings_[i].get(); }
  size_t ring_count() const { return rings_.size(); }
  // Drain what is left, stop the writer, close the file. Only once no client points at a
  // ring any more. Idempotent.
  void Stop();
  FilterDumpStats Stats() const;

 private:
  void WriterLoop();
  bool DrainOnce();
  void WriteAll(const std::vector<uint8_t>& data, size_t records);

  std::vector<std::unique_ptr<CaptureRing>> rings_;
  UniqueFd fd_;
  std::thread writer_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> file_bytes_{0};
  mutable std::mutex err_mu_;
  std::string write_error_;
  std::vector<uint8_t> staging_;
};

}  // namespace netplane::core
