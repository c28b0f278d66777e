// File: storage/metadata_store_contract.h
//
// The behaviour every MetadataStore backend shares, as value-parameterised
// tests (metadata_store_contract.cc). A backend's test binary links that file
// and instantiates the suites with its StoreBackend:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, MetadataStoreContract, ::testing::Values(&kSqlite),
//                            BackendName);
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "storage/metadata_store.h"

namespace conveyor::storage {

struct StoreBackend {
  // A URL naming a fresh, empty database (no schema yet).
  std::function<std::string()> fresh_url;
  std::function<Result<std::unique_ptr<MetadataStore>>(const std::string& url, bool migrate)> open;
  std::function<Result<int>(const std::string& url)> migrate;
};

// Test-name suffix for a backend: its parameter has no stable printable form
// (a pointer differs from run to run), and ctest filters by name.
inline std::string BackendName(const ::testing::TestParamInfo<const StoreBackend*>&) {
  return "db";
}

// open(url, migrate), failing the test (and returning null) on an error.
std::unique_ptr<MetadataStore> OpenStore(const StoreBackend& backend, const std::string& url,
                                         bool migrate);

NewJob MakeJob(const std::string& user = "alice", const std::string& session = "s1");

class MetadataStoreContract : public ::testing::TestWithParam<const StoreBackend*> {
 protected:
  // A migrated store on a fresh database.
  std::unique_ptr<MetadataStore> Open() { return OpenStore(*GetParam(), GetParam()->fresh_url(), true); }
};

// A migrated store on a fresh database with one job of alice in session s1.
class MemoryContract : public ::testing::TestWithParam<const StoreBackend*> {
 protected:
  void SetUp() override {
    store_ = OpenStore(*GetParam(), GetParam()->fresh_url(), true);
    ASSERT_TRUE(store_);
    job_ = AddJob("alice", "s1");
  }
  std::string AddJob(const std::string& user, const std::string& session) {
    NewJob j = MakeJob(user, session);
    EXPECT_TRUE(store_->InsertJob(j).ok());
    return j.id;
  }
  std::vector<MemoryHit> Search(const std::string& user, const std::string& session,
                                const std::string& q, int limit = 10) {
    auto r = store_->SearchMemory(user, session, q, limit);
    EXPECT_TRUE(r.ok()) << "query [" << q << "]: " << r.status().ToString();
    return r.ok() ? *r : std::vector<MemoryHit>{};
  }
  std::unique_ptr<MetadataStore> store_;
  std::string job_;
};

}  // namespace conveyor::storage
