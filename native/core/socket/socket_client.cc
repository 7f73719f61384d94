#include "socket/socket_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace netplane::core {

SocketClient::SocketClient(ClientKind kind, uint32_t handle, std::string name, NetContext* ctx)
    : NetClient(kind, handle, std::move(name), ctx) {}

SocketClient::~SocketClient() { CloseFd(); }

void SocketClient::CloseFd() {
  RemoveHandler();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status SocketClient::AttachFd(int fd) {
  if (fd < 0) {
    CloseFd();
    // Whatever waits here can no longer be written.
    receive_disabled_ = false;
    FlushQueuedPackets();
    return Status::Ok();
  }
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return Status::Errno(errno, "fcntl(F_GETFL)", "socket fd " + std::to_string(fd) + " is not open");
  if (!(fl & O_NONBLOCK) && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return Status::Errno(errno, "fcntl(F_SETFL)", "cannot make socket fd non-blocking");
  CloseFd();
  fd_ = fd;
  read_poll_ = true;
  write_poll_ = false;
  ResetState();
  Status s = UpdatePolling();
  if (!s.ok()) {
    RemoveHandler();
    fd_ = -1;  // the caller keeps it
    return s;
  }
  // Frames queued while there was no connection (none: Receive drops them) or held back.
  FlushQueuedPackets();
  return Status::Ok();
}

Status SocketClient::Start() {
  started_ = true;
  Status s = UpdatePolling();
  if (!s.ok()) started_ = false;
  return s;
}

void SocketClient::Stop() {
  RemoveHandler();
  started_ = false;
}

void SocketClient::RemoveHandler() { watch_.Remove(ctx_->aio, fd_); }

Status SocketClient::UpdatePolling() {
  if (!started_ || fd_ < 0) return Status::Ok();
  return watch_.Poll(ctx_->aio, fd_, OnReadable, OnWritable, this, read_poll_ && !yielded_, write_poll_);
}

void SocketClient::PauseRead() {
  read_poll_ = false;
  UpdatePolling();
}

void SocketClient::WantWrite() {
  counters_.eagain.Add();
  write_poll_ = true;
  UpdatePolling();
}

void SocketClient::OnReadable(void* opaque) {
  auto* self = static_cast<SocketClient*>(opaque);
  self->counters_.wakeups.Add();
  if (!self->read_poll_) {
    // Only a hang-up or an error wakes us while reading is paused.
    self->CheckHangup();
    return;
  }
  self->ReadBatch();
}

void SocketClient::OnWritable(void* opaque) {
  auto* self = static_cast<SocketClient*>(opaque);
  if (!self->FlushPending()) return;
  self->write_poll_ = false;
  self->UpdatePolling();
  self->FlushQueuedPackets();
}

bool SocketClient::CheckHangup() {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL))) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    Closed(err, "poll");
    return true;
  }
  return false;
}

bool SocketClient::DeliverRead(const uint8_t* data, size_t len) {
  counters_.DevRx(len);
  counters_.In(len);
  Frame f{data, static_cast<uint32_t>(len), 0};
  return Send(f, /*with_callback=*/true) == SendResult::kQueued;
}

void SocketClient::OnQueuedSent() {
  if (read_poll_ || fd_ < 0) return;
  read_poll_ = true;
  ResumeHeld();  // not inline: we may be inside the peer's flush
  UpdatePolling();
}

RecvResult SocketClient::DropClosed() {
  counters_.Drop(DropReason::kDeadDevice);
  return RecvResult::kConsumed;
}

void SocketClient::Closed(int err, const char* syscall) {
  if (fd_ < 0) return;
  CloseFd();
  ResetState();
  // What waits for the connection is dropped as deadDevice (Receive without an fd).
  receive_disabled_ = false;
  incoming_.Flush();
  GraphEvent ev{GraphEvent::Kind::kSocketClosed, handle_, err, syscall};
  ctx_->Emit(ev);
}

void SocketClient::Describe(ClientInfo& info) const {
  // "enabled" reads as "has a connection" for socket clients.
  info.enabled = fd_ >= 0;
}

}  // namespace netplane::core
