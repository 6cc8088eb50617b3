# Example traces, one per simulator scenario: cmake -DSIM=portlab-sim -DOUT=DIR -DSTAMP=FILE -P this.
# The scenarios are the ones `portlab-sim --list` names (first word of each line), so a new
# scenario gets its example without a list kept here. portlab-viz opens each file.
execute_process(COMMAND "${SIM}" --list OUTPUT_VARIABLE listing RESULT_VARIABLE status TIMEOUT 30)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "portlab-sim --list failed (${status})")
endif()
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}")
string(REGEX MATCHALL "(^|\n)[^ \n]+" names "${listing}")
foreach(name IN LISTS names)
  string(STRIP "${name}" name)
  execute_process(COMMAND "${SIM}" --scenario "${name}" --trace "${OUT}/${name}.jsonl"
                  OUTPUT_QUIET RESULT_VARIABLE status TIMEOUT 30)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "portlab-sim --scenario ${name} failed (${status})")
  endif()
endforeach()
file(TOUCH "${STAMP}")
