// The floor for a TCP connect scan: one blocking connect() after another, one fresh
// socket per port, nothing else. bench_port_scanner times lab08 against it.
//
//   bench_connect_loop [LOW-HIGH] [ADDRESS]      default 1-65535 127.0.0.1
//
// Prints one JSON line: {"elapsed_ms": ..., "ports": N, "open": [...], "self_connects": n}.
// A connect that met itself (source port == scanned port, TCP simultaneous open) is
// not counted open, as in lab08 and nmap. Open sockets are closed with RST
// (SO_LINGER {1,0}) so the loop leaves no TIME-WAIT either.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    unsigned low = 1;
    unsigned high = 65535;
    const char* address_text = "127.0.0.1";
    if (argc > 1 && std::sscanf(argv[1], "%u-%u", &low, &high) != 2) {
        std::fprintf(stderr, "usage: bench_connect_loop [LOW-HIGH] [IPv4 loopback address]\n");
        return 2;
    }
    if (argc > 2) address_text = argv[2];
    sockaddr_in target{};
    target.sin_family = AF_INET;
    if (inet_pton(AF_INET, address_text, &target.sin_addr) != 1 || (ntohl(target.sin_addr.s_addr) >> 24) != 127 ||
        low < 1 || high > 65535 || low > high) {
        std::fprintf(stderr, "bench_connect_loop: a range within 1-65535 and a 127.x.y.z address, please\n");
        return 2;
    }

    std::vector<unsigned> open;
    unsigned self_connects = 0;
    const auto start = std::chrono::steady_clock::now();
    for (unsigned port = low; port <= high; ++port) {
        target.sin_port = htons(static_cast<std::uint16_t>(port));
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            std::perror("socket");
            return 1;
        }
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) == 0) {
            sockaddr_in local{};
            socklen_t length = sizeof(local);
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
            if (local.sin_port == target.sin_port && local.sin_addr.s_addr == target.sin_addr.s_addr) ++self_connects;
            else open.push_back(port);
            const linger abort_on_close{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
        }
        ::close(fd);
    }
    const double elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

    std::string list;
    for (const unsigned port : open) list += (list.empty() ? "" : ",") + std::to_string(port);
    std::printf("{\"elapsed_ms\": %.3f, \"ports\": %u, \"open\": [%s], \"self_connects\": %u}\n", elapsed_ms,
                high - low + 1, list.c_str(), self_connects);
    return 0;
}
