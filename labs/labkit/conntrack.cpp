#include "labkit/conntrack.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace portlab::conntrack {
namespace {

// enum tcp_conntrack (linux/netfilter/nf_conntrack_tcp.h), named as conntrack -L names
// them (libnetfilter_conntrack's snprintf tables); 9 is TCP_CONNTRACK_LISTEN, printed SYN_SENT2.
constexpr std::array<const char*, 10> tcp_state_names{"NONE",       "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
                                                      "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",      "SYN_SENT2"};

std::string protocol_name(std::uint8_t number) {
    switch (number) {
        case IPPROTO_TCP: return "tcp";
        case IPPROTO_UDP: return "udp";
        case IPPROTO_ICMP: return "icmp";
        case IPPROTO_ICMPV6: return "icmpv6";
        case IPPROTO_SCTP: return "sctp";
        default: return std::to_string(number);
    }
}

IpAddress address_at(const nf_conntrack* ct, IpFamily family, nf_conntrack_attr v4, nf_conntrack_attr v6) {
    const auto* bytes = static_cast<const std::uint8_t*>(nfct_get_attr(ct, family == IpFamily::v4 ? v4 : v6));
    if (bytes == nullptr) return family == IpFamily::v4 ? IpAddress::any_v4() : IpAddress::any_v6();
    const auto address = IpAddress::from_bytes({bytes, family == IpFamily::v4 ? 4u : 16u});
    return address ? *address : IpAddress::any_v4();
}

Port port_at(const nf_conntrack* ct, nf_conntrack_attr attribute) {
    return nfct_attr_is_set(ct, attribute) > 0 ? ntohs(nfct_get_attr_u16(ct, attribute)) : Port{0};
}

Entry entry_of(const nf_conntrack* ct) {
    Entry entry;
    entry.family = nfct_get_attr_u8(ct, ATTR_L3PROTO) == AF_INET6 ? IpFamily::v6 : IpFamily::v4;
    entry.protocol_number = nfct_get_attr_u8(ct, ATTR_L4PROTO);
    entry.protocol = protocol_name(entry.protocol_number);
    entry.id = nfct_get_attr_u32(ct, ATTR_ID);
    entry.timeout_s = nfct_get_attr_u32(ct, ATTR_TIMEOUT);
    if (entry.protocol_number == IPPROTO_TCP && nfct_attr_is_set(ct, ATTR_TCP_STATE) > 0) {
        const auto state = nfct_get_attr_u8(ct, ATTR_TCP_STATE);
        entry.tcp_state = state < tcp_state_names.size() ? tcp_state_names[state] : std::to_string(state);
    }
    const bool ports = entry.protocol_number == IPPROTO_TCP || entry.protocol_number == IPPROTO_UDP ||
                       entry.protocol_number == IPPROTO_SCTP || entry.protocol_number == IPPROTO_UDPLITE;
    const auto f = entry.family;
    entry.original = {{address_at(ct, f, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC), ports ? port_at(ct, ATTR_ORIG_PORT_SRC) : Port{0}},
                      {address_at(ct, f, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST), ports ? port_at(ct, ATTR_ORIG_PORT_DST) : Port{0}}};
    entry.reply = {{address_at(ct, f, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC), ports ? port_at(ct, ATTR_REPL_PORT_SRC) : Port{0}},
                   {address_at(ct, f, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST), ports ? port_at(ct, ATTR_REPL_PORT_DST) : Port{0}}};
    const auto status = nfct_get_attr_u32(ct, ATTR_STATUS);
    entry.source_nat = (status & IPS_SRC_NAT) != 0;
    entry.destination_nat = (status & IPS_DST_NAT) != 0;
    entry.seen_reply = (status & IPS_SEEN_REPLY) != 0;
    entry.assured = (status & IPS_ASSURED) != 0;
    return entry;
}

int collect(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
    static_cast<std::vector<Entry>*>(data)->push_back(entry_of(ct));
    return NFCT_CB_CONTINUE;
}

}  // namespace

std::string Tuple::to_string() const { return source.to_string() + " -> " + destination.to_string(); }

Result<std::vector<Entry>> dump() {
    // nfct_open opens a NETLINK_NETFILTER socket: socket(2) ties it to the calling thread's
    // network namespace for its whole life.
    nfct_handle* handle = nfct_open(CONNTRACK, 0);
    if (handle == nullptr) return fail(std::string("cannot open a conntrack netlink socket: ") + std::strerror(errno),
                                       std::error_code(errno, std::system_category()));
    std::vector<Entry> entries;
    nfct_callback_register(handle, NFCT_T_ALL, collect, &entries);
    std::uint32_t family = AF_UNSPEC;  // IPv4 and IPv6 in one dump
    const int done = nfct_query(handle, NFCT_Q_DUMP, &family);
    const int error = errno;
    nfct_close(handle);
    if (done != 0) return fail(std::string("conntrack dump: ") + std::strerror(error), std::error_code(error, std::system_category()));
    return entries;
}

Result<Statistics> statistics() {
    // One header line of column names, then one line of hexadecimal counters per CPU
    // (ct_cpu_seq_show, nf_conntrack_standalone.c).
    std::ifstream file("/proc/thread-self/net/stat/nf_conntrack");
    std::string header;
    if (!file || !std::getline(file, header))
        return fail("cannot read /proc/thread-self/net/stat/nf_conntrack (is conntrack loaded in this namespace?)");
    std::vector<std::string> names;
    std::istringstream columns(header);
    for (std::string name; columns >> name;) names.push_back(name);
    std::map<std::string, std::uint64_t> sums;
    for (std::string line; std::getline(file, line);) {
        std::istringstream values(line);
        std::string value;
        for (std::size_t i = 0; i < names.size() && values >> value; ++i) sums[names[i]] += std::stoull(value, nullptr, 16);
    }
    return Statistics{sums["found"], sums["invalid"], sums["insert"], sums["insert_failed"], sums["drop"], sums["early_drop"]};
}

}  // namespace portlab::conntrack
