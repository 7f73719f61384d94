// The data plane graph for JavaScript: a NetGraph wrapper (core/net/net_graph.h). Every method
// is a synchronous control operation that runs as a one-shot bottom half on the owning
// IoThread and returns when it ran (they are short). Events raised on IoThreads (a TAP
// died, a JS port has frames, a JS port's tx ring has room again) reach JavaScript through
// one TypedThreadSafeFunction, unref'd so an idle graph does not keep the process alive;
// wake-ups are coalesced per batch by the ring's wake flag, so JS is called at most once
// per batch. Packet-port rings live in SharedArrayBuffers allocated by JavaScript; the
// wrapper keeps a reference to each typed array so its memory stays put while the port
// exists. close(), GC and env teardown all end in Shutdown(), which stops the threads
// before releasing the thread-safe function.
#include <climits>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>

#include "addon.h"
#include "args.h"
#include "batch_forward.h"
#include "capture.h"
#include "errors.h"
#include "io/memfd.h"
#include "net/net_graph.h"
#include "slirp.h"
#include "socket.h"
#include "virtio/guest_memory.h"

namespace netplane::binding {

namespace {

using core::GraphEvent;

void CallJsEvent(Napi::Env env, Napi::Function callback, std::nullptr_t*, GraphEvent* ev) {
  std::unique_ptr<GraphEvent> owned(ev);
  if (env == nullptr || callback.IsEmpty()) return;
  callback.Call({Napi::Number::New(env, static_cast<int>(ev->kind)), Napi::Number::New(env, ev->handle),
                 Napi::Number::New(env, ev->err), Napi::String::New(env, ev->syscall),
                 Napi::String::New(env, ev->err != 0 ? ErrnoName(ev->err) : std::string()),
                 ev->ring < 0 ? env.Null() : Napi::String::New(env, ev->ring == 0 ? "rx" : "tx"),
                 Napi::String::New(env, ev->reason)});
}

using EventTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, GraphEvent, CallJsEvent>;

// Shared between the wrapper and the env cleanup entry, whichever runs first shuts down.
struct GraphState {
  std::unique_ptr<core::NetGraph> graph;
  EventTsfn tsfn;
  bool tsfn_live = false;
  std::unordered_map<uint32_t, std::pair<Napi::ObjectReference, Napi::ObjectReference>> rings;
  // The GuestMemory object each running virtio ring uses (key handle * 2 + ring), so memory
  // JavaScript owns stays alive while a ring reads it.
  std::unordered_map<uint64_t, Napi::ObjectReference> vring_memory;

  void Shutdown() {
    if (graph) graph->Close();  // joins the IoThreads: no event can be raised afterwards
    rings.clear();
    vring_memory.clear();
    if (tsfn_live) {
      tsfn_live = false;
      tsfn.Release();
    }
  }
};

// Positional arguments, read with the shared readers (args.h).
bool ArgUint32(const Napi::CallbackInfo& info, size_t i, const char* what, uint32_t* out) {
  return ReadInteger(info.Env(), info[i], what, 0, UINT32_MAX, out);
}
bool ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what, int* out) {
  return ReadInteger(info.Env(), info[i], what, INT_MIN, INT_MAX, out);
}

// The options object of every add* call, and its common fields { handle, name, queueIndex,
// iothread }.
bool ArgSpec(const Napi::CallbackInfo& info, Napi::Object* o, core::ClientSpec* spec) {
  Napi::Env env = info.Env();
  if (!ReadObject(env, info[0], "options", o)) return false;
  return ReadInteger(env, o->Get("handle"), "handle", 0, UINT32_MAX, &spec->handle) &&
         ReadString(env, o->Get("name"), "name", &spec->name) &&
         ReadInteger(env, o->Get("queueIndex"), "queueIndex", 0, UINT32_MAX, &spec->queue_index) &&
         ReadString(env, o->Get("iothread"), "iothread", &spec->iothread);
}

class NetGraphWrap : public Napi::ObjectWrap<NetGraphWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NetGraph",
                       {
                           InstanceMethod<&NetGraphWrap::JsAddIothread>("addIothread"),
                           InstanceMethod<&NetGraphWrap::JsAddTap>("addTap"),
                           InstanceMethod<&NetGraphWrap::JsAddHubPort>("addHubPort"),
                           InstanceMethod<&NetGraphWrap::JsAddPort>("addPort"),
                           InstanceMethod<&NetGraphWrap::JsAddVirtioDevice>("addVirtioDevice"),
                           InstanceMethod<&NetGraphWrap::JsSetVirtioFeatures>("setVirtioFeatures"),
                           InstanceMethod<&NetGraphWrap::JsStartVring>("startVring"),
                           InstanceMethod<&NetGraphWrap::JsStopVring>("stopVring"),
                           InstanceMethod<&NetGraphWrap::JsAddVirtioDriver>("addVirtioDriver"),
                           InstanceMethod<&NetGraphWrap::JsSetDriverFeatures>("setDriverFeatures"),
                           InstanceMethod<&NetGraphWrap::JsStartDriverRing>("startDriverRing"),
                           InstanceMethod<&NetGraphWrap::JsStopDriverRing>("stopDriverRing"),
                           InstanceMethod<&NetGraphWrap::JsRemove>("remove"),
                           InstanceMethod<&NetGraphWrap::JsConnect>("connect"),
                           InstanceMethod<&NetGraphWrap::JsSetLinkDown>("setLinkDown"),
                           InstanceMethod<&NetGraphWrap::JsSetVnetHdrLen>("setVnetHdrLen"),
                           InstanceMethod<&NetGraphWrap::JsSetQueueEnabled>("setQueueEnabled"),
                           InstanceMethod<&NetGraphWrap::JsSetAutoOffloads>("setAutoOffloads"),
                           InstanceMethod<&NetGraphWrap::JsKick>("kick"),
                           InstanceMethod<&NetGraphWrap::JsValidateTx>("validateTx"),
                           InstanceMethod<&NetGraphWrap::JsCountRejected>("countRejected"),
                           InstanceMethod<&NetGraphWrap::JsForwardBatch>("forwardBatch"),
                           InstanceMethod<&NetGraphWrap::JsStats>("stats"),
                           InstanceMethod<&NetGraphWrap::JsClose>("close"),
                           InstanceMethod<&NetGraphWrap::JsAddSlirp>("addSlirp"),
                           InstanceMethod<&NetGraphWrap::JsSlirpControl>("slirpControl"),
                           InstanceMethod<&NetGraphWrap::JsAddStream>("addStream"),
                           InstanceMethod<&NetGraphWrap::JsAddDgram>("addDgram"),
                           InstanceMethod<&NetGraphWrap::JsSetSocketFd>("setSocketFd"),
                           InstanceMethod<&NetGraphWrap::JsAddCapture>("addCapture"),
                           InstanceMethod<&NetGraphWrap::JsRemoveCapture>("removeCapture"),
                           InstanceMethod<&NetGraphWrap::JsCaptureStats>("captureStats"),
                       });
  }

  explicit NetGraphWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetGraphWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Function on_event;
    if (!ReadFunction(env, info[0], "onEvent", &on_event)) return;
    state_ = std::make_shared<GraphState>();
    state_->tsfn = EventTsfn::New(env, on_event, "netplane:graph-events", 0, 1);
    state_->tsfn.Unref(env);
    state_->tsfn_live = true;
    GraphState* raw = state_.get();
    state_->graph = std::make_unique<core::NetGraph>([raw](const GraphEvent& ev) {
      auto* copy = new GraphEvent(ev);
      if (raw->tsfn.NonBlockingCall(copy) != napi_ok) delete copy;
    });
    std::weak_ptr<GraphState> weak = state_;
    GetAddonData(env).cleanups.push_back([weak] {
      if (auto s = weak.lock()) s->Shutdown();
    });
  }

  ~NetGraphWrap() override {
    if (state_) state_->Shutdown();
  }

 private:
  core::NetGraph* Live(Napi::Env env) {
    if (!state_ || !state_->graph || state_->graph->closed()) {
      ThrowStatus(env, core::Status::Closed("the data plane graph is closed"));
      return nullptr;
    }
    return state_->graph.get();
  }

  Napi::Value Done(Napi::Env env, const core::Status& s) {
    if (!s.ok()) return ThrowStatus(env, s);
    return env.Undefined();
  }

  // addIothread(name, { pollMaxNs?, pollGrow?, pollShrink? })
  Napi::Value JsAddIothread(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    if (!g) return env.Undefined();
    std::string name;
    core::PollParams p = core::DefaultIothreadPollParams();  // what the options leave out
    if (!ReadString(env, info[0], "name", &name) || !ReadPollParams(env, info[1], &p)) return env.Undefined();
    return Done(env, g->AddIothread(name, p));
  }

  // -netdev user (slirp.cc).
  Napi::Value JsAddSlirp(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    return g ? SlirpAdd(info, g) : info.Env().Undefined();
  }
  Napi::Value JsSlirpControl(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    return g ? SlirpControl(info, g) : info.Env().Undefined();
  }

  // addTap({ handle, name, queueIndex, iothread, fd, vnetHdrLen, ioUring? })
  Napi::Value JsAddTap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    if (!g) return env.Undefined();
    Napi::Object o;
    core::ClientSpec spec;
    int fd, hdr;
    bool io_uring = false;
    if (!ArgSpec(info, &o, &spec) || !ReadInteger(env, o.Get("fd"), "fd", INT_MIN, INT_MAX, &fd) ||
        !ReadInteger(env, o.Get("vnetHdrLen"), "vnetHdrLen", INT_MIN, INT_MAX, &hdr) ||
        (!o.Get("ioUring").IsUndefined() && !ReadBool(env, o.Get("ioUring"), "ioUring", &io_uring)))
      return env.Undefined();
    return Done(env, g->AddTap(spec, fd, hdr, io_uring));
  }

  // addStream({ handle, name, queueIndex, iothread }): starts without a connection.
  Napi::Value JsAddStream(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    if (!g) return env.Undefined();
    Napi::Object o;
    core::ClientSpec spec;
    if (!ArgSpec(info, &o, &spec)) return env.Undefined();
    return Done(env, g->AddStream(spec));
  }

  // addDgram({ handle, name, queueIndex, iothread, dest }): dest a socket address or null.
  Napi::Value JsAddDgram(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    if (!g) return env.Undefined();
    Napi::Object o;
    core::ClientSpec spec;
    core::SockAddr dest;
    if (!ArgSpec(info, &o, &spec) || !ReadSockAddr(env, o.Get("dest"), "dest", true, &dest)) return env.Undefined();
    return Done(env, g->AddDgram(spec, dest));
  }

  // setSocketFd(handle, fd): the client owns fd from then on; -1 closes its socket.
  Napi::Value JsSetSocketFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    if (!g) return env.Undefined();
    uint32_t handle;
    int fd;
    if (!ArgUint32(info, 0, "handle", &handle) || !ArgInt(info, 1, "fd", &fd)) return env.Undefined();
    return Done(env, g->SetSocketFd(handle, fd < 0 ? -1 : fd));
  }

  // addHubPort({ handle, name, queueIndex, iothread, hubId })
  Napi::Value JsAddHubPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    if (!g) return env.Undefined();
    Napi::Object o;
    core::ClientSpec spec;
    int hub;
    if (!ArgSpec(info, &o, &spec) || !ReadInteger(env, o.Get("hubId"), "hubId", INT_MIN, INT_MAX, &hub))
      return env.Undefined();
    return Done(env, g->AddHubPort(spec, hub));
  }

  // addPort({ handle, name, queueIndex, iothread, rx, tx, dropWhenFull, vnetHdrLen }); rx and
  // tx are Uint8Arrays over SharedArrayBuffers.
  Napi::Value JsAddPort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    if (!g) return env.Undefined();
    Napi::Object o;
    core::ClientSpec spec;
    Napi::Uint8Array rx, tx;
    bool drop;
    int hdr;
    if (!ArgSpec(info, &o, &spec) || !ReadBytes(env, o.Get("rx"), "rx", &rx) ||
        !ReadBytes(env, o.Get("tx"), "tx", &tx) || !ReadBool(env, o.Get("dropWhenFull"), "dropWhenFull", &drop) ||
        !ReadInteger(env, o.Get("vnetHdrLen"), "vnetHdrLen", INT_MIN, INT_MAX, &hdr))
      return env.Undefined();
    core::JsPortConfig cfg;
    cfg.rx_mem = rx.Data();
    cfg.rx_len = rx.ByteLength();
    cfg.tx_mem = tx.Data();
    cfg.tx_len = tx.ByteLength();
    cfg.drop_when_full = drop;
    cfg.vnet_hdr_len = hdr;
    core::Status s = g->AddJsPort(spec, cfg);
    if (!s.ok()) return ThrowStatus(env, s);
    state_->rings[spec.handle] = {Napi::Persistent(rx.As<Napi::Object>()), Napi::Persistent(tx.As<Napi::Object>())};
    return env.Undefined();
  }

  // addVirtioDevice({ handle, name, queueIndex, iothread })
  Napi::Value JsAddVirtioDevice(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    Napi::Object o;
    core::ClientSpec spec;
    if (!g || !ArgSpec(info, &o, &spec)) return info.Env().Undefined();
    return Done(info.Env(), g->AddVirtioDevice(spec));
  }

  // setVirtioFeatures(handle, features: bigint)
  Napi::Value JsSetVirtioFeatures(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    uint32_t h;
    uint64_t features;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadU64(info.Env(), info[1], "features", &features))
      return info.Env().Undefined();
    return Done(info.Env(), g->SetVirtioFeatures(h, features));
  }

  static bool ReadRing(Napi::Env env, Napi::Value v, core::VirtioRing* out) {
    std::string r;
    if (!ReadString(env, v, "ring", &r)) return false;
    if (r != "rx" && r != "tx") {
      ThrowRangeError(env, "ring must be 'rx' or 'tx', got '" + r + "'");
      return false;
    }
    *out = r == "rx" ? core::VirtioRing::kRx : core::VirtioRing::kTx;
    return true;
  }

  // An optional fd (-1 or undefined = none) duplicated close-on-exec, so the caller keeps its own.
  static bool ReadDupFd(Napi::Env env, Napi::Value v, const char* what, bool required, core::UniqueFd* out) {
    if (!required && (v.IsUndefined() || (v.IsNumber() && v.As<Napi::Number>().DoubleValue() == -1))) return true;
    int fd;
    if (!ReadFd(env, v, what, &fd)) return false;
    auto d = core::DupFd(fd, what);
    if (!d.ok()) {
      ThrowStatus(env, d.status);
      return false;
    }
    *out = std::move(d.value);
    return true;
  }

  // startVring(handle, { ring, memory, size, descAddr, availAddr, usedAddr, addrSpace, base,
  //                      kickFd, callFd, errFd? })
  Napi::Value JsStartVring(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    uint32_t h;
    Napi::Object o;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadObject(env, info[1], "vring", &o)) return env.Undefined();
    core::VirtioRing ring;
    core::VirtioRingStart start;
    std::string space;
    uint32_t size = 0, base = 0;
    if (!ReadRing(env, o.Get("ring"), &ring) || !ReadInteger(env, o.Get("size"), "size", 0, UINT32_MAX, &size) ||
        !ReadU64(env, o.Get("descAddr"), "descAddr", &start.addrs.desc) ||
        !ReadU64(env, o.Get("availAddr"), "availAddr", &start.addrs.avail) ||
        !ReadU64(env, o.Get("usedAddr"), "usedAddr", &start.addrs.used) ||
        !ReadString(env, o.Get("addrSpace"), "addrSpace", &space) ||
        !ReadInteger(env, o.Get("base"), "base", 0, 65535, &base))
      return env.Undefined();
    if (space != "user" && space != "guest") return ThrowRangeError(env, "addrSpace must be 'user' or 'guest'");
    Napi::Value mem_obj = o.Get("memory");
    start.memory = UnwrapGuestMemory(env, mem_obj, "memory");
    if (!start.memory) return env.Undefined();
    if (!ReadDupFd(env, o.Get("kickFd"), "kickFd", true, &start.kick) ||
        !ReadDupFd(env, o.Get("callFd"), "callFd", false, &start.call) ||
        !ReadDupFd(env, o.Get("errFd"), "errFd", false, &start.err))
      return env.Undefined();
    start.addrs.size = size;
    start.addrs.base = static_cast<uint16_t>(base);
    start.addrs.space = space == "user" ? core::AddrSpace::kUser : core::AddrSpace::kGuest;
    core::Status s = g->StartVring(h, ring, std::move(start));
    if (!s.ok()) return ThrowStatus(env, s);
    state_->vring_memory[uint64_t{h} * 2 + static_cast<uint64_t>(ring)] = Napi::Persistent(mem_obj.As<Napi::Object>());
    return env.Undefined();
  }

  // stopVring(handle, ring) -> next avail index
  Napi::Value JsStopVring(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    uint32_t h;
    core::VirtioRing ring;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadRing(env, info[1], &ring)) return env.Undefined();
    auto r = g->StopVring(h, ring);
    if (!r.ok()) return ThrowStatus(env, r.status);
    state_->vring_memory.erase(uint64_t{h} * 2 + static_cast<uint64_t>(ring));
    return Napi::Number::New(env, r.value);
  }

  // addVirtioDriver({ handle, name, queueIndex, iothread })
  Napi::Value JsAddVirtioDriver(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    Napi::Object o;
    core::ClientSpec spec;
    if (!g || !ArgSpec(info, &o, &spec)) return info.Env().Undefined();
    return Done(info.Env(), g->AddVirtioDriver(spec));
  }

  // setDriverFeatures(handle, features: bigint)
  Napi::Value JsSetDriverFeatures(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    uint32_t h;
    uint64_t features;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadU64(info.Env(), info[1], "features", &features))
      return info.Env().Undefined();
    return Done(info.Env(), g->SetDriverFeatures(h, features));
  }

  // startDriverRing(handle, { ring, memory, size, descAddr, availAddr, usedAddr, buffersAddr,
  //                           bufferSize, kickFd, callFd, reset }); addresses guest-physical
  Napi::Value JsStartDriverRing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    uint32_t h;
    Napi::Object o;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadObject(env, info[1], "ring", &o)) return env.Undefined();
    core::VirtioRing ring;
    core::DriverRingStart st;
    if (!ReadRing(env, o.Get("ring"), &ring) || !ReadInteger(env, o.Get("size"), "size", 0, UINT32_MAX, &st.size) ||
        !ReadU64(env, o.Get("descAddr"), "descAddr", &st.desc) ||
        !ReadU64(env, o.Get("availAddr"), "availAddr", &st.avail) ||
        !ReadU64(env, o.Get("usedAddr"), "usedAddr", &st.used) ||
        !ReadU64(env, o.Get("buffersAddr"), "buffersAddr", &st.buffers) ||
        !ReadInteger(env, o.Get("bufferSize"), "bufferSize", 0, UINT32_MAX, &st.buffer_size) ||
        !ReadBool(env, o.Get("reset"), "reset", &st.reset))
      return env.Undefined();
    Napi::Value mem_obj = o.Get("memory");
    st.memory = UnwrapGuestMemory(env, mem_obj, "memory");
    if (!st.memory) return env.Undefined();
    if (!ReadDupFd(env, o.Get("kickFd"), "kickFd", true, &st.kick) ||
        !ReadDupFd(env, o.Get("callFd"), "callFd", true, &st.call))
      return env.Undefined();
    core::Status s = g->StartDriverRing(h, ring, std::move(st));
    if (!s.ok()) return ThrowStatus(env, s);
    state_->vring_memory[uint64_t{h} * 2 + static_cast<uint64_t>(ring)] = Napi::Persistent(mem_obj.As<Napi::Object>());
    return env.Undefined();
  }

  // stopDriverRing(handle, ring) -> used index (the base to resume from)
  Napi::Value JsStopDriverRing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    uint32_t h;
    core::VirtioRing ring;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadRing(env, info[1], &ring)) return env.Undefined();
    auto r = g->StopDriverRing(h, ring);
    if (!r.ok()) return ThrowStatus(env, r.status);
    return Napi::Number::New(env, r.value);
  }

  Napi::Value JsRemove(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    uint32_t h;
    if (!g || !ArgUint32(info, 0, "handle", &h)) return info.Env().Undefined();
    core::Status s = g->Remove(h);
    if (s.ok()) {
      // The client is gone: the memory of its rings may go too.
      state_->rings.erase(h);
      state_->vring_memory.erase(uint64_t{h} * 2);
      state_->vring_memory.erase(uint64_t{h} * 2 + 1);
    }
    return Done(info.Env(), s);
  }

  Napi::Value JsConnect(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    uint32_t a, b;
    if (!g || !ArgUint32(info, 0, "a", &a) || !ArgUint32(info, 1, "b", &b)) return info.Env().Undefined();
    return Done(info.Env(), g->Connect(a, b));
  }

  Napi::Value JsSetLinkDown(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    uint32_t h;
    bool down;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadBool(info.Env(), info[1], "down", &down))
      return info.Env().Undefined();
    return Done(info.Env(), g->SetLinkDown(h, down));
  }

  Napi::Value JsSetVnetHdrLen(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    uint32_t h;
    int len;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ArgInt(info, 1, "len", &len)) return info.Env().Undefined();
    return Done(info.Env(), g->SetVnetHdrLen(h, len));
  }

  Napi::Value JsSetQueueEnabled(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    uint32_t h;
    bool on;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadBool(info.Env(), info[1], "enabled", &on))
      return info.Env().Undefined();
    return Done(info.Env(), g->SetQueueEnabled(h, on));
  }

  Napi::Value JsSetAutoOffloads(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    bool on;
    if (!g || !ReadBool(info.Env(), info[0], "on", &on)) return info.Env().Undefined();
    g->SetAutoOffloads(on);
    return info.Env().Undefined();
  }

  // kick(handle, tx): tx frames were published (true) / rx room was freed (false).
  Napi::Value JsKick(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    uint32_t h;
    bool tx;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadBool(info.Env(), info[1], "tx", &tx))
      return info.Env().Undefined();
    return Done(info.Env(), g->KickPort(h, tx));
  }

  // validateTx(handle, pos, count, hdrLen) -> -1 or [index, reason]
  Napi::Value JsValidateTx(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    uint32_t h, pos, count;
    int hdr;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ArgUint32(info, 1, "pos", &pos) ||
        !ArgUint32(info, 2, "count", &count) || !ArgInt(info, 3, "hdrLen", &hdr))
      return env.Undefined();
    auto p = g->FindPort(h);
    if (!p.ok()) return ThrowStatus(env, p.status);
    core::VnetError why = core::VnetError::kOk;
    int bad = p.value->ValidateUnpublishedTx(pos, count, hdr, &why);
    if (bad < 0) return Napi::Number::New(env, -1);
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(0u, Napi::Number::New(env, bad));
    r.Set(1u, Napi::String::New(env, core::VnetErrorName(why)));
    return r;
  }

  // countRejected(handle, reason 'oversize' | 'badVnetHdr' | 'purged', n)
  Napi::Value JsCountRejected(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    uint32_t h, n;
    std::string reason;
    if (!g || !ArgUint32(info, 0, "handle", &h) || !ReadString(env, info[1], "reason", &reason) ||
        !ArgUint32(info, 2, "n", &n))
      return env.Undefined();
    auto p = g->FindPort(h);
    if (!p.ok()) return ThrowStatus(env, p.status);
    core::DropReason r;
    if (reason == "oversize")
      r = core::DropReason::kOversize;
    else if (reason == "badVnetHdr")
      r = core::DropReason::kBadVnetHdr;
    else if (reason == "purged")
      r = core::DropReason::kPurged;
    else
      return ThrowRangeError(env, "reason must be 'oversize', 'badVnetHdr' or 'purged'");
    p.value->CountRejected(r, n);
    return env.Undefined();
  }

  // forwardBatch(sourceHandle, desc) (batch_forward.h)
  Napi::Value JsForwardBatch(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    return g ? BatchForward(info, g) : info.Env().Undefined();
  }

  Napi::Value JsStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* g = Live(env);
    if (!g) return env.Undefined();
    auto infos = g->Snapshot();
    Napi::Array out = Napi::Array::New(env, infos.size());
    uint32_t k = 0;
    auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
    for (auto& i : infos) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("handle", num(i.handle));
      o.Set("name", i.name);
      o.Set("kind", core::ClientKindName(i.kind));
      o.Set("queueIndex", num(i.queue_index));
      o.Set("iothread", i.iothread);
      o.Set("threadId", Napi::Number::New(env, i.thread_id));
      o.Set("peer", i.peer < 0 ? env.Null() : num(static_cast<uint64_t>(i.peer)));
      o.Set("hubId", i.hub_id < 0 ? env.Null() : Napi::Number::New(env, i.hub_id));
      o.Set("linkDown", i.link_down);
      o.Set("dead", i.dead);
      o.Set("enabled", i.enabled);
      o.Set("vnetHdrLen", Napi::Number::New(env, i.vnet_hdr_len));
      o.Set("offloads", num(i.offloads));
      if (i.kind == core::ClientKind::kTap) o.Set("ioUring", i.io_uring);
      o.Set("broken", i.broken);
      o.Set("errors", num(i.errors));
      o.Set("error", i.error.empty() ? env.Null() : Napi::String::New(env, i.error));
      if (i.kind == core::ClientKind::kVirtioDevice || i.kind == core::ClientKind::kVirtioDriver) {
        Napi::Object v = Napi::Object::New(env);
        v.Set("features", Napi::BigInt::New(env, i.features));
        v.Set("rxStarted", i.rx_started);
        v.Set("txStarted", i.tx_started);
        const std::pair<const char*, uint64_t> counts[] = {
            {"notifies", i.notifies},        {"notifiesSuppressed", i.notifies_suppressed},
            {"txGsoFrames", i.tx_gso},       {"rxGsoFrames", i.rx_gso},
            {"rxMergedFrames", i.rx_merged}, {"rxBuffers", i.rx_buffers},
            {"txMaxFrame", i.tx_max_frame},  {"rxMaxFrame", i.rx_max_frame}};
        for (const auto& [key, value] : counts) v.Set(key, num(value));
        o.Set("virtio", v);
      }
      const core::CounterSnapshot& c = i.counters;
      o.Set("framesIn", num(c.frames_in));
      o.Set("bytesIn", num(c.bytes_in));
      o.Set("framesOut", num(c.frames_out));
      o.Set("bytesOut", num(c.bytes_out));
      o.Set("queued", num(c.queued));
      o.Set("dropped", num(c.dropped()));
      Napi::Object drops = Napi::Object::New(env);
      for (size_t r = 0; r < core::kDropReasonCount; ++r)
        drops.Set(core::DropReasonName(static_cast<core::DropReason>(r)), num(c.drops[r]));
      o.Set("drops", drops);
      o.Set("deviceRxFrames", num(c.dev_rx_frames));
      o.Set("deviceRxBytes", num(c.dev_rx_bytes));
      o.Set("deviceTxFrames", num(c.dev_tx_frames));
      o.Set("deviceTxBytes", num(c.dev_tx_bytes));
      o.Set("segments", num(c.segments));
      o.Set("eagain", num(c.eagain));
      o.Set("wakeups", num(c.wakeups));
      out.Set(k++, o);
    }
    return out;
  }

  // filter-dump (capture.cc)
  Napi::Value JsAddCapture(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    return g ? CaptureAdd(info, g) : info.Env().Undefined();
  }
  Napi::Value JsRemoveCapture(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    return g ? CaptureRemove(info, g) : info.Env().Undefined();
  }
  Napi::Value JsCaptureStats(const Napi::CallbackInfo& info) {
    auto* g = Live(info.Env());
    return g ? CaptureStatsOf(info, g) : info.Env().Undefined();
  }

  Napi::Value JsClose(const Napi::CallbackInfo& info) {
    if (state_) state_->Shutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<GraphState> state_;
};

}  // namespace

void InitGraph(Napi::Env env, Napi::Object exports) { exports.Set("NetGraph", NetGraphWrap::Define(env)); }

}  // namespace netplane::binding
