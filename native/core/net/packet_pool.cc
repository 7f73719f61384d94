#include "net/packet_pool.h"

#include <cstdlib>
#include <new>

namespace netplane::core {

namespace {
void FreeList(PacketBuf* head) {
  while (head) {
    PacketBuf* next = head->next;
    head->~PacketBuf();
    std::free(head);
    head = next;
  }
}
}  // namespace

PacketPool::~PacketPool() {
  FreeList(free_small_);
  FreeList(free_large_);
}

PacketBuf* PacketPool::Get(size_t len) {
  if (len > kLargeCapacity) return nullptr;
  bool large = len > kSmallCapacity;
  PacketBuf*& list = large ? free_large_ : free_small_;
  PacketBuf* buf = list;
  if (buf) {
    list = buf->next;
    --(large ? n_free_large_ : n_free_small_);
  } else {
    size_t cap = large ? kLargeCapacity : kSmallCapacity;
    void* mem = std::malloc(sizeof(PacketBuf) + cap);
    if (!mem) return nullptr;
    ++allocations_;
    buf = new (mem) PacketBuf();
    buf->capacity = static_cast<uint32_t>(cap);
    buf->large = large;
  }
  buf->next = nullptr;
  buf->sender = nullptr;
  buf->len = 0;
  buf->hdr_len = 0;
  buf->has_callback = false;
  ++outstanding_;
  return buf;
}

void PacketPool::Put(PacketBuf* buf) {
  if (!buf) return;
  --outstanding_;
  size_t& n = buf->large ? n_free_large_ : n_free_small_;
  size_t max = buf->large ? kMaxFreeLarge : kMaxFreeSmall;
  if (n >= max) {
    buf->~PacketBuf();
    std::free(buf);
    return;
  }
  PacketBuf*& list = buf->large ? free_large_ : free_small_;
  buf->next = list;
  list = buf;
  ++n;
}

}  // namespace netplane::core
