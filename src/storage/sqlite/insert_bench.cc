// Measures InsertJob throughput on a file database:
//   storage_insert_bench [rows=20000] [threads=4] [db path]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "storage/metadata_store.h"

int main(int argc, char** argv) {
  using namespace conveyor;
  int rows = argc > 1 ? std::atoi(argv[1]) : 20000;
  int threads = argc > 2 ? std::atoi(argv[2]) : 4;
  std::string path = argc > 3 ? argv[3]
                              : (std::filesystem::temp_directory_path() /
                                 ("conveyor-bench-" + NewUuid() + ".db")).string();
  auto store = storage::OpenMetadataStore("sqlite://" + path, true);
  if (!store) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  int per_thread = rows / threads;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        storage::NewJob j;
        j.id = NewUuid();
        j.user_id = "user" + std::to_string(t);
        j.session_id = "session";
        j.original_name = "file.txt";
        j.size_bytes = 1234;
        j.storage_path = "/data/" + j.id;
        auto st = (*store)->InsertJob(j);
        if (!st) std::fprintf(stderr, "insert: %s\n", st.status().ToString().c_str());
      }
    });
  }
  for (auto& th : pool) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d inserts from %d threads in %.3f s: %.0f inserts/s\n", per_thread * threads,
              threads, secs, per_thread * threads / secs);
  if (argc <= 3) {
    store->reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
  return 0;
}
