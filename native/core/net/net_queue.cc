#include "net/net_queue.h"

#include <cstring>

#include "base/debug_check.h"
#include "net/net_client.h"

namespace netplane::core {

NetQueue::~NetQueue() {
  PacketPool& pool = owner_->context()->pool;
  while (head_) {
    PacketBuf* b = head_;
    head_ = b->next;
    pool.Put(b);
  }
  tail_ = nullptr;
}

NetQueue::AppendResult NetQueue::Append(NetClient* sender, const Frame& f, bool with_callback) {
  NP_DCHECK_HOME(owner_->context()->aio);
  ClientCounters& c = owner_->counters();
  c.In(f.eth_len());
  // Callback senders stop after one queued frame, so they are bounded by construction.
  if (!with_callback && (count_ >= kMaxFrames || bytes_ + f.len > kMaxBytes)) {
    c.Drop(DropReason::kQueueFull);
    return AppendResult::kDropped;
  }
  PacketBuf* b = owner_->context()->pool.Get(f.len);
  if (!b) {
    c.Drop(DropReason::kOversize);
    return AppendResult::kDropped;
  }
  std::memcpy(b->data(), f.data, f.len);
  b->len = f.len;
  b->hdr_len = f.hdr_len;
  b->sender = sender;
  b->has_callback = with_callback;
  if (tail_)
    tail_->next = b;
  else
    head_ = b;
  tail_ = b;
  ++count_;
  bytes_ += f.len;
  c.queued.Add();
  return AppendResult::kQueued;
}

bool NetQueue::Flush() {
  NP_DCHECK_HOME(owner_->context()->aio);
  if (delivering_) return false;
  delivering_ = true;
  PacketPool& pool = owner_->context()->pool;
  while (head_) {
    PacketBuf* b = head_;
    Frame f{b->data(), b->len, b->hdr_len};
    RecvResult r = owner_->Deliver(b->sender, f, /*from_queue=*/true);
    if (r == RecvResult::kNotNow) {
      delivering_ = false;
      return false;
    }
    head_ = b->next;
    if (!head_) tail_ = nullptr;
    --count_;
    bytes_ -= b->len;
    owner_->counters().queued.Sub();
    NetClient* sender = b->sender;
    bool cb = b->has_callback;
    pool.Put(b);
    if (cb && sender) sender->OnQueuedSent();
  }
  delivering_ = false;
  return true;
}

void NetQueue::Purge(NetClient* from, DropReason reason) {
  NP_DCHECK_HOME(owner_->context()->aio);
  PacketPool& pool = owner_->context()->pool;
  PacketBuf** link = &head_;
  PacketBuf* prev = nullptr;
  // Collect callbacks first: a callback may send again into this very queue.
  NetClient* callbacks[64];
  size_t ncb = 0;
  bool overflow = false;
  while (*link) {
    PacketBuf* b = *link;
    if (from == nullptr || b->sender == from) {
      *link = b->next;
      if (tail_ == b) tail_ = prev;
      --count_;
      bytes_ -= b->len;
      owner_->counters().queued.Sub();
      owner_->counters().Drop(reason);
      if (b->has_callback && b->sender && b->sender != from) {
        if (ncb < 64)
          callbacks[ncb++] = b->sender;
        else
          overflow = true;
      }
      pool.Put(b);
    } else {
      prev = b;
      link = &b->next;
    }
  }
  (void)overflow;  // callback senders have at most one queued frame each; 64 is plenty
  for (size_t i = 0; i < ncb; ++i) callbacks[i]->OnQueuedSent();
}

void NetQueue::ForgetSender(NetClient* sender) {
  NP_DCHECK_HOME(owner_->context()->aio);
  for (PacketBuf* b = head_; b; b = b->next) {
    if (b->sender == sender) {
      b->sender = nullptr;
      b->has_callback = false;
    }
  }
}

}  // namespace netplane::core
