// CMalloc: glibc's malloc tuning (mallopt), which the Glibc module does not import. The
// coordinator process uses it to give freed message buffers back to the system.
#include <malloc.h>
