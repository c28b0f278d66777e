#include "core/metrics.h"

#include <gtest/gtest.h>

namespace conveyor::metrics {
namespace {

TEST(Metrics, CounterGaugeAndHistogramRenderWithHelpTypeAndLabels) {
  Registry r;
  r.Counter("t_jobs_total", "Jobs.\nSecond line \\ here", {"kind"}).Get({"a\"b\\c\nd"}).Inc(2);
  r.Gauge("t_depth", "Depth.", {"state"}).Get({"wait"}).Set(7);
  auto& h = r.Histogram("t_seconds", "Time.", {"stage"}, {0.1, 1});
  h.Get({"x"}).Observe(0.05);
  h.Get({"x"}).Observe(0.5);
  h.Get({"x"}).Observe(5);
  std::string text = r.Render();
  EXPECT_EQ(text,
            "# HELP t_depth Depth.\n"
            "# TYPE t_depth gauge\n"
            "t_depth{state=\"wait\"} 7\n"
            "# HELP t_jobs_total Jobs.\\nSecond line \\\\ here\n"
            "# TYPE t_jobs_total counter\n"
            "t_jobs_total{kind=\"a\\\"b\\\\c\\nd\"} 2\n"
            "# HELP t_seconds Time.\n"
            "# TYPE t_seconds histogram\n"
            "t_seconds_bucket{stage=\"x\",le=\"0.1\"} 1\n"
            "t_seconds_bucket{stage=\"x\",le=\"1\"} 2\n"
            "t_seconds_bucket{stage=\"x\",le=\"+Inf\"} 3\n"
            "t_seconds_sum{stage=\"x\"} 5.55\n"
            "t_seconds_count{stage=\"x\"} 3\n");
}

TEST(Metrics, FamiliesAreSharedByNameAndCollectorsRunBeforeRendering) {
  Registry r;
  auto& a = r.Counter("t_total", "A.");
  auto& b = r.Counter("t_total", "A.");
  EXPECT_EQ(&a, &b);
  a.Get().Inc();
  b.Get().Inc();
  int runs = 0;
  auto& g = r.Gauge("t_live", "Live.");
  r.AddCollector([&] { g.Get().Set(++runs * 10); });
  std::string text = r.Render();
  EXPECT_NE(text.find("t_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_live 10\n"), std::string::npos) << text;
  EXPECT_NE(r.Render().find("t_live 20\n"), std::string::npos);
}

TEST(Metrics, ValuesAndNamesFollowTheTextFormat) {
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(std::stod(FormatValue(0.1 + 0.2)), 0.1 + 0.2);
  EXPECT_TRUE(IsValidMetricName("conveyor_jobs_total"));
  EXPECT_TRUE(IsValidMetricName("a:b_c9"));
  EXPECT_FALSE(IsValidMetricName("9lives"));
  EXPECT_FALSE(IsValidMetricName("bad-name"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("__reserved"));
}

TEST(Metrics, UnlabelledHistogramHasOnlyLe) {
  Registry r;
  r.Histogram("t_h_seconds", "H.", {}, {1}).Get().Observe(2);
  std::string text = r.Render();
  EXPECT_NE(text.find("t_h_seconds_bucket{le=\"1\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_h_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_h_seconds_sum 2\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace conveyor::metrics
