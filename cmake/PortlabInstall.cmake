# Install like a Debian tool (docs/install.md):
#
#   PREFIX/bin/                                   every lab, portlab-sim, portlab-viz
#   PREFIX/share/portlab/docs/, README.md         the guide and each lab's page
#   PREFIX/share/portlab/examples/SCENARIO.jsonl  a trace of each simulator scenario
#   PREFIX/share/portlab/scenarios/NAME.scenario  the built-in scenarios as files to copy and edit
#   PREFIX/share/man/man1/PROGRAM.1.gz            a man page per program   } both made from
#   PREFIX/share/bash-completion/completions/     completion per program   } its --help
#
# Programs find their data with portlab::find_data_file (include/portlab/data_files.hpp):
# PREFIX/share/portlab beside PREFIX/bin. The build tree has the same shape, so build/bin/
# programs find build/share/portlab: docs/ there is a link to the source tree's docs/, and
# the examples, man pages and completions are made there at build time.
include(GNUInstallDirs)

set(PORTLAB_DATA_DESTINATION ${CMAKE_INSTALL_DATADIR}/portlab)
set(PORTLAB_BUILD_SHARE ${CMAKE_BINARY_DIR}/share)
set(PORTLAB_BUILD_DATA_DIR ${PORTLAB_BUILD_SHARE}/portlab)
file(MAKE_DIRECTORY ${PORTLAB_BUILD_DATA_DIR})
file(CREATE_LINK ${CMAKE_SOURCE_DIR}/docs ${PORTLAB_BUILD_DATA_DIR}/docs SYMBOLIC)
# The scenario files (docs/scenarios.md); the simulator has them compiled in as well.
if(PORTLAB_SCENARIO_FILES)
  file(CREATE_LINK ${CMAKE_SOURCE_DIR}/sim/scenarios ${PORTLAB_BUILD_DATA_DIR}/scenarios SYMBOLIC)
  install(FILES ${PORTLAB_SCENARIO_FILES} DESTINATION ${PORTLAB_DATA_DESTINATION}/scenarios)
endif()

get_property(portlab_programs GLOBAL PROPERTY PORTLAB_LAB_TARGETS)
foreach(program IN ITEMS portlab-sim portlab-viz)
  if(TARGET ${program})
    list(APPEND portlab_programs ${program})
  endif()
endforeach()

install(TARGETS ${portlab_programs} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${PORTLAB_DATA_DESTINATION}/docs)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${PORTLAB_DATA_DESTINATION})

# ---- example traces: portlab-sim --scenario NAME --trace, one per scenario it lists ----
if(TARGET portlab-sim)
  set(examples_stamp ${CMAKE_BINARY_DIR}/portlab_examples.stamp)
  add_custom_command(
    OUTPUT ${examples_stamp}
    COMMAND ${CMAKE_COMMAND} -DSIM=$<TARGET_FILE:portlab-sim> -DOUT=${PORTLAB_BUILD_DATA_DIR}/examples
            -DSTAMP=${examples_stamp} -P ${CMAKE_CURRENT_LIST_DIR}/portlab_examples.cmake
    DEPENDS portlab-sim ${CMAKE_CURRENT_LIST_DIR}/portlab_examples.cmake
    COMMENT "Example traces of every simulator scenario in share/portlab/examples/"
    VERBATIM)
  add_custom_target(portlab_examples ALL DEPENDS ${examples_stamp})
  install(DIRECTORY ${PORTLAB_BUILD_DATA_DIR}/examples/ DESTINATION ${PORTLAB_DATA_DESTINATION}/examples)
endif()

# ---- a man page and a bash completion per program, from its --help (tools/program-docs) ----
# The page of examples: docs/labs/NN_name.md for labNN_name, else docs/<sim|visualizer>.md.
find_program(HELP2MAN help2man)
if(NOT HELP2MAN)
  message(WARNING "help2man not found: no man pages or completions (tools/setup installs it)")
endif()
set(portlab_man_pages)
foreach(program IN LISTS portlab_programs)
  if(NOT HELP2MAN)
    break()
  endif()
  if(program MATCHES "^lab([0-9][0-9]_.*)$")
    set(doc_page ${CMAKE_SOURCE_DIR}/docs/labs/${CMAKE_MATCH_1}.md)
  elseif(program STREQUAL "portlab-sim")
    set(doc_page ${CMAKE_SOURCE_DIR}/docs/sim.md)
  else()
    set(doc_page ${CMAKE_SOURCE_DIR}/docs/visualizer.md)
  endif()
  set(man_page ${PORTLAB_BUILD_SHARE}/man/man1/${program}.1)
  set(completion ${PORTLAB_BUILD_SHARE}/bash-completion/completions/${program})
  add_custom_command(
    OUTPUT ${man_page} ${completion}
    COMMAND ${CMAKE_SOURCE_DIR}/tools/program-docs $<TARGET_FILE:${program}> ${doc_page} ${PROJECT_VERSION}
            ${man_page} ${completion}
    DEPENDS ${program} ${doc_page} ${CMAKE_SOURCE_DIR}/tools/program-docs
    COMMENT "Man page and bash completion of ${program} from its --help"
    VERBATIM)
  add_custom_target(${program}_docs ALL DEPENDS ${man_page} ${completion})
  list(APPEND portlab_man_pages ${man_page})
  install(FILES ${completion} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
endforeach()

# A page made in the build tree names build/share/portlab (where --help found the lab's
# exercises); installed, it names PREFIX/share/portlab, PREFIX as given at install time
# (cmake --install --prefix, CPack's /usr). Then gzip, as Debian ships man pages.
if(portlab_man_pages)
  install(CODE "
    set(PORTLAB_MAN_PAGES \"${portlab_man_pages}\")
    set(PORTLAB_BUILD_DATA_DIR \"${PORTLAB_BUILD_DATA_DIR}\")
    set(PORTLAB_DATA_DESTINATION \"${PORTLAB_DATA_DESTINATION}\")
    set(PORTLAB_MAN_DESTINATION \"${CMAKE_INSTALL_MANDIR}/man1\")
    set(PORTLAB_STAGING \"${CMAKE_BINARY_DIR}/man-install-staging\")
    include(\"${CMAKE_CURRENT_LIST_DIR}/portlab_install_man.cmake\")")
endif()
