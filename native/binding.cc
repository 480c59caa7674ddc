// The N-API face of the native log. Kept thin: argument checking, error
// conversion, and marshalling whole batches. JS wraps these in src/log.
#include <napi.h>

#include <cstring>
#include <memory>

#include "crc32c.h"
#include "meta_store.h"
#include "record.h"
#include "segment_log.h"

namespace raftline {
namespace {

const char* ErrorCode(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kIo: return "ERR_RAFTLINE_IO";
    case ErrorKind::kCorrupt: return "ERR_RAFTLINE_CORRUPT";
    case ErrorKind::kInvalid: return "ERR_RAFTLINE_INVALID";
    case ErrorKind::kClosed: return "ERR_RAFTLINE_CLOSED";
    case ErrorKind::kRetry: return "ERR_RAFTLINE_RETRY";
    case ErrorKind::kNone: break;
  }
  return "ERR_RAFTLINE";
}

Napi::Value ToJsError(Napi::Env env, const Error& err) {
  Napi::Error e = Napi::Error::New(env, err.message);
  Napi::Object o = e.Value();
  o.Set("code", ErrorCode(err.kind));
  if (!err.file.empty()) o.Set("file", err.file);
  if (err.offset >= 0) o.Set("offset", Napi::Number::New(env, static_cast<double>(err.offset)));
  if (err.errnum != 0) o.Set("errno", Napi::Number::New(env, err.errnum));
  if (err.sync_failed) o.Set("syncFailed", true);
  return o;
}

Napi::Value Throw(Napi::Env env, const Error& err) {
  Napi::Error(env, ToJsError(env, err)).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

// Reads a non-negative safe integer argument, or sets `*ok` false and throws.
uint64_t IndexArg(const Napi::CallbackInfo& info, size_t i, const char* name, bool* ok) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) {
    *ok = false;
    Napi::TypeError::New(env, std::string(name) + " must be a number").ThrowAsJavaScriptException();
    return 0;
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v > static_cast<double>(kMaxIndex) || v != static_cast<double>(static_cast<uint64_t>(v))) {
    *ok = false;
    Napi::RangeError::New(env, std::string(name) + " must be an integer in 0..2^53-1").ThrowAsJavaScriptException();
    return 0;
  }
  *ok = true;
  return static_cast<uint64_t>(v);
}

Napi::Value ChecksumWith(const Napi::CallbackInfo& info, uint32_t (*fn)(uint32_t, const uint8_t*, size_t)) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) return ThrowType(env, "expected a Uint8Array");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  uint32_t seed = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return Napi::Number::New(env, fn(seed, bytes.Data(), bytes.ByteLength()));
}

Napi::Value Crc32cJs(const Napi::CallbackInfo& info) { return ChecksumWith(info, Crc32c); }
Napi::Value Crc32cPortableJs(const Napi::CallbackInfo& info) { return ChecksumWith(info, Crc32cPortable); }
Napi::Value Crc32cHardwareJs(const Napi::CallbackInfo& info) {
  if (!Crc32cHardwareAvailable()) return ThrowType(info.Env(), "this CPU has no CRC32C instruction");
  return ChecksumWith(info, Crc32cHardware);
}
Napi::Value Crc32cHardwareNameJs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Crc32cHardwareName());
}

// sealRecords(bytes): count. Fills in magic and checksums of records framed
// by JS, so the same bytes can go to the log and onto the wire.
Napi::Value SealRecordsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) return ThrowType(env, "expected a Uint8Array");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  uint8_t* p = bytes.Data();
  const size_t length = bytes.ByteLength();
  size_t pos = 0;
  uint32_t count = 0;
  while (pos < length) {
    uint32_t payload = 0;
    if (length - pos >= kRecordHeaderBytes) std::memcpy(&payload, p + pos + 4, 4);
    if (length - pos < kRecordHeaderBytes || payload > kMaxPayloadBytes || length - pos - kRecordHeaderBytes < payload) {
      return Throw(env, Error::Invalid("record " + std::to_string(count) + " at byte " + std::to_string(pos) +
                                       " is cut short or too large"));
    }
    SealRecord(p + pos);
    pos += kRecordHeaderBytes + payload;
    count++;
  }
  return Napi::Number::New(env, count);
}

// verifyRecords(bytes): count. Checks every record's checksums, as a
// receiver must before acting on entries from the wire.
Napi::Value VerifyRecordsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) return ThrowType(env, "expected a Uint8Array");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  const uint8_t* p = bytes.Data();
  const size_t length = bytes.ByteLength();
  size_t pos = 0;
  uint32_t count = 0;
  while (pos < length) {
    RecordHeader h;
    RecordCheck check = CheckRecord(p + pos, length - pos, &h);
    if (check != RecordCheck::kOk) {
      return Throw(env, Error::Invalid("record " + std::to_string(count) + " at byte " + std::to_string(pos) + ": " +
                                       RecordCheckName(check)));
    }
    pos += RecordBytes(h);
    count++;
  }
  return Napi::Number::New(env, count);
}

Napi::Object ReadResultToJs(Napi::Env env, ReadResult* result) {
  auto* bytes = new std::vector<uint8_t>(std::move(result->records));
  Napi::Object out = Napi::Object::New(env);
  out.Set("records", Napi::Buffer<uint8_t>::New(env, bytes->data(), bytes->size(),
                                                [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; },
                                                bytes));
  out.Set("count", Napi::Number::New(env, static_cast<double>(result->count)));
  return out;
}

class LogHandle;

struct Completion {
  LogHandle* owner;
  uint64_t seq;
  Error err;
};

class LogHandle : public Napi::ObjectWrap<LogHandle> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "LogHandle",
                       {
                           InstanceMethod<&LogHandle::Append>("append"),
                           InstanceMethod<&LogHandle::TruncateSuffix>("truncateSuffix"),
                           InstanceMethod<&LogHandle::TruncatePrefix>("truncatePrefix"),
                           InstanceMethod<&LogHandle::Reset>("reset"),
                           InstanceMethod<&LogHandle::ReadSync>("readSync"),
                           InstanceMethod<&LogHandle::ReadAsync>("read"),
                           InstanceMethod<&LogHandle::FirstIndex>("firstIndex"),
                           InstanceMethod<&LogHandle::LastIndex>("lastIndex"),
                           InstanceMethod<&LogHandle::DurableIndex>("durableIndex"),
                           InstanceMethod<&LogHandle::TermAt>("termAt"),
                           InstanceMethod<&LogHandle::Stats>("stats"),
                           InstanceMethod<&LogHandle::Close>("close"),
                       });
  }

  LogHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LogHandle>(info) {}

  ~LogHandle() override {
    if (log_) log_->Close();
  }

  // Takes ownership of an opened log; `tsfn` delivers its completions.
  void Adopt(std::unique_ptr<SegmentLog> log, Napi::ThreadSafeFunction tsfn) {
    log_ = std::shared_ptr<SegmentLog>(std::move(log));
    tsfn_ = tsfn;
  }

  void Deliver(Napi::Env env, Napi::Function callback, uint64_t seq, const Error& err) {
    if (!log_) return;
    log_->OnCompleted(seq, err);
    if (seq >= last_seq_ && referenced_) {
      tsfn_.Unref(env);
      referenced_ = false;
    }
    callback.Call({Napi::Number::New(env, static_cast<double>(seq)),
                   err.ok() ? env.Undefined() : ToJsError(env, err)});
  }

 private:
  friend class CloseWorker;

  bool Usable(Napi::Env env) {
    if (log_ && !closing_) return true;
    Error e;
    e.kind = ErrorKind::kClosed;
    e.message = "the log is closed";
    Throw(env, e);
    return false;
  }

  Napi::Value Queued(Napi::Env env, const Error& err, uint64_t seq) {
    if (!err.ok()) return Throw(env, err);
    last_seq_ = seq;
    if (!referenced_) {
      // Keep the process alive until the writer reports back.
      tsfn_.Ref(env);
      referenced_ = true;
    }
    return Napi::Number::New(env, static_cast<double>(seq));
  }

  // append(bytes: Uint8Array, seal: boolean, onCaller: boolean): seq, negated
  // when the append completed on this thread (see SegmentLog::Append)
  Napi::Value Append(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Usable(env)) return env.Undefined();
    if (info.Length() < 3 || !info[0].IsTypedArray()) return ThrowType(env, "append expects (Uint8Array, seal, onCaller)");
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    uint64_t seq = 0;
    bool completed = false;
    Error err = log_->Append(bytes.Data(), bytes.ByteLength(), info[1].ToBoolean().Value(),
                             info[2].ToBoolean().Value(), &seq, &completed);
    if (!err.ok() || !completed) return Queued(env, err, seq);
    // Everything before it completed too (the writer was idle), though its
    // completions may still be on their way: nothing is left to wait for.
    last_seq_ = seq;
    if (referenced_) {
      tsfn_.Unref(env);
      referenced_ = false;
    }
    return Napi::Number::New(env, -static_cast<double>(seq));
  }

  Napi::Value TruncateSuffix(const Napi::CallbackInfo& info) {
    return IndexOp(info, "lastKept", &SegmentLog::TruncateSuffix);
  }
  Napi::Value TruncatePrefix(const Napi::CallbackInfo& info) {
    return IndexOp(info, "firstKept", &SegmentLog::TruncatePrefix);
  }
  Napi::Value Reset(const Napi::CallbackInfo& info) { return IndexOp(info, "nextIndex", &SegmentLog::Reset); }

  Napi::Value IndexOp(const Napi::CallbackInfo& info, const char* name, Error (SegmentLog::*op)(uint64_t, uint64_t*)) {
    Napi::Env env = info.Env();
    if (!Usable(env)) return env.Undefined();
    bool ok = false;
    uint64_t index = IndexArg(info, 0, name, &ok);
    if (!ok) return env.Undefined();
    uint64_t seq = 0;
    Error err = (log_.get()->*op)(index, &seq);
    return Queued(env, err, seq);
  }

  bool RangeArgs(const Napi::CallbackInfo& info, uint64_t* from, uint64_t* to, uint64_t* max_bytes) {
    bool ok = false;
    *from = IndexArg(info, 0, "from", &ok);
    if (!ok) return false;
    *to = IndexArg(info, 1, "toExclusive", &ok);
    if (!ok) return false;
    *max_bytes = IndexArg(info, 2, "maxBytes", &ok);
    return ok;
  }

  Napi::Value ReadSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Usable(env)) return env.Undefined();
    uint64_t from, to, max_bytes;
    if (!RangeArgs(info, &from, &to, &max_bytes)) return env.Undefined();
    ReadResult result;
    Error err = log_->Read(from, to, max_bytes, &result);
    if (!err.ok()) return Throw(env, err);
    return ReadResultToJs(env, &result);
  }

  Napi::Value ReadAsync(const Napi::CallbackInfo& info);

  Napi::Value FirstIndex(const Napi::CallbackInfo& info) { return Number(info, log_ ? log_->FirstIndex() : 0); }
  Napi::Value LastIndex(const Napi::CallbackInfo& info) { return Number(info, log_ ? log_->LastIndex() : 0); }
  Napi::Value DurableIndex(const Napi::CallbackInfo& info) { return Number(info, log_ ? log_->DurableIndex() : 0); }

  Napi::Value TermAt(const Napi::CallbackInfo& info) {
    bool ok = false;
    uint64_t index = IndexArg(info, 0, "index", &ok);
    if (!ok) return info.Env().Undefined();
    return Number(info, log_ ? log_->TermAt(index) : 0);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("indexMemoryBytes", Napi::Number::New(env, log_ ? static_cast<double>(log_->IndexMemoryBytes()) : 0));
    o.Set("segmentCount", Napi::Number::New(env, log_ ? static_cast<double>(log_->SegmentCount()) : 0));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info);

  static Napi::Value Number(const Napi::CallbackInfo& info, uint64_t v) {
    return Napi::Number::New(info.Env(), static_cast<double>(v));
  }

  // Shared with in-flight reads, which may outlive a close.
  std::shared_ptr<SegmentLog> log_;
  Napi::ThreadSafeFunction tsfn_;
  uint64_t last_seq_ = 0;
  bool referenced_ = false;
  bool closing_ = false;
};

// Runs `work` on the libuv pool and settles a promise with `done`'s value.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual Error Work() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

 private:
  void Execute() override { err_ = Work(); }
  void OnOK() override {
    Napi::Env env = Env();
    if (!err_.ok()) {
      deferred_.Reject(ToJsError(env, err_));
      return;
    }
    Napi::Value v = Result(env);
    if (env.IsExceptionPending()) {
      deferred_.Reject(env.GetAndClearPendingException().Value());
      return;
    }
    deferred_.Resolve(v);
  }

  Napi::Promise::Deferred deferred_;
  Error err_;
};

class ReadWorker : public PromiseWorker {
 public:
  ReadWorker(Napi::Env env, std::shared_ptr<SegmentLog> log, uint64_t from, uint64_t to, uint64_t max_bytes)
      : PromiseWorker(env), log_(std::move(log)), from_(from), to_(to), max_bytes_(max_bytes) {}

 protected:
  Error Work() override { return log_->Read(from_, to_, max_bytes_, &result_); }
  Napi::Value Result(Napi::Env env) override { return ReadResultToJs(env, &result_); }

 private:
  std::shared_ptr<SegmentLog> log_;
  uint64_t from_, to_, max_bytes_;
  ReadResult result_;
};

Napi::Value LogHandle::ReadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Usable(env)) return env.Undefined();
  uint64_t from, to, max_bytes;
  if (!RangeArgs(info, &from, &to, &max_bytes)) return env.Undefined();
  auto* worker = new ReadWorker(env, log_, from, to, max_bytes);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

class CloseWorker : public PromiseWorker {
 public:
  CloseWorker(Napi::Env env, LogHandle* handle)
      : PromiseWorker(env), owner_(Napi::Persistent(handle->Value())), handle_(handle) {}

 protected:
  Error Work() override {
    handle_->log_->Close();
    return Error();
  }
  Napi::Value Result(Napi::Env env) override {
    handle_->tsfn_.Release();
    handle_->log_.reset();
    return env.Undefined();
  }

 private:
  Napi::ObjectReference owner_;
  LogHandle* handle_;
};

Napi::Value LogHandle::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Usable(env)) return env.Undefined();
  closing_ = true;
  auto* worker = new CloseWorker(env, this);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

struct AddonData {
  Napi::FunctionReference log_handle_ctor;
};

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::string dir, LogOptions options, Napi::Function on_complete)
      : PromiseWorker(env), dir_(std::move(dir)), options_(options) {
    tsfn_ = Napi::ThreadSafeFunction::New(env, on_complete, "raftline-log-completion", 0, 1);
    tsfn_.Unref(env);
  }

  ~OpenWorker() override {
    // A failed open never handed the completion function to a LogHandle.
    if (*owner_ == nullptr) tsfn_.Release();
  }

 protected:
  Error Work() override {
    Napi::ThreadSafeFunction tsfn = tsfn_;
    auto deliver = [](Napi::Env env, Napi::Function callback, Completion* c) {
      if (env != nullptr && callback != nullptr) c->owner->Deliver(env, callback, c->seq, c->err);
      delete c;
    };
    // The owner is set once the JS object exists (Result), before any op can
    // be queued, so completions always find it.
    std::shared_ptr<LogHandle*> owner = owner_;
    return SegmentLog::Open(
        dir_, options_,
        [tsfn, deliver, owner](uint64_t seq, const Error& err) mutable {
          tsfn.NonBlockingCall(new Completion{*owner, seq, err}, deliver);
        },
        &log_, &report_);
  }

  Napi::Value Result(Napi::Env env) override {
    auto* data = env.GetInstanceData<AddonData>();
    Napi::Object obj = data->log_handle_ctor.New({});
    *owner_ = LogHandle::Unwrap(obj);
    (*owner_)->Adopt(std::move(log_), tsfn_);
    Napi::Object out = Napi::Object::New(env);
    out.Set("handle", obj);
    Napi::Object rec = Napi::Object::New(env);
    rec.Set("truncatedBytes", Napi::Number::New(env, static_cast<double>(report_.truncated_bytes)));
    rec.Set("truncatedFile", report_.truncated_file);
    rec.Set("truncatedOffset", Napi::Number::New(env, static_cast<double>(report_.truncated_offset)));
    rec.Set("removedSegments", Napi::Number::New(env, static_cast<double>(report_.removed_segments)));
    rec.Set("replayedTruncation", Napi::Boolean::New(env, report_.replayed_truncation));
    out.Set("recovery", rec);
    return out;
  }

 private:
  std::string dir_;
  LogOptions options_;
  Napi::ThreadSafeFunction tsfn_;
  std::unique_ptr<SegmentLog> log_;
  RecoveryReport report_;
  std::shared_ptr<LogHandle*> owner_ = std::make_shared<LogHandle*>(nullptr);
};

// openLog(dir, segmentBytes, sync, onComplete(seq, err?)): Promise<{handle, recovery}>
Napi::Value OpenLog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[3].IsFunction()) {
    return ThrowType(env, "openLog expects (dir, segmentBytes, sync, onComplete)");
  }
  LogOptions options;
  options.segment_bytes = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
  options.sync = info[2].ToBoolean().Value();
  auto* worker = new OpenWorker(env, info[0].As<Napi::String>().Utf8Value(), options, info[3].As<Napi::Function>());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

class MetaLoadWorker : public PromiseWorker {
 public:
  MetaLoadWorker(Napi::Env env, std::string dir, std::string name)
      : PromiseWorker(env), dir_(std::move(dir)), name_(std::move(name)) {}

 protected:
  Error Work() override {
    Error err = MakeDirs(dir_);
    if (!err.ok()) return err;
    return LoadMetaFile(dir_, name_, kMetaMagic, &payload_, &exists_);
  }
  Napi::Value Result(Napi::Env env) override {
    if (!exists_) return env.Null();
    return Napi::Buffer<uint8_t>::Copy(env, payload_.data(), payload_.size());
  }

 private:
  std::string dir_, name_;
  std::vector<uint8_t> payload_;
  bool exists_ = false;
};

class MetaSaveWorker : public PromiseWorker {
 public:
  MetaSaveWorker(Napi::Env env, std::string dir, std::string name, std::vector<uint8_t> payload, bool in_place)
      : PromiseWorker(env), dir_(std::move(dir)), name_(std::move(name)), payload_(std::move(payload)), in_place_(in_place) {}

 protected:
  Error Work() override { return SaveMetaFile(dir_, name_, kMetaMagic, payload_, in_place_); }

 private:
  std::string dir_, name_;
  std::vector<uint8_t> payload_;
  bool in_place_;
};

// metaLoad(dir, name): Promise<Buffer | null>
Napi::Value MetaLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) return ThrowType(env, "metaLoad expects (dir, name)");
  auto* worker = new MetaLoadWorker(env, info[0].As<Napi::String>(), info[1].As<Napi::String>());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// metaSave(dir, name, payload, inPlace): Promise<void>
Napi::Value MetaSave(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsTypedArray() || !info[3].IsBoolean()) {
    return ThrowType(env, "metaSave expects (dir, name, Uint8Array, boolean)");
  }
  Napi::Uint8Array bytes = info[2].As<Napi::Uint8Array>();
  std::vector<uint8_t> payload(bytes.Data(), bytes.Data() + bytes.ByteLength());
  auto* worker = new MetaSaveWorker(env, info[0].As<Napi::String>(), info[1].As<Napi::String>(), std::move(payload),
                                    info[3].As<Napi::Boolean>().Value());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->log_handle_ctor = Napi::Persistent(LogHandle::Init(env));
  env.SetInstanceData(data);
  exports.Set("openLog", Napi::Function::New(env, OpenLog));
  exports.Set("metaLoad", Napi::Function::New(env, MetaLoad));
  exports.Set("metaSave", Napi::Function::New(env, MetaSave));
  exports.Set("sealRecords", Napi::Function::New(env, SealRecordsJs));
  exports.Set("verifyRecords", Napi::Function::New(env, VerifyRecordsJs));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs));
  exports.Set("crc32cPortable", Napi::Function::New(env, Crc32cPortableJs));
  exports.Set("crc32cHardware", Napi::Function::New(env, Crc32cHardwareJs));
  exports.Set("crc32cHardwareName", Napi::Function::New(env, Crc32cHardwareNameJs));
  exports.Set("recordHeaderBytes", Napi::Number::New(env, kRecordHeaderBytes));
  exports.Set("maxPayloadBytes", Napi::Number::New(env, kMaxPayloadBytes));
  return exports;
}

}  // namespace
}  // namespace raftline

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return raftline::Init(env, exports); }

NODE_API_MODULE(raftline_native, InitAddon)
