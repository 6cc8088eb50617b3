#pragma once
// Text from outside (a peer's bytes, a process name, a services or trace file) shown safely.
//
// A terminal obeys the bytes it is given: ESC [ 2 J clears the screen, ESC ] 0 ; ... BEL retitles
// the window, and in some terminals the 8-bit C1 controls (0x9B is CSI) do the same without the
// ESC. Anything a lab or a tool prints that came from someone else goes through printable():
//
//   say.kernel("received \"" + text::printable(bytes) + "\"");   // "\x1b]0;x\x07" stays visible text
//
// A JSON document must be valid UTF-8 (RFC 8259 section 8.1), and nlohmann::json's dump()
// throws on a string that is not. Outside text put into a document goes through valid_utf8():
//
//   entry["process"] = text::valid_utf8(comm);   // "\xff" becomes U+FFFD, never an exception
//
// Both read UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates (U+D800-U+DFFF),
// nothing above U+10FFFF.

#include <string>
#include <string_view>

namespace portlab::text {

// `untrusted` with every byte a terminal might act on written as a visible escape, on one line:
// C0 controls and DEL as \n, \r, \t or \xNN; ESC as \x1b; the C1 controls U+0080-U+009F (their
// UTF-8 forms) as \u0080-\u009f; a byte that is not part of valid UTF-8 as \xNN; a backslash as
// \\ (so an escape in the output always means a byte that was escaped). Printable ASCII and
// valid UTF-8 characters from U+00A0 up stay as they are.
[[nodiscard]] std::string printable(std::string_view untrusted);

// `untrusted` as valid UTF-8: what is not part of a valid sequence replaced by U+FFFD
// (the REPLACEMENT CHARACTER), one for each "maximal subpart" of an invalid sequence as Unicode
// 15.0 section 3.9 recommends (Python's errors="replace" does the same); everything else unchanged. Control
// characters stay (a JSON writer escapes them itself).
[[nodiscard]] std::string valid_utf8(std::string_view untrusted);

// Whether `text` is valid UTF-8 in the sense above.
[[nodiscard]] bool is_valid_utf8(std::string_view text) noexcept;

}  // namespace portlab::text
