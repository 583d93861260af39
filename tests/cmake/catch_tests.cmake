# Each Catch2 test case of a test binary as a CTest test of its own, so a
# failure names its test and tests run in parallel; each gets the labels
# given here plus one per Catch tag ([chaos] → label chaos). Catch2 v2's
# catch_discover_tests gives no labels, hence this.
#
#   lestash_catch_tests(TARGET PREFIX integration LABELS integration
#                       PROPERTIES TIMEOUT 300
#                       TAG_PROPERTIES chaos PROCESSORS 2 ...)
#
# TAG_PROPERTIES is a list of triples: tag, property, value, set on every
# test carrying that tag. The list is made after each build of TARGET, by
# running it with --list-test-names-only and --list-tags
# (catch_add_tests.cmake); a test name must not contain ';' (CMake's list
# separator), which the script refuses.
set(LESTASH_CATCH_ADD_TESTS ${CMAKE_CURRENT_LIST_DIR}/catch_add_tests.cmake)

function(lestash_catch_tests target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "PREFIX" "LABELS;PROPERTIES;TAG_PROPERTIES")
  set(tests_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake)
  set(include_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake)
  # Lists travel to the script with '|' for ';' (add_custom_command would
  # split them into separate arguments).
  string(REPLACE ";" "|" labels "${ARG_LABELS}")
  string(REPLACE ";" "|" properties "${ARG_PROPERTIES}")
  string(REPLACE ";" "|" tag_properties "${ARG_TAG_PROPERTIES}")
  add_custom_command(
    TARGET ${target} POST_BUILD
    BYPRODUCTS ${tests_file}
    COMMAND ${CMAKE_COMMAND} -D "EXECUTABLE=$<TARGET_FILE:${target}>"
            -D "PREFIX=${ARG_PREFIX}" -D "LABELS=${labels}" -D "PROPERTIES=${properties}"
            -D "TAG_PROPERTIES=${tag_properties}" -D "WORKING_DIRECTORY=${CMAKE_CURRENT_BINARY_DIR}"
            -D "OUTPUT=${tests_file}" -P ${LESTASH_CATCH_ADD_TESTS}
    VERBATIM)
  file(WRITE ${include_file}
       "if(EXISTS \"${tests_file}\")\n"
       "  include(\"${tests_file}\")\n"
       "else()\n"
       "  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)\n"
       "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${include_file})
endfunction()
