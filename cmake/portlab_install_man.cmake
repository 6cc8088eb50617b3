# Installs the man pages made at build time (cmake/PortlabInstall.cmake runs this at install
# time): each page names build/share/portlab where --help found the lab's exercises; the
# installed page names PREFIX/share/portlab, PREFIX as given now (cmake --install --prefix,
# CPack's /usr). Then gzip -9, as Debian ships man pages; file(INSTALL) honours DESTDIR and
# lists each file in install_manifest.txt.
file(REMOVE_RECURSE "${PORTLAB_STAGING}")
file(MAKE_DIRECTORY "${PORTLAB_STAGING}")
set(installed_data_dir "${CMAKE_INSTALL_PREFIX}/${PORTLAB_DATA_DESTINATION}")
# help2man writes a '-' as '\-' in text, so replace both spellings.
string(REPLACE "-" "\\-" build_data_dir_roff "${PORTLAB_BUILD_DATA_DIR}")
string(REPLACE "-" "\\-" installed_data_dir_roff "${installed_data_dir}")

set(compressed)
foreach(page IN LISTS PORTLAB_MAN_PAGES)
  get_filename_component(page_name "${page}" NAME)
  file(READ "${page}" text)
  string(REPLACE "${build_data_dir_roff}" "${installed_data_dir_roff}" text "${text}")
  string(REPLACE "${PORTLAB_BUILD_DATA_DIR}" "${installed_data_dir}" text "${text}")
  file(WRITE "${PORTLAB_STAGING}/${page_name}" "${text}")
  file(ARCHIVE_CREATE OUTPUT "${PORTLAB_STAGING}/${page_name}.gz" PATHS "${PORTLAB_STAGING}/${page_name}"
       FORMAT raw COMPRESSION GZip COMPRESSION_LEVEL 9)
  list(APPEND compressed "${PORTLAB_STAGING}/${page_name}.gz")
endforeach()
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/${PORTLAB_MAN_DESTINATION}" TYPE FILE FILES ${compressed})
