#pragma once
// The end of main() for a lab whose story runs in private network namespaces of its own
// (labs 09, 11, 14-18): one call instead of the same eight lines in each lab.
//
//   return tell_in_private_netns(lab, 40s, [&] { return tell_the_story(lab, settings); });
//
// It flushes the trace before the fork (the child continues the same file, and nothing is
// written twice), runs the story with run_in_private_netns (netns.hpp), allows 30 minutes
// under --step (a student reads and types between steps), and prints the story's --json
// document. When namespaces cannot be made here, `without_namespaces` (what the lab needs
// them for and which simulator scenario tells the same story) follows the error.

#include <chrono>
#include <functional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "labkit/labkit.hpp"

namespace portlab::labkit {

// The last thing a story told in private namespaces does: follows every closing connection
// to its end as the kernels report it (Observer::settle: the FIN-WAIT, LAST-ACK and TIME-WAIT
// they pass through), stops looking into the nodes (their namespaces go with the story) and
// flushes this child's trace: the parent writes no more.
void end_story(Lab& lab);

[[nodiscard]] int tell_in_private_netns(Lab& lab, std::chrono::milliseconds limit,
                                        const std::function<nlohmann::json()>& story,
                                        std::string_view without_namespaces = {});

}  // namespace portlab::labkit
