#include "labkit/snmp.hpp"

#include <charconv>
#include <fstream>
#include <iterator>

#include "portlab/text.hpp"

namespace portlab::labkit {
namespace {

// "Udp:" -> "Udp"; empty when the line does not start with a "Name:" word.
std::string_view protocol_of(const std::vector<std::string_view>& words) {
    if (words.empty() || words.front().size() < 2 || words.front().back() != ':') return {};
    return words.front().substr(0, words.front().size() - 1);
}

}  // namespace

Result<SnmpCounters> SnmpCounters::parse(std::string_view text) {
    std::vector<std::string_view> lines;
    for (std::size_t start = 0; start < text.size();) {
        const auto end = std::min(text.find('\n', start), text.size());
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    SnmpCounters result;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto names = text::split_words(lines[i]);
        if (names.empty()) continue;
        const auto where = "line " + std::to_string(i + 1) + ": ";
        const auto protocol = protocol_of(names);
        if (protocol.empty()) return fail(where + "does not start with a protocol name and a colon");
        if (i + 1 == lines.size()) return fail(where + "the " + std::string(protocol) + " names have no values line");
        const auto values = text::split_words(lines[++i]);
        if (protocol_of(values) != protocol)
            return fail("line " + std::to_string(i + 1) + ": expected the " + std::string(protocol) + " values");
        if (values.size() != names.size())
            return fail("line " + std::to_string(i + 1) + ": " + std::to_string(values.size() - 1) + " values for " +
                        std::to_string(names.size() - 1) + " " + std::string(protocol) + " names");
        Group group{std::string(protocol), {}};
        for (std::size_t k = 1; k < names.size(); ++k) {
            std::int64_t value = 0;
            const auto [end, error] = std::from_chars(values[k].data(), values[k].data() + values[k].size(), value);
            if (error != std::errc{} || end != values[k].data() + values[k].size())
                return fail("line " + std::to_string(i + 1) + ": " + std::string(protocol) + " " + std::string(names[k]) +
                            " is '" + std::string(values[k]) + "', not a whole number");
            group.counters.emplace_back(std::string(names[k]), value);
        }
        result.groups_.push_back(std::move(group));
    }
    return result;
}

Result<SnmpCounters> SnmpCounters::read(const std::string& path) {
    std::ifstream file(path);
    if (!file) return fail("cannot open " + path);
    const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    auto counters = parse(text);
    if (!counters) return fail(path + ": " + counters.error().message);
    return counters;
}

std::optional<std::int64_t> SnmpCounters::get(std::string_view protocol, std::string_view name) const {
    for (const auto& group : groups_) {
        if (group.protocol != protocol) continue;
        for (const auto& [counter, value] : group.counters)
            if (counter == name) return value;
    }
    return std::nullopt;
}

}  // namespace portlab::labkit
