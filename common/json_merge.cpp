#include "common/json_merge.hpp"

#include <algorithm>

namespace deltasync {

namespace {

bool IsPrefix(const JsonPath& p, const JsonPath& q) {  // p is a proper prefix of q
  return p.size() < q.size() && std::equal(p.begin(), p.end(), q.begin());
}

auto Lower(const JsonMembers& members, const JsonPath& path) {
  return std::lower_bound(members.begin(), members.end(), path,
                          [](const JsonMember& m, const JsonPath& p) { return m.path < p; });
}

// A leaf: anything but a non-empty object.
bool IsLeaf(const JsonValue& v) { return !v.IsObject() || v.members.empty(); }

void Leaves(const JsonValue& v, JsonPath& path, std::vector<JsonEdit>& out) {
  if (IsLeaf(v)) {
    out.push_back(JsonEdit{path, true, CanonicalJson(v)});
    return;
  }
  for (const auto& [key, child] : v.members) {
    path.push_back(key);
    Leaves(child, path, out);
    path.pop_back();
  }
}

void DiffObjects(const JsonValue& o, const JsonValue& n, JsonPath& path, std::vector<JsonEdit>& out);

void DiffValues(const JsonValue& o, const JsonValue& n, JsonPath& path, std::vector<JsonEdit>& out) {
  if (n.IsObject() && o.IsObject()) {
    if (!n.members.empty()) DiffObjects(o, n, path, out);
    else if (!o.members.empty()) out.push_back(JsonEdit{path, true, "{}"});
    return;
  }
  if (n.IsObject()) {  // a leaf became an object: its leaves (below it: they hide the old leaf)
    Leaves(n, path, out);
    return;
  }
  std::string text = CanonicalJson(n);
  if (o.IsObject() || CanonicalJson(o) != text) out.push_back(JsonEdit{path, true, std::move(text)});
}

void DiffObjects(const JsonValue& o, const JsonValue& n, JsonPath& path, std::vector<JsonEdit>& out) {
  size_t i = 0, j = 0;
  while (i < o.members.size() || j < n.members.size()) {
    int cmp = i == o.members.size()   ? 1
              : j == n.members.size() ? -1
                                      : o.members[i].first.compare(n.members[j].first);
    if (cmp < 0) {
      path.push_back(o.members[i].first);
      out.push_back(JsonEdit{path, false, {}});
      path.pop_back();
      ++i;
    } else if (cmp > 0) {
      path.push_back(n.members[j].first);
      Leaves(n.members[j].second, path, out);
      path.pop_back();
      ++j;
    } else {
      path.push_back(n.members[j].first);
      DiffValues(o.members[i].second, n.members[j].second, path, out);
      path.pop_back();
      ++i;
      ++j;
    }
  }
}

// Places a visible leaf into the document (leaves come sorted by path and no two lie on one
// path, so each object's members arrive in key order).
void Place(JsonValue& root, const JsonMember& m) {
  JsonValue* at = &root;
  for (size_t k = 0; k < m.path.size(); ++k) {
    const std::string& key = m.path[k];
    if (at->members.empty() || at->members.back().first != key) {
      at->members.emplace_back(key, JsonValue());
      at->members.back().second.kind = JsonValue::Kind::kObject;
    }
    at = &at->members.back().second;
  }
  std::string error;
  if (!ParseJson(m.value, *at, error)) *at = JsonValue();  // a stored value is canonical: not reached
}

}  // namespace

JsonMembers MembersOf(const JsonValue& doc, const Clock& clock, uint32_t site, int64_t ver) {
  JsonMembers out;
  if (!doc.IsObject()) return out;
  std::vector<JsonEdit> leaves;
  JsonPath path;
  for (const auto& [key, child] : doc.members) {
    path.assign(1, key);
    Leaves(child, path, leaves);
  }
  out.reserve(leaves.size());
  for (JsonEdit& e : leaves) out.push_back(JsonMember{std::move(e.path), true, std::move(e.value), clock, site, ver});
  return out;
}

std::vector<JsonEdit> DiffJson(const JsonValue& old_doc, const JsonValue& new_doc) {
  std::vector<JsonEdit> out;
  JsonPath path;
  DiffObjects(old_doc, new_doc, path, out);
  return out;
}

JsonValue RenderJson(JsonMembers& members) {
  JsonValue doc;
  doc.kind = JsonValue::Kind::kObject;
  std::vector<bool> drop(members.size(), false);
  for (size_t k = 0; k < members.size(); ++k) {
    JsonMember& m = members[k];
    // (a): the members at the proper prefixes of its path.
    bool hidden = false;
    JsonPath prefix;
    for (size_t d = 0; d + 1 < m.path.size() && !drop[k]; ++d) {
      prefix.push_back(m.path[d]);
      auto it = Lower(members, prefix);
      if (it == members.end() || it->path != prefix) continue;
      int cmp = CompareClocks(it->clock, m.clock);
      if (cmp > 0) drop[k] = true;  // below a newer prefix: decides nothing any more
      else if (cmp == 0 && it->present) hidden = true;
    }
    if (drop[k] || !m.present) continue;
    // (b): the members below it (they follow it in path order).
    for (size_t j = k + 1; j < members.size() && IsPrefix(m.path, members[j].path) && !hidden; ++j)
      if (CompareClocks(members[j].clock, m.clock) > 0) hidden = true;
    if (hidden) {
      m.present = false;
      m.value.clear();
    }
  }
  size_t w = 0;
  for (size_t k = 0; k < members.size(); ++k)
    if (!drop[k]) {
      if (w != k) members[w] = std::move(members[k]);
      ++w;
    }
  members.resize(w);
  for (const JsonMember& m : members)
    if (m.present) Place(doc, m);
  return doc;
}

size_t LocalJsonWrite(JsonMembers& members, const JsonValue& old_doc, const JsonValue& new_doc, const Clock& clock,
                      uint32_t site, int64_t ver) {
  std::vector<JsonEdit> edits = DiffJson(old_doc, new_doc);
  if (edits.empty()) return 0;
  JsonMembers before = members;
  for (JsonEdit& e : edits) {
    // The transaction's earlier writes share this clock: what they set on this path's
    // prefixes or below it is replaced as surely as an older write's.
    for (JsonMember& m : members)
      if (m.present && CompareClocks(m.clock, clock) == 0 && (IsPrefix(m.path, e.path) || IsPrefix(e.path, m.path))) {
        m.present = false;
        m.value.clear();
      }
    PutMember(members, JsonMember{std::move(e.path), e.present, std::move(e.value), clock, site, ver});
  }
  if (CanonicalJson(RenderJson(members)) == CanonicalJson(new_doc)) return edits.size();
  // The members did not show old_doc: every path they hold is removed and every leaf of
  // new_doc written now, which shows new_doc whatever they held.
  members = std::move(before);
  for (JsonMember& m : members) {
    m.present = false;
    m.value.clear();
    m.clock = clock;
    m.site = site;
    m.ver = ver;
  }
  for (JsonMember& m : MembersOf(new_doc, clock, site, ver)) PutMember(members, std::move(m));
  RenderJson(members);
  return edits.size();
}

JsonMember* FindMember(JsonMembers& members, const JsonPath& path) {
  auto it = std::lower_bound(members.begin(), members.end(), path,
                             [](const JsonMember& m, const JsonPath& p) { return m.path < p; });
  return it != members.end() && it->path == path ? &*it : nullptr;
}

const JsonMember* FindMember(const JsonMembers& members, const JsonPath& path) {
  auto it = Lower(members, path);
  return it != members.end() && it->path == path ? &*it : nullptr;
}

bool MemberWins(int64_t merged_cl, const JsonMember* local, const Clock& in) {
  if (in.cl != merged_cl) return false;  // an older life's member: the delete discarded it
  return !local || CompareClocks(in, local->clock) > 0;
}

void PutMember(JsonMembers& members, JsonMember m) {
  auto it = std::lower_bound(members.begin(), members.end(), m.path,
                             [](const JsonMember& e, const JsonPath& p) { return e.path < p; });
  if (it != members.end() && it->path == m.path) *it = std::move(m);
  else members.insert(it, std::move(m));
}

void DropMembersBefore(JsonMembers& members, int64_t cl) {
  members.erase(std::remove_if(members.begin(), members.end(), [&](const JsonMember& m) { return m.clock.cl < cl; }),
                members.end());
}

std::string PathText(const JsonPath& path) {
  std::string out = "[";
  for (size_t k = 0; k < path.size(); ++k) {
    if (k) out.push_back(',');
    AppendJsonString(out, path[k]);
  }
  out.push_back(']');
  return out;
}

std::string EncodeMemberChange(const JsonPath& path, bool present, std::string_view value) {
  std::string out = "[" + PathText(path);
  if (present) {
    out.push_back(',');
    out.append(value);
  }
  out.push_back(']');
  return out;
}

bool DecodeMemberChange(std::string_view text, JsonPath& path, bool& present, std::string& value, std::string& error) {
  JsonValue v;
  if (!ParseJson(text, v, error)) return false;
  error = "not a json member change";
  if (v.kind != JsonValue::Kind::kArray || v.items.empty() || v.items.size() > 2) return false;
  const JsonValue& p = v.items[0];
  if (p.kind != JsonValue::Kind::kArray || p.items.empty()) return false;
  path.clear();
  for (const JsonValue& k : p.items) {
    if (k.kind != JsonValue::Kind::kString) return false;
    path.push_back(k.text);
  }
  present = v.items.size() == 2;
  value.clear();
  if (present) {
    if (!IsLeaf(v.items[1])) return false;
    value = CanonicalJson(v.items[1]);
  }
  if (CanonicalJson(v) != text) {
    error = "a json member change not in canonical form";
    return false;
  }
  error.clear();
  return true;
}

std::string_view MemberChangePath(std::string_view text) {
  // [ <path array> (, value)? ]: the path array ends at the first ']' outside a string.
  if (text.size() < 4 || text[0] != '[' || text[1] != '[') return {};
  bool in_string = false;
  for (size_t k = 2; k < text.size(); ++k) {
    char c = text[k];
    if (in_string) {
      if (c == '\\') ++k;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == ']') {
      return text.substr(1, k);
    }
  }
  return {};
}

}  // namespace deltasync
