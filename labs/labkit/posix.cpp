#include "labkit/posix.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "labkit/labkit.hpp"

namespace portlab::labkit {
namespace {

Result<Endpoint> ask_kernel(int fd, const char* call, int (*ask)(int, sockaddr*, socklen_t*)) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    if (ask(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
        return fail(std::string(call) + ": " + errno_text(errno), {errno, std::generic_category()});
    if (address.sin_family != AF_INET) return fail(std::string(call) + ": not an IPv4 socket");
    return endpoint_of(address);
}

}  // namespace

Fd::~Fd() {
    if (fd_ >= 0) ::close(fd_);
}

std::string errno_text(int errno_value) { return errno_name(std::error_code(errno_value, std::generic_category())); }

sockaddr_in socket_address(const Endpoint& endpoint) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(endpoint.port);
    std::memcpy(&address.sin_addr, endpoint.address.bytes().data(), 4);
    return address;
}

Endpoint endpoint_of(const sockaddr_in& address) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(&address.sin_addr);
    return {IpAddress::v4(bytes[0], bytes[1], bytes[2], bytes[3]), ntohs(address.sin_port)};
}

Result<Endpoint> local_endpoint(int fd) { return ask_kernel(fd, "getsockname", ::getsockname); }
Result<Endpoint> peer_endpoint(int fd) { return ask_kernel(fd, "getpeername", ::getpeername); }

std::optional<int> connect_within(int fd, const Endpoint& to, std::chrono::milliseconds wait,
                                  const std::function<void()>& sent) {
    const auto address = socket_address(to);
    int error = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
    if (sent) sent();
    if (error != EINPROGRESS) return error;
    pollfd waiting{fd, POLLOUT, 0};
    if (poll(&waiting, 1, static_cast<int>(wait.count())) == 0) return std::nullopt;
    socklen_t length = sizeof error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    return error;
}

}  // namespace portlab::labkit
