#include "slirp/slirp_client.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>

#include "base/debug_check.h"
#include "vnet/segment.h"

namespace netplane::core {

namespace {

// libslirp's poll bits <-> poll(2)'s.
short ToPollEvents(int slirp_events) {
  short e = 0;
  if (slirp_events & slirp_abi::kPollIn) e |= POLLIN;
  if (slirp_events & slirp_abi::kPollOut) e |= POLLOUT;
  if (slirp_events & slirp_abi::kPollPri) e |= POLLPRI;
  return e;
}

int FromPollEvents(short revents) {
  int e = 0;
  if (revents & POLLIN) e |= slirp_abi::kPollIn;
  if (revents & POLLOUT) e |= slirp_abi::kPollOut;
  if (revents & POLLPRI) e |= slirp_abi::kPollPri;
  if (revents & (POLLERR | POLLNVAL)) e |= slirp_abi::kPollErr;
  if (revents & POLLHUP) e |= slirp_abi::kPollHup;
  return e;
}

}  // namespace

Result<std::unique_ptr<SlirpClient>> SlirpClient::Create(uint32_t handle, std::string name, NetContext* ctx,
                                                         SlirpOptions opts) {
  auto lib = LoadLibslirp();
  if (!lib.ok()) return Result<std::unique_ptr<SlirpClient>>::Fail(lib.status);
  if (!opts.ipv4 && !opts.ipv6)
    return Result<std::unique_ptr<SlirpClient>>::Fail(Status::Invalid("IPv4 and IPv6 disabled"));
  return Result<std::unique_ptr<SlirpClient>>::Of(
      std::unique_ptr<SlirpClient>(new SlirpClient(handle, std::move(name), ctx, lib.value, std::move(opts))));
}

SlirpClient::SlirpClient(uint32_t handle, std::string name, NetContext* ctx, const Libslirp* lib, SlirpOptions opts)
    : NetClient(ClientKind::kSlirp, handle, std::move(name), ctx), lib_(lib), opts_(std::move(opts)) {
  cb_.send_packet = CbSendPacket;
  cb_.guest_error = CbGuestError;
  cb_.clock_get_ns = CbClockNs;
  cb_.timer_new = CbTimerNew;
  cb_.timer_free = CbTimerFree;
  cb_.timer_mod = CbTimerMod;
  cb_.register_poll_fd = CbRegisterFd;
  cb_.unregister_poll_fd = CbUnregisterFd;
  cb_.notify = CbNotify;
  cb_.init_completed = nullptr;
  cb_.timer_new_opaque = lib_->timers_by_id ? CbTimerNewById : nullptr;
  for (const std::string& s : opts_.dnssearch) dnssearch_ptrs_.push_back(s.c_str());
  dnssearch_ptrs_.push_back(nullptr);
}

SlirpClient::~SlirpClient() {
  Stop();
  if (slirp_) {
    lib_->api.slirp_cleanup(slirp_);  // frees its timers through CbTimerFree
    slirp_ = nullptr;
  }
  timers_.clear();
}

Status SlirpClient::Start() {
  NP_DCHECK_HOME(ctx_->aio);
  if (started_) return Status::Ok();
  started_ = true;
  AioContext* aio = ctx_->aio;
  round_bh_ = aio->NewBh(OnRoundBh, this, "slirp-round");
  poll_timer_ = aio->NewTimer(OnPollTimer, this);
  for (auto& [key, t] : timers_) {
    t->timer = aio->NewTimer(OnSlirpTimer, t.get());
    ArmTimer(t.get());
  }
  if (!slirp_) {
    slirp_abi::Config cfg{};
    cfg.version = lib_->config_version;
    cfg.restricted = opts_.restricted ? 1 : 0;
    cfg.in_enabled = opts_.ipv4;
    cfg.vnetwork = opts_.net;
    cfg.vnetmask = opts_.mask;
    cfg.vhost = opts_.host;
    cfg.in6_enabled = opts_.ipv6;
    cfg.vprefix_addr6 = opts_.prefix6;
    cfg.vprefix_len = opts_.prefix6_len;
    cfg.vhost6 = opts_.host6;
    auto str = [](const std::string& s) -> const char* { return s.empty() ? nullptr : s.c_str(); };
    cfg.vhostname = str(opts_.hostname);
    cfg.tftp_server_name = str(opts_.tftp_server_name);
    cfg.tftp_path = str(opts_.tftp_path);
    cfg.bootfile = str(opts_.bootfile);
    cfg.vdhcp_start = opts_.dhcp_start;
    cfg.vnameserver = opts_.dns;
    cfg.vnameserver6 = opts_.dns6;
    cfg.vdnssearch = opts_.dnssearch.empty() ? nullptr : dnssearch_ptrs_.data();
    cfg.vdomainname = str(opts_.domainname);
    slirp_ = lib_->api.slirp_new(&cfg, &cb_, this);
    if (!slirp_) {
      Stop();
      return Status::Invalid("libslirp " + lib_->version + " refused the configuration of '" + name_ + "'");
    }
  }
  ScheduleRound();
  return Status::Ok();
}

void SlirpClient::Stop() {
  if (!started_) return;
  started_ = false;
  RemoveAllHandlers();
  pollfds_.clear();
  AioContext* aio = ctx_->aio;
  for (auto& [key, t] : timers_) {
    if (t->timer) aio->TimerFree(t->timer);
    t->timer = nullptr;  // expire_ns stays: armed again by Start
  }
  if (poll_timer_) aio->TimerFree(poll_timer_);
  poll_timer_ = nullptr;
  if (round_bh_) AioContext::DeleteBh(round_bh_);
  round_bh_ = nullptr;
}

void SlirpClient::RemoveAllHandlers() {
  for (auto& [fd, rec] : fds_)
    if (rec->read || rec->write) ctx_->aio->RemoveFdHandler(fd);
  fds_.clear();
}

void SlirpClient::ScheduleRound() {
  if (round_bh_) AioContext::ScheduleBh(round_bh_);
}

void SlirpClient::OnRoundBh(void* opaque) { static_cast<SlirpClient*>(opaque)->Round(); }
void SlirpClient::OnPollTimer(void* opaque) { static_cast<SlirpClient*>(opaque)->Round(); }
void SlirpClient::OnFdReady(void* opaque) { static_cast<FdRec*>(opaque)->owner->ScheduleRound(); }

void SlirpClient::Round() {
  if (!slirp_ || !started_ || in_round_) return;
  in_round_ = true;
  int select_error = 0;
  if (!pollfds_.empty()) {
    int n;
    do {
      n = ::poll(pollfds_.data(), pollfds_.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      select_error = 1;
      for (pollfd& p : pollfds_) p.revents = 0;
    }
  }
  lib_->api.slirp_pollfds_poll(slirp_, select_error, CbGetREvents, this);
  pollfds_.clear();
  uint32_t timeout_ms = UINT32_MAX;
  lib_->api.slirp_pollfds_fill(slirp_, &timeout_ms, CbAddPoll, this);
  Mirror();
  if (timeout_ms != UINT32_MAX)
    ctx_->aio->TimerMod(poll_timer_, AioContext::NowNs() + static_cast<int64_t>(timeout_ms) * 1000000);
  else
    ctx_->aio->TimerDel(poll_timer_);
  in_round_ = false;
}

// Make the context's fd handlers match the last fill.
void SlirpClient::Mirror() {
  for (auto& [fd, rec] : fds_) rec->want_read = rec->want_write = false;
  for (const pollfd& p : pollfds_) {
    auto& slot = fds_[p.fd];
    if (!slot) slot.reset(new FdRec{this, p.fd});
    if (p.events & (POLLIN | POLLPRI)) slot->want_read = true;
    if (p.events & POLLOUT) slot->want_write = true;
  }
  AioContext* aio = ctx_->aio;
  for (auto it = fds_.begin(); it != fds_.end();) {
    FdRec* r = it->second.get();
    if (!r->want_read && !r->want_write) {
      if (r->read || r->write) aio->RemoveFdHandler(r->fd);
      it = fds_.erase(it);
      continue;
    }
    if (r->want_read != r->read || r->want_write != r->write) {
      Status s = aio->SetFdHandler(r->fd, r->want_read ? OnFdReady : nullptr, r->want_write ? OnFdReady : nullptr,
                                   nullptr, nullptr, r);
      if (!s.ok() && (r->read || r->write)) {
        // The fd was closed and its number reused behind our back: register it afresh.
        aio->RemoveFdHandler(r->fd);
        s = aio->SetFdHandler(r->fd, r->want_read ? OnFdReady : nullptr, r->want_write ? OnFdReady : nullptr, nullptr,
                              nullptr, r);
      }
      if (s.ok()) {
        r->read = r->want_read;
        r->write = r->want_write;
      } else {
        // Not pollable (already closed): forget it; the round after the next fill retries.
        r->read = r->write = false;
        it = fds_.erase(it);
        continue;
      }
    }
    ++it;
  }
}

int SlirpClient::CbAddPoll(int fd, int events, void* opaque) {
  auto* self = static_cast<SlirpClient*>(opaque);
  self->pollfds_.push_back(pollfd{fd, ToPollEvents(events), 0});
  return static_cast<int>(self->pollfds_.size() - 1);
}

int SlirpClient::CbGetREvents(int idx, void* opaque) {
  auto* self = static_cast<SlirpClient*>(opaque);
  if (idx < 0 || static_cast<size_t>(idx) >= self->pollfds_.size()) return 0;
  return FromPollEvents(self->pollfds_[idx].revents);
}

void SlirpClient::CbRegisterFd(int, void*) {}

void SlirpClient::CbUnregisterFd(int fd, void* opaque) {
  // Called before libslirp closes fd: drop its handler while the number is still ours.
  auto* self = static_cast<SlirpClient*>(opaque);
  auto it = self->fds_.find(fd);
  if (it == self->fds_.end()) return;
  if (it->second->read || it->second->write) self->ctx_->aio->RemoveFdHandler(fd);
  self->fds_.erase(it);
  for (pollfd& p : self->pollfds_)
    if (p.fd == fd) p.fd = -1;  // poll(2) skips negative fds
}

void SlirpClient::CbNotify(void* opaque) { static_cast<SlirpClient*>(opaque)->ScheduleRound(); }

// ---- frames --------------------------------------------------------------------------

RecvResult SlirpClient::Receive(NetClient*, const Frame& f) {
  if (!slirp_) {
    counters_.Drop(DropReason::kDeadDevice);
    return RecvResult::kConsumed;
  }
  uint8_t hdr_scratch[kMaxVnetHdrLen];
  DeviceFrame d;
  if (!ShapeOrDrop(f, kMaxFrameLen, hdr_scratch, &d)) return RecvResult::kError;
  if (d.kind == DeviceFrame::Kind::kSoftware) {
    // A GSO or checksum-offloaded frame: libslirp takes finished wire frames only.
    VnetError e = SegmentFrame(d.hdr, f.eth(), f.eth_len(), ctx_->scratch.data(), InputSegment, this);
    if (e != VnetError::kOk) {
      counters_.Drop(DropReason::kBadVnetHdr);
      return RecvResult::kError;
    }
  } else {
    const auto* eth = static_cast<const uint8_t*>(d.iov[d.iovcnt - 1].iov_base);
    lib_->api.slirp_input(slirp_, eth, static_cast<int>(d.eth_len));
  }
  counters_.Out(d.eth_len);
  counters_.DevTx(d.eth_len);
  ScheduleRound();  // the frame may have opened a socket libslirp now wants polled
  return RecvResult::kConsumed;
}

void SlirpClient::InputSegment(void* opaque, const uint8_t* frame, size_t len) {
  auto* self = static_cast<SlirpClient*>(opaque);
  self->counters_.segments.Add();
  self->lib_->api.slirp_input(self->slirp_, frame, static_cast<int>(len));
}

ssize_t SlirpClient::CbSendPacket(const void* buf, size_t len, void* opaque) {
  auto* self = static_cast<SlirpClient*>(opaque);
  Frame f{static_cast<const uint8_t*>(buf), static_cast<uint32_t>(len), 0};
  self->counters_.In(len);
  self->counters_.DevRx(len);
  // Without a callback: a frame the peer cannot take now waits in its queue or is counted
  // as dropped there; TCP inside libslirp retransmits.
  self->Send(f, false);
  return static_cast<ssize_t>(len);
}

void SlirpClient::CbGuestError(const char* msg, void* opaque) {
  auto* self = static_cast<SlirpClient*>(opaque);
  std::fprintf(stderr, "netplane: %s: guest error: %s\n", self->name_.c_str(), msg ? msg : "");
}

int64_t SlirpClient::CbClockNs(void*) { return AioContext::NowNs(); }

// ---- timers --------------------------------------------------------------------------

SlirpClient::TimerRec* SlirpClient::NewTimerRec() {
  auto rec = std::make_unique<TimerRec>();
  rec->owner = this;
  TimerRec* raw = rec.get();
  if (started_) raw->timer = ctx_->aio->NewTimer(OnSlirpTimer, raw);
  timers_[raw] = std::move(rec);
  return raw;
}

void* SlirpClient::CbTimerNew(slirp_abi::TimerCb cb, void* cb_opaque, void* opaque) {
  TimerRec* t = static_cast<SlirpClient*>(opaque)->NewTimerRec();
  t->cb = cb;
  t->cb_opaque = cb_opaque;
  return t;
}

void* SlirpClient::CbTimerNewById(slirp_abi::TimerId id, void* cb_opaque, void* opaque) {
  TimerRec* t = static_cast<SlirpClient*>(opaque)->NewTimerRec();
  t->by_id = true;
  t->id = id;
  t->cb_opaque = cb_opaque;
  return t;
}

void SlirpClient::CbTimerFree(void* timer, void* opaque) {
  auto* self = static_cast<SlirpClient*>(opaque);
  auto* t = static_cast<TimerRec*>(timer);
  auto it = self->timers_.find(t);
  if (it == self->timers_.end()) return;
  if (t->timer) self->ctx_->aio->TimerFree(t->timer);
  self->timers_.erase(it);
}

void SlirpClient::CbTimerMod(void* timer, int64_t expire_ms, void* opaque) {
  auto* self = static_cast<SlirpClient*>(opaque);
  auto* t = static_cast<TimerRec*>(timer);
  // libslirp's deadline is in ms of the clock CbClockNs reads.
  t->expire_ns = expire_ms * 1000000;
  self->ArmTimer(t);
}

void SlirpClient::ArmTimer(TimerRec* t) {
  if (!t->timer) return;
  if (t->expire_ns >= 0)
    ctx_->aio->TimerMod(t->timer, t->expire_ns);
  else
    ctx_->aio->TimerDel(t->timer);
}

void SlirpClient::OnSlirpTimer(void* opaque) {
  auto* t = static_cast<TimerRec*>(opaque);
  SlirpClient* self = t->owner;
  t->expire_ns = -1;
  if (t->by_id)
    self->lib_->api.slirp_handle_timer(self->slirp_, t->id, t->cb_opaque);
  else if (t->cb)
    t->cb(t->cb_opaque);
  self->ScheduleRound();
}

// ---- control -------------------------------------------------------------------------

Status SlirpClient::AddHostfwd(bool udp, in_addr host_addr, int host_port, in_addr guest_addr, int guest_port) {
  if (!slirp_) return Status::Closed("user netdev '" + name_ + "' is not running");
  if (lib_->api.slirp_add_hostfwd(slirp_, udp ? 1 : 0, host_addr, host_port, guest_addr, guest_port) < 0)
    return Status::Invalid("could not set up host forwarding");
  ScheduleRound();
  return Status::Ok();
}

Status SlirpClient::RemoveHostfwd(bool udp, in_addr host_addr, int host_port) {
  if (!slirp_) return Status::Closed("user netdev '" + name_ + "' is not running");
  if (lib_->api.slirp_remove_hostfwd(slirp_, udp ? 1 : 0, host_addr, host_port) < 0)
    return Status::NotFound("host forwarding rule not found");
  ScheduleRound();
  return Status::Ok();
}

Status SlirpClient::AddGuestfwdExec(in_addr guest_addr, int guest_port, const std::string& command) {
  if (!slirp_) return Status::Closed("user netdev '" + name_ + "' is not running");
  if (lib_->api.slirp_add_exec(slirp_, command.c_str(), &guest_addr, guest_port) < 0)
    return Status::Invalid("conflicting/invalid host:port in guest forwarding rule");
  return Status::Ok();
}

std::string SlirpClient::ConnectionInfo() {
  if (!slirp_) return "";
  char* s = lib_->api.slirp_connection_info(slirp_);
  if (!s) return "";
  std::string out(s);
  lib_->api.free_string(s);
  return out;
}

}  // namespace netplane::core
