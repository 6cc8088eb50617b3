// Port numbers: parsing text, IANA categories, and the kernel's /proc settings.
#include <catch2/catch.hpp>

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "portlab/ports.hpp"

using namespace portlab;

TEST_CASE("a port written in decimal digits parses to its value", "[ports]") {
    auto [text, expected] = GENERATE(table<std::string, int>({
        {"0", 0}, {"1", 1}, {"22", 22}, {"80", 80}, {"080", 80}, {"1023", 1023}, {"1024", 1024},
        {"49151", 49151}, {"49152", 49152}, {"65535", 65535}, {"0000000000000000000000443", 443},
    }));
    CAPTURE(text);
    const auto port = parse_port_number(text);
    REQUIRE(port);
    CHECK(*port == expected);
}

TEST_CASE("every bad port text is an error with one line saying why", "[ports]") {
    auto [text, reason] = GENERATE(table<std::string, std::string>({
        {"", "empty"},
        {"70000", "out of range 0-65535"},
        {"65536", "out of range 0-65535"},
        {"99999999999999999999999", "out of range 0-65535"},
        {"-1", "negative"},
        {"-65535", "negative"},
        {"8o", "not a number"},
        {"+80", "not a number"},
        {" 80", "not a number"},
        {"80 ", "not a number"},
        {"\t80", "not a number"},
        {"0x50", "not a number"},
        {"1e3", "not a number"},
        {"80.0", "not a number"},
        {"-", "not a number"},
        {"--1", "not a number"},
        {"http", "not a number"},
        {"80/tcp", "not a number"},
        {"\xef\xbc\x98\xef\xbc\x90", "not a number"},  // fullwidth "80": digits, but not ASCII ones
        {std::string("8\0", 2), "not a number"},
    }));
    CAPTURE(text);
    const auto port = parse_port_number(text);
    REQUIRE_FALSE(port);
    CHECK_THAT(port.error().message, Catch::Contains(reason));
    CHECK(port.error().message.find('\n') == std::string::npos);
}

TEST_CASE("IANA's categories split 0-65535 at 1024 and 49152 (RFC 6335 section 6)", "[ports]") {
    auto [port, category, name] = GENERATE(table<int, PortCategory, std::string>({
        {0, PortCategory::well_known, "well-known"},
        {22, PortCategory::well_known, "well-known"},
        {1023, PortCategory::well_known, "well-known"},
        {1024, PortCategory::registered, "registered"},
        {8080, PortCategory::registered, "registered"},
        {49151, PortCategory::registered, "registered"},
        {49152, PortCategory::dynamic, "dynamic/private"},
        {65535, PortCategory::dynamic, "dynamic/private"},
    }));
    CAPTURE(port);
    CHECK(category_of(static_cast<Port>(port)) == category);
    CHECK(to_string(category) == name);
    CHECK(range_of(category).contains(static_cast<Port>(port)));
}

TEST_CASE("the three category ranges are contiguous and cover all 65536 ports", "[ports]") {
    CHECK(well_known_ports == PortRange{0, 1023});
    CHECK(registered_ports == PortRange{1024, 49151});
    CHECK(dynamic_ports == PortRange{49152, 65535});
    CHECK(well_known_ports.size() == 1024);
    CHECK(registered_ports.size() == 48128);
    CHECK(dynamic_ports.size() == 16384);
    CHECK(well_known_ports.size() + registered_ports.size() + dynamic_ports.size() == 65536);
    CHECK(PortRange{0, 65535}.size() == 65536);
    CHECK(PortRange{5, 4}.size() == 0);
    CHECK(PortRange{32768, 60999}.to_string() == "32768-60999");
}

TEST_CASE("overlap of two port ranges", "[ports]") {
    CHECK(overlap({32768, 60999}, dynamic_ports) == PortRange{49152, 60999});
    CHECK(overlap({1024, 65535}, dynamic_ports) == dynamic_ports);
    CHECK(overlap({1024, 49151}, dynamic_ports) == std::nullopt);
    CHECK(overlap({49152, 49152}, dynamic_ports) == PortRange{49152, 49152});
}

TEST_CASE("ip_local_port_range text parses however the blanks fall", "[ports][proc]") {
    auto [text, low, high] = GENERATE(table<std::string, int, int>({
        {"32768\t60999\n", 32768, 60999},
        {"1024 65535", 1024, 65535},
        {"  5000 \t 5000  \n\n", 5000, 5000},
        {"49152\t65535", 49152, 65535},
    }));
    CAPTURE(text);
    const auto range = parse_ephemeral_range(text);
    REQUIRE(range);
    CHECK(range->low == low);
    CHECK(range->high == high);
}

TEST_CASE("odd ip_local_port_range contents are errors, not guesses", "[ports][proc]") {
    auto [text, reason] = GENERATE(table<std::string, std::string>({
        {"", "two numbers"},
        {"\n", "two numbers"},
        {"32768\n", "two numbers"},
        {"32768 60999 7", "two numbers"},
        {"60999\t32768\n", "above its high end"},
        {"32768\t70000\n", "out of range"},
        {"-1 5", "negative"},
        {"a b", "not a number"},
        {"32768,60999", "two numbers"},
    }));
    CAPTURE(text);
    const auto range = parse_ephemeral_range(text);
    REQUIRE_FALSE(range);
    CHECK_THAT(range.error().message, Catch::Contains(reason));
}

TEST_CASE("ip_unprivileged_port_start text: one number 0-65535", "[ports][proc]") {
    CHECK(parse_unprivileged_port_start("1024\n").value() == 1024);
    CHECK(parse_unprivileged_port_start("0\n").value() == 0);
    CHECK(parse_unprivileged_port_start("\t65535").value() == 65535);
    auto [text, reason] = GENERATE(table<std::string, std::string>({
        {"", "one number"},
        {"1024 1025", "one number"},
        {"65536", "out of range"},
        {"-1", "negative"},
        {"abc", "not a number"},
    }));
    CAPTURE(text);
    const auto port = parse_unprivileged_port_start(text);
    REQUIRE_FALSE(port);
    CHECK_THAT(port.error().message, Catch::Contains(reason));
}

TEST_CASE("the /proc readers report what the kernel's files say", "[ports][proc][kernel]") {
    SECTION("ephemeral range, read here with fscanf") {
        std::FILE* file = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
        if (file == nullptr) {
            WARN("no /proc/sys/net/ipv4/ip_local_port_range here; nothing to compare");
            return;
        }
        int low = -1;
        int high = -1;
        const int fields = std::fscanf(file, "%d %d", &low, &high);
        std::fclose(file);
        REQUIRE(fields == 2);
        const auto range = read_ephemeral_range();
        REQUIRE(range);
        CHECK(range->low == low);
        CHECK(range->high == high);
    }
    SECTION("unprivileged port start, and the kernel keeps the ephemeral range above it") {
        std::ifstream file("/proc/sys/net/ipv4/ip_unprivileged_port_start");
        if (!file) {
            WARN("no ip_unprivileged_port_start (Linux before 4.11?); nothing to compare");
            return;
        }
        int start = -1;
        file >> start;
        const auto port = read_unprivileged_port_start();
        REQUIRE(port);
        CHECK(*port == start);
        // Linux refuses either sysctl write that would let the two overlap
        // (ipv4_local_port_range / ipv4_privileged_ports in net/ipv4/sysctl_net_ipv4.c).
        CHECK(read_ephemeral_range().value().low >= *port);
    }
}

TEST_CASE("a /proc file that cannot be read is an error naming it", "[ports][proc]") {
    const auto range = read_ephemeral_range("/nonexistent/ip_local_port_range");
    REQUIRE_FALSE(range);
    CHECK_THAT(range.error().message, Catch::Contains("/nonexistent/ip_local_port_range"));
    const auto start = read_unprivileged_port_start("/nonexistent/start");
    REQUIRE_FALSE(start);
    CHECK_THAT(start.error().message, Catch::Contains("/nonexistent/start"));
}

TEST_CASE("CAP_NET_BIND_SERVICE is bit 10 of the CapEff mask", "[ports][capability]") {
    auto [text, expected] = GENERATE(table<std::string, bool>({
        {"Name:\tx\nCapEff:\t0000000000000400\n", true},
        {"CapEff:\t00000000000003ff\n", false},
        {"CapInh:\t0000000000000400\nCapEff:\t0000000000000000\n", false},
        {"CapEff:\t000001ffffffffff", true},
        {"CapEff:\t000001FFFEFFFFFF\n", true},
    }));
    CAPTURE(text);
    const auto capable = parse_cap_net_bind_service(text);
    REQUIRE(capable);
    CHECK(*capable == expected);

    CHECK_FALSE(parse_cap_net_bind_service("Name:\tx\n"));
    CHECK_FALSE(parse_cap_net_bind_service("CapEff:\t0000zz0000000400\n"));
    CHECK_FALSE(parse_cap_net_bind_service("CapEff:\t\n"));
    CHECK_FALSE(parse_cap_net_bind_service("CapEff:\t00000000000000000400\n"));
}

TEST_CASE("this process's CAP_NET_BIND_SERVICE agrees with capget(2)", "[ports][capability][kernel]") {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    REQUIRE(syscall(SYS_capget, &header, data) == 0);
    const bool kernel_says = (data[CAP_NET_BIND_SERVICE / 32].effective >> (CAP_NET_BIND_SERVICE % 32)) & 1U;
    const auto capable = read_cap_net_bind_service();
    REQUIRE(capable);
    CHECK(*capable == kernel_says);
}
