// PushQueue: a push connection's subscriber and bounded send queue. See
// http/internal/push.h.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "http/internal/push.h"

namespace conveyor::http {

namespace net = boost::asio;

PushQueue::PushQueue(net::any_io_executor strand, EventsHub* hub, std::string owner,
                     size_t max_messages, Render render, std::function<void()> on_overflow)
    : strand_(std::move(strand)),
      hub_(hub),
      owner_(std::move(owner)),
      max_messages_(max_messages < 1 ? 1 : max_messages),
      render_(std::move(render)),
      on_overflow_(std::move(on_overflow)),
      timer_(strand_) {}

void PushQueue::Deliver(std::shared_ptr<const PushEvent> event) {
  net::post(strand_, [self = shared_from_this(), event = std::move(event)] {
    self->OnEvent(event);
  });
}

void PushQueue::Watch(const std::string& job_id, int min_rank) {
  if (closed_) return;
  Slot& s = jobs_[job_id];
  s.rank = min_rank;
  hub_->Subscribe(job_id, owner_, shared_from_this());
}

void PushQueue::Unwatch(const std::string& job_id) {
  if (jobs_.erase(job_id) != 0) hub_->Unsubscribe(job_id, this);
}

void PushQueue::State(const std::shared_ptr<const PushEvent>& state) {
  if (closed_) return;
  auto it = jobs_.find(state->job_id);
  if (it == jobs_.end()) return;
  Slot& s = it->second;
  s.ready = true;
  std::vector<std::shared_ptr<const PushEvent>> held = std::move(s.held);
  const std::string job_id = state->job_id;  // `s` may go in Offer
  Offer(s, job_id, *state);
  for (auto& e : held) {
    auto again = jobs_.find(job_id);
    if (again == jobs_.end() || closed_) break;
    Offer(again->second, job_id, *e);
  }
}

void PushQueue::OnEvent(const std::shared_ptr<const PushEvent>& e) {
  if (closed_) return;
  auto it = jobs_.find(e->job_id);
  if (it == jobs_.end()) return;  // unwatched meanwhile
  Slot& s = it->second;
  if (!s.ready) {
    // Before the state: keep the finals and the newest few.
    if (s.held.size() >= kMaxHeld && !s.held.back()->final()) s.held.pop_back();
    if (s.held.size() < kMaxHeld) s.held.push_back(e);
    return;
  }
  Offer(s, e->job_id, *e);
}

void PushQueue::Offer(Slot& s, const std::string& job_id, const PushEvent& e) {
  if (e.rank <= s.rank) return;  // older or already sent
  s.rank = e.rank;
  const bool final = e.final();
  if (final) Unwatch(job_id);
  Enqueue(render_(e), final && jobs_.empty());
}

void PushQueue::Send(std::string message) {
  if (closed_) return;
  Enqueue(std::move(message), false);
}

void PushQueue::Enqueue(std::string message, bool final_of_last) {
  if (queue_.size() >= max_messages_) {
    // The client does not keep up: it goes.
    auto overflow = std::move(on_overflow_);
    Close();
    if (overflow) overflow();
    return;
  }
  queue_.emplace_back(std::move(message), final_of_last);
  timer_.cancel();
  if (wake_) wake_();
}

void PushQueue::Close() {
  if (closed_) return;
  closed_ = true;
  for (auto& [id, slot] : jobs_) hub_->Unsubscribe(id, this);
  jobs_.clear();
  queue_.clear();
  on_overflow_ = nullptr;
  wake_ = nullptr;
  timer_.cancel();
}

net::awaitable<bool> PushQueue::Next(std::chrono::milliseconds wait, std::string* out) {
  if (queue_.empty() && !closed_) {
    timer_.expires_after(wait);
    co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
  }
  co_return Pop(out);
}

bool PushQueue::Pop(std::string* out) {
  if (queue_.empty() || closed_) return false;
  *out = std::move(queue_.front().first);
  drained_final_ = queue_.front().second;
  queue_.pop_front();
  return true;
}

}  // namespace conveyor::http
