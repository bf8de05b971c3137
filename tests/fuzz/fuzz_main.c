/* One libFuzzer binary per target: WH_FUZZ_FN names its function
 * (tests/fuzz/targets.h); scripts/fuzz.sh builds and runs them. */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return WH_FUZZ_FN(data, size); }
