// HTML to text. libxml2 builds the tree (recovering from broken markup, never
// touching the network); we walk it without recursion, so a page nested a
// million deep costs a loop, not the stack.
#include "processing/internal/html.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <string_view>
#include <vector>

namespace conveyor::processing::internal {
namespace {

// Elements whose content is not visible text.
constexpr std::array<std::string_view, 10> kSkipped = {
    "script", "style", "head", "template", "noscript", "svg", "math", "iframe", "object", "select"};

// Elements that start and end a line.
constexpr std::array<std::string_view, 37> kBlocks = {
    "address", "article", "aside",  "blockquote", "body",   "caption", "center", "dd",
    "details", "dialog",  "dir",    "div",        "dl",     "dt",      "fieldset",
    "figcaption", "figure", "footer", "form",     "h1",     "h2",      "h3",     "h4",
    "h5",      "h6",      "header", "hr",         "li",     "main",    "nav",    "ol",
    "p",       "pre",     "section", "summary",   "table",  "ul"};

bool In(std::string_view name, const auto& list) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

std::string_view Name(const xmlNode* n) {
  return n->name != nullptr ? std::string_view(reinterpret_cast<const char*>(n->name)) : "";
}

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
struct CtxtFree {
  void operator()(htmlParserCtxt* c) const { htmlFreeParserCtxt(c); }
};

// Builds text with collapsed whitespace and explicit line breaks.
class TextSink {
 public:
  void Text(std::string_view s, bool preformatted) {
    for (char c : s) {
      if (preformatted) {
        if (c == '\n') {
          Newline();
        } else {
          out_ += c;
          space_pending_ = false;
        }
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        space_pending_ = !out_.empty() && out_.back() != '\n';
      } else {
        if (space_pending_) out_ += ' ';
        space_pending_ = false;
        out_ += c;
      }
    }
  }
  // Ends the current line, if it has anything.
  void Break() {
    space_pending_ = false;
    if (!out_.empty() && out_.back() != '\n') out_ += '\n';
  }
  void Newline() {
    space_pending_ = false;
    out_ += '\n';
  }
  void Separator(std::string_view sep) {
    space_pending_ = false;
    if (!out_.empty() && out_.back() != '\n') out_ += sep;
  }
  std::string Take() {
    Break();
    return std::move(out_);
  }

 private:
  std::string out_;
  bool space_pending_ = false;
};

}  // namespace

bool LooksLikeHtml(std::string_view text) {
  size_t i = 0;
  for (int steps = 0; steps < 64; ++steps) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (text.substr(i).starts_with("<!--")) {
      size_t end = text.find("-->", i + 4);
      if (end == std::string_view::npos) return false;
      i = end + 3;
      continue;
    }
    if (text.substr(i).starts_with("<?xml")) {
      size_t end = text.find("?>", i);
      if (end == std::string_view::npos) return false;
      i = end + 2;
      continue;
    }
    break;
  }
  std::string open(text.substr(i, 16));
  std::transform(open.begin(), open.end(), open.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view start : {"<!doctype html", "<html", "<head", "<body"}) {
    if (open.starts_with(start)) {
      if (open.size() == start.size()) return true;
      char next = open[start.size()];
      if (next == '>' || next == ' ' || next == '\t' || next == '\n' || next == '\r' || next == '/') {
        return true;
      }
    }
  }
  return false;
}

Result<std::string> ExtractHtml(std::string_view html, int64_t* tables) {
  if (tables != nullptr) *tables = 0;
  std::unique_ptr<htmlParserCtxt, CtxtFree> ctxt(htmlNewParserCtxt());
  if (!ctxt) return InvalidArgument("Invalid file format");
  // Our caller has already converted to UTF-8: a <meta charset> must not
  // make the parser decode it again.
  constexpr int kOptions = HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                           HTML_PARSE_RECOVER | HTML_PARSE_IGNORE_ENC;
  std::unique_ptr<xmlDoc, DocFree> doc(htmlCtxtReadMemory(
      ctxt.get(), html.data(), static_cast<int>(html.size()), nullptr, "UTF-8", kOptions));
  if (!doc) return InvalidArgument("Invalid file format");

  TextSink sink;
  // Depth-first walk with an explicit stack; on the way out of a node we
  // close its block. `pre` counts enclosing <pre>/<textarea>.
  struct Frame {
    xmlNode* node;
    bool leaving;
  };
  std::vector<Frame> stack;
  for (xmlNode* c = doc->last; c != nullptr; c = c->prev) stack.push_back({c, false});
  int pre = 0;
  while (!stack.empty()) {
    Frame f = stack.back();
    stack.pop_back();
    xmlNode* n = f.node;
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      if (n->content != nullptr) sink.Text(reinterpret_cast<const char*>(n->content), pre > 0);
      continue;
    }
    if (n->type != XML_ELEMENT_NODE) continue;
    std::string_view name = Name(n);
    bool preformatted = name == "pre" || name == "textarea" || name == "listing";
    if (f.leaving) {
      if (preformatted) --pre;
      if (In(name, kBlocks) || name == "tr") sink.Break();
      continue;
    }
    if (In(name, kSkipped)) continue;
    if (name == "br") {
      sink.Newline();
      continue;
    }
    if (name == "td" || name == "th") sink.Separator(" | ");
    if (name == "table" && tables != nullptr) ++*tables;
    if (name == "img") {
      // The alt text is what the page shows in place of the image.
      xmlChar* alt = xmlGetProp(n, reinterpret_cast<const xmlChar*>("alt"));
      if (alt != nullptr) {
        sink.Text(" ", false);
        sink.Text(reinterpret_cast<const char*>(alt), false);
        sink.Text(" ", false);
        xmlFree(alt);
      }
      continue;
    }
    if (In(name, kBlocks) || name == "tr") sink.Break();
    if (preformatted) ++pre;
    stack.push_back({n, true});
    // Children are pushed in reverse so the first is visited first.
    xmlNode* last = n->last;
    for (xmlNode* c = last; c != nullptr; c = c->prev) stack.push_back({c, false});
  }
  return sink.Take();
}

}  // namespace conveyor::processing::internal
