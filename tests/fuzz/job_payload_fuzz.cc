// libFuzzer target for what a worker reads from a BullMQ job: the job data
// (queue/payload.h, DecodeJobPayload), the job options
// (queue/internal/job_json.h, ParseJobOptions) and the fields of the job's
// hash (ReadJobField), then the retry arithmetic on what was read
// (queue/job.h). A Node.js producer or anyone with access to Redis writes
// these, so all of it is untrusted.
//
// The whole input is decoded both as job data and as job options. It is also
// read as a job hash: NUL-separated strings "key\0value\0key\0value...".
//
// Invariants: decoded job data has its four required fields non-empty and
// survives EncodeJobPayload -> DecodeJobPayload unchanged; options survive
// JobOptionsToJson -> ParseJobOptions (up to what the writer normalises:
// a non-positive delay is not written); retention is -1 or more; the backoff
// wait is never negative, and for a positive delay never shorter than it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "queue/internal/job_json.h"
#include "queue/job.h"
#include "queue/payload.h"

namespace {

using namespace conveyor::queue;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "job_payload_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

bool SameOptions(const JobOptions& a, const JobOptions& b) {
  return a.attempts == b.attempts && a.backoff_type == b.backoff_type &&
         a.backoff_delay_ms == b.backoff_delay_ms &&
         a.remove_on_complete == b.remove_on_complete && a.remove_on_fail == b.remove_on_fail &&
         a.delay_ms == b.delay_ms;
}

void CheckOptions(const JobOptions& o) {
  Check(o.remove_on_complete >= -1 && o.remove_on_fail >= -1, "retention below -1");
  JobOptions again = internal::ParseJobOptions(internal::JobOptionsToJson("job-1", o));
  JobOptions expected = o;
  if (expected.delay_ms < 0) expected.delay_ms = 0;  // not written when not positive
  Check(SameOptions(again, expected), "options do not survive JobOptionsToJson");
}

void CheckRetry(const JobOptions& o, int attempts_made) {
  for (int n : {attempts_made, 0, 1, 2, 3, 40, 41}) {
    int64_t wait = BackoffDelayMs(o.backoff_type, o.backoff_delay_ms, n);
    Check(wait >= 0, "negative backoff");
    if (o.backoff_delay_ms > 0) Check(wait >= o.backoff_delay_ms, "backoff shorter than its delay");
  }
  bool retry = ShouldRetry(attempts_made, o.attempts, /*transient=*/true);
  if (retry) Check(attempts_made < o.attempts, "retry beyond the attempts");
  Check(!ShouldRetry(attempts_made, o.attempts, /*transient=*/false), "permanent error retried");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);

  auto payload = DecodeJobPayload(input);
  if (payload.ok()) {
    Check(!payload->job_id.empty() && !payload->user_id.empty() &&
              !payload->session_id.empty() && !payload->storage_path.empty(),
          "decoded job data with an empty required field");
    auto again = DecodeJobPayload(EncodeJobPayload(*payload));
    Check(again.ok(), "encoded job data does not decode");
    Check(again->job_id == payload->job_id && again->user_id == payload->user_id &&
              again->session_id == payload->session_id &&
              again->storage_path == payload->storage_path &&
              again->original_name == payload->original_name &&
              again->mime_type == payload->mime_type && again->size == payload->size &&
              again->message == payload->message && again->request_id == payload->request_id,
          "job data does not survive EncodeJobPayload");
  } else {
    Check(payload.code() == conveyor::Errc::kInvalidArgument, "bad job data is not kInvalidArgument");
  }

  JobOptions options = internal::ParseJobOptions(input);
  CheckOptions(options);
  CheckRetry(options, 0);

  ActiveJob job;
  std::string_view rest = input;
  while (!rest.empty()) {
    size_t k = rest.find('\0');
    if (k == std::string_view::npos) break;
    std::string_view key = rest.substr(0, k);
    rest.remove_prefix(k + 1);
    size_t v = rest.find('\0');
    std::string value(rest.substr(0, v));
    rest = v == std::string_view::npos ? std::string_view() : rest.substr(v + 1);
    internal::ReadJobField(key, value, &job);
  }
  job.options = internal::ParseJobOptions(job.opts_json);
  CheckOptions(job.options);
  CheckRetry(job.options, job.attempts_made);
  if (!job.data_json.empty()) (void)DecodeJobPayload(job.data_json);
  return 0;
}
