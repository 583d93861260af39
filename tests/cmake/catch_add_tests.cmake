# Run after each build of a Catch2 test binary (see catch_tests.cmake):
# writes OUTPUT, a CTest file with one test per test case of EXECUTABLE,
# labelled LABELS plus its Catch tags. Lists arrive with '|' for ';'.
cmake_minimum_required(VERSION 3.18)
foreach(list LABELS PROPERTIES TAG_PROPERTIES)
  string(REPLACE "|" ";" ${list} "${${list}}")
endforeach()

# The test names of EXECUTABLE matching `spec` (all when empty), one per line.
function(test_names out spec)
  execute_process(COMMAND "${EXECUTABLE}" ${spec} --list-test-names-only
                  OUTPUT_VARIABLE listing RESULT_VARIABLE rc WORKING_DIRECTORY "${WORKING_DIRECTORY}")
  # Catch exits with the number of tests listed; below zero is a crash.
  if(rc LESS 0 OR NOT rc MATCHES "^[0-9]+$")
    message(FATAL_ERROR "${EXECUTABLE} --list-test-names-only failed (${rc}):\n${listing}")
  endif()
  # A ';' would split a name in two, and each half would run no test and pass.
  string(REGEX MATCHALL "[^\n]*;[^\n]*" bad "${listing}")
  if(bad)
    string(REPLACE ";" "<;>" bad "${bad}")
    message(FATAL_ERROR "${EXECUTABLE}: a test name contains ';', which CMake cannot carry "
                        "in a list (it would become two tests that run nothing): rename it\n"
                        "${bad}")
  endif()
  # A name starting with '-' reaches Catch as an option, not a test.
  string(REGEX MATCHALL "(^|\n)-[^\n]*" bad "${listing}")
  if(bad)
    message(FATAL_ERROR "${EXECUTABLE}: a test name starts with '-', which Catch reads as "
                        "an option: rename it\n${bad}")
  endif()
  string(REPLACE "\n" ";" lines "${listing}")
  list(FILTER lines EXCLUDE REGEX "^$")
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

test_names(names "")
if(NOT names)
  message(FATAL_ERROR "${EXECUTABLE} lists no test cases")
endif()

# Tag → the tests carrying it, turned round into test → labels.
execute_process(COMMAND "${EXECUTABLE}" --list-tags OUTPUT_VARIABLE tag_listing
                WORKING_DIRECTORY "${WORKING_DIRECTORY}")
string(REGEX MATCHALL "\\[[^]\n]+\\]" tags "${tag_listing}")
list(REMOVE_DUPLICATES tags)
foreach(tag IN LISTS tags)
  string(REGEX REPLACE "^\\[(.*)\\]$" "\\1" label "${tag}")
  if(label MATCHES "^[.!]")  # hidden or special ([.], [!mayfail]): not a label
    continue()
  endif()
  test_names(tagged "${tag}")
  foreach(name IN LISTS tagged)
    string(MD5 key "${name}")
    list(APPEND labels_${key} ${label})
  endforeach()
endforeach()

# Tests by tag for TAG_PROPERTIES (tag, property, value triples).
list(LENGTH TAG_PROPERTIES n)
math(EXPR remainder "${n} % 3")
if(NOT remainder EQUAL 0)
  message(FATAL_ERROR "TAG_PROPERTIES must be triples (tag property value): ${TAG_PROPERTIES}")
endif()

set(script "")
foreach(name IN LISTS names)
  string(MD5 key "${name}")
  set(test "${PREFIX}: ${name}")
  # Catch's test spec: ',', '[' and ']' would mean "or" and tags.
  set(spec "${name}")
  foreach(char , [ ])
    string(REPLACE "${char}" "\\${char}" spec "${spec}")
  endforeach()
  set(labels ${LABELS} ${labels_${key}})
  string(APPEND script
         "add_test([==[${test}]==] [==[${EXECUTABLE}]==] [==[${spec}]==])\n"
         "set_tests_properties([==[${test}]==] PROPERTIES WORKING_DIRECTORY "
         "[==[${WORKING_DIRECTORY}]==] LABELS [==[${labels}]==]")
  foreach(p IN LISTS PROPERTIES)
    string(APPEND script " [==[${p}]==]")
  endforeach()
  set(i 0)
  while(i LESS n)
    math(EXPR j "${i} + 1")
    math(EXPR k "${i} + 2")
    list(GET TAG_PROPERTIES ${i} tag)
    list(GET TAG_PROPERTIES ${j} property)
    list(GET TAG_PROPERTIES ${k} value)
    if(tag IN_LIST labels_${key})
      string(APPEND script " ${property} [==[${value}]==]")
    endif()
    math(EXPR i "${i} + 3")
  endwhile()
  string(APPEND script ")\n")
endforeach()
file(WRITE "${OUTPUT}" "${script}")
