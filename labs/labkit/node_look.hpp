#pragma once
// "See it yourself" for a node of a lab network (network.hpp): the command a student types in
// another terminal to look inside that node, and, with --show, the same command run there by
// the lab with its output printed under the narration (look.hpp does this for the lab's own
// namespace; a node's namespace is another process's, so it runs through Network::run_in_node).

#include <string>
#include <vector>

#include "labkit/labkit.hpp"
#include "labkit/network.hpp"

namespace portlab::labkit {

// Prints "see it yourself: nsenter --target PID ... argv" and, when `show`, argv's output
// (stdout only: conntrack's count of entries on stderr stays out of the narration).
void show_in_node(Narrator& say, const Network& net, bool show, const std::string& node,
                  const std::vector<std::string>& argv);

// One "kernel:" line per node: its name and its addresses, one per link ("router  192.0.2.2, 198.51.100.1").
void tell_addresses(Narrator& say, const Network& net, const std::vector<std::string>& nodes);

}  // namespace portlab::labkit
