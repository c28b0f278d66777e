#include "core/error.h"

#include <gtest/gtest.h>

namespace conveyor {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Result<void> HalfTwice(int x) {
  auto a = Half(x);
  CONVEYOR_RETURN_IF_ERROR(a);
  CONVEYOR_RETURN_IF_ERROR(Half(*a));
  return {};
}

TEST(Result, CarriesValueOrStatus) {
  auto ok = Half(4);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 2);
  EXPECT_TRUE(ok.status().ok());
  auto bad = Half(3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), Errc::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "odd");
}

TEST(Result, ReturnIfErrorPropagatesFirstFailure) {
  EXPECT_TRUE(HalfTwice(8));
  EXPECT_EQ(HalfTwice(6).code(), Errc::kInvalidArgument);
}

TEST(Errc, TransientCodesAreRetryable) {
  EXPECT_TRUE(IsTransient(Errc::kUnavailable));
  EXPECT_TRUE(IsTransient(Errc::kDeadlineExceeded));
  EXPECT_FALSE(IsTransient(Errc::kInvalidArgument));
  EXPECT_FALSE(IsTransient(Errc::kDataLoss));
  std::error_code ec = Errc::kNotFound;
  EXPECT_EQ(ec.message(), "not_found");
}

}  // namespace
}  // namespace conveyor
