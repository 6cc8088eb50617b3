// /proc/net/snmp through the lab kit's parser, held to the kernel and to nstat(8):
// nstat reads the same file, so in a quiet namespace of our own both must give the
// same numbers, and on the host counters only grow.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "labkit/snmp.hpp"
#include "support.hpp"

using namespace portlab;
using labkit::SnmpCounters;

namespace {

std::string fixture_text() {
    std::ifstream file(std::string(PORTLAB_FIXTURES) + "/proc_net_snmp");
    return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

// Settings and gauges, not counts: they may go down.
bool is_counter(const std::string& protocol, const std::string& name) {
    if (protocol == "Ip") return name != "Forwarding" && name != "DefaultTTL";
    if (protocol == "Tcp") return name != "RtoAlgorithm" && name != "RtoMin" && name != "RtoMax" && name != "MaxConn" && name != "CurrEstab";
    return true;
}

}  // namespace

TEST_CASE("a saved /proc/net/snmp parses into its protocols, names paired with values", "[snmp]") {
    // tests/fixtures/proc_net_snmp: a Linux 6.x host's file, copied as it was.
    const auto counters = SnmpCounters::parse(fixture_text());
    REQUIRE(counters.has_value());
    std::vector<std::string> protocols;
    for (const auto& group : counters->groups()) protocols.push_back(group.protocol);
    CHECK(protocols == std::vector<std::string>{"Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "UdpLite"});
    CHECK(counters->get("Tcp", "MaxConn") == -1);  // "no fixed limit", the one negative value
    CHECK(counters->get("Tcp", "RtoMin") == 200);
    CHECK(counters->get("Udp", "InDatagrams") == 40835);
    CHECK(counters->get("Udp", "MemErrors") == 0);  // the last column
    CHECK(counters->get("UdpLite", "InDatagrams") == 0);  // same names as Udp, its own values
    CHECK_FALSE(counters->get("Udp", "NoSuchCounter"));
    CHECK_FALSE(counters->get("Sctp", "InDatagrams"));
}

TEST_CASE("text that is not /proc/net/snmp's pairs of lines is refused with the line", "[snmp]") {
    const auto [text, message] = GENERATE(table<std::string, std::string>({
        {"Udp: InDatagrams NoPorts\n", "line 1: the Udp names have no values line"},
        {"Udp: InDatagrams NoPorts\nTcp: 1 2\n", "line 2: expected the Udp values"},
        {"Udp: InDatagrams NoPorts\nUdp: 1\n", "line 2: 1 values for 2 Udp names"},
        {"Udp: InDatagrams NoPorts\nUdp: 1 2 3\n", "line 2: 3 values for 2 Udp names"},
        {"Udp: InDatagrams NoPorts\nUdp: 1 x2\n", "line 2: Udp NoPorts is 'x2', not a whole number"},
        {"InDatagrams NoPorts\n1 2\n", "line 1: does not start with a protocol name and a colon"},
    }));
    CAPTURE(text);
    const auto counters = SnmpCounters::parse(text);
    REQUIRE_FALSE(counters.has_value());
    CHECK(counters.error().message == message);
    CHECK(SnmpCounters::parse("").has_value());
}

TEST_CASE("in a namespace of our own, every counter reads as nstat reads it", "[snmp][kernel]") {
    REQUIRE(test::tool_available("unshare"));
    REQUIRE(test::tool_available("nstat"));
    const test::TempDir dir;
    const std::string snmp = dir.file("snmp"), nstat = dir.file("nstat");
    // One datagram to a closed port: Udp OutDatagrams and NoPorts, and an ICMP
    // port unreachable each way, in a namespace where nothing else runs.
    const auto run = test::run_command("unshare -rn bash -c " +
                                       test::shell_quote("ip link set lo up && echo hi > /dev/udp/127.0.0.1/9 && sleep 0.2 && "
                                                         "cat /proc/net/snmp > " + snmp + " && nstat -a -s -z > " + nstat),
                                       20);
    REQUIRE(run.exit_code == 0);
    const auto counters = SnmpCounters::read(snmp);
    REQUIRE(counters.has_value());

    std::map<std::string, std::int64_t> by_nstat;  // "UdpNoPorts" -> 1
    std::ifstream nstat_file(nstat);
    for (std::string line; std::getline(nstat_file, line);) {
        std::istringstream words(line);
        std::string name;
        std::int64_t value = 0;
        if (words >> name >> value) by_nstat[name] = value;
    }
    std::size_t compared = 0;
    for (const auto& group : counters->groups())
        for (const auto& [name, value] : group.counters)
            if (const auto found = by_nstat.find(group.protocol + name); found != by_nstat.end()) {
                CAPTURE(group.protocol, name);
                CHECK(value == found->second);
                ++compared;
            }
    CHECK(compared >= 50);
    CHECK(counters->get("Udp", "OutDatagrams") == 1);
    CHECK(counters->get("Udp", "NoPorts") == 1);
    CHECK(counters->get("Icmp", "OutDestUnreachs") == 1);
}

TEST_CASE("on the host, counters never go down and a loopback datagram counts", "[snmp][kernel]") {
    const auto before = SnmpCounters::read();
    REQUIRE(before.has_value());
    REQUIRE(before->get("Udp", "OutDatagrams").has_value());
    {
        const test::sockets::Fd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        REQUIRE(fd.fd >= 0);
        const auto to = test::sockets::loopback(9);
        REQUIRE(sendto(fd.fd, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 1);
    }
    const auto after = SnmpCounters::read();
    REQUIRE(after.has_value());
    REQUIRE(after->groups().size() == before->groups().size());
    for (const auto& group : before->groups())
        for (const auto& [name, value] : group.counters) {
            if (!is_counter(group.protocol, name)) continue;
            CAPTURE(group.protocol, name);
            const auto now = after->get(group.protocol, name);
            REQUIRE(now.has_value());
            CHECK(*now >= value);
        }
    CHECK(*after->get("Udp", "OutDatagrams") >= *before->get("Udp", "OutDatagrams") + 1);
}
