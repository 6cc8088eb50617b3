// Service names: parsing services(5) text, the built-in services, and resolving "http/tcp".
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netdb.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "portlab/services.hpp"
#include "portlab/text.hpp"

using namespace portlab;

namespace {

const std::string fixture = std::string(PORTLAB_FIXTURES) + "/services_sample";

ServiceTable fixture_table(std::vector<std::string>* skipped = nullptr) {
    std::ifstream in(fixture);
    REQUIRE(in);
    return ServiceTable::parse(in, skipped);
}

}  // namespace

TEST_CASE("the fixture's good lines become entries, in file order", "[services]") {
    const auto services = fixture_table();
    // Read off tests/fixtures/services_sample by hand, following services(5).
    const std::vector<ServiceEntry> expected = {
        {"ssh", {}, 22, Protocol::tcp},
        {"domain", {}, 53, Protocol::tcp},
        {"domain", {}, 53, Protocol::udp},
        {"http", {"www", "www-http"}, 80, Protocol::tcp},
        {"indented", {"ping-alias"}, 7, Protocol::tcp},
        {"sink", {"discard", "null"}, 9, Protocol::udp},
        {"glued", {}, 11, Protocol::tcp},
        {"dup-port", {}, 80, Protocol::tcp},
        {"http", {}, 8080, Protocol::tcp},
        {"crlf", {"crlf-alias"}, 30, Protocol::tcp},
        {"zero", {}, 0, Protocol::udp},
        {"max", {}, 65535, Protocol::tcp},
    };
    const auto entries = services.entries();
    REQUIRE(entries.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CAPTURE(i, expected[i].name);
        CHECK(entries[i] == expected[i]);
    }
}

TEST_CASE("lines that cannot be understood are skipped and each one is reported", "[services]") {
    std::vector<std::string> skipped;
    (void)fixture_table(&skipped);
    // Blank lines, comments and whitespace-only lines are not "skipped": they are fine.
    const std::vector<std::pair<int, std::string>> expected = {
        {12, "out of range"},     // 70000/tcp
        {13, "port/protocol"},    // "25" has no /protocol
        {14, "unknown protocol"},  // "26/"
        {15, "unknown protocol"},  // sctp
        {16, "no port/protocol"},  // just a name
        {17, "port/protocol"},    // "garbage line here !!!"
        {18, "negative"},         // -1/tcp
    };
    REQUIRE(skipped.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CAPTURE(skipped[i]);
        CHECK_THAT(skipped[i], Catch::StartsWith("line " + std::to_string(expected[i].first) + ": "));
        CHECK_THAT(skipped[i], Catch::Contains(expected[i].second));
    }
}

TEST_CASE("lookups by name, alias and port follow glibc: first line wins", "[services]") {
    const auto services = fixture_table();
    SECTION("by name, with and without protocol") {
        REQUIRE(services.find_by_name("domain") != nullptr);
        CHECK(services.find_by_name("domain")->protocol == Protocol::tcp);  // first in the file
        CHECK(services.find_by_name("domain", Protocol::udp)->port == 53);
        CHECK(services.find_by_name("ssh", Protocol::udp) == nullptr);
        CHECK(services.find_by_name("http", Protocol::tcp)->port == 80);  // not the later 8080 line
        CHECK(services.find_by_name("nosuch") == nullptr);
        CHECK(services.find_by_name("HTTP") == nullptr);  // getservbyname is case-sensitive too
    }
    SECTION("by alias, answering with the official name") {
        CHECK(services.find_by_name("www-http")->name == "http");
        CHECK(services.find_by_name("null", Protocol::udp)->name == "sink");
        CHECK(services.find_by_name("crlf-alias")->port == 30);  // the \r is not part of the alias
        CHECK(services.find_by_name("crlf-alias\r") == nullptr);
    }
    SECTION("by port and protocol") {
        CHECK(services.find_by_port(80, Protocol::tcp)->name == "http");  // not dup-port
        CHECK(services.find_by_port(53, Protocol::udp)->name == "domain");
        CHECK(services.find_by_port(22, Protocol::udp) == nullptr);
        CHECK(services.find_by_port(0, Protocol::udp)->name == "zero");
        CHECK(services.find_by_port(65535, Protocol::tcp)->name == "max");
        CHECK(services.find_by_port(8080, Protocol::tcp)->name == "http");
        CHECK(services.find_by_port(5672, Protocol::tcp) == nullptr);  // the sctp line was skipped
    }
    SECTION("a copied table answers from its own entries") {
        std::optional<ServiceTable> original = fixture_table();
        const ServiceTable copy = *original;
        original.reset();
        CHECK(copy.find_by_name("www")->port == 80);
        CHECK(copy.find_by_port(22, Protocol::tcp)->name == "ssh");
    }
}

TEST_CASE("garbage never crashes the parser", "[services]") {
    std::string garbage("\x00\x01\xff\xfe/\t/tcp\n", 11);
    garbage += std::string(100000, 'x') + " 1/tcp\n";
    garbage += "a /\nb 1/\nc /tcp\nd 99999999999999999999/udp\ne 5/udp/tcp\n#\n\n\r\n";
    std::istringstream in(garbage);
    std::vector<std::string> skipped;
    const auto services = ServiceTable::parse(in, &skipped);
    CHECK(services.entries().size() == 1);  // only the long name with 1/tcp is a valid line
    CHECK(skipped.size() == 6);
}

TEST_CASE("text::split_on keeps empty pieces, as nft's lists and /etc/services' columns need", "[text]") {
    using V = std::vector<std::string_view>;
    CHECK(text::split_on("new,established", ',') == V{"new", "established"});
    CHECK(text::split_on("a,b,,c", ',') == V{"a", "b", "", "c"});
    CHECK(text::split_on(",syn,", ',') == V{"", "syn", ""});
    CHECK(text::split_on("", '|') == V{""});
    CHECK(text::split_on("fin|syn", ',') == V{"fin|syn"});
}

TEST_CASE("the built-in table holds IANA's assignments for the best-known ports", "[services][fallback]") {
    const auto services = ServiceTable::fallback();
    CHECK(services.is_fallback());
    // From IANA's service name and port number registry.
    auto [name, port, protocol] = GENERATE(table<std::string, int, Protocol>({
        {"ftp-data", 20, Protocol::tcp}, {"ftp", 21, Protocol::tcp}, {"ssh", 22, Protocol::tcp},
        {"telnet", 23, Protocol::tcp}, {"smtp", 25, Protocol::tcp}, {"domain", 53, Protocol::tcp},
        {"domain", 53, Protocol::udp}, {"http", 80, Protocol::tcp}, {"pop3", 110, Protocol::tcp},
        {"nntp", 119, Protocol::tcp}, {"ntp", 123, Protocol::udp}, {"imap", 143, Protocol::tcp},
        {"snmp", 161, Protocol::udp}, {"irc", 194, Protocol::tcp}, {"https", 443, Protocol::tcp},
        {"https", 443, Protocol::udp}, {"tftp", 69, Protocol::udp}, {"submission", 587, Protocol::tcp},
    }));
    CAPTURE(name, port);
    const auto* by_port = services.find_by_port(static_cast<Port>(port), protocol);
    REQUIRE(by_port != nullptr);
    CHECK(by_port->name == name);
    const auto* by_name = services.find_by_name(name, protocol);
    REQUIRE(by_name != nullptr);
    CHECK(by_name->port == port);
}

TEST_CASE("the built-in table knows the Unix aliases (www, imap2)", "[services][fallback]") {
    const auto services = ServiceTable::fallback();
    CHECK(services.find_by_name("www")->port == 80);
    CHECK(services.find_by_name("imap2")->port == 143);
    CHECK(services.find_by_port(22, Protocol::udp) == nullptr);  // ssh is TCP only in practice
}

TEST_CASE("/etc/services as we read it answers as glibc's getservbyname/getservbyport", "[services][libc]") {
    const auto services = ServiceTable::load();
    if (!services) {
        WARN("no /etc/services here: " << services.error().message);
        return;
    }
    CHECK_FALSE(services->is_fallback());
    CHECK(services->source() == "/etc/services");
    REQUIRE_FALSE(services->entries().empty());
    for (const auto& entry : services->entries()) {
        const std::string protocol(to_string(entry.protocol));
        CAPTURE(entry.name, entry.port, protocol);
        const servent* by_port = getservbyport(htons(entry.port), protocol.c_str());
        REQUIRE(by_port != nullptr);
        CHECK(services->find_by_port(entry.port, entry.protocol)->name == by_port->s_name);
        for (const auto& name : entry.aliases) {
            const servent* by_alias = getservbyname(name.c_str(), protocol.c_str());
            REQUIRE(by_alias != nullptr);
            CHECK(services->find_by_name(name, entry.protocol)->port == ntohs(static_cast<std::uint16_t>(by_alias->s_port)));
        }
        const servent* by_name = getservbyname(entry.name.c_str(), protocol.c_str());
        REQUIRE(by_name != nullptr);
        CHECK(services->find_by_name(entry.name, entry.protocol)->port == ntohs(static_cast<std::uint16_t>(by_name->s_port)));
    }
}

TEST_CASE("system_or_fallback says where its names came from", "[services]") {
    const auto services = ServiceTable::system_or_fallback();
    if (std::ifstream("/etc/services")) {
        CHECK(services.source() == "/etc/services");
        CHECK_FALSE(services.is_fallback());
    } else {
        CHECK(services.is_fallback());
    }
    const auto missing = ServiceTable::load("/nonexistent/services");
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/services"));
}

TEST_CASE("port specs resolve from numbers, names and name/protocol", "[services][spec]") {
    const auto services = fixture_table();
    using P = std::optional<Protocol>;
    auto [text, port, protocol, name] = GENERATE(table<std::string, int, P, std::string>({
        {"80", 80, P{}, "http"},
        {"22", 22, P{}, "ssh"},
        {"53/udp", 53, Protocol::udp, "domain"},
        {"http", 80, P{}, "http"},
        {"www", 80, P{}, "http"},
        {"http/tcp", 80, Protocol::tcp, "http"},
        {"domain/udp", 53, Protocol::udp, "domain"},
        {"8080/udp", 8080, Protocol::udp, ""},
        {"8080/tcp", 8080, Protocol::tcp, "http"},
        {"12345", 12345, P{}, ""},
        {"9/UDP", 9, Protocol::udp, "sink"},
    }));
    CAPTURE(text);
    const auto spec = resolve_port_spec(text, services);
    REQUIRE(spec);
    CHECK(spec->port == port);
    CHECK(spec->protocol == protocol);
    CHECK(spec->service_name == name);
}

TEST_CASE("bad port specs are one-line errors", "[services][spec]") {
    const auto services = fixture_table();
    auto [text, reason] = GENERATE(table<std::string, std::string>({
        {"foo", "unknown service name 'foo'"},
        {"http/sctp", "unknown protocol 'sctp'"},
        {"http/", "unknown protocol ''"},
        {"http/tcp/udp", "unknown protocol"},
        {"ssh/udp", "listed for tcp, not udp"},
        {"70000", "out of range 0-65535"},
        {"70000/tcp", "out of range 0-65535"},
        {"-1", "negative"},
        {"", "empty"},
        {"/tcp", "empty"},
        {"8o", "not a number"},
        {"+80", "not a number"},
    }));
    CAPTURE(text);
    const auto spec = resolve_port_spec(text, services);
    REQUIRE_FALSE(spec);
    CHECK_THAT(spec.error().message, Catch::Contains(reason));
    CHECK(spec.error().message.find('\n') == std::string::npos);
}

TEST_CASE("an unknown name says which list it was looked up in", "[services][spec]") {
    CHECK(resolve_port_spec("foo", ServiceTable::fallback()).error().message ==
          "unknown service name 'foo' (not in the built-in table)");
    const auto system = ServiceTable::load();
    if (system)
        CHECK(resolve_port_spec("foo", *system).error().message == "unknown service name 'foo' (not in /etc/services)");
}

TEST_CASE("a service name may start with a digit (RFC 6335 section 5.1)", "[services][spec]") {
    std::istringstream in("3com-tsmux 106/tcp\n");
    const auto services = ServiceTable::parse(in);
    const auto spec = resolve_port_spec("3com-tsmux", services);
    REQUIRE(spec);
    CHECK(spec->port == 106);
}
