// The lab kit's conntrack reader (labkit/conntrack.hpp), held to conntrack(8) run in the same
// private namespace: the same entries (id, protocol, TCP state, both tuples, flags), the
// same NAT marks (conntrack -L --src-nat / --dst-nat) and the same counters (conntrack -S).

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "labkit/conntrack.hpp"
#include "labkit/netns.hpp"
#include "labkit/nftables.hpp"
#include "support.hpp"

using nlohmann::json;
using namespace portlab;
namespace test = portlab::test;

namespace {

// What a command printed on stdout; run by the namespace's own process, so in its namespace.
std::string output_of(const std::string& command) {
    std::string text;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("popen failed");
    char buffer[4096];
    for (std::size_t got; (got = fread(buffer, 1, sizeof buffer, pipe)) > 0;) text.append(buffer, got);
    pclose(pipe);
    return text;
}

int connected_tcp(Port port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const auto to = test::sockets::loopback(port);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) throw std::runtime_error("connect failed");
    return fd;
}

void udp_to(Port port) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const auto to = test::sockets::loopback(port);
    (void)!sendto(fd, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    close(fd);
}

json tuple_json(const conntrack::Tuple& tuple) {
    return {{"src", tuple.source.address.to_string()}, {"dst", tuple.destination.address.to_string()},
            {"sport", tuple.source.port}, {"dport", tuple.destination.port}};
}

// One line of `conntrack -L -o extended,id`:
// "ipv4 2 tcp 6 119 ESTABLISHED src=A dst=B sport=P dport=Q src=B dst=A sport=Q dport=P [ASSURED] mark=0 use=1 id=N"
// The first src/dst/sport/dport are the original tuple, the second the reply.
json parse_conntrack_line(const std::string& line) {
    std::istringstream words(line);
    std::vector<std::string> tokens;
    for (std::string token; words >> token;) tokens.push_back(token);
    json entry{{"protocol", tokens.at(2)}, {"state", ""}, {"assured", false}, {"unreplied", false}};
    json tuples[2] = {json::object(), json::object()};
    for (std::size_t i = 5; i < tokens.size(); ++i) {
        const auto& token = tokens[i];
        const auto equals = token.find('=');
        if (token == "[ASSURED]") entry["assured"] = true;
        else if (token == "[UNREPLIED]") entry["unreplied"] = true;
        else if (equals == std::string::npos && i == 5) entry["state"] = token;
        else if (equals != std::string::npos) {
            const auto key = token.substr(0, equals), value = token.substr(equals + 1);
            if (key == "id") entry["id"] = std::stoul(value);
            if (key != "src" && key != "dst" && key != "sport" && key != "dport") continue;
            auto& tuple = tuples[0].contains(key) ? tuples[1] : tuples[0];
            if (key == "sport" || key == "dport") tuple[key] = std::stoi(value);
            else tuple[key] = value;
        }
    }
    entry["original"] = tuples[0];
    entry["reply"] = tuples[1];
    return entry;
}

std::vector<unsigned long> ids_in(const std::string& listing) {
    std::vector<unsigned long> ids;
    for (const auto& line : test::lines_of(listing))
        if (const auto at = line.find(" id="); at != std::string::npos) ids.push_back(std::stoul(line.substr(at + 4)));
    return ids;
}

std::uint64_t sum_of(const std::string& counters, const std::string& name) {
    std::uint64_t sum = 0;
    std::istringstream words(counters);
    for (std::string token; words >> token;)
        if (token.rfind(name + "=", 0) == 0) sum += std::stoull(token.substr(name.size() + 1));
    return sum;
}

}  // namespace

TEST_CASE("conntrack::dump lists the entries conntrack -L lists: ids, states, both tuples, NAT marks",
          "[conntrack][netns]") {
    REQUIRE(test::tool_available("conntrack"));
    const auto outer = firewall::network_namespace_id();
    REQUIRE(outer);
    const auto facts = run_in_private_netns(
        [&] {
            auto token = firewall::PrivateNetnsToken::confirm(*outer);
            if (!token) throw std::runtime_error(token.error().message);
            auto nft = firewall::Nftables::open(*token);
            if (!nft) throw std::runtime_error(nft.error().message);
            // 7001 is forwarded to the listener on 7000 (DNAT); datagrams to 7002 leave from
            // 127.0.0.3:7777 (SNAT to one port, so a second sender clashes and is dropped).
            auto applied = nft->run(
                "add table ip conntrack_test\n"
                "add chain ip conntrack_test out { type nat hook output priority -100; }\n"
                "add rule ip conntrack_test out tcp dport 7001 dnat to 127.0.0.1:7000\n"
                "add chain ip conntrack_test post { type nat hook postrouting priority srcnat; }\n"
                "add rule ip conntrack_test post udp dport 7002 snat to 127.0.0.3:7777\n");
            if (!applied) throw std::runtime_error(applied.error().message);
            const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            const auto at = test::sockets::loopback(7000);
            if (bind(listener, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0 || listen(listener, 8) != 0)
                throw std::runtime_error("listen failed");
            const int forwarded = connected_tcp(7001);
            const int direct = connected_tcp(7000);
            udp_to(7002);
            udp_to(7002);  // the same outside tuple again: insert_failed
            usleep(100'000);
            auto table = conntrack::dump();
            if (!table) throw std::runtime_error(table.error().message);
            auto counters = conntrack::statistics();
            if (!counters) throw std::runtime_error(counters.error().message);
            json mine = json::array();
            for (const auto& entry : *table)
                mine.push_back({{"id", entry.id}, {"protocol", entry.protocol}, {"state", entry.tcp_state},
                                {"assured", entry.assured}, {"unreplied", !entry.seen_reply},
                                {"original", tuple_json(entry.original)}, {"reply", tuple_json(entry.reply)},
                                {"src_nat", entry.source_nat}, {"dst_nat", entry.destination_nat}});
            json out{{"mine", mine},
                     {"listing", output_of("timeout 5 conntrack -L -o extended,id 2>/dev/null")},
                     {"src_nat", output_of("timeout 5 conntrack -L --src-nat -o extended,id 2>/dev/null")},
                     {"dst_nat", output_of("timeout 5 conntrack -L --dst-nat -o extended,id 2>/dev/null")},
                     {"counters", output_of("timeout 5 conntrack -S 2>/dev/null")},
                     {"insert_failed", counters->insert_failed},
                     {"drop", counters->drop}};
            close(forwarded);
            close(direct);
            close(listener);
            return out;
        },
        {}, std::chrono::seconds(20));
    INFO((facts ? std::string() : facts.error().message));
    REQUIRE(facts.has_value());
    INFO("conntrack -L said:\n" << facts->at("listing").get<std::string>());
    std::map<unsigned long, json> theirs;
    for (const auto& line : test::lines_of(facts->at("listing").get<std::string>()))
        if (line.rfind("ipv4", 0) == 0 || line.rfind("ipv6", 0) == 0) {
            const auto entry = parse_conntrack_line(line);
            theirs[entry.at("id").get<unsigned long>()] = entry;
        }
    const auto src_nat = ids_in(facts->at("src_nat").get<std::string>());
    const auto dst_nat = ids_in(facts->at("dst_nat").get<std::string>());
    const auto& mine = facts->at("mine");
    CHECK(mine.size() == theirs.size());
    CHECK(mine.size() >= 3);  // two TCP connections, one UDP flow (the clashing one was never confirmed)
    int forwarded = 0;
    for (const auto& entry : mine) {
        const auto id = entry.at("id").get<unsigned long>();
        CAPTURE(entry.dump());
        REQUIRE(theirs.count(id) == 1);
        const auto& other = theirs.at(id);
        CHECK(entry.at("protocol") == other.at("protocol"));
        CHECK(entry.at("state") == other.at("state"));
        CHECK(entry.at("assured") == other.at("assured"));
        CHECK(entry.at("unreplied") == other.at("unreplied"));
        CHECK(entry.at("original") == other.at("original"));
        CHECK(entry.at("reply") == other.at("reply"));
        CHECK(entry.at("src_nat").get<bool>() == (std::count(src_nat.begin(), src_nat.end(), id) == 1));
        CHECK(entry.at("dst_nat").get<bool>() == (std::count(dst_nat.begin(), dst_nat.end(), id) == 1));
        forwarded += entry.at("dst_nat").get<bool>();
    }
    CHECK(forwarded == 1);     // the connection to 7001, answered from 7000
    CHECK(src_nat.size() == 1);  // the datagram that left from 127.0.0.3:7777
    const auto counters = facts->at("counters").get<std::string>();
    CAPTURE(counters);
    CHECK(facts->at("insert_failed").get<std::uint64_t>() == sum_of(counters, "insert_failed"));
    CHECK(facts->at("drop").get<std::uint64_t>() == sum_of(counters, "drop"));
    CHECK(facts->at("insert_failed").get<std::uint64_t>() >= 1);
}
