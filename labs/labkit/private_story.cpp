#include "labkit/private_story.hpp"

#include <string>

#include "labkit/netns.hpp"

namespace portlab::labkit {

namespace {

// A student stepping through (--step) may spend long at a pause; without --step the
// lab's own limit bounds the whole run.
constexpr std::chrono::milliseconds stepping_limit = std::chrono::minutes(30);

bool namespaces_unavailable(const std::string& message) {
    return message.find("unavailable") != std::string::npos;
}

}  // namespace

void end_story(Lab& lab) {
    (void)lab.observer().settle(std::chrono::milliseconds(1000));
    lab.observer().stop_looking_inside();
    lab.trace().flush();
}

int tell_in_private_netns(Lab& lab, std::chrono::milliseconds limit, const std::function<nlohmann::json()>& story,
                          std::string_view without_namespaces) {
    lab.trace().flush();  // flush before fork: the child continues the same file
    const auto facts = run_in_private_netns(story, {}, lab.options().step ? stepping_limit : limit);
    if (!facts) {
        const std::string& message = facts.error().message;
        if (without_namespaces.empty() || !namespaces_unavailable(message)) return lab.failure(message);
        return lab.failure(message + "; " + std::string(without_namespaces));
    }
    if (lab.json()) lab.print_json(*facts);
    return exit_ok;
}

}  // namespace portlab::labkit
