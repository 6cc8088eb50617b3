#include "labkit/node_look.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "labkit/posix.hpp"
#include "portlab/text.hpp"

namespace portlab::labkit {

void show_in_node(Narrator& say, const Network& net, bool show, const std::string& node,
                  const std::vector<std::string>& argv) {
    std::string command;
    for (const auto& word : argv) command += (command.empty() ? "" : " ") + word;
    say.see_it_yourself(net.see_inside(node, command));
    if (!show) return;
    // The tool's stderr is this process's (run_in_node reads stdout only): point it at
    // /dev/null while the tool runs.
    const Fd quiet(open("/dev/null", O_WRONLY | O_CLOEXEC));
    const Fd saved(dup(STDERR_FILENO));
    dup2(quiet.get(), STDERR_FILENO);
    const auto output = net.run_in_node(node, argv);
    dup2(saved.get(), STDERR_FILENO);
    for (const auto& line : text::split_lines(output ? *output : output.error().message)) say.note("    " + line);
}

void tell_addresses(Narrator& say, const Network& net, const std::vector<std::string>& nodes) {
    for (const auto& node : nodes) {
        std::string addresses;
        for (const auto& other : nodes)
            if (auto address = net.address(node, other)) addresses += (addresses.empty() ? "" : ", ") + address->to_string();
        say.kernel(fmt::format("{:<7} {}", node, addresses));
    }
}

}  // namespace portlab::labkit
