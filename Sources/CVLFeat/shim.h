// CVLFeat: VLFeat 0.9.21's encoders, the baseline of the encoding benchmark and
// the interoperability reference of SEMANTICS.md. Only codebook-bench links it.
#include <vl/generic.h>
#include <vl/vlad.h>
#include <vl/fisher.h>
#include <vl/kmeans.h>
