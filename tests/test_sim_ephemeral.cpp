// Ephemeral port selection: each strategy's documented properties (RFC 6056 3.3;
// Linux net/ipv4/inet_hashtables.c, inet_connection_sock.c, udp.c), the free-port
// bitmap against a plain std::set, and exhaustion as an error, not a hang.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "labkit/netns.hpp"

#include "portlab/sim/ephemeral.hpp"
#include "portlab/sim/scenarios.hpp"

using namespace portlab;
using namespace portlab::sim;

namespace {

const IpAddress local = IpAddress::v4(10, 0, 0, 1);
const Endpoint web{IpAddress::v4(10, 0, 0, 2), 80};
const Endpoint other{IpAddress::v4(192, 0, 2, 7), 443};

struct Pool {
    EphemeralConfig config;
    EphemeralState state;
    FreePorts free;
    Rng rng{99};

    std::optional<PortChoice> take(PortPurpose purpose, std::optional<Endpoint> remote = web) {
        auto choice = choose_ephemeral_port(config, state, free, PortRequest{purpose, local, remote}, rng, 12345);
        if (choice) free.take(choice->port);
        return choice;
    }
};

}  // namespace

TEST_CASE("the free-port bitmap answers like a std::set of free ports", "[sim][ephemeral]") {
    FreePorts free;
    std::set<Port> reference;
    for (std::uint32_t p = 0; p <= 65535; ++p) reference.insert(static_cast<Port>(p));
    Rng rng{5};
    for (int i = 0; i < 60000; ++i) {
        const Port p = static_cast<Port>(rng.below(65536));
        free.take(p);
        reference.erase(p);
    }
    for (int i = 0; i < 200; ++i) {
        const Port low = static_cast<Port>(rng.below(65536));
        const Port high = static_cast<Port>(low + rng.below(65536 - low));
        const PortRange range{low, high};
        CAPTURE(low, high);
        const auto expected = reference.lower_bound(low);
        const std::optional<Port> want =
            expected != reference.end() && *expected <= high ? std::optional<Port>(*expected) : std::nullopt;
        CHECK(free.next_free(low, high, std::nullopt) == want);
        std::size_t count = 0;
        std::size_t evens = 0;
        for (auto it = reference.lower_bound(low); it != reference.end() && *it <= high; ++it) {
            ++count;
            if (*it % 2 == 0) ++evens;
        }
        CHECK(free.count_free(range, std::nullopt) == count);
        CHECK(free.count_free(range, trace::Parity::even) == evens);
        if (count > 0) {
            const std::size_t n = rng.below(static_cast<std::uint32_t>(count));
            CHECK(free.nth_free(range, std::nullopt, n) == *std::next(reference.lower_bound(low), static_cast<long>(n)));
        }
    }
}

TEST_CASE("every strategy stays in its range, never repeats a port in use, and reports exhaustion", "[sim][ephemeral]") {
    const auto strategy = GENERATE(EphemeralStrategy::sequential, EphemeralStrategy::random, EphemeralStrategy::rfc6056_alg1,
                                   EphemeralStrategy::rfc6056_alg3, EphemeralStrategy::rfc6056_alg4, EphemeralStrategy::linux);
    const auto range = GENERATE(PortRange{40000, 40009}, iana_ephemeral_range, linux_ephemeral_range);
    const auto purpose = GENERATE(PortPurpose::tcp_connect, PortPurpose::tcp_bind_zero, PortPurpose::udp);
    CAPTURE(to_string(strategy), range.to_string(), static_cast<int>(purpose));
    Pool pool;
    pool.config = EphemeralConfig{range, strategy};
    std::set<Port> taken;
    bool all_in_range = true;
    bool repeated = false;
    for (std::size_t i = 0; i < range.size(); ++i) {
        const auto choice = pool.take(purpose);
        REQUIRE(choice);
        all_in_range = all_in_range && range.contains(choice->port);
        repeated = repeated || !taken.insert(choice->port).second;
    }
    CHECK(all_in_range);
    CHECK_FALSE(repeated);
    CHECK(taken.size() == range.size());
    CHECK_FALSE(pool.take(purpose).has_value());  // full: an answer, not a loop
    pool.free.release(*taken.begin());
    CHECK(pool.take(purpose)->port == *taken.begin());  // the one freed port is found
}

TEST_CASE("Linux connect() takes even ports first, stepping 2 to 16 from a per-destination base", "[sim][ephemeral][linux]") {
    Pool pool;
    std::vector<Port> ports;
    for (int i = 0; i < 200; ++i) ports.push_back(pool.take(PortPurpose::tcp_connect)->port);
    for (const Port p : ports) CHECK(p % 2 == 0);
    // table_perturb[index] += max(i, 2*random(0..7)) + 2, with i = 0 when the first port is free.
    for (std::size_t i = 1; i < ports.size(); ++i) {
        const std::uint32_t step = (ports[i] + 28232U - ports[i - 1]) % 28232U;
        CAPTURE(i, ports[i - 1], ports[i]);
        CHECK(step >= 2);
        CHECK(step <= 16);
    }
    // Another destination hashes to another base.
    const Port elsewhere = pool.take(PortPurpose::tcp_connect, other)->port;
    const std::uint32_t distance = (elsewhere + 28232U - ports.back()) % 28232U;
    CHECK(distance > 16);
}

TEST_CASE("Linux bind(0) takes odd ports and UDP takes ports of either parity", "[sim][ephemeral][linux]") {
    Pool pool;
    for (int i = 0; i < 100; ++i) CHECK(pool.take(PortPurpose::tcp_bind_zero, std::nullopt)->port % 2 == 1);
    std::set<int> parities;
    for (int i = 0; i < 100; ++i) parities.insert(pool.take(PortPurpose::udp, std::nullopt)->port % 2);
    CHECK(parities.size() == 2);
}

TEST_CASE("Linux connect() falls back to odd ports only when the even ones are gone", "[sim][ephemeral][linux]") {
    Pool pool;
    pool.config.range = PortRange{40000, 40009};
    std::vector<int> parities;
    for (int i = 0; i < 10; ++i) parities.push_back(pool.take(PortPurpose::tcp_connect)->port % 2);
    CHECK(parities == std::vector<int>{0, 0, 0, 0, 0, 1, 1, 1, 1, 1});
}

TEST_CASE("RFC 6056 algorithm 3: one destination gets consecutive ports, another an unrelated offset", "[sim][ephemeral]") {
    Pool pool;
    pool.config.strategy = EphemeralStrategy::rfc6056_alg3;
    const Port first = pool.take(PortPurpose::tcp_connect)->port;
    const Port second = pool.take(PortPurpose::tcp_connect)->port;
    // 3.3.3: port = min + (next_ephemeral + offset) % num, and next_ephemeral++ per try.
    CHECK((second + 28232U - first) % 28232U == 1U);
    const Port third = pool.take(PortPurpose::tcp_connect, other)->port;
    CHECK((third + 28232U - second) % 28232U != 1U);  // F() of another destination, another offset
}

TEST_CASE("RFC 6056 algorithm 4: each destination bucket keeps its own counter", "[sim][ephemeral]") {
    Pool pool;
    pool.config.strategy = EphemeralStrategy::rfc6056_alg4;
    const Port a1 = pool.take(PortPurpose::tcp_connect)->port;
    const Port b1 = pool.take(PortPurpose::tcp_connect, other)->port;
    const Port a2 = pool.take(PortPurpose::tcp_connect)->port;
    // 3.3.4: port = min + (offset + table[index]) % num; table[index]++ per try, so the
    // destination's next port follows its last one whatever other destinations did.
    CHECK((a2 + 28232U - a1) % 28232U == 1U);
    CHECK(b1 != a1 + 1);
}

TEST_CASE("sequential allocation counts up by one and wraps at the range's end", "[sim][ephemeral]") {
    Pool pool;
    pool.config = EphemeralConfig{PortRange{40000, 40004}, EphemeralStrategy::sequential};
    std::vector<Port> ports;
    for (int i = 0; i < 5; ++i) ports.push_back(pool.take(PortPurpose::tcp_connect)->port);
    CHECK(ports == std::vector<Port>{40000, 40001, 40002, 40003, 40004});
    pool.free.release(40001);
    CHECK(pool.take(PortPurpose::tcp_connect)->port == 40001);
}

TEST_CASE("allocation in a 99% full pool finds the remaining free ports", "[sim][ephemeral]") {
    for (const auto strategy : {EphemeralStrategy::linux, EphemeralStrategy::random, EphemeralStrategy::rfc6056_alg1,
                                EphemeralStrategy::rfc6056_alg3, EphemeralStrategy::rfc6056_alg4, EphemeralStrategy::sequential}) {
        CAPTURE(to_string(strategy));
        Pool pool;
        pool.config.strategy = strategy;
        std::set<Port> left;
        for (Port p = 32768; p <= 60999; ++p) {
            if (p % 100 == 7) left.insert(p);
            else pool.free.take(p);
        }
        std::set<Port> got;
        for (std::size_t i = 0; i < left.size(); ++i) got.insert(pool.take(PortPurpose::tcp_connect)->port);
        CHECK(got == left);
        CHECK_FALSE(pool.take(PortPurpose::tcp_connect).has_value());
    }
}

TEST_CASE("the exhaustion scenario: eight ports, eight connections to one destination, then EADDRNOTAVAIL, and another destination still gets a port", "[sim][ephemeral][scenario]") {
    const auto story = run_scenario("ephemeral-exhaustion");
    REQUIRE(story);
    std::set<Port> assigned;
    std::vector<std::string> errors;
    std::map<std::uint32_t, FourTuple> established;  // client socket -> its connection
    for (const auto& event : story->events()) {
        if (event.host != "client") continue;
        if (const auto* e = std::get_if<trace::EphemeralAssigned>(&event.body)) assigned.insert(e->port);
        if (const auto* f = std::get_if<trace::CallFailed>(&event.body)) errors.push_back(f->call + " " + f->errno_name);
    }
    for (const Socket* s : story->world().hosts[0].sockets())
        if (s->state == TcpState::established) established[s->id.value] = FourTuple{*s->local, *s->remote};
    CHECK(assigned == std::set<Port>{40000, 40001, 40002, 40003, 40004, 40005, 40006, 40007});
    CHECK(errors == std::vector<std::string>{"connect EADDRNOTAVAIL"});
    // Nine connections stand: eight to port 80, and one to 8080 on a port one of them holds.
    REQUIRE(established.size() == 9);
    std::map<Port, int> users;
    for (const auto& [id, tuple] : established) ++users[tuple.local.port];
    CHECK(users.size() == 8);
    CHECK(std::count_if(users.begin(), users.end(), [](const auto& u) { return u.second == 2; }) == 1);
}

namespace {

// connect() after connect() from one host to 127.0.0.1:first (nine times) and then to
// 127.0.0.1:second, with the ephemeral range 40000-40007: "ok" or the errno's name, and
// for the last one whether its port is one an earlier connection holds.
std::vector<std::string> outcomes_in_model(Port first, Port second) {
    HostOptions options;
    options.ephemeral.range = PortRange{40000, 40007};
    Simulator sim{5};
    const HostId host = sim.add_host("host", {IpAddress::v4(10, 0, 0, 1)}, options);
    for (const Port port : {first, second}) {
        const SocketRef listener = sim.socket(host, Protocol::tcp).value();
        REQUIRE(sim.bind(listener, {IpAddress::loopback_v4(), port}));
        REQUIRE(sim.listen(listener, 64));
    }
    std::vector<std::string> outcomes;
    std::set<Port> held;
    for (int i = 0; i < 10; ++i) {
        const SocketRef s = sim.socket(host, Protocol::tcp).value();
        const auto done = sim.connect(s, {IpAddress::loopback_v4(), i < 9 ? first : second});
        sim.run_for(10 * milliseconds);
        if (!done) {
            outcomes.emplace_back(errno_name(done.error()));
            continue;
        }
        const Port port = sim.find_socket(s)->local->port;
        outcomes.emplace_back(i < 9 ? "ok" : held.contains(port) ? "ok, a port in use" : "ok, a free port");
        held.insert(port);
    }
    return outcomes;
}

// The same on this machine's kernel, in a private namespace whose range is 40000-40007.
std::vector<std::string> outcomes_in_kernel(Port first, Port second) {
    NetnsSettings settings;
    settings.ephemeral_range = PortRange{40000, 40007};
    const auto facts = run_in_private_netns(
        [&]() -> nlohmann::json {
            std::vector<int> fds;
            const auto loopback = [](Port port) {
                sockaddr_in address{};
                address.sin_family = AF_INET;
                address.sin_port = htons(port);
                address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                return address;
            };
            for (const Port port : {first, second}) {
                const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
                const sockaddr_in address = loopback(port);
                if (::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 || ::listen(listener, 64) != 0)
                    return {{"error", std::string("listener: ") + std::strerror(errno)}};
                fds.push_back(listener);
            }
            nlohmann::json outcomes = nlohmann::json::array();
            std::set<Port> held;
            for (int i = 0; i < 10; ++i) {
                const int s = ::socket(AF_INET, SOCK_STREAM, 0);
                fds.push_back(s);
                const sockaddr_in to = loopback(i < 9 ? first : second);
                if (::connect(s, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
                    const auto known = errno_from_value(errno);
                    outcomes.push_back(known ? std::string(errno_name(*known)) : std::string(std::strerror(errno)));
                    continue;
                }
                sockaddr_in bound{};
                socklen_t length = sizeof bound;
                ::getsockname(s, reinterpret_cast<sockaddr*>(&bound), &length);
                const Port port = ntohs(bound.sin_port);
                outcomes.push_back(i < 9 ? "ok" : held.contains(port) ? "ok, a port in use" : "ok, a free port");
                held.insert(port);
            }
            for (const int fd : fds) ::close(fd);
            return {{"outcomes", outcomes}};
        },
        settings);
    REQUIRE(facts);
    INFO(facts->dump());
    REQUIRE_FALSE(facts->contains("error"));
    return facts->at("outcomes").get<std::vector<std::string>>();
}

}  // namespace

TEST_CASE("the ephemeral range limits connections per destination, as this machine's kernel does", "[sim][ephemeral][kernel]") {
    // Eight ports: eight connections to 127.0.0.1:7000, the ninth refused, and a tenth to
    // 127.0.0.1:7001, another 4-tuple, served by a port already in use.
    const std::vector<std::string> kernel = outcomes_in_kernel(7000, 7001);
    CHECK(kernel == std::vector<std::string>{"ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "EADDRNOTAVAIL", "ok, a port in use"});
    CHECK(outcomes_in_model(7000, 7001) == kernel);
}
