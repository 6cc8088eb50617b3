#include "portlab/sim/errno.hpp"

#include <cerrno>

namespace portlab::sim {

std::string_view errno_name(Errno error) noexcept {
    switch (error) {
        case Errno::eaddrinuse: return "EADDRINUSE";
        case Errno::eacces: return "EACCES";
        case Errno::eaddrnotavail: return "EADDRNOTAVAIL";
        case Errno::econnrefused: return "ECONNREFUSED";
        case Errno::etimedout: return "ETIMEDOUT";
        case Errno::econnreset: return "ECONNRESET";
        case Errno::einval: return "EINVAL";
        case Errno::eisconn: return "EISCONN";
        case Errno::ealready: return "EALREADY";
        case Errno::enotconn: return "ENOTCONN";
        case Errno::edestaddrreq: return "EDESTADDRREQ";
        case Errno::eagain: return "EAGAIN";
        case Errno::epipe: return "EPIPE";
        case Errno::eopnotsupp: return "EOPNOTSUPP";
        case Errno::ebadf: return "EBADF";
        case Errno::eafnosupport: return "EAFNOSUPPORT";
        case Errno::ehostunreach: return "EHOSTUNREACH";
        case Errno::enetunreach: return "ENETUNREACH";
        case Errno::enoprotoopt: return "ENOPROTOOPT";
    }
    return "EINVAL";
}

std::string_view errno_message(Errno error) noexcept {
    switch (error) {
        case Errno::eaddrinuse: return "Address already in use";
        case Errno::eacces: return "Permission denied";
        case Errno::eaddrnotavail: return "Cannot assign requested address";
        case Errno::econnrefused: return "Connection refused";
        case Errno::etimedout: return "Connection timed out";
        case Errno::econnreset: return "Connection reset by peer";
        case Errno::einval: return "Invalid argument";
        case Errno::eisconn: return "Transport endpoint is already connected";
        case Errno::ealready: return "Operation already in progress";
        case Errno::enotconn: return "Transport endpoint is not connected";
        case Errno::edestaddrreq: return "Destination address required";
        case Errno::eagain: return "Resource temporarily unavailable";
        case Errno::epipe: return "Broken pipe";
        case Errno::eopnotsupp: return "Operation not supported";
        case Errno::ebadf: return "Bad file descriptor";
        case Errno::eafnosupport: return "Address family not supported by protocol";
        case Errno::ehostunreach: return "No route to host";
        case Errno::enetunreach: return "Network is unreachable";
        case Errno::enoprotoopt: return "Protocol not available";
    }
    return "Invalid argument";
}

int errno_value(Errno error) noexcept {
    switch (error) {
        case Errno::eaddrinuse: return EADDRINUSE;
        case Errno::eacces: return EACCES;
        case Errno::eaddrnotavail: return EADDRNOTAVAIL;
        case Errno::econnrefused: return ECONNREFUSED;
        case Errno::etimedout: return ETIMEDOUT;
        case Errno::econnreset: return ECONNRESET;
        case Errno::einval: return EINVAL;
        case Errno::eisconn: return EISCONN;
        case Errno::ealready: return EALREADY;
        case Errno::enotconn: return ENOTCONN;
        case Errno::edestaddrreq: return EDESTADDRREQ;
        case Errno::eagain: return EAGAIN;
        case Errno::epipe: return EPIPE;
        case Errno::eopnotsupp: return EOPNOTSUPP;
        case Errno::ebadf: return EBADF;
        case Errno::eafnosupport: return EAFNOSUPPORT;
        case Errno::ehostunreach: return EHOSTUNREACH;
        case Errno::enetunreach: return ENETUNREACH;
        case Errno::enoprotoopt: return ENOPROTOOPT;
    }
    return EINVAL;
}

std::optional<Errno> errno_from_value(int value) noexcept {
    for (int i = 0; i <= static_cast<int>(Errno::enoprotoopt); ++i)
        if (errno_value(static_cast<Errno>(i)) == value) return static_cast<Errno>(i);
    return std::nullopt;
}

}  // namespace portlab::sim
