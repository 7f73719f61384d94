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
// The fd is borrowed (owned by the TapDevice / JavaScript); Stop() before it is closed.
//
// Batched mode (opt-in, NETPLANE_IO=uring; see batch_io.h): a wakeup reads a round of up to
// kReadBudget frames with one io_uring_enter and the writes those frames cause, to TAPs
// whose send buffer is INT_MAX, go out together in a second one. Differences from the
// plain path: when the peer says "not now", the rest of the round (already read from the
// kernel) waits in the peer's queue too, so up to a round of frames (not one) may be queued
// per sender; a staged write the kernel refuses with EAGAIN falls back to the synchronous
// path. Measured on the 2-core bench machine it did not beat the plain path (the per-frame
// cost is in the kernel's TAP read and receive path, not in the system call), so plain
// stays the default.
#pragma once

#include <memory>

#include "net_client.h"

namespace netplane::core {

class TapClient : public NetClient {
 public:
  static constexpr int kReadBudget = 64;

  TapClient(uint32_t handle, std::string name, NetContext* ctx, int fd, int vnet_hdr_len);
  ~TapClient() override;

  // Home thread. Start installs the fd handler (the fd is made non-blocking); Stop removes it.
  Status Start();
  void Stop();

  int fd() const { return fd_; }
  int vnet_hdr_len() const override { return hdr_len_; }
  void SetVnetHdrLen(int len) { hdr_len_ = len; }
  // Queue attached (true) or detached (false): a detached queue is not polled and frames for
  // it are dropped as deadDevice (the kernel would refuse them with EBADFD).
  void SetEnabled(bool enabled);
  bool enabled() const { return enabled_; }

  // TUNSETOFFLOAD on this fd: on = CSUM|TSO4|TSO6|TSO_ECN plus UFO/USO where supported.
  // Returns the TUN_F_* mask applied.
  Result<unsigned> SetOffloads(bool on);
  unsigned offloads() const { return offloads_; }

  void SetLinkDown(bool down) override;  // a dead TAP stays down
  RecvResult Receive(NetClient* sender, const Frame& f) override;
  void OnQueuedSent() override;
  void OnSentFrameQueuedLate() override;
  // Whether this client reads and writes through its context's io_uring (NETPLANE_IO=uring).
  bool batched() const { return use_batch_; }

 private:
  static void OnReadable(void* opaque);
  static void OnWritable(void* opaque);
  void ReadBatch();
  void ReadBatchBatched(BatchIo* b);
  // Hand one frame read into buf on to the peer; true when it had to wait in the peer's queue.
  bool DeliverRead(uint8_t* buf, size_t len);
  RecvResult WriteFailed(int err, const char* syscall);
  BatchIo* ActiveBatch() const { return use_batch_ ? ctx_->Batch() : nullptr; }
  bool StageWrite(BatchIo* b, NetClient* sender, const Frame& f, const DeviceFrame& d,
                  const uint8_t* hdr_scratch);
  static void OnStagedWriteDone(BatchIo::Staged& w, int res);
  void FinishStagedWrite(const BatchIo::Staged& w, int res);
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
  // What the AioContext currently has, so a change costs one epoll_ctl and no change none.
  bool installed_ = false;
  bool polled_read_ = false, polled_write_ = false;
  unsigned offloads_ = 0;
  std::unique_ptr<uint8_t[]> rbuf_;
  // Batched mode: kReadBudget read slots, so a whole round stays valid until its writes
  // are flushed (malloc'd lazily-backed memory: untouched slot tails cost no RAM).
  static constexpr size_t kSlotSize = kMaxVnetHdrLen + kNetBufSize + kPadFrameLen;
  std::unique_ptr<uint8_t[]> rbufs_;
  bool use_batch_ = false;
  bool stage_ok_ = false;
  int read_ahead_ = 4;
};

}  // namespace netplane::core
