// File: core/error.h
//
// The service's error vocabulary. Every fallible function returns
// `Result<T>`: either a value or a `Status` carrying an `Errc` and a message.
// The code is chosen by what the caller should do next (after Abseil's
// status codes):
//
//   kInvalidArgument     the input is wrong; retrying the same input fails again
//                        (HTTP 400; a job with such input is dead-lettered at once)
//   kNotFound            the thing does not exist (or is not the caller's) (404)
//   kAlreadyExists       an idempotent create found the thing already there
//   kUnauthenticated     no or a bad credential (401)
//   kPermissionDenied    authenticated but not allowed (mapped to 404 for jobs)
//   kResourceExhausted   a named limit was exceeded (413 for size, 429 for rate)
//   kFailedPrecondition  the state forbids it; do not retry until fixed
//   kAborted             a concurrent change won; retry at a higher level
//   kUnavailable         a dependency is down; retry with backoff
//   kDeadlineExceeded    a timeout; retry with backoff
//   kDataLoss            stored data is corrupt; do not retry
//   kCancelled           the operation was cancelled (shutdown)
//   kInternal            a broken invariant; a bug
//   kUnimplemented       this build cannot do it; another one can (the lean
//                        extractor's answer for PDF and images)
//
// Values are never persisted as numbers, but keep them stable anyway.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace conveyor {

enum class Errc {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kUnauthenticated = 4,
  kPermissionDenied = 5,
  kResourceExhausted = 6,
  kFailedPrecondition = 7,
  kAborted = 8,
  kUnavailable = 9,
  kDeadlineExceeded = 10,
  kDataLoss = 11,
  kCancelled = 12,
  kInternal = 13,
  kUnimplemented = 14,
};

// The std::error_category for Errc, so an Errc converts to std::error_code.
const std::error_category& ConveyorCategory() noexcept;
std::error_code make_error_code(Errc e) noexcept;

// Short snake_case name of a code ("invalid_argument").
std::string_view ErrcName(Errc e) noexcept;

// True for codes that mean "try again later" (kUnavailable, kDeadlineExceeded,
// kAborted): the queue retries these with backoff; everything else is final.
bool IsTransient(Errc e) noexcept;

// An error: a code plus a human-readable message. Cheap to move.
class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == Errc::kOk; }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string m) { return {Errc::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Errc::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {Errc::kAlreadyExists, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {Errc::kUnauthenticated, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {Errc::kResourceExhausted, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {Errc::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Errc::kUnavailable, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Errc::kDeadlineExceeded, std::move(m)}; }
inline Status DataLoss(std::string m) { return {Errc::kDataLoss, std::move(m)}; }
inline Status Cancelled(std::string m) { return {Errc::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {Errc::kInternal, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {Errc::kUnimplemented, std::move(m)}; }

// Result<T>: a T or a non-OK Status. Result<void> carries only the Status.
//
//   Result<Config> r = LoadConfig(env);
//   if (!r) return r.status();
//   Use(*r);
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Status s) : v_(std::in_place_index<1>, std::move(s)) {        // NOLINT
    assert(!std::get<1>(v_).ok());
  }

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The error; an OK Status when ok().
  Status status() const { return ok() ? Status() : std::get<1>(v_); }
  Errc code() const { return ok() ? Errc::kOk : std::get<1>(v_).code(); }

 private:
  std::variant<T, Status> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Status s) : s_(std::move(s)) {}  // NOLINT
  bool ok() const { return s_.ok(); }
  explicit operator bool() const { return ok(); }
  const Status& status() const { return s_; }
  Errc code() const { return s_.code(); }

 private:
  Status s_;
};

}  // namespace conveyor

namespace std {
template <>
struct is_error_code_enum<conveyor::Errc> : true_type {};
}  // namespace std

// Returns the Status of `expr` from the enclosing function if it failed.
#define CONVEYOR_RETURN_IF_ERROR(expr)               \
  do {                                               \
    auto conveyor_status_ = (expr);                  \
    if (!conveyor_status_.ok()) return conveyor_status_.status(); \
  } while (0)
