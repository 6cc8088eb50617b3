#pragma once
// Plain POSIX sockets, for the labs that need the exact call, errno and timing of each
// step (a scan's probe, a raw socket, a state watched through sock_diag) rather than
// Asio's view of them. IPv4 only: those labs run on 127.0.0.1 or inside a namespace.

#include <netinet/in.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab::labkit {

// A file descriptor that closes itself; move-only. Fd() or Fd(-1) holds none.
class Fd {
public:
    explicit Fd(int fd = -1) noexcept : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        std::swap(fd_, other.fd_);  // ours closes when `other` goes
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool ok() const noexcept { return fd_ >= 0; }

private:
    int fd_;
};

// "ECONNREFUSED": the name of an errno value (errno_name for std::generic_category).
[[nodiscard]] std::string errno_text(int errno_value);

// An IPv4 endpoint as the socket calls take it (AF_INET, network byte order).
// Precondition: endpoint.address.is_v4().
[[nodiscard]] sockaddr_in socket_address(const Endpoint& endpoint);
[[nodiscard]] Endpoint endpoint_of(const sockaddr_in& address);
// What the kernel says an IPv4 socket's own end (getsockname) or its peer's end
// (getpeername) is; the error names the call and the errno.
[[nodiscard]] Result<Endpoint> local_endpoint(int fd);
[[nodiscard]] Result<Endpoint> peer_endpoint(int fd);

// connect() on a non-blocking TCP socket, and its answer within `wait`: 0 when connected,
// connect()'s errno (ECONNREFUSED: a RST came back; EHOSTUNREACH: an ICMP error), or
// nullopt when nothing came back in time (the socket is still in SYN-SENT, retransmitting).
// `sent` is called as soon as connect() returned, while the socket still holds the port the
// kernel chose for it (a refused connect() gives it back).
[[nodiscard]] std::optional<int> connect_within(int fd, const Endpoint& to, std::chrono::milliseconds wait,
                                                const std::function<void()>& sent = {});

}  // namespace portlab::labkit
