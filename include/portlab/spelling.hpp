#pragma once
// How an enumeration is written in portlab's files and messages: one table of (value,
// text) per enumeration, read both ways. The trace format, nmap's port states and
// reasons, firewall actions: each is spelt by its table and nowhere else.
//
//   constexpr std::array<Spelling<FirewallAction>, 3> action_spellings{{
//       {FirewallAction::accept, "accept"}, {FirewallAction::drop, "drop"}, {FirewallAction::reject, "reject"}}};
//   spelling_of(action_spellings, FirewallAction::drop)              -> "drop"
//   parse_spelling(action_spellings, "deny", "firewall action")      -> error:
//       unknown firewall action "deny" (accept, drop, reject)

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "portlab/result.hpp"

namespace portlab {

template <class Enum>
struct Spelling {
    Enum value;
    std::string_view text;
};

// The text of `value`; "?" for a value the table lacks (a table covers its whole enum).
template <class Enum, std::size_t N>
[[nodiscard]] constexpr std::string_view spelling_of(const std::array<Spelling<Enum>, N>& table, Enum value) noexcept {
    for (const auto& entry : table)
        if (entry.value == value) return entry.text;
    return "?";
}

// "accept, drop, reject": every text of the table, in its order.
template <class Enum, std::size_t N>
[[nodiscard]] std::string spellings_list(const std::array<Spelling<Enum>, N>& table) {
    std::string list;
    for (const auto& entry : table) list += (list.empty() ? "" : ", ") + std::string(entry.text);
    return list;
}

// The value spelt `text`, exactly; else the error `unknown WHAT "TEXT" (a, b, c)`.
template <class Enum, std::size_t N>
[[nodiscard]] Result<Enum> parse_spelling(const std::array<Spelling<Enum>, N>& table, std::string_view text,
                                          std::string_view what) {
    for (const auto& entry : table)
        if (entry.text == text) return entry.value;
    return fail("unknown " + std::string(what) + " \"" + std::string(text) + "\" (" + spellings_list(table) + ")");
}

}  // namespace portlab
