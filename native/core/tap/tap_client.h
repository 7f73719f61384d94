// TapClient: one queue fd of a TAP device as a net client (QEMU's TAPState, semantics
// reference sections 3.4 and 3.5), better behaved where QEMU is weak:
//  - read: level-triggered; up to kReadBudget frames per wakeup, each read straight into a
//    per-client buffer [vnet header | frame]; short frames padded to 60 bytes unless the
//    peer asks not to; a peer that says "not now" turns read polling off until the queued
//    frame is sent (OnQueuedSent);
//  - write: writev of the frame shaped for this TAP's header length (pass through, prepend
//    a zero header, convert, or strip after software checksum/segmentation); EAGAIN queues
//    the frame, turns write polling on and flushes when writable;
//  - a dead device (EBADFD / EIO on read, EBADFD on write, POLLERR/POLLHUP) removes the
//    handler, takes the link down, purges the queue and raises a kTapDead event once;
//    nothing is polled afterwards, so no core spins.
//  - io_uring (asked for at construction, io-uring=on, the netdev's default): per wakeup one
//    io_uring_enter carries a batch of RWF_NOWAIT reads into per-slot buffers plus the writes
//    queued here since the last one; writes from the peer are copied into write slots and
//    flushed by a bottom half (or with the next read batch). Lone frames (a wake-up that
//    found one, a turn that wrote one) and GSO frames take the plain path, which answers a
//    round trip sooner and copies nothing. A failed or short write completes as a
//    counted drop. When io_uring cannot be set up (kernel.io_uring_disabled, no syscall,
//    a tool that does not pass it through) or stops working, the plain path above is used.
// The fd is borrowed (owned by the TapDevice / JavaScript); Stop() before it is closed.
#pragma once

#include <memory>
#include <vector>

#include "aio/fd_watch.h"
#include "aio/io_uring_batch.h"
#include "net/net_client.h"

namespace netplane::core {

class TapClient : public NetClient {
 public:
  static constexpr int kReadBudget = 64;
  static constexpr int kWriteBatch = 64;  // queued writes before a forced flush

  TapClient(uint32_t handle, std::string name, NetContext* ctx, int fd, int vnet_hdr_len, bool io_uring = false);
  ~TapClient() override;

  // Home thread. Start installs the fd handler (the fd is made non-blocking); Stop removes it.
  Status Start() override;
  void Stop() override;

  int fd() const { return fd_; }
  int vnet_hdr_len() const override { return hdr_len_; }
  Status SetVnetHdrLen(int len) override;
  // Queue attached (true) or detached (false): a detached queue is not polled and frames for
  // it are dropped as deadDevice (the kernel would refuse them with EBADFD).
  void SetQueueEnabled(bool enabled) override;
  bool enabled() const { return enabled_; }
  // The io_uring batch path is in use (asked for, set up, not fallen back).
  bool io_uring_active() const { return ring_ != nullptr; }

  // TUNSETOFFLOAD on this fd with the kOffload* (= TUN_F_*) mask, dropping USO and then UFO
  // where the kernel lacks them. Returns the mask applied.
  Result<unsigned> SetOffloads(unsigned mask);
  unsigned offloads() const { return offloads_; }
  // With a vnet header and alive: the offloads the peer takes (AcceptedOffloads) when
  // auto_on, none otherwise, unless the peer's owner sets them (OwnsPeerOffloads).
  void RecomputeOffloads(bool auto_on) override;
  void Describe(ClientInfo& info) const override;

  void SetLinkDown(bool down) override;  // a dead TAP stays down
  RecvResult Receive(NetClient* sender, const Frame& f) override;
  void OnQueuedSent() override;

 private:
  static void OnReadable(void* opaque);
  static void OnWritable(void* opaque);
  void ReadBatch();
  int ReadPlain();  // frames read
  void ReadUring();
  // io_uring writes: queue a shaped frame (false: use the plain path), submit what is
  // queued, and count each completion.
  bool QueueWrite(const DeviceFrame& d);
  void FlushWrites();
  void CountWrites(unsigned n);
  void RetireRing();
  static void OnFlushBh(void* opaque);
  static void OnCompletion(void* opaque, uint64_t tag, int32_t res);
  RecvResult WritePlain(const Frame& f, const DeviceFrame& d);
  // Hand one frame read into buf on to the peer; true when it had to wait in the peer's queue.
  bool DeliverRead(uint8_t* buf, size_t len);
  RecvResult WriteFailed(int err, const char* syscall);
  void Die(int err, const char* syscall);
  Status UpdatePolling();
  void RemoveHandler();
  bool CheckFdError();

  int fd_;
  int hdr_len_;
  bool started_ = false;
  bool enabled_ = true;
  bool read_poll_ = true;    // off while the peer's queue holds our frame
  bool write_poll_ = false;  // on after EAGAIN until writable
  FdWatch watch_;            // what the AioContext currently polls
  unsigned offloads_ = 0;
  unsigned requested_offloads_ = 0;  // the last mask asked for (offloads_ may lack UFO/USO)
  // The offloads were left to the peer's owner: the kernel may hold anything, so the next
  // graph choice is written even when it looks unchanged.
  bool offloads_external_ = false;
  std::unique_ptr<uint8_t[]> rbuf_;

  // io_uring batch state (unused when ring_ is null).
  struct PendingWrite {
    std::vector<uint8_t> bytes;  // [vnet header | frame] as the device takes it
    uint32_t eth_len = 0;
  };
  bool want_uring_;
  std::unique_ptr<IoUringBatch> ring_;
  BottomHalf* flush_bh_ = nullptr;
  int read_batch_ = 4;    // grows while every read finds a frame, shrinks to what was found
  int uring_misses_ = 0;  // wakeups where io_uring read nothing but read(2) did
  std::vector<std::unique_ptr<uint8_t[]>> read_bufs_;
  int32_t read_res_[kReadBudget] = {};
  std::vector<PendingWrite> writes_;
  unsigned nwrites_ = 0;
  unsigned writes_in_turn_ = 0;  // frames written since the flush BH last ran
  bool write_burst_ = false;     // the last turn wrote more than one frame: queue on the ring
  int32_t write_res_[kWriteBatch] = {};
};

}  // namespace netplane::core
