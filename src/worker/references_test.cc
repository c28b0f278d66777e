#include "worker/references.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/ids.h"
#include "storage/metadata_store.h"

namespace conveyor::worker {
namespace {

class References : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = storage::OpenMetadataStore("sqlite://:memory:", true);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  // Stores a file of one job with `chunks` as its memory and the index terms
  // of their text; returns its file id.
  std::string Upload(const std::string& user, const std::string& session,
                     const std::vector<std::string>& chunks) {
    storage::NewJob j;
    j.id = NewUuid();
    j.user_id = user;
    j.session_id = session;
    j.original_name = "f.txt";
    j.mime_type = "text/plain";
    j.size_bytes = 1;
    j.sha256_hex = std::string(64, 'a');
    j.storage_path = "/data/" + j.id;
    EXPECT_TRUE(store_->InsertJob(j).ok());
    std::vector<storage::MemoryChunk> mc;
    std::string text;
    for (size_t i = 0; i < chunks.size(); ++i) {
      mc.push_back({static_cast<int>(i), chunks[i]});
      text += chunks[i] + "\n";
    }
    std::string file_id = "file_" + j.id;
    // As the worker stores a file: its chunks and its index terms.
    auto r = store_->StoreFileMemory({user, session, j.id, file_id, mc, IndexTerms(text)});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    job_of_[file_id] = j.id;
    return file_id;
  }

  std::unique_ptr<storage::MetadataStore> store_;
  std::map<std::string, std::string> job_of_;
};

TEST_F(References, EarlierFilesSharingKeywordsAreFoundWithTermsAndSnippets) {
  std::string budget = Upload("alice", "s1", {"The quarterly budget for the warehouse expansion.",
                                              "Forklift leasing costs rose in March."});
  std::string recipes = Upload("alice", "s1", {"Sourdough bread needs a lively starter."});
  std::string lease = Upload("alice", "s1", {"The forklift lease ends next year."});
  std::string current = Upload("alice", "s1", {"Warehouse budget review: forklift leasing."});

  auto refs = FindReferences(*store_, "alice", "s1", current, {"warehouse", "budget", "forklift"});
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  ASSERT_EQ(refs->size(), 2u);
  // The budget file shares all three keywords, the lease file one.
  EXPECT_EQ((*refs)[0].file_id, budget);
  EXPECT_EQ((*refs)[0].job_id, job_of_[budget]);
  EXPECT_EQ((*refs)[0].terms, (std::vector<std::string>{"warehouse", "budget", "forklift"}));
  EXPECT_NE((*refs)[0].snippet.find("**"), std::string::npos) << (*refs)[0].snippet;
  EXPECT_EQ((*refs)[1].file_id, lease);
  EXPECT_EQ((*refs)[1].terms, (std::vector<std::string>{"forklift"}));
  EXPECT_NE((*refs)[1].snippet.find("**forklift**"), std::string::npos) << (*refs)[1].snippet;
  for (const auto& r : *refs) {
    EXPECT_NE(r.file_id, current);
    EXPECT_NE(r.file_id, recipes);
  }
}

TEST_F(References, OtherSessionsAndUsersAreNeverReferenced) {
  Upload("alice", "s2", {"Warehouse budget in another session."});
  Upload("bob", "s1", {"Warehouse budget of another user."});
  std::string current = Upload("alice", "s1", {"Warehouse budget."});
  auto refs = FindReferences(*store_, "alice", "s1", current, {"warehouse", "budget"});
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
}

TEST_F(References, MinimumSharedTermsAndMaximumCountApply) {
  for (int i = 0; i < 4; ++i) Upload("alice", "s1", {"Forklift number " + std::to_string(i) + "."});
  std::string both = Upload("alice", "s1", {"Forklift and pallet."});
  ReferenceSettings one_max;
  one_max.max_references = 2;
  auto refs = FindReferences(*store_, "alice", "s1", "file_none", {"forklift", "pallet"}, one_max);
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[0].file_id, both);

  ReferenceSettings two_terms;
  two_terms.min_shared_terms = 2;
  refs = FindReferences(*store_, "alice", "s1", "file_none", {"forklift", "pallet"}, two_terms);
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 1u);
  EXPECT_EQ((*refs)[0].file_id, both);
}

TEST_F(References, IndexTermsAreTheTextsCharacteristicWordsLowerCase) {
  auto terms = IndexTerms("Forklift leasing: the forklift fleet. FORKLIFT costs 42 euros.");
  ASSERT_FALSE(terms.empty());
  EXPECT_EQ(terms[0], "forklift");
  EXPECT_EQ(std::count(terms.begin(), terms.end(), "the"), 0);
  EXPECT_EQ(std::count(terms.begin(), terms.end(), "42"), 0);
  EXPECT_LE(terms.size(), static_cast<size_t>(kIndexTerms));
}

TEST_F(References, KeywordsAreComparedLowerCase) {
  std::string earlier = Upload("alice", "s1", {"Warehouse inventory."});
  auto refs = FindReferences(*store_, "alice", "s1", "file_new", {"WAREHOUSE"});
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 1u);
  EXPECT_EQ((*refs)[0].file_id, earlier);
  EXPECT_EQ((*refs)[0].terms, (std::vector<std::string>{"warehouse"}));
}

TEST_F(References, NoKeywordsOrNoMemoryGiveNoReferences) {
  auto refs = FindReferences(*store_, "alice", "s1", "file_x", {});
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
  refs = FindReferences(*store_, "alice", "s1", "file_x", {"anything"});
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
}

}  // namespace
}  // namespace conveyor::worker
