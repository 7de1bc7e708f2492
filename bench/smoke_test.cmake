# smoke_test.cmake — CTest smoke test of darn-bench: a --quick run on the CPU backend with tiny shapes,
# then checks that the JSON parses (CMake's own JSON parser, so CI needs no python) and holds a
# throughput row for every config and direction and latency rows, none with an error; the CSV must
# have a line per result. Usage: cmake -DBENCH=path/to/darn-bench -DOUT=dir -P smoke_test.cmake
cmake_minimum_required(VERSION 3.20)
file(MAKE_DIRECTORY ${OUT})
execute_process(
  COMMAND ${BENCH} --backend cpu --quick --elems 16Ki --n 256,1000,4096 --latency-m 1,3 --latency-n 512
          --copy-mib 4 --cache-mib 1 --json ${OUT}/bench.json --csv ${OUT}/bench.csv --commit smoke
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "darn-bench exited with ${rc}")
endif()

file(READ ${OUT}/bench.json json)
string(JSON n_rows ERROR_VARIABLE err LENGTH "${json}" rows)
if(err)
  message(FATAL_ERROR "bench.json is not well-formed JSON with a rows list: ${err}")
endif()
string(JSON n_lat LENGTH "${json}" latency)
string(JSON n_peers LENGTH "${json}" peers)
string(JSON copy GET "${json}" copy_GBps)
string(JSON commit GET "${json}" commit)
# 7 configs x 3 N: fwd everywhere, bwd in 6 configs, bwd_mask in 1 -> 3 * (7 + 6 + 1) = 42 rows; the latency
# table: 2 M x 1 N x the same 14 directions = 28.
if(NOT n_rows EQUAL 42 OR NOT n_lat EQUAL 28 OR NOT n_peers EQUAL 0 OR NOT commit STREQUAL "smoke")
  message(FATAL_ERROR "bench.json: ${n_rows} rows (want 42), ${n_lat} latency rows (want 28), "
                      "${n_peers} peers, commit '${commit}'")
endif()
# Every config, the parallel residual's included, has its rows (a config dropped from the table would
# otherwise pass with another's rows counted twice).
foreach(cfg train infer f32 layernorm mask fp8 parallel)
  string(FIND "${json}" "\"config\": \"${cfg}\"" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "bench.json has no row of config ${cfg}")
  endif()
endforeach()
if(NOT copy GREATER 0)
  message(FATAL_ERROR "bench.json: copy_GBps = ${copy}")
endif()
math(EXPR last "${n_rows} - 1")
foreach(i RANGE ${last})
  string(JSON row GET "${json}" rows ${i})
  string(JSON has_error ERROR_VARIABLE no_error GET "${row}" error)
  if(NOT no_error)
    message(FATAL_ERROR "row ${i} has an error: ${row}")
  endif()
  foreach(key config M N dir ms GBps pct bytes)
    string(JSON value GET "${row}" ${key})
  endforeach()
  if(NOT value GREATER 0)
    message(FATAL_ERROR "row ${i}: bytes = ${value}")
  endif()
endforeach()

file(STRINGS ${OUT}/bench.csv csv_lines)
list(LENGTH csv_lines n_csv)
if(NOT n_csv EQUAL 71)
  message(FATAL_ERROR "bench.csv has ${n_csv} lines, want 71 (header + 42 + 28)")
endif()

find_program(PYTHON3 python3)
if(PYTHON3)
  execute_process(COMMAND ${PYTHON3} -m json.tool ${OUT}/bench.json OUTPUT_QUIET RESULT_VARIABLE py_rc)
  if(NOT py_rc EQUAL 0)
    message(FATAL_ERROR "python3 -m json.tool rejects bench.json")
  endif()
endif()
message(STATUS "darn-bench smoke: ${n_rows} rows, ${n_lat} latency rows, copy ${copy} GB/s")
