// An option given an empty value is a usage error, not "not given" (issue 12, item 7):
// `lab02 --connect ''` ran both halves, `lab10 --read ''` captured live, `lab10 --pcap ''`
// wrote nothing.
#include <catch2/catch.hpp>

#include "support.hpp"

TEST_CASE("an empty option value is a usage error: one line, exit 2", "[labkit][usage]") {
    const auto [lab, args] = GENERATE(table<std::string, std::string>({{"lab02_tcp_listen_connect", "--connect ''"},
                                                                        {"lab10_packet_headers", "--read ''"},
                                                                        {"lab10_packet_headers", "--pcap ''"},
                                                                        {"lab01_ports_and_services", "--trace '' 22"},
                                                                        {"lab01_ports_and_services", "--services '' 22"}}));
    CAPTURE(lab, args);
    const auto run = portlab::test::LabBinary(lab).run(args);
    portlab::test::check_usage_error(run, lab);
}
