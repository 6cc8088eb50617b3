// libFuzzer harness: a services(5) file (issue 12, deliverable 4). Oracles: parsing never
// throws; every entry kept is found again by its port and protocol, and by its name (the
// first line wins, as in glibc, so what is found has the same port or the same name).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "portlab/services.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    const auto table = portlab::ServiceTable::parse(in);
    for (const auto& entry : table.entries()) {
        const auto* by_port = table.find_by_port(entry.port, entry.protocol);
        if (by_port == nullptr || by_port->port != entry.port) std::abort();
        const auto* by_name = table.find_by_name(entry.name, entry.protocol);
        if (by_name == nullptr || by_name->protocol != entry.protocol) std::abort();
    }
    return 0;
}
