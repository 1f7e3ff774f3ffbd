// wp-certgen: writes a test root CA and SPIFFE identities into a directory (see certgen.h).
#include "support/certgen.h"

int main(int argc, char** argv) {
  return wp::testing::certgen_main(argc, argv);
}
