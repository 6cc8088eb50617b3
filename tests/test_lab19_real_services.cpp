// Lab 19: real services on their well-known ports, in private namespaces. The judges are
// peers, never the lab's words: tshark decodes the DNS messages of the lab's capture
// (RFC 1035 as Wireshark reads it), curl and nmap -sV run in the client's namespace while the
// lab pauses, ss lists the server's sockets, getservbyport(3) names the ports, and at each
// pause the server's sockets rebuilt from the lab's trace are held to the kernel's.

#include <catch2/catch.hpp>

#include <netdb.h>
#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "namespace_witness.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const std::string lab = test::bin_path("lab19_real_services");

using test::tool_path;

// The name getservbyport(3) gives a TCP or UDP port: the same /etc/services the lab reads.
std::string service_name(int port, const char* protocol) {
    const servent* entry = getservbyport(htons(static_cast<std::uint16_t>(port)), protocol);
    return entry ? entry->s_name : "";
}

// One DNS message as tshark decodes it from the capture.
struct DnsSeen {
    std::string transport;  // "udp" or "tcp"
    bool response = false;
    bool truncated = false;
    int answers = 0;  // ANCOUNT
    std::string name;
    std::vector<std::string> addresses;
};

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, separator)) parts.push_back(part);
    if (!text.empty() && text.back() == separator) parts.emplace_back();
    return parts;
}

std::vector<DnsSeen> dns_in_capture(const std::string& pcap) {
    const auto result = test::run_command(tool_path("tshark") + " -n -r " + test::shell_quote(pcap) +
                                              " -Y dns -T fields -E separator='|' -E aggregator=, -e udp.srcport -e "
                                              "dns.flags.response -e dns.flags.truncated -e dns.count.answers "
                                              "-e dns.qry.name -e dns.a 2>/dev/null",
                                          60);
    INFO("tshark said: " << result.out << result.err);
    REQUIRE(result.exit_code == 0);
    std::vector<DnsSeen> seen;
    std::istringstream lines(result.out);
    for (std::string line; std::getline(lines, line);) {
        const auto fields = split(line, '|');
        REQUIRE(fields.size() == 6);
        DnsSeen dns{fields[0].empty() ? "tcp" : "udp", fields[1] == "1" || fields[1] == "True",
                    fields[2] == "1" || fields[2] == "True", std::stoi(fields[3]), fields[4], {}};
        if (!fields[5].empty()) dns.addresses = split(fields[5], ',');
        seen.push_back(dns);
    }
    return seen;
}

const DnsSeen* response_for(const std::vector<DnsSeen>& seen, const std::string& transport, const std::string& name) {
    for (const auto& dns : seen)
        if (dns.response && dns.transport == transport && dns.name == name) return &dns;
    return nullptr;
}

}  // namespace

TEST_CASE("lab19: DNS over UDP then TCP, HTTP to curl and an SSH banner on port 25, as tshark, curl, nmap and ss see them",
          "[lab19][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const test::TempFile report("lab19.json");
    const test::TempFile capture("lab19.pcap");
    const test::TempFile trace("lab19.jsonl");
    test::PausedRun lab_run(lab, {"--json", "--pcap", capture.path, "--trace", trace.path}, std::chrono::seconds(100),
                            report.path);
    std::string listening, named, curl, by_number, nmap;
    std::vector<std::size_t> compared;
    int pauses = 0;
    const int status = lab_run.run([&](int pause) {
        pauses = pause;
        // The lab's namespace child is the server; the client is its child node.
        const pid_t server = test::namespace_child(lab_run.pid());
        REQUIRE(server > 0);
        // The server's sockets as its trace rebuilds them, and as its kernel lists them.
        const auto replayed = test::replayed_sockets(test::replay_of(trace.path), {"client"});
        test::check_same_sockets(replayed, test::sockets_in_namespace_of(server, /*udp=*/true),
                                 "pause " + std::to_string(pause));
        compared.push_back(replayed.size());
        if (pause == 2) {  // after step 2: the services are up
            listening = test::run_in_namespace_of(server, {tool_path("ss"), "-Htuln"});
            named = test::run_in_namespace_of(server, {tool_path("ss"), "-Htl"});
        }
        if (pause == 6) {  // the last pause, after step 6: the services still run
            const auto client = test::network_nodes(lab_run.pid(), {{"client", "192.0.2.1/"}}).at("client");
            curl = test::run_in_namespace_of(client, {tool_path("curl"), "-s", "-i", "--max-time", "5", "http://192.0.2.2/"});
            // A connect scan first: it resets its connection at once, often before the
            // server's accept() returns it; the service must go on answering after that.
            by_number = test::run_in_namespace_of(client, {tool_path("nmap"), "-sT", "-Pn", "-n", "-p", "25", "192.0.2.2"});
            nmap = test::run_in_namespace_of(client, {tool_path("nmap"), "-sT", "-sV", "-Pn", "-n", "--version-light",
                                                      "-p", "25", "192.0.2.2"});
        }
    });
    INFO(lab_run.stderr_text());
    REQUIRE(status == 0);
    REQUIRE(pauses == 6);  // pause n comes after step n

    // The server's trace told its kernel's sockets at every pause: after step 2, one UDP
    // socket and three listeners, and no connection left over from any step.
    REQUIRE(compared.size() == 6);
    CHECK(compared[0] == 0);
    for (std::size_t i = 1; i < compared.size(); ++i) CHECK(compared[i] == 4);

    // ss in the server's namespace: the four sockets, and the names /etc/services gives them.
    INFO("ss -tuln:\n" << listening << "ss -tl:\n" << named);
    CHECK(std::regex_search(listening, std::regex(R"(udp\s+UNCONN\s+\d+\s+\d+\s+0\.0\.0\.0:53\s)")));
    for (const auto* port : {"53", "80", "25"})
        CHECK(std::regex_search(listening, std::regex(std::string(R"(tcp\s+LISTEN\s+\d+\s+\d+\s+0\.0\.0\.0:)") + port + R"(\s)")));
    const auto smtp = service_name(25, "tcp");
    REQUIRE(smtp == "smtp");
    CHECK(named.find("0.0.0.0:" + smtp) != std::string::npos);

    // curl, a real client, got the page from port 80.
    INFO("curl:\n" << curl);
    CHECK(curl.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(std::regex_search(curl, std::regex(R"(You are 192\.0\.2\.1:\d+\.)")));

    // nmap -sV reads SSH on the port its own services file calls smtp. (Port 80 is left to
    // curl: nmap waits 6 s for a banner there, then asks, and this small server's answer
    // matches none of its HTTP signatures closely enough to be quick.)
    INFO("nmap -sT:\n" << by_number << "nmap -sV:\n" << nmap);
    CHECK(std::regex_search(by_number, std::regex(R"(25/tcp\s+open\s+smtp\s)")));  // a name from a file
    CHECK(std::regex_search(nmap, std::regex(R"(25/tcp\s+open\s+ssh\s)")));

    // tshark decodes the capture as DNS: one answer over UDP for www, a truncated UDP answer
    // for big with the records that fit in 512 bytes, and all 40 over TCP.
    const auto dns = dns_in_capture(capture.path);
    const auto* small = response_for(dns, "udp", "www.portlab.example");
    REQUIRE(small != nullptr);
    CHECK_FALSE(small->truncated);
    CHECK(small->addresses == std::vector<std::string>{"192.0.2.2"});
    const auto* cut = response_for(dns, "udp", "big.portlab.example");
    REQUIRE(cut != nullptr);
    CHECK(cut->truncated);
    CHECK(cut->answers == 29);  // 12 + 25 (the question) + 29 * 16 = 501 bytes; a 30th would make 517
    const auto* whole = response_for(dns, "tcp", "big.portlab.example");
    REQUIRE(whole != nullptr);
    CHECK_FALSE(whole->truncated);
    REQUIRE(whole->addresses.size() == 40);
    CHECK(whole->addresses.front() == "198.51.100.1");
    CHECK(whole->addresses.back() == "198.51.100.40");

    // The lab's report says what the peers said.
    std::ifstream file(report.path);
    const auto facts = json::parse(file);
    CHECK(facts.at("dns_udp").at("answers") == json::array({"192.0.2.2"}));
    CHECK(facts.at("dns_big").at("udp").at("truncated") == true);
    CHECK(facts.at("dns_big").at("udp").at("answers").size() == 29);
    CHECK(facts.at("dns_big").at("tcp").at("answers").size() == 40);
    const auto& banners = facts.at("banners");
    REQUIRE(banners.size() == 2);
    CHECK(banners[0].at("port") == 25);
    CHECK(banners[0].at("etc_services") == smtp);
    CHECK(banners[0].at("speaks") == "ssh");
    CHECK(banners[1].at("etc_services") == service_name(80, "tcp"));
    CHECK(banners[1].at("speaks") == "http");
}

TEST_CASE("lab19 --records 29: the answer fits in 512 bytes, so no query goes over TCP", "[lab19][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const test::TempFile capture("lab19-29.pcap");
    const auto run = test::run_command(test::shell_quote(lab) + " --records 29 --json --pcap " + test::shell_quote(capture.path), 90);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    const auto dns = dns_in_capture(capture.path);
    const auto* big = response_for(dns, "udp", "big.portlab.example");
    REQUIRE(big != nullptr);
    CHECK_FALSE(big->truncated);
    CHECK(big->addresses.size() == 29);
    CHECK(response_for(dns, "tcp", "big.portlab.example") == nullptr);
    for (const auto& seen : dns) CHECK(seen.transport == "udp");
}

TEST_CASE("lab19 interrupted while its services run leaves no namespace process behind", "[lab19][netns]") {
    REQUIRE(test::run_command("unshare -rn true", 10).exit_code == 0);
    const int signal_number = GENERATE(SIGINT, SIGKILL);
    CAPTURE(signal_number);
    test::PausedRun lab_run(lab, {}, std::chrono::seconds(60));
    std::map<std::string, pid_t> nodes;
    const int status = lab_run.run([&](int pause) {
        if (pause != 3) return;  // after step 3: the services' thread runs, a capture is open
        nodes = test::network_nodes(lab_run.pid(), {{"client", "192.0.2.1/"}});
        REQUIRE(kill(lab_run.pid(), signal_number) == 0);
    });
    CHECK(status == -1);  // ended by the signal
    REQUIRE(nodes.size() == 2);
    // The client's node dies with the body (PR_SET_PDEATHSIG), the body with the lab.
    for (const auto& [name, pid] : nodes) {
        CAPTURE(name);
        bool gone = false;
        for (int i = 0; i < 50 && !gone; ++i) {
            gone = kill(pid, 0) == -1 && errno == ESRCH;
            if (!gone) usleep(100'000);
        }
        CHECK(gone);
    }
}

TEST_CASE("lab19 rejects bad arguments with exit status 2", "[lab19]") {
    for (const auto* bad : {"--records 0", "--records 251", "--records many", "--wait 10", "--wait 20000", "--pcap", "--nonsense"}) {
        CAPTURE(bad);
        test::check_usage_error(test::run_command(test::shell_quote(lab) + " " + bad, 10), "lab19_real_services");
    }
}

TEST_CASE("lab19 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab19][conventions]") {
    test::check_lab_conventions({"lab19_real_services", false, ""});
}
