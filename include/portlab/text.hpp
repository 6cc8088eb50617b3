#pragma once
// Small text helpers for the line-oriented files portlab reads (/proc, /etc/services).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace portlab::text {

// ASCII white space as the C locale's isspace() sees it, without the locale.
[[nodiscard]] constexpr bool is_blank(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
[[nodiscard]] constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// The words of `line`, split on runs of blanks; views into `line`.
[[nodiscard]] std::vector<std::string_view> split_words(std::string_view line);

// The pieces of `text` between `separator`s, empty ones kept ("a,b,,c" -> "a", "b", "", "c";
// "" -> ""); views into `text`.
[[nodiscard]] std::vector<std::string_view> split_on(std::string_view text, char separator);

// The lines of `text` (a command's output), without their '\n'; a last line without one
// counts too, an empty text has none.
[[nodiscard]] std::vector<std::string> split_lines(std::string_view text);

// "1 port", "2 ports": a count with its noun in the right number (plural: singular + "s"
// unless given).
[[nodiscard]] std::string counted(std::size_t count, std::string_view singular, std::string_view plural = {});

}  // namespace portlab::text
