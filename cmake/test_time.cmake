# QPO_TEST_TIME_SCALE: the one knob for every time limit of the tests. ctest's TIMEOUT of each
# test (qpo_test_timeout below) is multiplied by it, and the harness compiles it in as the
# default factor for the tests' own deadlines (tests/harness/pgtest.h, qpo_test_seconds), which
# the environment variable of the same name overrides at run time. 1 normally;
# `./qpo.sh test-valgrind` configures its build with a larger one because memcheck runs the
# tests and the qpo processes they start tens of times slower. ctest has no timeout multiplier
# of its own, hence the configure-time value.
set(QPO_TEST_TIME_SCALE 1 CACHE STRING "Multiplier for every time limit of the tests (valgrind)")
if(NOT QPO_TEST_TIME_SCALE MATCHES "^[1-9][0-9]*$")
  message(FATAL_ERROR "QPO_TEST_TIME_SCALE must be a whole number >= 1, not '${QPO_TEST_TIME_SCALE}'")
endif()

# qpo_test_timeout(TEST SECONDS): the test's ctest TIMEOUT, scaled.
function(qpo_test_timeout test seconds)
  math(EXPR scaled "${seconds} * ${QPO_TEST_TIME_SCALE}")
  set_tests_properties(${test} PROPERTIES TIMEOUT ${scaled})
endfunction()
