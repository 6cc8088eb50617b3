# The Debian package (tools/setup --package, or cpack in build/): what cmake --install puts
# under /usr (cmake/PortlabInstall.cmake), as build/package/portlab_VERSION_ARCH.deb.
#   version   project(portlab VERSION ...) in CMakeLists.txt, the one place it is written
#             (PORTLAB_VERSION in the programs comes from there too);
#   Depends   computed: dpkg-shlibdeps reads the libraries each program links (libc6,
#             libpcap0.8, libnftables1, libglfw3, ...), as a Debian package build does;
#   Recommends the peers the labs tell students to run beside them.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME portlab)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
    "Numbered labs open real TCP and UDP sockets on loopback or in private network namespaces and narrate what the kernel did; portlab-sim replays the same stories step by step in a model, and portlab-viz animates them. Man pages, bash completion, each lab's page of exercises and example traces are included.")
set(CPACK_PACKAGE_CONTACT "portlab maintainers <portlab@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/package)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # portlab_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nmap, tcpdump, tshark, iproute2")
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)

include(CPack)
