#include "core/error.h"

namespace conveyor {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "conveyor"; }
  std::string message(int ev) const override {
    return std::string(ErrcName(static_cast<Errc>(ev)));
  }
};

}  // namespace

const std::error_category& ConveyorCategory() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), ConveyorCategory()};
}

std::string_view ErrcName(Errc e) noexcept {
  switch (e) {
    case Errc::kOk: return "ok";
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kNotFound: return "not_found";
    case Errc::kAlreadyExists: return "already_exists";
    case Errc::kUnauthenticated: return "unauthenticated";
    case Errc::kPermissionDenied: return "permission_denied";
    case Errc::kResourceExhausted: return "resource_exhausted";
    case Errc::kFailedPrecondition: return "failed_precondition";
    case Errc::kAborted: return "aborted";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kDeadlineExceeded: return "deadline_exceeded";
    case Errc::kDataLoss: return "data_loss";
    case Errc::kCancelled: return "cancelled";
    case Errc::kInternal: return "internal";
    case Errc::kUnimplemented: return "unimplemented";
  }
  return "unknown";
}

bool IsTransient(Errc e) noexcept {
  return e == Errc::kUnavailable || e == Errc::kDeadlineExceeded || e == Errc::kAborted;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s(ErrcName(code_));
  s += ": ";
  s += message_;
  return s;
}

}  // namespace conveyor
